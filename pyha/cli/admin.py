"""`pyha status`, `history`, `audit`, `cleanup`, `whoami` and the live `explain`: calls to a
node's admin endpoint.

Exit codes scripts can rely on: 0 done; 1 the endpoint refused the connection or the call
(role, certificate, a bad argument) or the call failed there; 2 a usage or local setup
error (options, client settings, TLS files); 3 the endpoint could not be reached.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from pyha.admin.client import AdminClient, ClientSettings
from pyha.admin.errors import AdminUnreachable, CertificateError
from pyha.admin.report import AuditEntry, FlagsResult, OperationRecord, StatusReport
from pyha.errors import ConfigError, PyhaError

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
T = TypeVar("T")

_CONNECT = typer.Option(None, "--connect", metavar="HOST:PORT", show_default=False,
                        help="The admin endpoint (default $PYHA_ADMIN, else the client "
                             "settings file).")
_SETTINGS = typer.Option(None, "--client-config", show_default=False,
                         help="Client settings file (default $PYHA_ADMIN_CONFIG, else "
                              "~/.config/pyha/client.toml).")
_JSON = typer.Option(False, "--json", help="Print JSON instead of tables.")


def exit_code(exc: PyhaError) -> int:
    """The exit code for an error of an admin command."""
    if isinstance(exc, AdminUnreachable):
        return EXIT_UNREACHABLE
    if isinstance(exc, ConfigError | CertificateError):
        return EXIT_USAGE
    return EXIT_REFUSED


@contextmanager
def connected(command: str, connect: str | None, settings: Path | None) -> Iterator[AdminClient]:
    """A client from the options, closed afterwards; errors end the command with its code."""
    try:
        client = AdminClient.from_settings(ClientSettings.load(connect, settings))
    except PyhaError as exc:
        raise _fail(command, exc) from None
    try:
        yield client
    except PyhaError as exc:
        raise _fail(command, exc) from None
    finally:
        client.close()


def _fail(command: str, exc: PyhaError) -> typer.Exit:
    text = str(exc)
    # Remote errors already start with the method's name ("cleanup: resource: ...").
    method = command.replace(" ", "_")
    named = text.startswith((f"{command}:", f"{method}:"))
    typer.echo(f"pyha: {text}" if named else f"pyha {command}: {text}", err=True)
    return typer.Exit(exit_code(exc))


def call(command: str, connect: str | None, settings: Path | None,
         request: Callable[[AdminClient], T]) -> T:
    """One request over a fresh connection."""
    with connected(command, connect, settings) as client:
        return request(client)


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=1, sort_keys=False))


# -- status -------------------------------------------------------------------------------

def status(
    connect: str | None = _CONNECT,
    client_config: Path | None = _SETTINGS,
    as_json: bool = _JSON,
    every: bool = typer.Option(False, "--all", "-a",
                               help="List every resource, even in a cluster of more than "
                                    "200 where only those not as they should be are listed."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Refresh until Ctrl-C."),
    interval: float = typer.Option(2.0, min=0.1, help="With --watch: seconds between updates."),
    count: int = typer.Option(0, min=0, help="With --watch: stop after this many updates "
                                             "(0: never)."),
) -> None:
    """The cluster at a glance: nodes, coordinator, term, quorum, groups and resources."""
    if not watch:
        report = call("status", connect, client_config, lambda c: c.status(full=every))
        if as_json:
            _echo_json(report.model_dump(mode="json"))
        else:
            Console().print(render_status(report))
        return
    with connected("status", connect, client_config) as client:
        _watch(client, as_json, interval, count, every)


def _watch(client: AdminClient, as_json: bool, interval: float, count: int,
           every: bool = False) -> None:
    shown = 0
    console = Console()
    with Live(console=console, auto_refresh=False, transient=False) as screen:
        try:
            while count == 0 or shown < count:
                try:
                    report = client.status(full=every)
                    body: Any = (Text(json.dumps(report.model_dump(mode="json"), indent=1))
                                 if as_json else render_status(report))
                except AdminUnreachable as exc:
                    body = Text(f"{_clock(time.time())}  {exc} (retrying)", style="bold red")
                screen.update(body, refresh=True)
                shown += 1
                if count == 0 or shown < count:
                    time.sleep(interval)
        except KeyboardInterrupt:
            pass


def render_status(r: StatusReport) -> Group:
    """The status as crm_mon shows it: a summary, then nodes, groups and resources."""
    coordinator = f"{r.coordinator} (term {r.term})" if r.coordinator else "none elected"
    quorum = Text("yes", style="green") if r.quorum else Text("NO", style="bold red")
    head = Text.assemble(
        ("Cluster ", "bold"), (r.cluster, "bold cyan"), f"  answered by {r.answered_by} at ",
        _clock(r.at), "\nCoordinator: ", coordinator, "   Quorum: ", quorum,
        f"   Members: {', '.join(r.members) or 'none'}   Config epoch: {r.epoch}",
        *(("\n", ("CLUSTER IN MAINTENANCE", "bold yellow")) if r.maintenance else ()),
        f"\nDecision: {r.decision or '(none yet)'}",
        f"\nTiming: heartbeat every {_span(r.timing.heartbeat_interval)}, dead after "
        f"{_span(r.timing.dead_after)}, lease {_span(r.timing.lease)}: a lost node is "
        f"noticed within {_span(r.timing.detection_worst)}",
        *((f" (a lost server alone within {_span(r.timing.server_loss_detection)})",)
          if r.timing.server_loss_detection is not None else ()))
    parts: list[Any] = [head, _nodes(r), _groups(r), _resources(r)]
    if r.omitted:
        roles = ", ".join(f"{n:,} {role}" for role, n in sorted(r.roles.items()))
        parts.append(Text(f"{r.omitted:,} of {r.omitted + len(r.resources):,} resources are "
                          f"not listed: they are as they should be ({roles} in all); "
                          "pyha status --all lists every one", style="dim"))
    return Group(*parts)


def _nodes(r: StatusReport) -> Table:
    table = Table(title="Nodes", title_justify="left", expand=False)
    for column in ("Node", "State", "Votes", "Notes"):
        table.add_column(column)
    for n in r.nodes:
        state = Text("online", style="green") if n.online else Text("OFFLINE", style="bold red")
        notes = [w for w, on in (("coordinator", n.coordinator), ("standby", n.standby),
                                 ("maintenance", n.maintenance)) if on]
        table.add_row(n.name, state, str(n.votes), ", ".join(notes))
    return table


_STATE_STYLE = {"running": "green", "stopped": "dim", "starting": "yellow", "failed": "bold red"}


def _groups(r: StatusReport) -> Table:
    table = Table(title="Groups", title_justify="left")
    for column in ("Group", "State", "Node", "Wanted on", "Why"):
        table.add_column(column, overflow="fold")
    for g in r.groups:
        where = g.node or ", ".join(g.active_on) or "-"
        table.add_row(g.name, Text(g.state, style=_STATE_STYLE.get(g.state, "bold red")),
                      where, g.target or "stopped", g.why)
    return table


def _resources(r: StatusReport) -> Table:
    title = "Resources not as they should be" if r.omitted else "Resources"
    table = Table(title=title, title_justify="left")
    for column in ("Resource", "Group", "Type", "Node", "State", "Fail counts",
                   "Last operation"):
        table.add_column(column, overflow="fold")
    for x in r.resources:
        style = {"started": "green", "promoted": "green", "stopped": "dim"}.get(x.role, "bold red")
        fails = ", ".join(f"{node}: {n}" for node, n in sorted(x.fail_counts.items()))
        state = Text(x.role, style=style)
        if x.message:
            state.append(f" ({x.message})", style="dim")
        table.add_row(x.name, x.group, x.type, x.node or ", ".join(x.active_on) or "-", state,
                      Text(fails, style="yellow") if fails else "", x.last_operation)
    return table


# -- explain, history, audit, cleanup, whoami -----------------------------------------------

def remote_explain(group: str | None, as_json: bool, connect: str | None,
                   client_config: Path | None = None) -> None:
    """`pyha explain` of the running cluster."""
    answer = call("explain", connect, client_config, lambda c: c.explain(group))
    if as_json:
        _echo_json(answer.model_dump(mode="json"))
        return
    typer.echo(f"decision: {answer.decision}\n\n{answer.text}", nl=False)


def history(
    resource: str | None = typer.Argument(None, help="Only this resource."),
    node: str | None = typer.Option(None, "--node", help="Only this node."),
    limit: int = typer.Option(50, min=1, help="The newest this many."),
    connect: str | None = _CONNECT,
    client_config: Path | None = _SETTINGS,
    as_json: bool = _JSON,
) -> None:
    """The operations the nodes ran, oldest first: start, stop, monitors that failed..."""
    records = call("history", connect, client_config,
                   lambda c: c.history(resource, node, limit))
    if as_json:
        _echo_json([r.model_dump(mode="json") for r in records])
        return
    Console().print(_history_table(records))


def _history_table(records: list[OperationRecord]) -> Table:
    table = Table(title="Operation history", title_justify="left")
    for column in ("When", "Node", "Resource", "Operation", "Outcome", "Took", "Message"):
        table.add_column(column, overflow="fold")
    for r in records:
        op = f"{r.operation} every {_span(r.interval)}" if r.interval else r.operation
        table.add_row(_clock(r.started), r.node, r.resource, op,
                      Text(r.outcome if r.status == "done" else r.status,
                           style="green" if r.ok else "bold red"),
                      _span(r.duration), r.message)
    return table


def audit(
    limit: int = typer.Option(100, min=1, help="The newest this many."),
    connect: str | None = _CONNECT,
    client_config: Path | None = _SETTINGS,
    as_json: bool = _JSON,
) -> None:
    """Who called the answering node's admin endpoint, what, when, and the result."""
    entries = call("audit", connect, client_config, lambda c: c.audit(limit))
    if as_json:
        _echo_json([e.model_dump(mode="json") for e in entries])
        return
    Console().print(_audit_table(entries))


