"""`pyha directory init|start|stop|export|import|status`, and `pyha server` on a directory."""

from __future__ import annotations

import getpass
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from pyha.cluster.source import DirectorySource
from pyha.directory import slapd
from pyha.directory.bootstrap import (
    Bootstrap,
    DirectorySettings,
    load_bootstrap,
    read_password,
    write_bootstrap,
)
from pyha.directory.diff import diff_configs
from pyha.directory.embedded import CONFIG_FILE, RECORDS_FILE, ConfigStore, EmbeddedDirectory
from pyha.directory.records import AuditRecord
from pyha.directory.store import EntryStore
from pyha.directory.transfer import check_target, export_ldif, read_config_file
from pyha.directory.tree import ClusterNotFound
from pyha.errors import ConfigError, PyhaError
from pyha.model.config import ClusterConfig
from pyha.ports import free_port

if TYPE_CHECKING:
    from pyha.directory.ldap import LdapDirectory

app = typer.Typer(
    help="The LDAP directory that holds a cluster's configuration: a private OpenLDAP, "
         "import and export (also of a node's embedded directory).",
    no_args_is_help=True,
    add_completion=False,
)

EXIT_ERROR = 2
BOOTSTRAP = "bootstrap.toml"
PASSWORD_FILE = "admin.password"  # noqa: S105 - a file name, not a password
DEFAULT_SUFFIX = "dc=pyha,dc=test"

_STATE_DIR = typer.Option(None, "--state-dir", help="A directory made by `pyha directory init` "
                          "(its bootstrap.toml says how to connect), or a node's state "
                          "directory (its embedded directory).")
_EMBEDDED = typer.Option(False, "--embedded", help="--state-dir is a node's: use its embedded "
                         "directory (the default when it has config.json and no "
                         "bootstrap.toml).")
_BOOTSTRAP = typer.Option(None, "--bootstrap", help="A bootstrap file ([directory] section).")
_URL = typer.Option(None, "--directory", "--url", help="ldap:// or ldaps:// URL of the directory.")
_BASE_DN = typer.Option(None, "--base-dn", help="Where the cluster entries live.")
_BIND_DN = typer.Option(None, "--bind-dn", help="DN to bind as.")
_PASSWORD_FILE = typer.Option(None, "--password-file", help="File holding the bind password "
                              "(else $PYHA_DIRECTORY_PASSWORD).")
_CLUSTER = typer.Option(None, "--cluster", help="The cluster's name (cn under the base DN).")
_STARTTLS = typer.Option(False, "--starttls", help="Use StartTLS on an ldap:// URL.")
_CA_FILE = typer.Option(None, "--ca-file", help="CA certificate for TLS.")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"pyha directory: {message}", err=True)
    return typer.Exit(EXIT_ERROR)


def connection(bootstrap: Path | None = None, state_dir: Path | None = None,
               url: str | None = None, base_dn: str | None = None, bind_dn: str | None = None,
               password_file: Path | None = None, cluster: str | None = None,
               starttls: bool = False, ca_file: Path | None = None) -> Bootstrap:
    """Connection settings from a bootstrap file, a state dir, or options (in that order)."""
    if bootstrap is None and state_dir is not None and (state_dir / BOOTSTRAP).exists():
        bootstrap = state_dir / BOOTSTRAP
    if bootstrap is not None:
        boot = load_bootstrap(bootstrap)
        if cluster:
            boot = boot.model_copy(update={
                "directory": boot.directory.model_copy(update={"cluster": cluster})})
        return boot
    if not url or not base_dn:
        raise ConfigError("say where the directory is: --bootstrap FILE, --state-dir DIR (made "
                          "by `pyha directory init`, or a node's, with --embedded when it has "
                          "no config.json yet), or --directory URL with --base-dn")
    settings = DirectorySettings(urls=(url,), base_dn=base_dn, bind_dn=bind_dn or "",
                                 password=read_password(password_file), cluster=cluster,
                                 starttls=starttls, ca_file=ca_file)
    return Bootstrap(directory=settings)


def open_directory(settings: DirectorySettings) -> LdapDirectory:
    """An LdapDirectory for `settings` (imported late: ldap3 is only needed here)."""
    from pyha.directory.ldap import LdapDirectory

    return LdapDirectory(settings)


