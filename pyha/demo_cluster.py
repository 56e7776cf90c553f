"""The cluster demo: three cluster servers on this machine keep a web group running, one is
killed, and the group fails over to another after its node was fenced."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Group as RichGroup
from rich.table import Table
from rich.text import Text

from pyha.errors import PyhaError
from pyha.fencing.tree import TreeFence, descendants, keeper_argv, parent_of
from pyha.membership.keys import generate_key, load_key
from pyha.membership.rpc import RpcClient
from pyha.ports import free_port

Status = dict[str, Any]


def cluster_toml(workdir: Path, size: int, http_port: int) -> str:
    """A cluster file: `size` nodes on loopback, fenced as process trees, one web group."""
    lines = ['[cluster]', 'name = "demo"', f'state_dir = "{workdir / "state"}"',
             'cycle_interval = "500ms"', ""]
    for i in range(1, size + 1):
        lines += ["[[nodes]]", f'name = "n{i}"',
                  f'addresses = ["127.0.0.1:{free_port()}"]',
                  f'rpc = "127.0.0.1:{free_port()}"',
                  f'fence = {{ kind = "process-tree", keeper = "{workdir / f"n{i}.keeper"}" }}',
                  ""]
    site = workdir / "site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "index.html").write_text("served by a pyha cluster\n")
    command = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(http_port)]
    lines += ["[[groups]]", 'name = "web"',
              "[[groups.resources]]", 'name = "marker"', 'type = "dummy"', "",
              "[[groups.resources]]", 'name = "http"', 'type = "process"',
              'operations = [{ name = "monitor", interval = "1s", timeout = "5s" }]',
              "[groups.resources.params]",
              "command = [" + ", ".join(f'"{c}"' for c in command) + "]",
              f'cwd = "{site}"', 'health = "http"',
              f'health_http = "http://127.0.0.1:{http_port}/"', 'stop_grace = "3s"']
    return "\n".join(lines) + "\n"


@dataclass
class DemoCluster:
    """Several `pyha server` processes, each under a keeper so it can be fenced."""

    workdir: Path
    size: int = 3
    http_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.nodes = [f"n{i}" for i in range(1, self.size + 1)]
        self.key_file = self.workdir / "cluster.key"
        if not self.key_file.exists():
            generate_key(self.key_file)
        self.config = self.workdir / "cluster.toml"
        self.config.write_text(cluster_toml(self.workdir, self.size, self.http_port))
        from pyha.model.config import ClusterConfig, parse_endpoint

        parsed = ClusterConfig.from_toml(self.config)
        key = load_key(self.key_file)
        self.clients = {n.name: RpcClient(key, "demo", parse_endpoint(n.rpc or ""), 0.5,
                                          peer=n.name) for n in parsed.nodes}

    def start(self) -> None:
        """Start every node's cluster server under its keeper."""
        for node in self.nodes:
            argv = [sys.executable, "-m", "pyha.cli", "server", "--config", str(self.config),
                    "--node", node, "--key", str(self.key_file), "--state-dir",
                    str(self.workdir / node), "--log-level", "DEBUG"]
            with (self.workdir / f"{node}.log").open("ab") as out:
                self.procs[node] = subprocess.Popen(
                    keeper_argv(self.workdir / f"{node}.keeper", argv), stdout=out,
                    stderr=subprocess.STDOUT, start_new_session=True)

    def status(self) -> dict[str, Status | None]:
        """Each node's answer to `status`, or None when it does not answer."""
        out: dict[str, Status | None] = {}
        for node, client in self.clients.items():
            try:
                out[node] = client.call("status", timeout=0.5)
            except PyhaError:
                out[node] = None
        return out

    def kill_server(self, node: str) -> None:
        """kill -9 the node's cluster server: what it started keeps running until fenced."""
        keeper = self.procs[node].pid
        servers = [p for p in descendants(keeper) if parent_of(p) == keeper]
        for pid in servers:
            os.kill(pid, signal.SIGKILL)

    def http_answers(self) -> bool:
        """True when the web group's service answers."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/",
                                        timeout=0.3) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        """Stop every node cleanly, then fence what is left so nothing outlives the demo."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
        fence = TreeFence({n: self.workdir / f"{n}.keeper" for n in self.nodes})
        for node in self.nodes:
            fence.fence(node, time.monotonic() + 10)
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        for client in self.clients.values():
            client.close()


def active_node(status: dict[str, Status | None], resource: str = "http") -> str | None:
    """The node whose report shows `resource` started."""
    for node, answer in status.items():
        for r in (answer or {}).get("resources", ()):
            if r["resource"] == resource and r["role"] == "started":
                return node
    return None


