"""Several real cluster servers on this machine, each in its own cgroup, for cluster tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from pyha.fencing import CgroupFence, cgroup_name, detect_hierarchies, enter_argv, remove_cgroup
from pyha.fencing.tree import TreeFence, keeper_argv
from pyha.membership.keys import generate_key
from pyha.ports import free_port

GUARD = '''
import fcntl, sys, time
lock = open(sys.argv[1], "a+")
try:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    with open(sys.argv[2], "a") as record:
        record.write(f"VIOLATION {time.time()}\\n")
    sys.exit(1)
with open(sys.argv[2], "a") as record:
    record.write(f"start {time.time()}\\n")
while True:
    time.sleep(1)
'''
"""A service that can run only once at a time: it holds an exclusive lock on a shared
file, and a second copy that cannot get it writes VIOLATION and exits."""


def fence_skip(kind: str) -> str:
    """Why cluster tests with this kind of fencing cannot run here, or ''."""
    return cgroups_usable() if kind == "cgroup" else ""


def cgroups_usable() -> str:
    """Why cluster tests with cgroup fencing cannot run here, or '' when they can."""
    if os.geteuid() != 0:
        return "needs root to put each node in its own cgroup"
    if not detect_hierarchies():
        return "no writable cgroup hierarchy"
    return ""


class GuardedCluster(ABC):
    """What every cluster harness reads the same way: the guarded service's record and the
    node logs. Subclasses provide `nodes`, `record` and `log(node)`."""

    nodes: list[str]
    record: Path

    @abstractmethod
    def log(self, node: str) -> str:
        """Everything `node`'s cluster server logged so far."""

    def log_tails(self, lines: int = 25) -> str:
        """The last `lines` lines of every node's log, for a failure message."""
        parts = []
        for node in self.nodes:
            tail = self.log(node).splitlines()[-lines:]
            parts.append(f"\n--- {node} ---\n" + "\n".join(tail))
        return "".join(parts)

    def violations(self) -> list[str]:
        """The guarded service's VIOLATION records: each one ran while another copy did."""
        text = self.record.read_text() if self.record.exists() else ""
        return [line for line in text.splitlines() if line.startswith("VIOLATION")]

    def starts(self) -> int:
        """How many times the guarded service started, anywhere."""
        text = self.record.read_text() if self.record.exists() else ""
        return sum(1 for line in text.splitlines() if line.startswith("start"))

    def coordinator(self) -> str | None:
        """The node whose log last said it was elected (None before any election)."""
        best: tuple[int, str] | None = None
        for node in self.nodes:
            for line in self.log(node).splitlines():
                if "elected coordinator for term" in line:
                    term = int(line.rsplit(" ", 1)[1])
                    if best is None or term > best[0]:
                        best = (term, node)
        return best[1] if best else None