def _audit_table(entries: list[AuditEntry]) -> Table:
    table = Table(title="Admin audit log", title_justify="left")
    for column in ("When", "Who", "Role", "Call", "Result", "Detail"):
        table.add_column(column, overflow="fold")
    for e in entries:
        args = ", ".join(f"{k}={v}" for k, v in e.arguments.items() if v is not None)
        table.add_row(_clock(e.when), e.who, e.role, f"{e.method}({args})",
                      Text(e.result, style={"ok": "green"}.get(e.result, "bold red")), e.detail)
    return table


def cleanup(
    resource: str = typer.Argument(..., help="The resource whose failures to forget."),
    node: str | None = typer.Option(None, "--node", help="Only on this node (default: all)."),
    connect: str | None = _CONNECT,
    client_config: Path | None = _SETTINGS,
    as_json: bool = _JSON,
) -> None:
    """Forget a resource's failures and probe it again (needs the operator role)."""
    result = call("cleanup", connect, client_config, lambda c: c.cleanup(resource, node))
    if as_json:
        _echo_json(result.model_dump(mode="json"))
        return
    typer.echo(f"cleaned up {result.resource} on {', '.join(result.nodes) or 'no node'}: "
               f"{result.cleared} failure record(s) forgotten; it is probed again now")


node_app = typer.Typer(help="Nodes: standby and online (kept in the configuration), add and "
                             "remove.", no_args_is_help=True)


