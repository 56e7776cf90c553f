"""`pyha keygen`: make the cluster key that authenticates heartbeats."""

from __future__ import annotations

from pathlib import Path

import typer

from pyha.errors import PyhaError
from pyha.membership.keys import generate_key, load_key


def keygen(
    path: Path = typer.Argument(..., help="Where to write the key (mode 600)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing key."),
) -> None:
    """Write a new random cluster key; copy it to every node over a secure channel."""
    try:
        generate_key(path, force=force)
        load_key(path)
    except PyhaError as exc:
        typer.echo(f"pyha keygen: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote a new cluster key to {path}")


def register(app: typer.Typer) -> None:
    """Add `keygen` to the `pyha` command."""
    app.command()(keygen)
