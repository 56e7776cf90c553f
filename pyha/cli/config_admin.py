"""`pyha resource|group|constraint add|update|remove|show|list`, `pyha node add|remove`,
`pyha move` and `pyha unmove`: configuration changes through a node's admin endpoint.

Every change goes to the coordinator, which answers once a majority of the cluster's
votes has it on disk. Exit codes are those of `pyha.cli.admin` (0 done, 1 refused,
2 usage, 3 unreachable), and 4 when `move --wait` timed out.
"""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from pyha.admin.client import AdminClient
from pyha.admin.report import ChangeResult
from pyha.cli.admin import _CONNECT, _JSON, _SETTINGS, EXIT_USAGE, _echo_json, call, connected

EXIT_TIMEOUT = 4
"""`move --wait`: the change was made, but the group was not running there in time."""

_FILE = typer.Option(None, "--file", "-f", show_default=False,
                     help="The definition as a TOML or JSON file (fields as in the cluster "
                          "file).")
_PARAM = typer.Option([], "--param", "-p", metavar="NAME=VALUE", show_default=False,
                      help="A parameter (repeatable); VALUE is read as JSON when it parses "
                           "(numbers, true/false, lists), else taken as text.")
_SET = typer.Option([], "--set", metavar="FIELD=VALUE", show_default=False,
                    help="A field to set (repeatable), VALUE as JSON when it parses, e.g. "
                         "--set meta='{\"stickiness\": 50}'.")