@node_app.command("standby")
def node_standby(
    node: str = typer.Argument(..., help="The node to put in standby."),
    connect: str | None = _CONNECT,
    client_config: Path | None = _SETTINGS,
) -> None:
    """Move the node's groups away and start nothing there (needs operator)."""
    _said(call("node standby", connect, client_config, lambda c: c.standby(node)))


@node_app.command("online")
def node_online(
    node: str = typer.Argument(..., help="The node to take out of standby."),
    connect: str | None = _CONNECT,
    client_config: Path | None = _SETTINGS,
) -> None:
    """Let groups run on the node again (needs operator)."""
    _said(call("node online", connect, client_config, lambda c: c.online(node)))


def maintenance(
    state: str = typer.Argument(..., metavar="on|off", help="on: leave every resource as "
                                                            "it is; off: manage them again."),
    connect: str | None = _CONNECT,
    client_config: Path | None = _SETTINGS,
) -> None:
    """Cluster maintenance mode on or off (needs operator)."""
    if state not in ("on", "off"):
        typer.echo(f"pyha maintenance: say on or off, not {state!r}", err=True)
        raise typer.Exit(EXIT_USAGE)
    _said(call("maintenance", connect, client_config, lambda c: c.maintenance(state == "on")))


def _said(result: FlagsResult) -> None:
    what = [f"{node} {'standby' if on else 'online'}" for node, on in result.standby.items()]
    if result.maintenance is not None:
        what.append(f"maintenance {'on' if result.maintenance else 'off'}")
    typer.echo(f"{', '.join(what)}: on disk on {', '.join(result.applied_on) or 'no node'} "
               f"({result.note})")


def whoami(
    connect: str | None = _CONNECT,
    client_config: Path | None = _SETTINGS,
) -> None:
    """Who the admin endpoint takes you for: your certificate's name and role."""
    me = call("whoami", connect, client_config, lambda c: c.whoami())
    typer.echo(f"{me.name} ({me.role}) on {me.node}")


def _clock(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S") if seconds else "-"


def _span(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    return f"{seconds:.3g}s" if seconds < 60 else f"{seconds / 60:.1f}min"


def register(app: typer.Typer) -> None:
    """Add the admin commands to the `pyha` command (the live `explain` is reached through
    `pyha explain` without an input file)."""
    for command in (status, history, audit, cleanup, whoami, maintenance):
        app.command()(command)
    app.add_typer(node_app, name="node")
