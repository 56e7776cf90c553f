"""The `pyha` command: one typer app, a sub-app per concern."""

from __future__ import annotations

import typer

from pyha import __version__

app = typer.Typer(
    name="pyha",
    help="pyha: keep resources available across the computers of a cluster.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pyha {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """pyha: keep resources available across the computers of a cluster."""


def _register() -> None:
    """Attach the sub-commands; each module owns its part of the command line."""
    from pyha.cli import admin, ca, config_admin, directory, keys, resource_types, run, simulate

    app.add_typer(resource_types.app, name="resource-type")
    app.add_typer(directory.app, name="directory")
    run.register(app)
    keys.register(app)
    simulate.register(app)
    admin.register(app)
    config_admin.register(app, admin.node_app)
    app.add_typer(ca.app, name="ca")


def main() -> None:
    """Console-script entry point."""
    _register()
    app()