def _usage(command: str, message: str) -> typer.Exit:
    typer.echo(f"pyha {command}: {message}", err=True)
    return typer.Exit(EXIT_USAGE)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _pairs(command: str, option: str, items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        name, found, value = item.partition("=")
        if not found or not name:
            raise _usage(command, f"{option} {item!r}: write NAME=VALUE")
        out[name] = _value(value)
    return out


def _definition(command: str, file: Path | None) -> dict[str, Any]:
    if file is None:
        return {}
    try:
        text = file.read_text()
    except OSError as exc:
        raise _usage(command, f"{file}: cannot read: {exc.strerror}") from None
    try:
        data = json.loads(text) if file.suffix == ".json" else tomllib.loads(text)
    except ValueError as exc:
        raise _usage(command, f"{file}: {exc}") from None
    if not isinstance(data, dict):
        raise _usage(command, f"{file}: not a definition (a table/object is expected)")
    return data


def _done(result: ChangeResult, as_json: bool) -> None:
    if as_json:
        _echo_json(result.model_dump(mode="json"))
        return
    typer.echo(f"{result.change}: epoch {result.epoch}, made by {result.coordinator}, on disk "
               f"on {', '.join(result.acked)}")


def _show(data: Any, as_json: bool) -> None:
    typer.echo(json.dumps(data, indent=1, sort_keys=not as_json))


# -- resources ------------------------------------------------------------------------------

resource_app = typer.Typer(help="Resources: instances of resource types, in groups.",
                           no_args_is_help=True)


@resource_app.command("list")
def resource_list(connect: str | None = _CONNECT, client_config: Path | None = _SETTINGS,
                  as_json: bool = _JSON) -> None:
    """Every resource with its group and type."""
    rows = call("resource list", connect, client_config, lambda c: c.call("resource_list"))
    if as_json:
        _echo_json(rows)
        return
    for r in rows:
        typer.echo(f"{r['name']:<24} {r['group']:<20} {r['type']}")


@resource_app.command("show")
def resource_show(name: str = typer.Argument(...), connect: str | None = _CONNECT,
                  client_config: Path | None = _SETTINGS, as_json: bool = _JSON) -> None:
    """One resource's definition."""
    _show(call("resource show", connect, client_config,
               lambda c: c.call("resource_show", name=name)), as_json)


@resource_app.command("add")
def resource_add(
    group: str = typer.Argument(..., help="The group it joins."),
    name: str | None = typer.Argument(None, help="Its name (or in --file)."),
    rtype: str | None = typer.Option(None, "--type", "-t", help="Its resource type."),
    params: list[str] = _PARAM,
    position: int | None = typer.Option(None, "--position",
                                        help="Its place in the start order (0 first)."),
    file: Path | None = _FILE,
    connect: str | None = _CONNECT, client_config: Path | None = _SETTINGS,
    as_json: bool = _JSON,
) -> None:
    """Add a resource to a group (needs the admin role)."""
    data = _definition("resource add", file)
    if name:
        data["name"] = name
    if rtype:
        data["type"] = rtype
    if params:
        data["params"] = {**data.get("params", {}), **_pairs("resource add", "--param", params)}
    _done(call("resource add", connect, client_config,
               lambda c: c.add_resource(group, data, position)), as_json)


@resource_app.command("update")
def resource_update(
    name: str = typer.Argument(...), params: list[str] = _PARAM, fields: list[str] = _SET,
    file: Path | None = _FILE,
    connect: str | None = _CONNECT, client_config: Path | None = _SETTINGS,
    as_json: bool = _JSON,
) -> None:
    """Change a resource: --param merges parameters, --set replaces fields."""
    changes = {**_definition("resource update", file),
               **_pairs("resource update", "--set", fields)}

    def request(c: AdminClient) -> ChangeResult:
        if params:
            old = c.call("resource_show", name=name).get("params", {})
            changes["params"] = {**old, **_pairs("resource update", "--param", params)}
        return c.update_resource(name, **changes)

    _done(call("resource update", connect, client_config, request), as_json)


@resource_app.command("remove")
def resource_remove(name: str = typer.Argument(...), connect: str | None = _CONNECT,
                    client_config: Path | None = _SETTINGS, as_json: bool = _JSON) -> None:
    """Remove a resource (stopped first where it runs)."""
    _done(call("resource remove", connect, client_config, lambda c: c.remove_resource(name)),
          as_json)


# -- groups ---------------------------------------------------------------------------------

group_app = typer.Typer(help="Resource groups.", no_args_is_help=True)


@group_app.command("list")
def group_list(connect: str | None = _CONNECT, client_config: Path | None = _SETTINGS,
               as_json: bool = _JSON) -> None:
    """Every group and its resources in start order."""
    rows = call("group list", connect, client_config, lambda c: c.call("group_list"))
    if as_json:
        _echo_json(rows)
        return
    for g in rows:
        typer.echo(f"{g['name']:<20} {', '.join(r['name'] for r in g['resources'])}")


@group_app.command("show")
def group_show(name: str = typer.Argument(...), connect: str | None = _CONNECT,
               client_config: Path | None = _SETTINGS, as_json: bool = _JSON) -> None:
    """One group's definition."""
    _show(call("group show", connect, client_config,
               lambda c: c.call("group_show", name=name)), as_json)


@group_app.command("add")
def group_add(
    name: str | None = typer.Argument(None, help="Its name (or in --file)."),
    file: Path | None = _FILE, fields: list[str] = _SET,
    connect: str | None = _CONNECT, client_config: Path | None = _SETTINGS,
    as_json: bool = _JSON,
) -> None:
    """Add a group with its resources (from --file)."""
    data = {**_definition("group add", file), **_pairs("group add", "--set", fields)}
    if name:
        data["name"] = name
    _done(call("group add", connect, client_config, lambda c: c.add_group(data)), as_json)


@group_app.command("update")
def group_update(
    name: str = typer.Argument(...), fields: list[str] = _SET, file: Path | None = _FILE,
    connect: str | None = _CONNECT, client_config: Path | None = _SETTINGS,
    as_json: bool = _JSON,
) -> None:
    """Change fields of a group (meta, description, resources)."""
    changes = {**_definition("group update", file), **_pairs("group update", "--set", fields)}
    _done(call("group update", connect, client_config,
               lambda c: c.update_group(name, **changes)), as_json)


@group_app.command("remove")
def group_remove(name: str = typer.Argument(...), connect: str | None = _CONNECT,
                 client_config: Path | None = _SETTINGS, as_json: bool = _JSON) -> None:
    """Remove a group and its resources."""
    _done(call("group remove", connect, client_config, lambda c: c.remove_group(name)),
          as_json)


# -- constraints ----------------------------------------------------------------------------

constraint_app = typer.Typer(help="Location, colocation and order constraints.",
                             no_args_is_help=True)


@constraint_app.command("list")
def constraint_list(connect: str | None = _CONNECT, client_config: Path | None = _SETTINGS,
                    as_json: bool = _JSON) -> None:
    """Every constraint, moves included."""
    rows = call("constraint list", connect, client_config, lambda c: c.constraints())
    if as_json:
        _echo_json(rows)
        return
    for k in rows:
        rest = ", ".join(f"{f}={v}" for f, v in k.items() if f not in ("id", "kind")
                         and v is not None)
        typer.echo(f"{k['id']:<24} {k['kind']:<11} {rest}")


@constraint_app.command("show")
def constraint_show(ident: str = typer.Argument(..., metavar="ID"),
                    connect: str | None = _CONNECT, client_config: Path | None = _SETTINGS,
                    as_json: bool = _JSON) -> None:
    """One constraint."""
    _show(call("constraint show", connect, client_config,
               lambda c: c.call("constraint_show", id=ident)), as_json)


@constraint_app.command("add")
def constraint_add(
    fields: list[str] = _SET, file: Path | None = _FILE,
    connect: str | None = _CONNECT, client_config: Path | None = _SETTINGS,
    as_json: bool = _JSON,
) -> None:
    """Add a constraint, e.g. --set kind=location --set id=db-on-n1 --set group=db
    --set node=n1 --set score=100."""
    data = {**_definition("constraint add", file), **_pairs("constraint add", "--set", fields)}
    _done(call("constraint add", connect, client_config, lambda c: c.add_constraint(data)),
          as_json)


@constraint_app.command("update")
def constraint_update(
    ident: str = typer.Argument(..., metavar="ID"), fields: list[str] = _SET,
    connect: str | None = _CONNECT, client_config: Path | None = _SETTINGS,
    as_json: bool = _JSON,
) -> None:
    """Change fields of a constraint, e.g. --set score=50."""
    changes = _pairs("constraint update", "--set", fields)
    _done(call("constraint update", connect, client_config,
               lambda c: c.update_constraint(ident, **changes)), as_json)


@constraint_app.command("remove")
def constraint_remove(ident: str = typer.Argument(..., metavar="ID"),
                      connect: str | None = _CONNECT, client_config: Path | None = _SETTINGS,
                      as_json: bool = _JSON) -> None:
    """Remove a constraint."""
    _done(call("constraint remove", connect, client_config,
               lambda c: c.remove_constraint(ident)), as_json)


# -- nodes ------------------------------------------------------------------------------------


def node_add(
    name: str = typer.Argument(...),
    address: list[str] = typer.Option(..., "--address", metavar="HOST:PORT",
                                      help="A heartbeat address (repeatable: one per link)."),
    rpc: str = typer.Option(..., "--rpc", metavar="HOST:PORT", help="Its address for calls."),
    fields: list[str] = _SET,
    connect: str | None = _CONNECT, client_config: Path | None = _SETTINGS,
    as_json: bool = _JSON,
) -> None:
    """Add a computer to the cluster; then start `pyha server` there."""
    data = {"name": name, "addresses": address, "rpc": rpc,
            **_pairs("node add", "--set", fields)}
    _done(call("node add", connect, client_config, lambda c: c.add_node(data)), as_json)


def node_remove(name: str = typer.Argument(...), connect: str | None = _CONNECT,
                client_config: Path | None = _SETTINGS, as_json: bool = _JSON) -> None:
    """Remove a node from the cluster (stop its server first)."""
    _done(call("node remove", connect, client_config, lambda c: c.remove_node(name)), as_json)


# -- move ---------------------------------------------------------------------------------------


def move(
    group: str = typer.Argument(...), node: str = typer.Argument(...),
    lifetime: str | None = typer.Option(None, "--lifetime", metavar="DURATION",
                                        help="Drop the move after this long, e.g. 30m."),
    wait: bool = typer.Option(True, "--wait/--no-wait",
                              help="Wait until the group runs on the node."),
    timeout: float = typer.Option(120.0, "--timeout", help="How long --wait waits (s)."),
    connect: str | None = _CONNECT, client_config: Path | None = _SETTINGS,
    as_json: bool = _JSON,
) -> None:
    """Move a group to a node: a visible preference until `unmove` (needs operator)."""
    with connected("move", connect, client_config) as client:
        result = client.move(group, node, lifetime)
        if not as_json:
            _done(result, False)
        if not wait:
            if as_json:
                _done(result, True)
            return
        state = _wait_running(client, group, node, timeout, quiet=as_json)
    if as_json:
        _echo_json({**result.model_dump(mode="json"), "running": state == "running"})
    if state != "running":
        typer.echo(f"pyha move: {group} is not running on {node} after {timeout:g}s "
                   f"({state}); see pyha explain {group}", err=True)
        raise typer.Exit(EXIT_TIMEOUT)
    if not as_json:
        typer.echo(f"{group} runs on {node}")


def _wait_running(client: AdminClient, group: str, node: str, timeout: float,
                  quiet: bool) -> str:
    """'running' once `group` runs on `node`, else its last state when time ran out."""
    deadline = time.monotonic() + timeout
    state = "unknown"
    console = Console(stderr=True, quiet=quiet)
    with console.status(f"waiting for {group} to run on {node}"):
        while time.monotonic() < deadline:
            report = client.status()
            row = next((g for g in report.groups if g.name == group), None)
            if row is not None:
                state = f"{row.state} on {row.node or 'no node'}"
                if row.node == node and row.state == "running":
                    return "running"
            time.sleep(0.3)
    return state


def unmove(group: str = typer.Argument(...), connect: str | None = _CONNECT,
           client_config: Path | None = _SETTINGS, as_json: bool = _JSON) -> None:
    """Remove a group's move: it is placed by its other rules again."""
    _done(call("unmove", connect, client_config, lambda c: c.unmove(group)), as_json)


def register(app: typer.Typer, node_app: typer.Typer) -> None:
    """Add the configuration commands to `pyha` (and `node add|remove` to `pyha node`)."""
    app.add_typer(resource_app, name="resource")
    app.add_typer(group_app, name="group")
    app.add_typer(constraint_app, name="constraint")
    app.command()(move)
    app.command()(unmove)
    node_app.command("add")(node_add)
    node_app.command("remove")(node_remove)
