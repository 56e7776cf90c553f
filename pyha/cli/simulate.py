"""`pyha simulate` and `pyha explain`: run the scheduler on a saved input or a cluster file,
with changes applied, and print what it would do and why."""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path
from typing import Any

import typer

from pyha.errors import ConfigError, PyhaError
from pyha.model.config import ClusterConfig
from pyha.scheduler import Plan, plan
from pyha.scheduler.explain import explain as explain_text
from pyha.scheduler.explain import format_plan, format_scores, plan_json
from pyha.scheduler.inputs import INPUTS_DIR, SchedulerInput, input_number
from pyha.testing import harness

EXIT_INPUT = 2

_INPUT = typer.Argument(
    None, show_default=False,
    help="A saved input (scheduler/input-<n>.json), a scenario file (.toml with now, config "
         "and view), or a state directory (its newest saved input).")
_CONFIG = typer.Option(None, "--config", "-c", show_default=False,
                       help="A cluster file (TOML): every node online, nothing running.")
_RUNNING = typer.Option([], "--running", metavar="GROUP=NODE", show_default=False,
                        help="With --config: this group runs on this node (repeatable).")
_NOW = typer.Option(None, "--now", show_default=False,
                    help="Wall-clock seconds to schedule at (default: the input's, or now).")
_JSON = typer.Option(False, "--json", help="Print one JSON object.")


def load_input(path: Path) -> SchedulerInput:
    """A scheduler input from a saved JSON input, a TOML scenario or a state directory."""
    if path.is_dir():
        path = latest_input(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.').upper()}: {exc}") \
            from None
    return SchedulerInput.from_mapping(data, str(path))


def latest_input(state_dir: Path) -> Path:
    """The newest saved input under `state_dir` (or `state_dir` itself holding them)."""
    folder = state_dir / INPUTS_DIR if (state_dir / INPUTS_DIR).is_dir() else state_dir
    saved = [(n, p) for p in folder.iterdir() if (n := input_number(p.name)) is not None]
    if not saved:
        raise ConfigError(f"{folder}: no saved scheduler input (input-<n>.json) there")
    return max(saved)[1]


def _source(input_path: Path | None, config: Path | None, running: list[str],
            now: float | None) -> SchedulerInput:
    if (input_path is None) == (config is None):
        raise ConfigError("give either a saved input (or state directory) or --config")
    if input_path is not None:
        if running:
            raise ConfigError("--running only goes with --config")
        loaded = load_input(input_path)
        return loaded if now is None else loaded.model_copy(update={"now": now})
    assert config is not None
    cluster = ClusterConfig.from_toml(config)
    view = harness.idle_view(cluster, dict(_pair(r, "--running", "GROUP=NODE") for r in running))
    return SchedulerInput(now=time.time() if now is None else now, config=cluster, view=view)


def _pair(text: str, option: str, form: str) -> tuple[str, str]:
    sep = "=" if "=" in form else ":"
    left, found, right = text.partition(sep)
    if not found or not left or not right:
        raise ConfigError(f"{option} {text}: write {form}")
    return left, right


def inject(data: SchedulerInput, node_down: list[str], standby: list[str],
           fail: list[str]) -> SchedulerInput:
    """`data` with nodes down, nodes in standby and resources failed, in that order."""
    view = data.view
    for node in node_down:
        view = harness.node_down(view, node)
    for node in standby:
        view = harness.standby(view, node)
    for spec in fail:
        resource, operation = _pair(spec, "--fail", "RESOURCE:OPERATION")
        view = harness.fail(data.config, view, resource, operation, data.now)
    return data.model_copy(update={"view": view})


def _run(data: SchedulerInput) -> Plan:
    return plan(data.config, data.view, data.now)


def _fail(command: str, exc: PyhaError) -> typer.Exit:
    typer.echo(f"pyha {command}: {exc}", err=True)
    return typer.Exit(EXIT_INPUT)


def simulate(
    input_path: Path | None = _INPUT,
    config: Path | None = _CONFIG,
    running: list[str] = _RUNNING,
    node_down: list[str] = typer.Option([], "--node-down", metavar="NODE", show_default=False,
                                        help="This node goes down (repeatable)."),
    standby: list[str] = typer.Option([], "--standby", metavar="NODE", show_default=False,
                                      help="This node goes into standby (repeatable)."),
    fail: list[str] = typer.Option(
        [], "--fail", metavar="RESOURCE:OPERATION", show_default=False,
        help="This operation fails where the resource runs, counted as the server counts "
             "it (repeatable), e.g. --fail db:monitor."),
    now: float | None = _NOW,
    as_json: bool = _JSON,
    connect: str | None = typer.Option(
        None, "--connect", metavar="HOST:PORT", show_default=False,
        help="Simulate on the running cluster at this admin endpoint; without an input or "
             "--config the running cluster is used anyway."),
) -> None:
    """What the scheduler would do: actions in order with reasons, placements, notes, scores."""
    if connect is not None or (input_path is None and config is None):
        from pyha.cli.admin import call

        answer = call("simulate", connect, None, lambda c: c.simulate(
            node_down=node_down or None, standby=standby or None, fail=fail or None))
        typer.echo(json.dumps(answer["plan"], indent=1) if as_json else answer["text"],
                   nl=not as_json and not str(answer["text"]).endswith("\n"))
        return
    try:
        data = inject(_source(input_path, config, running, now), node_down, standby, fail)
    except PyhaError as exc:
        raise _fail("simulate", exc) from None
    result = _run(data)
    if as_json:
        typer.echo(json.dumps(plan_json(result), indent=1))
        return
    typer.echo(format_plan(result) + "scores:\n" + _indent(format_scores(result)), nl=False)


def explain(
    input_path: Path | None = _INPUT,
    config: Path | None = _CONFIG,
    running: list[str] = _RUNNING,
    group: str | None = typer.Option(None, "--group", "-g", show_default=False,
                                     help="Only this group."),
    now: float | None = _NOW,
    as_json: bool = _JSON,
    connect: str | None = typer.Option(
        None, "--connect", metavar="HOST:PORT", show_default=False,
        help="Ask the running cluster at this admin endpoint; without an input or --config "
             "the running cluster is asked anyway ($PYHA_ADMIN, ~/.config/pyha/client.toml)."),
) -> None:
    """Why each group is where it is: scores and their parts, moves, bans from failures."""
    if connect is not None or (input_path is None and config is None):
        from pyha.cli.admin import remote_explain

        remote_explain(group, as_json, connect)
        return
    try:
        data = _source(input_path, config, running, now)
        if group is not None and group not in {g.name for g in data.config.groups}:
            raise ConfigError(f"--group: no group named {group!r}")
    except PyhaError as exc:
        raise _fail("explain", exc) from None
    result = _run(data)
    if as_json:
        out: dict[str, Any] = plan_json(result)
        if group is not None:
            out = {"placements": {group: out["placements"][group]},
                   "scores": {group: out["scores"].get(group, {})}}
        typer.echo(json.dumps(out, indent=1))
        return
    typer.echo(explain_text(result, group), nl=False)


def _indent(text: str) -> str:
    return "".join(f"  {line}\n" if line else "\n" for line in text.splitlines())


def register(app: typer.Typer) -> None:
    """Add `simulate` and `explain` to the `pyha` command."""
    app.command()(simulate)
    app.command()(explain)
