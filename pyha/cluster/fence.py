"""The fence device of each node, built from the cluster file's `fence` settings."""

from __future__ import annotations

from pathlib import Path

from pyha.fencing import CgroupFence, CommandFence, FenceDevice, NamespaceFence
from pyha.fencing.tree import TreeFence
from pyha.model.config import ClusterConfig


def fence_devices(config: ClusterConfig) -> dict[str, FenceDevice]:
    """Node name -> the device that fences it; nodes without `fence` are absent."""
    devices: dict[str, FenceDevice] = {}
    cgroup: CgroupFence | None = None
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
        else:
            devices[node.name] = NamespaceFence({node.name: spec.namespace})
    return devices
