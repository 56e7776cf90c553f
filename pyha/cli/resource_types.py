"""`pyha resource-type list|show`: the installed resource types, their origin, their parameters."""

from __future__ import annotations

import contextlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pyha.errors import PluginError, UnknownResourceType
from pyha.model.types import format_duration
from pyha.resources.agent import Agent, Origin
from pyha.resources.registry import RegistrationError, Registry, describe, env_plugin_paths
from pyha.resources.spi import MetaData, ParameterSpec

app = typer.Typer(
    help="Resource types: which plugins are installed, where from, and what they take.",
    no_args_is_help=True,
    add_completion=False,
)

_HIDDEN = "(hidden)"
"""Shown instead of the default value of a secret parameter."""

_PLUGIN_PATH = typer.Option(
    [],
    "--plugin-path",
    help="Another folder of plugin folders (repeatable); $PYHA_PLUGIN_PATH adds more.",
)
_JSON = typer.Option(False, "--json", help="Print one JSON object instead of tables.")


def _registry(plugin_paths: list[Path]) -> Registry:
    return Registry.discover([*plugin_paths, *env_plugin_paths()])


@app.command("list")
def list_types(
    as_json: bool = _JSON,
    plugin_path: list[Path] = _PLUGIN_PATH,
    describe_all: bool = typer.Option(
        False,
        "--describe",
        help="Run meta-data of OCF agents not yet cached, to show every description.",
    ),
) -> None:
    """List every resource type; plugins that failed to register are listed with why."""
    registry = _registry(plugin_path)
    if describe_all:
        _fetch_descriptions(registry.agents())
    if as_json:
        typer.echo(json.dumps(_list_data(registry), indent=2))
        return
    console = Console()
    console.print(_types_table(registry.agents()))
    if registry.errors:
        _print_errors(console, registry.errors)


@app.command("show")
def show_type(
    type_name: str = typer.Argument(..., metavar="TYPE", help="A full or short type name."),
    as_json: bool = _JSON,
    plugin_path: list[Path] = _PLUGIN_PATH,
) -> None:
    """Show a resource type's parameters and operations with their default timeouts."""
    try:
        agent = _registry(plugin_path).resolve(type_name)
    except UnknownResourceType as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    try:
        meta = agent.meta
    except PluginError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(_show_data(agent, meta), indent=2))
        return
    _print_type(Console(), agent, meta)


def _fetch_descriptions(agents: list[Agent]) -> None:
    """Load every agent's meta data (OCF agents run in parallel); broken ones stay blank."""

    def load(agent: Agent) -> None:
        with contextlib.suppress(PluginError):
            _ = agent.meta

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(load, agents))


# ---------------------------------------------------------------- data


def _origin(origin: Origin) -> dict[str, str]:
    return {"kind": origin.kind, "location": origin.location}


def _type_data(agent: Agent) -> dict[str, Any]:
    return {
        "name": agent.short_name,
        "type": str(agent.name),
        "class": agent.name.klass,
        "provider": agent.name.provider,
        "origin": _origin(agent.origin),
        "description": describe(agent),
    }


def _error_data(error: RegistrationError) -> dict[str, Any]:
    return {"name": error.name_or_path, "origin": _origin(error.origin), "reason": error.reason}


def _list_data(registry: Registry) -> dict[str, Any]:
    return {
        "types": [_type_data(agent) for agent in registry.agents()],
        "errors": [_error_data(error) for error in registry.errors],
    }


def _parameter_data(spec: ParameterSpec) -> dict[str, Any]:
    data = spec.model_dump(mode="json")
    if spec.secret and spec.default is not None:
        data["default"] = _HIDDEN
    return data


def _show_data(agent: Agent, meta: MetaData) -> dict[str, Any]:
    return {
        **_type_data(agent),
        "description": meta.description,
        "version": meta.version,
        "promotable": meta.promotable,
        "parameters": [_parameter_data(p) for p in meta.parameters],
        "operations": [o.model_dump(mode="json") for o in meta.operations],
    }


# ---------------------------------------------------------------- tables


def _types_table(agents: list[Agent]) -> Table:
    """One row per type; where they come from is summed up under the table, once per folder."""
    table = Table(
        title=f"{len(agents)} resource types",
        title_justify="left",
        caption="\n".join(_locations(agents)),
        caption_justify="left",
    )
    table.add_column("name", overflow="fold")
    table.add_column("class:provider:type", overflow="fold")
    table.add_column("origin", overflow="fold")
    table.add_column("description", overflow="fold", ratio=1, min_width=16)
    for agent in agents:
        table.add_row(
            Text(agent.short_name),
            Text(str(agent.name)),
            Text(_origin_cell(agent.origin)),
            Text(describe(agent)),
        )
    return table


def _origin_cell(origin: Origin) -> str:
    """Short enough for a table cell: distributions say which; folders are in the caption."""
    return str(origin) if origin.kind == "distribution" else origin.kind


def _locations(agents: list[Agent]) -> list[str]:
    """'ocf: /usr/lib/ocf/resource.d/heartbeat' and the like, once each."""
    seen: dict[str, None] = {}
    for agent in agents:
        origin = agent.origin
        if origin.kind in ("bundled", "plugin-path"):
            seen[f"{origin.kind}: {Path(origin.location).parent}"] = None
        elif origin.kind != "distribution":
            seen[f"{origin.kind}: {origin.location}"] = None
    return sorted(seen)


def _print_errors(console: Console, errors: list[RegistrationError]) -> None:
    """One unwrapped line per failed plugin, so the reason can be read and grepped whole."""
    count = f"{len(errors)} plugin" if len(errors) == 1 else f"{len(errors)} plugins"
    console.print(Text(f"{count} failed to register:", style="bold red"))
    for error in errors:
        console.print(Text(f"  {error}"), soft_wrap=True)


def _print_type(console: Console, agent: Agent, meta: MetaData) -> None:
    console.print(Text(f"{agent.name}  ({agent.origin})", style="bold"))
    if meta.description:
        console.print(Text(meta.description))
    if meta.promotable:
        console.print(Text("promotable: yes"))
    console.print(_parameters_table(meta))
    console.print(_operations_table(meta))


def _parameters_table(meta: MetaData) -> Table:
    table = Table(title="parameters", title_justify="left")
    for column in ("name", "type", "required", "default", "description"):
        table.add_column(column, overflow="fold")
    for spec in meta.parameters:
        kind = f"select ({', '.join(spec.options)})" if spec.type == "select" else spec.type
        default = "" if spec.default is None else str(spec.default)
        table.add_row(
            Text(spec.name),
            Text(kind),
            Text("yes" if spec.required else "no"),
            Text(_HIDDEN if spec.secret and default else default),
            Text(spec.description),
        )
    return table


def _operations_table(meta: MetaData) -> Table:
    table = Table(title="operations", title_justify="left")
    for column in ("name", "default timeout", "interval"):
        table.add_column(column)
    for spec in meta.operations:
        interval = format_duration(spec.interval) if spec.interval else ""
        table.add_row(Text(spec.name), Text(format_duration(spec.timeout)), Text(interval))
    return table