def is_embedded(state_dir: Path | None, embedded: bool, *others: object) -> bool:
    """Whether the command is about a node's embedded directory: asked for with
    --embedded, or a state dir with config.json or records.json but no bootstrap.toml
    (and no other connection option)."""
    if embedded:
        if state_dir is None:
            raise ConfigError("--embedded needs --state-dir (the node's state directory)")
        return True
    if state_dir is None or any(others) or (state_dir / BOOTSTRAP).exists():
        return False
    return (state_dir / CONFIG_FILE).exists() or (state_dir / RECORDS_FILE).exists()


def open_target(state_dir: Path | None, embedded: bool, bootstrap: Path | None,
                url: str | None, base_dn: str | None, bind_dn: str | None,
                password_file: Path | None, cluster: str | None, starttls: bool = False,
                ca_file: Path | None = None, *, default_cluster: str | None = None
                ) -> EntryStore:
    """The directory a command is about: a node's embedded one (see is_embedded), else
    LDAP as `connection` finds it; `default_cluster` when none is named."""
    if is_embedded(state_dir, embedded, bootstrap, url):
        assert state_dir is not None
        stored = (state_dir / CONFIG_FILE).exists()  # names its cluster itself
        return EmbeddedDirectory(state_dir, cluster or (None if stored else default_cluster))
    boot = connection(bootstrap, state_dir, url, base_dn, bind_dn, password_file, cluster,
                      starttls, ca_file)
    settings = boot.directory
    if default_cluster and not settings.cluster:
        settings = settings.model_copy(update={"cluster": default_cluster})
    return open_directory(settings)


# -- a private slapd --------------------------------------------------------------------------


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)  # no newline: `ldapsearch -y FILE` sends the file's bytes as they are
    path.chmod(0o600)


