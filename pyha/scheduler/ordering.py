"""Ordering: the stop and start actions that bring one group to its placement, in order."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyha.model.actions import Action, ActionKind, Note
from pyha.model.config import ClusterConfig, Group, TargetRole
from pyha.model.status import Role, View
from pyha.scheduler.placement import Placement


@dataclass
class ActionList:
    """Actions being built, with fresh ids; the single place ids are handed out."""

    actions: list[Action] = field(default_factory=list)

    def add(self, kind: ActionKind, node: str, resource: str | None, reason: str,
            after: tuple[int, ...] = ()) -> int:
        """Append an action and return its id."""
        action_id = len(self.actions) + 1
        self.actions.append(Action(id=action_id, kind=kind, node=node, resource=resource,
                                   reason=reason, after=tuple(sorted(set(after)))))
        return action_id


def plan_group(config: ClusterConfig, view: View, placement: Placement,
               failures: dict[tuple[str, str], int], out: ActionList) -> list[Note]:
    """Add the actions for one group to `out`; return notes on what is left alone.

    Members stop in reverse order and start in order; if one member must (re)start,
    every member after it restarts too, because each depends on those before it.
    """
    group = config.group(placement.group)
    blocked = _blocked_member(view, group)
    if blocked:
        return [Note(subject=group.name, text=blocked)]
    target = placement.node
    first_start = _first_to_start(view, group, target)
    stop_ids = _stops(view, group, placement, first_start, failures, out)
    _starts(group, placement, first_start, stop_ids, failures, out)
    return []


def _blocked_member(view: View, group: Group) -> str | None:
    for r in group.resources:
        for s in view.resources:
            if s.resource == r.name and s.role is Role.BLOCKED:
                return (f"left alone: {r.name} is blocked on {s.node} after its "
                        f"{s.failed_operation or 'stop'} failed; clean it up to continue")
    return None


def _wanted(resource_role: TargetRole) -> bool:
    return resource_role is not TargetRole.STOPPED


def _first_to_start(view: View, group: Group, target: str | None) -> int:
    """Index of the first member not cleanly started on `target` (len if all are)."""
    if target is None:
        return len(group.resources)
    for i, r in enumerate(group.resources):
        if not _wanted(r.meta.target_role):
            return i
        role = view.role(r.name, target)
        if role not in (Role.STARTED, Role.PROMOTED):
            return i
    return len(group.resources)


def _stops(view: View, group: Group, placement: Placement, first_start: int,
           failures: dict[tuple[str, str], int], out: ActionList) -> list[int]:
    ids: list[int] = []
    for index in reversed(range(len(group.resources))):
        resource = group.resources[index]
        for node in view.active_nodes(resource.name):
            reason = _stop_reason(view, group, placement, index, first_start, node, failures)
            if reason:
                ids.append(out.add(ActionKind.STOP, node, resource.name, reason, tuple(ids[-1:])))
    return ids


def _stop_reason(view: View, group: Group, placement: Placement, index: int, first_start: int,
                 node: str, failures: dict[tuple[str, str], int]) -> str | None:
    resource = group.resources[index]
    if placement.node is None:
        return f"{group.name} stops: {placement.why}"
    if node != placement.node:
        return f"{group.name} moves to {placement.node}: {placement.why}"
    if view.role(resource.name, node) is Role.FAILED:
        return f"recover {resource.name}: {_failure_text(view, resource.name, node, group, failures)}"
    if not _wanted(resource.meta.target_role):
        return f"{resource.name}: its target role is stopped"
    if index > first_start:
        earlier = group.resources[first_start].name
        return f"restart after {earlier} (members of {group.name} start in order)"
    return None


def _failure_text(view: View, resource: str, node: str, group: Group,
                  failures: dict[tuple[str, str], int]) -> str:
    status = next((s for s in view.resources if s.resource == resource and s.node == node), None)
    what = f"{status.failed_operation} failed" if status and status.failed_operation else "failed"
    threshold = next(r.meta.migration_threshold for r in group.resources if r.name == resource)
    count = failures.get((resource, node), 0)
    detail = f" ({status.message})" if status and status.message else ""
    return f"{what} on {node}{detail}, failure {count} of {threshold}"


def _starts(group: Group, placement: Placement, first_start: int, stop_ids: list[int],
            failures: dict[tuple[str, str], int], out: ActionList) -> None:
    node = placement.node
    if node is None:
        return
    previous = tuple(stop_ids)
    for resource in group.resources[first_start:]:
        if not _wanted(resource.meta.target_role):
            return  # later members depend on this one, so they stay stopped too
        count = failures.get((resource.name, node), 0)
        reason = f"{group.name} runs on {node}: {placement.why}"
        if count:
            reason += f"; {count} earlier failure(s) of {resource.name} here"
        previous = (out.add(ActionKind.START, node, resource.name, reason, previous),)
