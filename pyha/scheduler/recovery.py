"""Recovery: on-fail policies, fencing of lost nodes, groups left alone, and probes."""

from __future__ import annotations

from pyha.model.actions import Note
from pyha.model.config import Group, NoQuorumPolicy, OnFail
from pyha.model.status import Role
from pyha.model.types import INFINITY
from pyha.scheduler.index import INACTIVE, Index


def failed_policy(ix: Index, resource: str, operation: str) -> OnFail:
    """The on-fail policy configured for `operation`, else the default (a stop fences)."""
    configured = ix.resources.get(resource)
    for op in configured.operations if configured else ():
        if op.name == operation and op.on_fail is not None:
            return op.on_fail
    return OnFail.FENCE if operation == "stop" else OnFail.RESTART


def fencing(ix: Index) -> tuple[dict[str, str], list[Note]]:
    """The nodes to fence, each with its reason, and notes on those that cannot be.

    A node is fenced when it is down while something may still be active on it, or when
    a resource failed there with on-fail=fence. A node in maintenance is never fenced,
    and a partition without quorum fences nothing (unless no_quorum_policy=ignore).
    """
    reasons = _fence_reasons(ix)
    if not reasons:
        return {}, []
    if ix.view.quorum or ix.config.cluster.no_quorum_policy is NoQuorumPolicy.IGNORE:
        return reasons, []
    return {}, [Note(subject=node, text=f"not fenced without quorum: {why}")
                for node, why in reasons.items()]


def _fence_reasons(ix: Index) -> dict[str, str]:
    lost: dict[str, list[str]] = {}
    failed: dict[str, list[str]] = {}
    for status in ix.view.resources:
        node, name = status.node, status.resource
        if status.role in INACTIVE or ix.maintenance(node):
            continue
        if not ix.online(node):
            lost.setdefault(node, []).append(name)
        elif status.role is Role.FAILED and \
                failed_policy(ix, name, status.failed_operation) is OnFail.FENCE:
            failed.setdefault(node, []).append(
                f"{name}'s {status.failed_operation or 'operation'} failed on {node} "
                "(on-fail=fence)")
    reasons = {node: f"{node} is down while {_listed(names)} may still be active there"
               for node, names in lost.items()}
    reasons.update((node, "; ".join(whys)) for node, whys in failed.items())
    order = {n: i for i, n in enumerate(ix.nodes)}
    return dict(sorted(reasons.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def _listed(names: list[str]) -> str:
    if len(names) <= 4:
        return ", ".join(names)
    return ", ".join(names[:3]) + f" and {len(names) - 3} more"


def unmanaged(ix: Index, group: Group) -> tuple[str | None, str]:
    """(node, why) when the group must be left as it is: a member is blocked, or runs on a
    node in maintenance; (None, '') when the scheduler manages it."""
    for resource in group.resources if group.name in ix.failing else ():
        for status in ix.troubled.get(resource.name, ()):
            if status.role is Role.BLOCKED and status.node not in ix.fenced:
                op = status.failed_operation or "stop"
                return status.node, (f"left alone: {resource.name} is blocked on "
                                     f"{status.node} after its {op} failed; clean it up "
                                     "to continue")
    if not ix.any_maintenance():
        return None, ""
    for resource in group.resources:
        for node, _role in ix.active(resource.name):
            if ix.maintenance(node):
                return node, f"left as it is: {node}, where {resource.name} runs, is in maintenance"
    return None, ""


def stop_policy(ix: Index, group: Group) -> str | None:
    """Why the group stays stopped under on-fail=stop, if a member failed that way."""
    if group.name not in ix.failing:
        return None
    for resource in group.resources:
        name = resource.name
        for status in ix.troubled.get(name, ()):
            op = status.failed_operation
            if status.role is Role.FAILED and status.node not in ix.fenced and \
                    failed_policy(ix, name, op) is OnFail.STOP:
                return f"{name}'s {op or 'operation'} failed on {status.node} (on-fail=stop)"
        for node in ix.failed_on.get(name, ()):
            if ix.records[(name, node)].on_fail is OnFail.STOP:
                return f"{name} failed on {node} (on-fail=stop)"
    return None


def failure_text(ix: Index, resource: str, node: str) -> str:
    """'monitor failed on n1 (not running), failure 1 of 3'."""
    status = ix.status(resource, node)
    what = f"{status.failed_operation} failed" if status and status.failed_operation \
        else "failed"
    detail = f" ({status.message})" if status and status.message else ""
    count = ix.failure_count(resource, node)
    threshold = ix.resources[resource].meta.migration_threshold
    if count >= INFINITY:
        shown = ", a fatal failure"
    elif count:
        shown = f", failure {count} of {threshold}"
    elif (resource, node) in ix.records:
        shown = ", its failures there have expired"
    else:
        shown = ""
    return f"{what} on {node}{detail}{shown}"


def unknown_here(ix: Index, group: Group) -> list[tuple[str, str]]:
    """(resource, node) pairs never probed on a node where a probe can run."""
    found = []
    for resource in group.resources:
        for node, status in ix.states.get(resource.name, {}).items():
            if status.role is Role.UNKNOWN and ix.usable(node) and not ix.maintenance(node):
                found.append((resource.name, node))
    return found