@app.command()
def init(
    state_dir: Path = typer.Option(..., "--state-dir", help="Where the instance lives."),
    port: int = typer.Option(0, help="TCP port (default: a free one)."),
    replica: bool = typer.Option(False, help="Also run a second slapd replicating both ways."),
    suffix: str = typer.Option(DEFAULT_SUFFIX, help="The directory's suffix (base DN)."),
    cluster: str = typer.Option("pyha", help="The cluster's name."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
) -> None:
    """Create and start a private OpenLDAP for a cluster; print its URL and bind DN."""
    reason = slapd.installed()
    if reason:
        raise _fail(reason)
    if (state_dir / "slapd").exists():
        raise _fail(f"{state_dir} holds an instance already; `pyha directory start` runs it")
    state_dir.mkdir(parents=True, exist_ok=True)
    password = slapd.new_password()
    _write_secret(state_dir / PASSWORD_FILE, password)
    ports = [port or free_port(host)]
    if replica:
        ports.append(free_port(host))
    urls = [f"ldap://{host}:{p}" for p in ports]
    try:
        for i, p in enumerate(ports):
            peers = tuple(u for j, u in enumerate(urls) if j != i)
            cfg = slapd.SlapdConfig(directory=state_dir / _instance_name(i), port=p,
                                    suffix=suffix, password=password, server_id=i + 1,
                                    peers=peers, host=host)
            instance = slapd.Slapd(cfg)
            instance.create()
            instance.start(detach=True)
        settings = DirectorySettings(urls=tuple(urls), base_dn=suffix, bind_dn=cfg.bind_dn,
                                     password=read_password(state_dir / PASSWORD_FILE),
                                     cluster=cluster)
        open_directory(settings).ensure_base()
    except PyhaError as exc:
        raise _fail(str(exc)) from None
    write_bootstrap(state_dir / BOOTSTRAP, settings, Path(PASSWORD_FILE))
    for url in urls:
        typer.echo(f"url: {url}")
    typer.echo(f"bind DN: {settings.bind_dn}\npassword file: {state_dir / PASSWORD_FILE}\n"
               f"base DN: {suffix}\ncluster: {cluster}\nbootstrap: {state_dir / BOOTSTRAP}")
    typer.echo(f"next: pyha directory import cluster.toml --state-dir {state_dir}")


def _instance_name(index: int) -> str:
    return "slapd" if index == 0 else f"slapd-replica{'' if index == 1 else index}"


def _instances(state_dir: Path) -> list[slapd.Slapd]:
    password = read_password(state_dir / PASSWORD_FILE).get_secret_value()
    found = sorted(p for p in state_dir.glob("slapd*") if (p / slapd.INSTANCE_FILE).exists())
    if not found:
        raise ConfigError(f"{state_dir}: no instance here; run `pyha directory init` first")
    return [slapd.Slapd(slapd.load_instance(p, password)) for p in found]


@app.command()
def start(state_dir: Path = typer.Option(..., "--state-dir")) -> None:
    """Start the private slapd(s) of a state dir again."""
    try:
        for instance in _instances(state_dir):
            if instance.running():
                typer.echo(f"{instance.cfg.url}: running already")
                continue
            instance.start(detach=True)
            typer.echo(f"{instance.cfg.url}: started")
    except PyhaError as exc:
        raise _fail(str(exc)) from None


@app.command()
def stop(state_dir: Path = typer.Option(..., "--state-dir")) -> None:
    """Stop the private slapd(s) of a state dir."""
    try:
        for instance in _instances(state_dir):
            instance.stop()
            typer.echo(f"{instance.cfg.url}: stopped")
    except PyhaError as exc:
        raise _fail(str(exc)) from None


# -- import and export --------------------------------------------------------------------------


@app.command("export")
def export_(
    output: Path | None = typer.Option(None, "--output", "-o", help="File (default: stdout)."),
    records: bool = typer.Option(False, "--all", help="Include status and audit entries."),
    state_dir: Path | None = _STATE_DIR, bootstrap: Path | None = _BOOTSTRAP,
    url: str | None = _URL, base_dn: str | None = _BASE_DN, bind_dn: str | None = _BIND_DN,
    password_file: Path | None = _PASSWORD_FILE, cluster: str | None = _CLUSTER,
    starttls: bool = _STARTTLS, ca_file: Path | None = _CA_FILE,
    embedded: bool = _EMBEDDED,
) -> None:
    """Write the cluster's entries as LDIF (from LDAP, or from a node's embedded directory)."""
    try:
        directory = open_target(state_dir, embedded, bootstrap, url, base_dn, bind_dn,
                                password_file, cluster, starttls, ca_file)
        try:
            entries = directory.export_entries(records)
        finally:
            directory.close()
        text = export_ldif(entries, directory.name)
    except PyhaError as exc:
        raise _fail(str(exc)) from None
    if output:
        output.write_text(text)
        typer.echo(f"{len(entries)} entries written to {output}", err=True)
    else:
        typer.echo(text, nl=False)


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help="LDIF (.ldif) or a TOML cluster file."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check and show changes only."),
    state_dir: Path | None = _STATE_DIR, bootstrap: Path | None = _BOOTSTRAP,
    url: str | None = _URL, base_dn: str | None = _BASE_DN, bind_dn: str | None = _BIND_DN,
    password_file: Path | None = _PASSWORD_FILE, cluster: str | None = _CLUSTER,
    starttls: bool = _STARTTLS, ca_file: Path | None = _CA_FILE,
    embedded: bool = _EMBEDDED,
) -> None:
    """Replace the cluster's configuration with a file's, after checking all of it.

    Into a node's embedded directory, import while the node is stopped: it runs the
    stored configuration at its next start (its epoch is the higher one).
    """
    try:
        config, layout = read_config_file(file)
        directory = open_target(state_dir, embedded, bootstrap, url, base_dn, bind_dn,
                                password_file, cluster, starttls, ca_file,
                                default_cluster=config.cluster.name)
        try:
            # The embedded tree's base DN is pyha's own: an LDIF of any base imports there.
            if not isinstance(directory, EmbeddedDirectory):
                check_target(layout, directory.layout)
            _import(directory, config, file, dry_run)
        finally:
            directory.close()
    except PyhaError as exc:
        raise _fail(str(exc)) from None


def _import(directory: EntryStore, config: ClusterConfig, file: Path,
            dry_run: bool) -> None:
    if config.cluster.name != directory.layout.cluster:
        raise ConfigError(f"the file is for cluster {config.cluster.name!r}, the directory "
                          f"connection names cluster {directory.layout.cluster!r}")
    try:
        changes = [c.describe() for c in diff_configs(directory.load(), config)]
    except ClusterNotFound:
        changes = [f"create cluster {config.cluster.name}"]
    except ConfigError:
        changes = ["replace the configuration stored now (it does not load)"]
    for line in changes or ["no changes"]:
        typer.echo(line)
    if dry_run or not changes:
        return
    new = directory.replace(config)
    directory.write_audit(AuditRecord.new(
        time.time(), f"pyha directory import by {_user()}",
        "import", subjects=(str(file),), changes=tuple(changes)[:50], epoch=new.epoch))
    resources = sum(len(g.resources) for g in new.groups)
    typer.echo(f"imported {file}: {len(new.nodes)} nodes, {len(new.groups)} groups, "
               f"{resources} resources, {len(new.constraints)} constraints; epoch {new.epoch}")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


