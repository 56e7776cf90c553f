"""`pyha ca`: the cluster's certificate authority for the admin endpoints."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from pyha.admin.auth import AdminRole
from pyha.admin.ca import CA_DAYS, CERT_DAYS, CertificateAuthority
from pyha.errors import PyhaError

EXIT_FAILED = 1
ENV_CA = "PYHA_CA_DIR"

app = typer.Typer(help="The cluster's certificate authority: make it, and issue certificates "
                       "for admins (with their role) and for the nodes' admin endpoints.",
                  no_args_is_help=True)


@app.command("init")
def init(
    directory: Path = typer.Argument(..., help="Where to keep the CA (ca.crt, ca.key)."),
    name: str = typer.Option("pyha cluster CA", help="The CA's common name."),
    days: int = typer.Option(CA_DAYS, help="How long the CA certificate lasts."),
) -> None:
    """Make a new cluster CA: a key (mode 600) and a self-signed certificate."""
    try:
        ca = CertificateAuthority.init(directory, name=name, days=days)
    except PyhaError as exc:
        typer.echo(f"pyha ca init: {exc}", err=True)
        raise typer.Exit(EXIT_FAILED) from None
    typer.echo(f"made a cluster CA: {ca.cert} (give it to every node and client) and "
               f"{ca.key} (keep it secret)")


@app.command("issue")
def issue(
    name: str = typer.Argument(..., help="The certificate's name (CN): a person, a tool, "
                                         "or with --server a node's name."),
    role: AdminRole = typer.Option(..., "--role", help="What the holder may do."),
    server: bool = typer.Option(False, "--server",
                                help="For a node's admin endpoint: also serverAuth, and the "
                                     "node's names as subject alternative names."),
    host: list[str] = typer.Option([], "--host", show_default=False,
                                   help="With --server: another DNS name or IP address the "
                                        "endpoint is reached by (repeatable)."),
    ca_dir: Path | None = typer.Option(None, "--ca", show_default=False,
                                       help=f"The CA directory (default ${ENV_CA}, else the "
                                            "current directory)."),
    out: Path | None = typer.Option(None, "--out", show_default=False,
                                    help="Where to write NAME.crt, NAME.key and a copy of "
                                         "ca.crt (default: the CA directory)."),
    days: int = typer.Option(CERT_DAYS, help="How long the certificate lasts."),
) -> None:
    """Issue a certificate signed by the cluster CA, its role in the subject's OU."""
    directory = ca_dir or Path(os.environ.get(ENV_CA, "."))
    try:
        issued = CertificateAuthority.open(directory).issue(
            name, role, server=server, hosts=tuple(host), days=days, out=out)
    except PyhaError as exc:
        typer.echo(f"pyha ca issue: {exc}", err=True)
        raise typer.Exit(EXIT_FAILED) from None
    typer.echo(f"issued {issued.cert} and {issued.key} (role {role.value})")
