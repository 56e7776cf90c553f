"""`pyha server` and `pyha demo`: run a cluster server in the foreground."""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

import typer
from rich.console import Console
from rich.live import Live

from pyha import logs
from pyha.cluster.node import ClusterNode
from pyha.cluster.source import DirectorySource
from pyha.directory.embedded import ConfigStore, newest
from pyha.directory.witness import Witness
from pyha.errors import ConfigError, PyhaError
from pyha.membership.keys import load_key
from pyha.model.config import ClusterConfig
from pyha.ports import free_port
from pyha.resources.registry import Registry
from pyha.server import ClusterServer, ServerStatus

EXIT_CONFIG = 2


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def _handler(signum: int, _frame: object) -> None:
        logging.getLogger("pyha.server").info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGHUP, _handler)  # a closed terminal stops us cleanly too
    return stop


def _registry(config: ClusterConfig, extra: list[Path]) -> Registry:
    env_paths = [Path(p) for p in os.environ.get("PYHA_PLUGIN_PATH", "").split(":") if p]
    paths = [*map(Path, config.cluster.plugin_paths), *env_paths, *extra]
    registry = Registry.discover(paths)
    for error in registry.errors:
        logging.getLogger("pyha.registry").warning(
            "plugin %s (%s) not loaded: %s", error.name, error.origin, error.reason)
    return registry


