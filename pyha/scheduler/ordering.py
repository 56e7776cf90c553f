"""Ordering: the stop and start actions that bring one group to its placement, in order."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyha.model.actions import Action, ActionKind, Note
from pyha.model.config import ClusterConfig, Group, Resource, TargetRole
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
    plan = _GroupPlan(view, group, placement, failures, out)
    plan.starts(plan.stops())
    return []


def _blocked_member(view: View, group: Group) -> str | None:
    for r in group.resources:
        for s in view.resources:
            if s.resource == r.name and s.role is Role.BLOCKED:
                return (f"left alone: {r.name} is blocked on {s.node} after its "
                        f"{s.failed_operation or 'stop'} failed; clean it up to continue")
    return None


def _wanted(resource: Resource) -> bool:
    return resource.meta.target_role is not TargetRole.STOPPED


@dataclass
class _GroupPlan:
    """The actions of one group. Invariant: stops chain in reverse member order, starts in
    member order after every stop, and nothing starts after a member that stays stopped."""

    view: View
    group: Group
    placement: Placement
    failures: dict[tuple[str, str], int]
    out: ActionList
    first_start: int = field(init=False)

    def __post_init__(self) -> None:
        self.first_start = self._first_to_start()

    def _first_to_start(self) -> int:
        """Index of the first member not cleanly started on the target (len if all are)."""
        target = self.placement.node
        members = self.group.resources
        if target is None:
            return len(members)
        for i, r in enumerate(members):
            if not _wanted(r) or self.view.role(r.name, target) not in (
                Role.STARTED, Role.PROMOTED
            ):
                return i
        return len(members)

    def stops(self) -> list[int]:
        """Add the stops, last member first; return their ids."""
        ids: list[int] = []
        for index in reversed(range(len(self.group.resources))):
            resource = self.group.resources[index]
            for node in self.view.active_nodes(resource.name):
                reason = self._stop_reason(index, node)
                if reason:
                    ids.append(self.out.add(ActionKind.STOP, node, resource.name, reason,
                                            tuple(ids[-1:])))
        return ids

    def _stop_reason(self, index: int, node: str) -> str | None:
        resource, placement = self.group.resources[index], self.placement
        if placement.node is None:
            return f"{self.group.name} stops: {placement.why}"
        if node != placement.node:
            return f"{self.group.name} moves to {placement.node}: {placement.why}"
        if self.view.role(resource.name, node) is Role.FAILED:
            return f"recover {resource.name}: {self._failure_text(resource, node)}"
        if not _wanted(resource):
            return f"{resource.name}: its target role is stopped"
        if index > self.first_start:
            earlier = self.group.resources[self.first_start]
            if not _wanted(earlier):
                return f"{earlier.name} before it in {self.group.name} stays stopped"
            return f"restart after {earlier.name} (members of {self.group.name} start in order)"
        return None

    def _failure_text(self, resource: Resource, node: str) -> str:
        status = next((s for s in self.view.resources
                       if s.resource == resource.name and s.node == node), None)
        what = f"{status.failed_operation} failed" if status and status.failed_operation \
            else "failed"
        detail = f" ({status.message})" if status and status.message else ""
        count = self.failures.get((resource.name, node), 0)
        return f"{what} on {node}{detail}, failure {count} of " \
               f"{resource.meta.migration_threshold}"

    def starts(self, stop_ids: list[int]) -> None:
        """Add the starts in member order, after every stop."""
        node = self.placement.node
        if node is None:
            return
        previous = tuple(stop_ids)
        for resource in self.group.resources[self.first_start:]:
            if not _wanted(resource):
                return  # later members depend on this one, so they stay stopped too
            count = self.failures.get((resource.name, node), 0)
            reason = f"{self.group.name} runs on {node}: {self.placement.why}"
            if count:
                reason += f"; {count} earlier failure(s) of {resource.name} here"
            previous = (self.out.add(ActionKind.START, node, resource.name, reason, previous),)
