"""Fence devices: make sure a lost node runs nothing before its groups start elsewhere.

Devices: CommandFence (a power command per node), CgroupFence (nodes sharing one
machine, one cgroup each), NamespaceFence (nodes that are network namespaces), and
WatchdogPolicy (a node that resets itself through its armed watchdog). See
docs/fencing.md for the safety rule and how to configure each.
"""

from pyha.fencing.cgroup import (
    CgroupFence,
    cgroup_name,
    detect_hierarchies,
    enter_argv,
    place_in_cgroup,
    remove_cgroup,
)
from pyha.fencing.command import CommandFence, mask_argv
from pyha.fencing.device import FenceDevice, FenceError, FenceResult, NodeState
from pyha.fencing.namespace import NamespaceFence, NamespaceNode, namespace_pids
from pyha.fencing.watchdog import WatchdogPolicy, softdog_available, watchdogs

__all__ = [
    "CgroupFence",
    "CommandFence",
    "FenceDevice",
    "FenceError",
    "FenceResult",
    "NamespaceFence",
    "NamespaceNode",
    "NodeState",
    "WatchdogPolicy",
    "cgroup_name",
    "detect_hierarchies",
    "enter_argv",
    "mask_argv",
    "namespace_pids",
    "place_in_cgroup",
    "remove_cgroup",
    "softdog_available",
    "watchdogs",
]
