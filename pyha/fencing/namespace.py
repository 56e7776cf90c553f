"""NamespaceFence: nodes that are network namespaces; fencing kills everything inside."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pyha.clock import Clock, MonotonicClock
from pyha.executor.command import run_command
from pyha.fencing.device import FenceResult, NodeState, processes

__all__ = ["NETNS_DIR", "NamespaceFence", "NamespaceNode", "namespace_pids"]

_LOG = logging.getLogger("pyha.fencing")
NETNS_DIR = Path("/run/netns")
"""Where `ip netns add` mounts named namespaces."""
POLL = 0.005
"""Seconds between scans for processes left after a SIGKILL round: a killed process is
usually gone within a millisecond, and every ms of fencing delays the failover."""


@dataclass(frozen=True)
class NamespaceNode:
    """Where a node lives: its network namespace, and optionally its port on a bridge."""

    namespace: str
    bridge_port: str | None = None
    """The bridge-side end of the node's cable, set down when the node is fenced."""
    bridge_namespace: str | None = None
    """The namespace the bridge port is in; None for the machine's own."""


def namespace_pids(namespace: str, netns_dir: Path = NETNS_DIR) -> set[int]:
    """The live processes whose network namespace is `namespace` (as `ip netns pids`).

    FileNotFoundError if the namespace has no name (any more).
    """
    target = os.stat(netns_dir / namespace)
    found: set[int] = set()
    with os.scandir("/proc") as entries:
        for entry in entries:
            if entry.name.isdigit() and _same(f"/proc/{entry.name}/ns/net", target):
                found.add(int(entry.name))
    return found


def _same(path: str, target: os.stat_result) -> bool:
    try:
        seen = os.stat(path)
    except OSError:
        return False  # exited, or a zombie whose namespaces are gone already
    return (seen.st_dev, seen.st_ino) == (target.st_dev, target.st_ino)


class NamespaceFence:
    """Fences a node by killing every process in its network namespace.

    Invariant: fence is ok only when the named namespace exists and no live process
    is in it. A namespace that lost its name is not ok: `ip netns delete` only drops
    the name, and processes inside keep running where nobody can list them.
    It never kills the process that runs it.
    """

    method = "namespace"

    def __init__(self, nodes: Mapping[str, NamespaceNode | str], *,
                 netns_dir: Path = NETNS_DIR, clock: Clock | None = None,
                 log: logging.Logger | None = None) -> None:
        self.nodes = {node: spec if isinstance(spec, NamespaceNode) else NamespaceNode(spec)
                      for node, spec in nodes.items()}
        self._netns_dir = netns_dir
        self._clock = clock or MonotonicClock()
        self._log = log or _LOG

    def fence(self, node: str, deadline: float) -> FenceResult:
        """Set the node's bridge port down, then SIGKILL everything inside until empty."""
        started = self._clock.now()
        spec = self.nodes.get(node)
        if spec is None:
            return self._result(False, f"fence {node}: no namespace is configured", started)
        where = f"namespace {spec.namespace}"
        try:
            left = namespace_pids(spec.namespace, self._netns_dir)
        except FileNotFoundError:
            return self._result(False, f"fence {node}: {where} does not exist; processes "
                                       "that were in it may run unseen", started)
        if os.getpid() in left:
            return self._result(False, f"fence {node}: refused, this process is in {where}",
                                started)
        unplugged = self._unplug(spec, deadline)
        killed = self._kill_until_empty(spec.namespace, deadline)
        if killed is None:
            left = namespace_pids(spec.namespace, self._netns_dir)
            return self._result(False, f"fence {node}: {processes(len(left))} still in {where} "
                                       f"at the deadline{unplugged}", started)
        count = f"killed {processes(len(killed))}" if killed else "it was empty"
        return self._result(True, f"fence {node}: {where} is empty ({count}){unplugged}",
                            started)

    def status(self, node: str, deadline: float) -> NodeState:
        """OFF when the node's namespace has no process, UNKNOWN when it has no name."""
        spec = self.nodes.get(node)
        if spec is None:
            return NodeState.UNKNOWN
        try:
            return NodeState.ON if namespace_pids(spec.namespace, self._netns_dir) \
                else NodeState.OFF
        except FileNotFoundError:
            return NodeState.UNKNOWN

    def _kill_until_empty(self, namespace: str, deadline: float) -> set[int] | None:
        """SIGKILL every process inside, again and again; None if some outlived the deadline.

        A process forking while we kill adds a child we see in the next scan; the
        loop ends once a scan finds nobody.
        """
        killed: set[int] = set()
        while True:
            pids = namespace_pids(namespace, self._netns_dir)
            if not pids:
                return killed
            if killed and self._clock.now() >= deadline:
                return None  # one round is always tried, even past the deadline
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed |= pids
            self._clock.sleep(POLL)

    def _unplug(self, spec: NamespaceNode, deadline: float) -> str:
        """Set the bridge port down; a note for the result message."""
        if spec.bridge_port is None:
            return ""
        where = ["-n", spec.bridge_namespace] if spec.bridge_namespace else []
        ran = run_command(["ip", *where, "link", "set", spec.bridge_port, "down"],
                          deadline=deadline, clock=self._clock, grace=1.0, log=self._log)
        if ran.ok:
            return f"; bridge port {spec.bridge_port} is down"
        why = ran.stderr.strip() or ran.warning or f"exit {ran.returncode}"
        return f"; bridge port {spec.bridge_port} not set down: {why}"

    def _result(self, ok: bool, message: str, started: float) -> FenceResult:
        (self._log.warning if ok else self._log.error)("%s", message)
        return FenceResult(ok, self.method, message, self._clock.now() - started)