def coordinator(status: dict[str, Status | None]) -> tuple[str | None, int]:
    """(coordinator, term) as the live nodes see it."""
    for node, answer in status.items():
        if answer and answer.get("role") == "coordinator":
            return node, int(answer["term"])
    return None, max((int(a["term"]) for a in status.values() if a), default=0)


def render(status: dict[str, Status | None], events: list[str], port: int) -> RichGroup:
    """The live screen: one row per node, then the latest events."""
    table = Table(title="pyha demo — a 3-node cluster on this machine", expand=True)
    for column in ("node", "state", "role", "term", "members", "running here"):
        table.add_column(column)
    for node, answer in status.items():
        if answer is None:
            table.add_row(node, Text("DOWN", style="red"), "-", "-", "-", "-")
            continue
        running = [r["resource"] for r in answer.get("resources", ())
                   if r["role"] == "started"]
        role = answer["role"]
        table.add_row(node, Text("up", style="green"),
                      Text(role, style="bold" if role == "coordinator" else ""),
                      str(answer["term"]), " ".join(answer["members"]),
                      ", ".join(running) or "-")
    lines = Text("\n".join(events[-10:]))
    hint = Text(f"web group: http://127.0.0.1:{port}/   Ctrl-C stops every node cleanly.",
                style="dim")
    return RichGroup(table, lines, hint)


@dataclass
class Scenario:
    """What the demo does over time: wait for the group, kill its node, time the failover."""

    cluster: DemoCluster
    kill_after: float
    say: Callable[[str], None]
    events: list[str] = field(default_factory=list)
    killed_at: float | None = None
    victim: str | None = None
    running_since: float | None = None
    _last: dict[str, Any] = field(default_factory=dict)

    def note(self, text: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {text}"
        self.events.append(line)
        self.say(line)

    def step(self, status: dict[str, Status | None]) -> None:
        """Look at the cluster once and report what changed."""
        now = time.monotonic()
        self._changes(status)
        where = active_node(status)
        if where and self.running_since is None and self.killed_at is None:
            self.running_since = now
        if (self.kill_after and self.killed_at is None and where and self.running_since
                and now - self.running_since >= self.kill_after):
            self.victim, self.killed_at = where, now
            self.note(f"kill -9 the cluster server of {where}, which runs the web group "
                      "(its web server keeps running until the node is fenced)")
            self.cluster.kill_server(where)
        if (self.killed_at is not None and self.victim and where not in (None, self.victim)
                and self.cluster.http_answers() and self._last.get("failover") is None):
            took = now - self.killed_at
            self._last["failover"] = took
            self.note(f"failover took {took:.2f} s: {self.victim} fenced, the web group "
                      f"runs on {where} and answers")

    def _changes(self, status: dict[str, Status | None]) -> None:
        coord, term = coordinator(status)
        if coord and (coord, term) != self._last.get("coordinator"):
            self.note(f"{coord} is the coordinator (term {term})")
            self._last["coordinator"] = (coord, term)
        where = active_node(status)
        if where != self._last.get("where"):
            self.note(f"the web group runs on {where}" if where
                      else "no live node reports the web group running")
            self._last["where"] = where
        down = sorted(n for n, a in status.items() if a is None)
        if down != self._last.get("down", []):
            self.note(f"no answer from {', '.join(down)}" if down else "every node answers")
            self._last["down"] = down


def run(workdir: Path, *, duration: float, kill_after: float, live: bool,
        stop: threading.Event) -> float | None:
    """Run the demo until `stop` or `duration`; the failover time measured, if any."""
    from rich.console import Console
    from rich.live import Live

    console = Console()
    cluster = DemoCluster(workdir)
    console.print(f"[bold]pyha demo[/]: 3 cluster servers, cluster file {cluster.config}, "
                  f"logs {workdir}/n*.log")
    scenario = Scenario(cluster, kill_after, say=lambda s: None if live else print(s,
                                                                                  flush=True))
    cluster.start()
    ends = time.monotonic() + duration if duration else None
    screen = Live(console=console, refresh_per_second=4) if live else None
    try:
        if screen:
            screen.start()
        while not stop.is_set() and (ends is None or time.monotonic() < ends):
            status = cluster.status()
            scenario.step(status)
            if screen:
                screen.update(render(status, scenario.events, cluster.http_port))
            stop.wait(0.1)
    finally:
        if screen:
            screen.stop()
        scenario.note("stopping every node")
        cluster.stop()
        scenario.note("stopped")
    took = scenario._last.get("failover")
    return float(took) if took is not None else None
