"""`pyha server` as a real process: starts a group, survives a kill, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyha.testing.dummy import default_state_path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "single-node.toml"
OCF_DUMMY = Path("/usr/lib/ocf/resource.d/heartbeat/Dummy")

pytestmark = pytest.mark.skipif(not OCF_DUMMY.exists(),
                                reason="Debian's resource-agents is not installed")


def pyha(*args: str) -> list[str]:
    return [sys.executable, "-m", "pyha.cli", *args]


def wait_for(path: Path, text: str, timeout: float = 30.0) -> str:
    """Poll a log file until `text` appears; bounded in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = path.read_text() if path.exists() else ""
        if text in content:
            return content
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in log after {timeout}s:\n{content}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            pyha("server", "--config", str(EXAMPLE), "--state-dir", str(tmp_path / "state"),
                 "--log-level", "DEBUG"),
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    yield proc, log
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_server_starts_the_group_recovers_and_stops_in_reverse_on_sigterm(
    server: tuple[subprocess.Popen[bytes], Path], tmp_path: Path,
) -> None:
    proc, log = server
    wait_for(log, "start first on n1, second on n1")
    wait_for(log, "ocf:heartbeat:Dummy start second: success (0)")
    first_state = default_state_path(tmp_path / "state", "first")
    assert first_state.exists()

    first_state.unlink()  # the first member dies: both are restarted, in order
    text = wait_for(log, "recover first: monitor failed on n1 (monitor found it not running), "
                         "failure 1 of 3")
    assert "stop second on n1, first on n1; start first on n1, second on n1" in text
    wait_for(log, "4 action(s) done")
    assert first_state.exists()

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    text = log.read_text()
    assert "shutting down: stop second, first" in text
    assert text.index("stop second: success") < text.rindex("stop first: success")
    assert "cluster server for node n1 stopped" in text
    assert not first_state.exists()


def test_a_bad_config_exits_2_with_the_field_and_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(EXAMPLE.read_text().replace('interval = "5s"', 'interval = "soon"'))
    done = subprocess.run(pyha("server", "--config", str(bad)), capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "groups[0].resources[0].operations[0].interval: 'soon' is not a duration" \
        in done.stderr


def test_bad_parameters_are_refused_before_anything_starts(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(EXAMPLE.read_text().replace(
        'type = "dummy"', 'type = "dummy"\nparams = { fail_code = "often" }'))
    done = subprocess.run(
        pyha("server", "--config", str(bad), "--state-dir", str(tmp_path / "state")),
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "resource first (group app): params.fail_code: must be an integer" in done.stderr
    assert not (tmp_path / "state").exists()


def test_an_unknown_node_name_is_refused_clearly(tmp_path: Path) -> None:
    done = subprocess.run(
        pyha("server", "--config", str(EXAMPLE), "--node", "n9", "--state-dir",
             str(tmp_path / "state")),
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "--node: 'n9' is not a node of the cluster file" in done.stderr
    assert "Traceback" not in done.stderr


def test_ocf_agents_learn_the_cluster_nodes(tmp_path: Path) -> None:
    from pyha.model.config import ClusterConfig
    from pyha.resources.ocf import OcfAgent
    from pyha.resources.registry import Registry
    from pyha.server import ClusterServer

    config = ClusterConfig.from_mapping({
        "cluster": {"name": "o"}, "nodes": [{"name": "n1"}, {"name": "n2"}, {"name": "n3"}],
        "groups": [{"name": "g", "resources": [{"name": "d", "type": "ocf:heartbeat:Dummy"}]}],
    })
    server = ClusterServer(config, Registry.discover(entry_points=False), node="n1",
                           state_dir=tmp_path)
    agent = server.members["d"].agent
    assert isinstance(agent, OcfAgent)
    assert agent.nodes == ("n1", "n2", "n3")
