"""`pyha simulate`, `pyha explain` and the scheduler benchmark's output."""

from __future__ import annotations

import contextlib
import io
import json
import runpy
from pathlib import Path

import typer
from typer.testing import CliRunner

from pyha.cli import simulate
from pyha.scheduler.inputs import SchedulerInput
from pyha.server import save_input
from pyha.testing.harness import make_config, make_view

ROOT = Path(__file__).resolve().parents[2]
THREE = str(ROOT / "examples" / "three-nodes.toml")
SINGLE = str(ROOT / "examples" / "single-node.toml")
NOW = "1767225600"
RUNNING = ["--running", "db=n1", "--running", "web=n2", "--running", "mail=n2"]


def cli() -> typer.Typer:
    app = typer.Typer()
    simulate.register(app)
    return app


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli(), list(args))
    return result.exit_code, result.output


def test_simulate_a_cluster_file_starts_everything_in_order() -> None:
    code, out = run("simulate", "--config", SINGLE, "--now", NOW)
    assert code == 0, out
    assert out.startswith("decision: start first on n1, second on n1")
    assert "  2. start second on n1  [after 1]" in out
    assert "scores:\n  app -> n1\n    * n1  " in out


def test_simulate_a_node_down_prints_the_fence_and_the_moves_with_reasons() -> None:
    code, out = run("simulate", "--config", THREE, *RUNNING, "--node-down", "n1", "--now", NOW)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[2:4] == ["  1. fence n1",
                          "       because n1 is down while db-fs, db-server may still be "
                          "active there"]
    assert "  4. start db-fs on n3  [after 1]" in lines
    assert "       because db moves from n1 to n3: n1 is down (fenced first)" in lines
    assert "       because restart web: it needs db first (order db-before-web), which " \
           "moves to n3" in lines
    assert "  db -> n3: n3 scores 0 (no preference); tied with n2, it runs the fewest " \
           "resources" in lines


def test_simulate_failures_and_standby_as_json() -> None:
    code, out = run("simulate", "--config", THREE, *RUNNING, "--fail", "db-server:monitor",
                    "--fail", "db-server:monitor", "--standby", "n3", "--json", "--now", NOW)
    assert code == 0, out
    data = json.loads(out)
    assert data["placements"]["db"]["node"] == "n2"
    assert "db-server had 2 failures there (migration threshold 2)" in \
        data["transition"]["summary"]
    assert data["scores"]["db"]["n3"]["parts"] == [[-1_000_000, "n3 is in standby"]]


def test_simulate_replays_the_newest_saved_input_of_a_state_directory(tmp_path: Path) -> None:
    config = make_config("n1 n2")
    for down in ("n2", "n1"):
        view = make_view(config, running={"web": "n1"}, down=down)
        save_input(tmp_path / "scheduler", SchedulerInput(now=1000.0, config=config, view=view))
    code, out = run("simulate", str(tmp_path))
    assert code == 0, out
    assert out.startswith("decision: fence n1; start ip on n2, app on n2")


def test_simulate_reads_a_scenario_file() -> None:
    scenario = ROOT / "tests" / "scenarios" / "input" / "on-fail-fence.toml"
    code, out = run("simulate", str(scenario))
    assert code == 0, out
    assert out.startswith("decision: fence n1;")


def test_explain_shows_scores_moves_and_constraints(tmp_path: Path) -> None:
    code, out = run("explain", "--config", THREE, *RUNNING, "--group", "web", "--now", NOW)
    assert code == 0, out
    assert out.startswith("web: runs on n2\n  why: n2 scores 250 (+50 location web-prefers-n2")
    assert "constraint: order db-before-web: db then web (mandatory, symmetrical)" in out
    code, out = run("explain", "--config", THREE, "--group", "web", "--json", "--now", NOW)
    assert json.loads(out)["placements"] == {"web": {
        "node": "n2", "why": "n2 scores 50 (+50 location web-prefers-n2)", "managed": True}}


def test_bad_input_is_named_and_exits_2(tmp_path: Path) -> None:
    assert run("simulate")[0] == 2
    code, out = run("simulate", "--config", THREE, "--fail", "nothing:monitor")
    assert (code, "no resource named 'nothing'" in out) == (2, True)
    code, out = run("simulate", "--config", THREE, "--running", "web")
    assert (code, "--running web: write GROUP=NODE" in out) == (2, True)
    code, out = run("simulate", str(tmp_path))
    assert (code, "no saved scheduler input" in out) == (2, True)
    code, out = run("explain", "--config", THREE, "--group", "nope")
    assert (code, "no group named 'nope'" in out) == (2, True)


def test_the_benchmark_prints_one_json_object_of_medians() -> None:
    bench = runpy.run_path(str(ROOT / "bench" / "scheduler.py"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert bench["main"](["--json", "--sizes", "20,40", "--groups", "10", "--nodes", "4",
                              "--runs", "1"]) == 0
    data = json.loads(out.getvalue())
    assert set(data) == {"schedule_ms", "node_loss_ms"}
    for figures in data.values():
        assert set(figures) == {"20", "40"}
        assert all(isinstance(v, float) and v > 0 for v in figures.values())