@dataclass
class LocalCluster(GuardedCluster):
    """N cluster servers on 127.0.0.1, a guarded service group, and their cleanup."""

    root: Path
    size: int = 3
    name: str = field(default_factory=lambda: f"t{os.getpid()}")
    fence: str = "cgroup"
    """How nodes are fenced: cgroup (root), process-tree (anyone), or none."""
    options: tuple[str, ...] = ()
    """More [cluster] lines, e.g. 'tiebreaker = "fence-race"'."""
    bootstrap: Path | None = None
    """Run the nodes on the LDAP directory this bootstrap file names (the test puts the
    cluster file's configuration there) instead of on the cluster file."""
    args: tuple[str, ...] = ()
    """More `pyha server` arguments for every node, e.g. ("--witness", FILE)."""
    listed: int | None = None
    """How many of the nodes the cluster file lists (default all); the others are
    computers that join later: their own file (join.toml) lists every node."""
    prefer: str | None = None
    """A node the service group prefers (a location constraint of score 100)."""
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.nodes = [f"n{i}" for i in range(1, self.size + 1)]
        self.key = self.root / "cluster.key"
        generate_key(self.key)
        (self.root / "guard.py").write_text(GUARD)
        self.record = self.root / "record.txt"
        self.ports = {n: (free_port(), free_port()) for n in self.nodes}
        self.config = self.root / "cluster.toml"
        self.config.write_text(self._toml(self.nodes[:self.listed]))
        self.join_config = self.root / "join.toml"
        self.join_config.write_text(self._toml(self.nodes))

    def node_entry(self, node: str) -> dict[str, Any]:
        """The node as an admin adds it: heartbeat address, rpc address and fence."""
        heartbeat, rpc = self.ports[node]
        entry: dict[str, Any] = {"name": node, "addresses": [f"127.0.0.1:{heartbeat}"],
                                 "rpc": f"127.0.0.1:{rpc}"}
        if self.fence == "cgroup":
            entry["fence"] = {"kind": "cgroup"}
        elif self.fence == "process-tree":
            entry["fence"] = {"kind": "process-tree", "keeper": str(self.keeper(node))}
        return entry

    def _toml(self, nodes: list[str]) -> str:
        lines = [f'[cluster]\nname = "{self.name}"\ncycle_interval = "500ms"',
                 f'state_dir = "{self.root / "unused"}"', *self.options, ""]
        for node in nodes:
            heartbeat, rpc = self.ports[node]
            lines += ["[[nodes]]", f'name = "{node}"',
                      f'addresses = ["127.0.0.1:{heartbeat}"]',
                      f'rpc = "127.0.0.1:{rpc}"',
                      self._fence_line(node), ""]
        command = [sys.executable, str(self.root / "guard.py"), str(self.root / "lock"),
                   str(self.record)]
        lines += ["[[groups]]", 'name = "svc"', "[[groups.resources]]", 'name = "guard"',
                  'type = "process"',
                  'operations = [{ name = "monitor", interval = "1s", timeout = "5s" }]',
                  "[groups.resources.params]",
                  "command = [" + ", ".join(f'"{c}"' for c in command) + "]",
                  'stop_grace = "2s"']
        if self.prefer is not None:
            lines += ["", "[[constraints]]", 'kind = "location"', 'id = "svc-prefers"',
                      'group = "svc"', f'node = "{self.prefer}"', "score = 100"]
        return "\n".join(lines) + "\n"

    def _fence_line(self, node: str) -> str:
        if self.fence == "cgroup":
            return 'fence = { kind = "cgroup" }'
        if self.fence == "process-tree":
            return f'fence = {{ kind = "process-tree", keeper = "{self.keeper(node)}" }}'
        return ""

    def keeper(self, node: str) -> Path:
        return self.root / f"{node}.keeper"

    def state_dir(self, node: str) -> Path:
        return self.root / node

    def start(self, node: str) -> None:
        listed = node in self.nodes[:self.listed]
        config = self.config if listed else self.join_config
        source = ["--config", str(config)] if self.bootstrap is None else \
            ["--bootstrap", str(self.bootstrap)]
        argv = [sys.executable, "-m", "pyha.cli", "server", *source,
                "--node", node, "--key", str(self.key), "--state-dir",
                str(self.state_dir(node)), "--log-level", "DEBUG", *self.args]
        if self.fence == "process-tree":
            wrapped = keeper_argv(self.keeper(node), argv)
        else:
            wrapped = enter_argv(cgroup_name(self.name, node), argv)
        with (self.root / f"{node}.log").open("ab") as out:
            self.procs[node] = subprocess.Popen(wrapped, stdout=out,
                                                stderr=subprocess.STDOUT,
                                                start_new_session=True)

    def start_all(self) -> None:
        """Start the nodes the cluster file lists."""
        for node in self.nodes[:self.listed]:
            self.start(node)

    def serving(self) -> Iterator[Self]:
        """For fixtures (`yield from c.serving()`): start the listed nodes, hand the
        cluster over, then stop everything and check the service never ran twice."""
        try:
            self.start_all()
            yield self
        finally:
            self.close()
        assert self.violations() == [], "the service ran on two nodes at once"

    def log(self, node: str) -> str:
        path = self.root / f"{node}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def running_on(self) -> list[str]:
        """Nodes where the guarded service has a live process."""
        where = []
        for node in self.nodes:
            pid = _recorded_pid(self.state_dir(node) / "process" / "guard.pid")
            if pid and _alive(pid):
                where.append(node)
        return where

    def server_pid(self, node: str) -> int:
        """The cluster server's pid (below its keeper when nodes are process trees)."""
        pid = self.procs[node].pid
        if self.fence != "process-tree":
            return pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return int(children[0])

    def signal(self, node: str, sig: signal.Signals) -> None:
        os.kill(self.server_pid(node), sig)

    def kill_server(self, node: str) -> None:
        """SIGKILL the node's cluster server only: what it started keeps running."""
        os.kill(self.server_pid(node), signal.SIGKILL)

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.fence == "process-tree":
            tree = TreeFence({n: self.keeper(n) for n in self.nodes})
            for node in self.nodes:
                tree.fence(node, time.monotonic() + 10)
            return
        fence = CgroupFence(self.name)
        for node in self.nodes:
            fence.fence(node, time.monotonic() + 10)
            remove_cgroup(cgroup_name(self.name, node))


def wait_for(check: Callable[[], bool], timeout: float, what: str,
             cluster: GuardedCluster | None = None) -> None:
    """Poll `check` until true; bounded in time. On failure the message carries the end
    of every node's log when `cluster` is given, so a failed CI run says why."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    tails = cluster.log_tails() if cluster is not None else ""
    raise AssertionError(f"{what}: not within {timeout}s{tails}")


def _recorded_pid(path: Path) -> int | None:
    """The pid the process plugin recorded in `path`, if it can be read."""
    try:
        return int(json.loads(path.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
