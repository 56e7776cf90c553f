"""The fence device of each node, built from the cluster file's `fence` settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pyha.clock import Clock
from pyha.fencing import (
    CgroupFence,
    CommandFence,
    FenceDevice,
    NamespaceFence,
    NamespaceNode,
)
from pyha.fencing.tree import TreeFence
from pyha.fencing.watchdog import WatchdogFence
from pyha.model.config import ClusterConfig


def fence_devices(config: ClusterConfig, heard: Callable[[str], float] | None = None,
                  clock: Clock | None = None) -> dict[str, FenceDevice]:
    """Node name -> the device that fences it; nodes without `fence` are absent.

    Nodes fenced by their own watchdog share one WatchdogFence, which needs `heard`:
    when the coordinator last heard a node (or took office, if later); without it those
    nodes are absent too (nothing could confirm them fenced).
    """
    devices: dict[str, FenceDevice] = {}
    cgroup: CgroupFence | None = None
    watchdogs = {n.name: n.fence.timeout for n in config.nodes
                 if n.fence is not None and n.fence.kind == "watchdog"}
    watchdog = WatchdogFence(watchdogs, config.cluster.dead_after, heard, clock=clock) \
        if watchdogs and heard is not None else None
    for node in config.nodes:
        spec = node.fence
        if spec is None:
            continue
        if spec.kind == "cgroup":
            cgroup = cgroup or CgroupFence(config.cluster.name)
            devices[node.name] = cgroup
        elif spec.kind == "command":
            status = {node.name: list(spec.status)} if spec.status else None
            devices[node.name] = CommandFence({node.name: list(spec.off)}, status)
        elif spec.kind == "process-tree":
            devices[node.name] = TreeFence({node.name: Path(spec.keeper)})
        elif spec.kind == "watchdog":
            if watchdog is not None:
                devices[node.name] = watchdog
        else:
            devices[node.name] = NamespaceFence({node.name: NamespaceNode(
                spec.namespace, spec.bridge_port or None, spec.bridge_namespace or None)})
    return devices