@app.command()
def status(
    state_dir: Path | None = _STATE_DIR, bootstrap: Path | None = _BOOTSTRAP,
    url: str | None = _URL, base_dn: str | None = _BASE_DN, bind_dn: str | None = _BIND_DN,
    password_file: Path | None = _PASSWORD_FILE, cluster: str | None = _CLUSTER,
    audit: int = typer.Option(0, help="Also show the last N audit records."),
    embedded: bool = _EMBEDDED,
) -> None:
    """Show where each resource runs, as the cluster server wrote it to the directory."""
    from pyha.directory.codecs import format_time

    try:
        directory = open_target(state_dir, embedded, bootstrap, url, base_dn, bind_dn,
                                password_file, cluster)
        try:
            records = directory.read_status()
            trail = directory.read_audit(audit) if audit else []
        finally:
            directory.close()
    except PyhaError as exc:
        raise _fail(str(exc)) from None
    for r in records:
        failures = f" failures={r.fail_count}" if r.fail_count else ""
        message = f" ({r.message})" if r.message else ""
        typer.echo(f"{r.resource} on {r.node}: {r.role.value} since {format_time(r.since)}"
                   f"{failures}{message}")
    for a in trail:
        typer.echo(f"{format_time(a.when)} {a.action} by {a.actor}: {'; '.join(a.changes)}")


# -- the server on a directory --------------------------------------------------------------------


def serve(boot: Bootstrap, *, node: str | None, state_dir: Path | None,
          plugin_paths: list[Path], stop: threading.Event, key: Path | None = None) -> None:
    """Run a cluster server whose configuration lives in the directory: one node on its
    own, or one node of several (the coordinator follows the directory)."""
    from pyha.cli.run import _registry
    from pyha.directory.ldap import LdapDirectory
    from pyha.directory.link import DirectoryLink
    from pyha.resources.java import read_ldap_directory
    from pyha.server import ClusterServer

    state = state_dir or boot.state_dir
    settings = boot.directory
    if state is not None and settings.state_dir is None:
        settings = settings.model_copy(update={"state_dir": state})
    directory = LdapDirectory(settings)
    if state is not None:
        stored = ConfigStore(state).load()
        config = DirectorySource(directory).load(stored)  # the last good one if it is down
    else:
        config = directory.load()
    if len(config.nodes) > 1:
        _serve_cluster(directory, config, boot, node, state, plugin_paths, stop, key)
        return
    srv = ClusterServer(config, _registry(config, plugin_paths), node=node or boot.node,
                        state_dir=state)
    # Java plugins read the directory through JNDI, bound as this server is.
    read_ldap_directory(srv.registry.agents(), directory.settings, directory.layout)
    if settings.state_dir is None:
        directory.settings = settings.model_copy(update={"state_dir": srv.state_dir})
    link = DirectoryLink(directory, srv)
    srv.on_cycle = link.on_cycle
    srv.config_writer = directory.apply  # admin changes go to the directory
    logging.getLogger("pyha.directory").info(
        "configuration epoch %d from %s", config.epoch, directory.name)
    link.start()
    try:
        srv.run(stop)
    finally:
        link.stop()
        directory.close()


def _serve_cluster(directory: LdapDirectory, config: ClusterConfig, boot: Bootstrap,
                   node: str | None, state: Path | None, plugin_paths: list[Path],
                   stop: threading.Event, key: Path | None) -> None:
    """One node of several, following the directory (see pyha.cluster.source)."""
    from pyha.cli.run import _cluster_node, _registry
    from pyha.resources.java import read_ldap_directory

    name = node or boot.node
    source = DirectorySource(directory, actor=f"pyha-coordinator@{name}")
    registry = _registry(config, plugin_paths)
    srv = _cluster_node(config, registry, name, state, key, source=source)
    read_ldap_directory(registry.agents(), directory.settings, directory.layout)  # for JNDI
    logging.getLogger("pyha.directory").info(
        "configuration epoch %d from %s (node %s of %d)", config.epoch, directory.name,
        name, len(config.nodes))
    srv.run(stop)