def server(
    config: Path | None = typer.Option(None, "--config", "-c", help="Cluster file (TOML)."),
    node: str | None = typer.Option(None, help="This node's name (default: the only node)."),
    state_dir: Path | None = typer.Option(None, help="Override the cluster's state_dir."),
    plugin_path: list[Path] = typer.Option([], help="More plugin folders.", show_default=False),
    log_level: str = typer.Option("INFO", help="DEBUG, INFO, WARNING or ERROR."),
    key: Path | None = typer.Option(
        None, help="The cluster key (default: the cluster's key_file, else "
                   "<state_dir>/cluster.key); needed with several nodes."),
    directory: str | None = typer.Option(
        None, "--directory", help="Read the configuration from this LDAP directory (URL) "
                                  "and follow its changes; see `pyha directory`."),
    bootstrap: Path | None = typer.Option(
        None, help="A bootstrap file whose [directory] section says where the "
                   "configuration lives."),
    base_dn: str | None = typer.Option(None, help="With --directory: the base DN."),
    bind_dn: str | None = typer.Option(None, help="With --directory: the DN to bind as."),
    password_file: Path | None = typer.Option(
        None, help="With --directory: the bind password's file (else "
                   "$PYHA_DIRECTORY_PASSWORD)."),
    cluster_name: str | None = typer.Option(None, "--cluster",
                                            help="With --directory: the cluster's name."),
    witness: Path | None = typer.Option(
        None, "--witness", help="With tiebreaker = witness: a bootstrap file whose "
                                "[directory] section names the LDAP directory that decides "
                                "a tie."),
) -> None:
    """Run this node's cluster server until SIGTERM; then stop everything and exit 0.

    With several nodes in the cluster file, it joins the others (heartbeats, election,
    fencing) and leaves cleanly on SIGTERM, moving its groups away first.
    """
    logs.setup(log_level)
    if directory or bootstrap:
        _serve_directory(bootstrap, directory, base_dn, bind_dn, password_file, cluster_name,
                         node, state_dir, plugin_path, key)
        return
    if config is None:
        typer.echo("pyha server: --config FILE, --directory URL or --bootstrap FILE is "
                   "required", err=True)
        raise typer.Exit(EXIT_CONFIG)
    try:
        cluster = ClusterConfig.from_toml(config)
        # Changes made at runtime (admin) are in the node's store and outrank the file.
        cluster = newest(cluster, ConfigStore(state_dir or Path(cluster.cluster.state_dir)))
        registry = _registry(cluster, plugin_path)
        srv: ClusterServer | ClusterNode
        if len(cluster.nodes) > 1:
            srv = _cluster_node(cluster, registry, node, state_dir, key,
                                _witness(witness, cluster))
        else:
            srv = ClusterServer(cluster, registry, node=node, state_dir=state_dir)
    except PyhaError as exc:
        typer.echo(f"pyha server: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    srv.run(_stop_on_signals())


def _serve_directory(bootstrap: Path | None, url: str | None, base_dn: str | None,
                     bind_dn: str | None, password_file: Path | None, cluster: str | None,
                     node: str | None, state_dir: Path | None, plugin_path: list[Path],
                     key: Path | None = None) -> None:
    from pyha.cli import directory

    try:
        boot = directory.connection(bootstrap, None, url, base_dn, bind_dn, password_file,
                                    cluster)
        directory.serve(boot, node=node, state_dir=state_dir, plugin_paths=plugin_path,
                        stop=_stop_on_signals(), key=key)
    except PyhaError as exc:
        typer.echo(f"pyha server: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None


def _witness(path: Path | None, cluster: ClusterConfig) -> Witness | None:
    """The LDAP witness of a bootstrap file (the directory at its first URL)."""
    if path is None:
        return None
    from pyha.directory.bootstrap import load_bootstrap
    from pyha.directory.witness import LdapWitness

    settings = load_bootstrap(path).directory
    return LdapWitness(settings, cluster.cluster.name,
                       timeout=min(settings.timeout, cluster.cluster.call_timeout))


def _cluster_node(cluster: ClusterConfig, registry: Registry, node: str | None,
                  state_dir: Path | None, key: Path | None,
                  witness: Witness | None = None,
                  source: DirectorySource | None = None) -> ClusterNode:
    if node is None:
        raise ConfigError("--node is required when the cluster has several nodes")
    base = state_dir or Path(cluster.cluster.state_dir)
    key_path = key or (Path(cluster.cluster.key_file) if cluster.cluster.key_file
                       else base / "cluster.key")
    return ClusterNode(cluster, registry, node=node, key=load_key(key_path),
                       state_dir=state_dir, witness=witness, source=source)


def demo(
    nodes: int = typer.Option(3, help="3: a cluster that fails over; 1: a single node."),
    duration: float = typer.Option(0.0, help="Stop after this many seconds (0: until Ctrl-C)."),
    kill_after: float | None = typer.Option(
        None, help="Seconds of running before the demo kills the group's node (3 nodes, "
                   "default 8) or kill -9s web1 (1 node, default never); 0: never."),
    plain: bool = typer.Option(False, help="Plain log lines instead of the live screen."),
    workdir: Path | None = typer.Option(None, help="Where to keep the demo's files."),
) -> None:
    """A live demo: three cluster servers keep a web group running and fail it over when
    its node is killed (or, with --nodes 1, one server restarting a killed web server)."""
    if nodes not in (1, 3):
        typer.echo("pyha demo: --nodes must be 1 or 3", err=True)
        raise typer.Exit(EXIT_CONFIG)
    base = workdir or Path(tempfile.mkdtemp(prefix="pyha-demo-"))
    if nodes == 3:
        from pyha import demo_cluster

        logs.setup("WARNING", rich=False)
        took = demo_cluster.run(base, duration=duration,
                                kill_after=8.0 if kill_after is None else kill_after,
                                live=sys.stdout.isatty() and not plain,
                                stop=_stop_on_signals())
        if took is not None:
            typer.echo(f"failover took {took:.2f} s")
        return
    _single_node_demo(base, duration, kill_after or 0.0, plain)


def _single_node_demo(base: Path, duration: float, kill_after: float, plain: bool) -> None:
    from pyha import demo as d

    live = sys.stdout.isatty() and not plain
    data = d.demo_config(base, (free_port(), free_port()))
    d.write_toml(data, base / "cluster.toml")
    cluster = ClusterConfig.from_mapping(data)
    state_dir = Path(cluster.cluster.state_dir)
    stop = _stop_on_signals()
    recent = logs.RecentLines()
    logs.setup("INFO", rich=False)
    if live:
        logging.getLogger("pyha").handlers[:] = [recent]
    console = Console()
    console.print(f"[bold]pyha demo[/]: cluster file {base / 'cluster.toml'}")
    if duration:
        timer = threading.Timer(duration, stop.set)
        timer.daemon = True
        timer.start()
    if kill_after:
        d.kill_later(state_dir, "web1", kill_after, stop)
    srv = ClusterServer(cluster, _registry(cluster, []), state_dir=state_dir)
    if not live:
        srv.run(stop)
        return
    with Live(console=console, refresh_per_second=4) as screen:
        def _show(status: ServerStatus) -> None:
            screen.update(d.render(status, state_dir, list(recent.lines)))

        srv.on_cycle = _show
        srv.run(stop)
        _show(srv.status())


def register(app: typer.Typer) -> None:
    """Add `server` and `demo` to the `pyha` command."""
    app.command()(server)
    app.command()(demo)
