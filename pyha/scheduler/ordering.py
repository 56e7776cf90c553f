"""Ordering: the actions that bring each group to its placement, with their dependencies
(stops before starts, members in order, order constraints between groups, fences)."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter

from pyha.model.actions import Action, ActionKind, Note
from pyha.model.config import Group, Resource, TargetRole
from pyha.model.status import Role
from pyha.model.types import format_score
from pyha.scheduler import recovery
from pyha.scheduler.constraints import Constraints
from pyha.scheduler.index import RUNNING, Index
from pyha.scheduler.placement import Placement
from pyha.scheduler.scores import format_parts

_ACTIONS = TypeAdapter(tuple[Action, ...])
_RANK = {ActionKind.FENCE: 0, ActionKind.DEMOTE: 1, ActionKind.STOP: 2,
         ActionKind.MONITOR: 3, ActionKind.START: 4, ActionKind.PROMOTE: 5}


@dataclass(slots=True)
class _Draft:
    kind: ActionKind
    node: str
    resource: str | None
    reason: str
    after: set[int]


@dataclass
class ActionList:
    """Actions being built; dependencies may be added until `freeze`.

    Invariant: a draft's id is its position + 1 and it only ever depends on other drafts;
    `freeze` numbers the actions again in an order that runs every dependency first.
    """

    drafts: list[_Draft] = field(default_factory=list)

    def add(self, kind: ActionKind, node: str, resource: str | None, reason: str,
            after: Iterable[int] = ()) -> int:
        """Add an action and return its draft id."""
        self.drafts.append(_Draft(kind, node, resource, reason, set(after)))
        return len(self.drafts)

    def depend(self, action: int, on: Iterable[int]) -> None:
        """Make `action` wait for the actions `on` too."""
        self.drafts[action - 1].after.update(on)

    def freeze(self) -> tuple[Action, ...]:
        """The actions in execution order (fences, demotes, stops, probes, starts, promotes
        as far as the dependencies allow), numbered from 1."""
        drafts = self.drafts
        waiting = [0] * (len(drafts) + 1)
        followers: dict[int, list[int]] = {}
        ready: list[int] = []  # rank << 32 | id: one int per entry keeps the heap cheap
        for draft_id, draft in enumerate(drafts, 1):
            waiting[draft_id] = len(draft.after)
            for dep in draft.after:
                followers.setdefault(dep, []).append(draft_id)
            if not draft.after:
                ready.append(_RANK[draft.kind] << 32 | draft_id)
        heapq.heapify(ready)
        final: dict[int, int] = {}
        while ready:
            draft_id = heapq.heappop(ready) & 0xFFFFFFFF
            final[draft_id] = len(final) + 1
            for nxt in followers.get(draft_id, ()):
                waiting[nxt] -= 1
                if not waiting[nxt]:
                    heapq.heappush(ready, _RANK[drafts[nxt - 1].kind] << 32 | nxt)
        if len(final) < len(drafts):
            raise AssertionError("the scheduler built a dependency cycle")  # a bug, not input
        # `final` was filled in execution order; one validation call builds every action.
        return _ACTIONS.validate_python([self._action(final, d) for d in final])

    def _action(self, final: dict[int, int], draft_id: int) -> dict[str, Any]:
        d = self.drafts[draft_id - 1]
        after = [final[a] for a in d.after]
        if len(after) > 1:
            after.sort()
        return {"id": final[draft_id], "kind": d.kind, "node": d.node,
                "resource": d.resource, "reason": d.reason, "after": after}


@dataclass
class GroupResult:
    """What one group's plan did, for the order constraints of the groups after it."""

    stops: list[int] = field(default_factory=list)
    """Stop (and demote) ids in chain order: the first runs first."""
    last_start: int | None = None
    held: str = ""
    """Why the starts the group needed were held back ('' when none were)."""
    goes_down: str = ""
    """'restarts on n1', 'moves to n2', 'stops' when the group as a whole goes down."""


def plan_groups(ix: Index, cons: Constraints, placements: dict[str, Placement],
                fences: dict[str, int], out: ActionList) -> dict[str, list[Note]]:
    """Add every group's actions to `out`, `first` groups before their `then` groups;
    return the notes on what is left as it is, by group."""
    results: dict[str, GroupResult] = {}
    notes: dict[str, list[Note]] = {}
    for name in cons.plan_order:
        placement = placements[name]
        if not placement.managed:
            results[name] = GroupResult()
            continue
        restart, hold, after = _order_inputs(ix, cons, name, placement, results)
        after.update(_fences_before(ix, ix.groups[name], fences))
        plan = _GroupPlan(ix, ix.groups[name], placement, out, restart, hold, after)
        results[name] = plan.run()
        notes[name] = plan.notes
        _symmetric_stops(cons, name, results, out)
    return notes


def _order_inputs(ix: Index, cons: Constraints, name: str, placement: Placement,
                  results: dict[str, GroupResult]) -> tuple[str, str, set[int]]:
    """(restart, hold, start after) for `name` from the orders in which it is `then`."""
    restart, hold, after = "", "", set()
    running = any(ix.active(r.name) for r in ix.groups[name].resources)
    for o in cons.orders_into.get(name, ()):
        first = results[o.first]
        if first.last_start is not None:
            after.add(first.last_start)
        if not o.mandatory:
            continue
        if first.held:
            hold = f"{o.first} must start first (order {o.id}) and waits: {first.held}"
        if first.goes_down and running and placement.node is not None:
            restart = f"it needs {o.first} first (order {o.id}), which {first.goes_down}"
    return restart, hold, after


def _fences_before(ix: Index, group: Group, fences: dict[str, int]) -> set[int]:
    """The fences a group's starts wait for: those of nodes where a member may be active."""
    return {fences[node] for r in group.resources for node, _ in ix.active_raw(r.name)
            if node in fences}


def _symmetric_stops(cons: Constraints, name: str, results: dict[str, GroupResult],
                     out: ActionList) -> None:
    then = results[name]
    for o in cons.orders_into.get(name, ()):
        first = results[o.first]
        if o.symmetrical and first.stops and then.stops:
            out.depend(first.stops[0], (then.stops[-1],))


@dataclass
class _GroupPlan:
    """The actions of one group. Invariant: stops chain in reverse member order, starts in
    member order after every stop, and nothing starts after a member that stays stopped."""

    ix: Index
    group: Group
    placement: Placement
    out: ActionList
    restart: str
    hold: str
    after: set[int]
    notes: list[Note] = field(default_factory=list)
    first: int = 0

    def run(self) -> GroupResult:
        """Add the group's probes, stops, promotes/demotes and starts."""
        result = GroupResult()
        self.first = self._first_to_start()
        probes = self._probe()  # every probe now, even when an order holds the starts anyway
        self.hold = self.hold or probes
        result.stops, unstoppable = self._stops()
        if unstoppable:
            self.hold = self.hold or f"{unstoppable} cannot be stopped: the node is down " \
                                     "and not fenced"
        self._role_changes()
        result.last_start = self._starts(result)
        result.goes_down = self._goes_down(result.stops)
        return result

    # -- which members change ----------------------------------------------------------

    def _wanted(self, resource: Resource) -> bool:
        return self.ix.target_role(resource) is not TargetRole.STOPPED

    def _first_to_start(self) -> int:
        """Index of the first member not cleanly running on the target (len if all are)."""
        target, members = self.placement.node, self.group.resources
        if target is None:
            return len(members)
        if self.restart:
            return 0
        for i, r in enumerate(members):
            if not self._wanted(r) or self.ix.role(r.name, target) not in RUNNING:
                return i
        return len(members)

    def _needs_starts(self) -> bool:
        return self.placement.node is not None and self.first < len(self.group.resources) \
            and self._wanted(self.group.resources[self.first])

    def _probe(self) -> str:
        unknown = recovery.unknown_here(self.ix, self.group)
        for name, node in unknown:
            self.out.add(ActionKind.MONITOR, node, name,
                         f"probe {name} on {node}: never checked there, it may be active")
        if not unknown:
            return ""
        shown = ", ".join(f"{r} on {n}" for r, n in unknown[:4])
        return f"probes of {shown} first" + (" and more" if len(unknown) > 4 else "")

    # -- stops ---------------------------------------------------------------------------

    def _stops(self) -> tuple[list[int], str]:
        """Add the stops, last member first; return their ids and what could not stop."""
        ids: list[int] = []
        unstoppable = ""
        for index in reversed(range(len(self.group.resources))):
            resource = self.group.resources[index]
            for node, role in self.ix.active(resource.name):
                reason = self._stop_reason(index, node, role)
                if reason is None:
                    continue
                if not self.ix.online(node):
                    unstoppable = unstoppable or f"{resource.name} on {node}"
                    continue
                if role is Role.PROMOTED:
                    ids.append(self.out.add(ActionKind.DEMOTE, node, resource.name,
                                            f"demote before the stop: {reason}", ids[-1:]))
                ids.append(self.out.add(ActionKind.STOP, node, resource.name, reason, ids[-1:]))
        return ids, unstoppable

    def _stop_reason(self, index: int, node: str, role: Role) -> str | None:
        resource, placement = self.group.resources[index], self.placement
        if placement.node is None:
            return f"{self.group.name} stops: {placement.why}"
        if node != placement.node:
            if self.ix.role(resource.name, placement.node) in RUNNING:
                return f"{resource.name} is active on both {node} and {placement.node}, " \
                       f"where {self.group.name} runs"
            return self._move_text(node)
        if role is Role.FAILED:
            return f"recover {resource.name}: " \
                   f"{recovery.failure_text(self.ix, resource.name, node)}"
        if not self._wanted(resource):
            return f"{resource.name}: its target role is stopped"
        if self.restart:
            return f"restart {self.group.name}: {self.restart}"
        if index > self.first:
            earlier = self.group.resources[self.first]
            if not self._wanted(earlier):
                return f"{earlier.name} before it in {self.group.name} stays stopped"
            if self.hold:
                return None  # the restart waits with the starts; until then it keeps running
            return f"restart after {earlier.name} (members of {self.group.name} start in order)"
        return None

    def _move_text(self, old: str) -> str:
        target = self.placement.node or ""
        if any(self.ix.role(r.name, target) in RUNNING for r in self.group.resources):
            return f"{self.group.name} is split between {old} and {target}, gathered on " \
                   f"{target}: {self._left(old)}"
        return f"{self.group.name} moves from {old} to {target}: {self._left(old)}"

    def _left(self, old: str) -> str:
        """Why the group leaves `old`: its blocking reason, or the better score elsewhere."""
        scores = self.placement.scores
        if scores is None or old not in scores.base:
            return f"{old} is not a node of the cluster"
        row = scores.row(old)
        blocking = row.blocking()
        if blocking:
            return blocking
        target = self.placement.node or ""
        better = scores.row(target)
        return f"{target} scores {format_score(better.score)} ({format_parts(better.parts)}) " \
               f"against {format_score(row.score)} on {old} ({format_parts(row.parts)})"

    def _goes_down(self, stops: list[int]) -> str:
        """How the group goes down as a whole (its first member stops), or ''."""
        first = self.group.resources[0].name
        was_on = [node for node, _ in self.ix.active_raw(first)]
        stopped = any(self.out.drafts[i - 1].resource == first and
                      self.out.drafts[i - 1].kind is ActionKind.STOP for i in stops)
        if not stopped and not any(node in self.ix.fenced for node in was_on):
            return ""
        target = self.placement.node
        if target is None:
            return "stops"
        return f"restarts on {target}" if target in was_on else f"moves to {target}"

    # -- promotes, demotes and starts ------------------------------------------------------

    def _role_changes(self) -> None:
        """Promote or demote members that stay where they run."""
        target = self.placement.node
        if target is None or not self.ix.promoted:
            return
        for resource in self.group.resources[:self.first]:
            role, wanted = self.ix.role(resource.name, target), self.ix.target_role(resource)
            if wanted is TargetRole.PROMOTED and role is Role.STARTED and not self.hold:
                self.out.add(ActionKind.PROMOTE, target, resource.name,
                             f"{resource.name}: its target role is promoted")
            elif wanted is not TargetRole.PROMOTED and role is Role.PROMOTED:
                self.out.add(ActionKind.DEMOTE, target, resource.name,
                             f"{resource.name}: its target role is {wanted.value}, "
                             "not promoted")

    def _starts(self, result: GroupResult) -> int | None:
        """Add the starts in member order after every stop; return the last id."""
        if not self._needs_starts():
            self._note_unwanted()
            return None
        if self.hold:
            result.held = self.hold
            self.notes.append(Note(subject=self.group.name, text=f"waits: {self.hold}"))
            return None
        target = self.placement.node or ""
        previous: Iterable[int] = set(result.stops) | self.after
        last = None
        targets = self.ix.targets
        for index in range(self.first, len(self.group.resources)):
            resource = self.group.resources[index]
            wanted = targets[resource.name]
            if wanted is TargetRole.STOPPED:
                self._note_unwanted(index)
                break
            last = self.out.add(ActionKind.START, target, resource.name,
                                self._start_reason(index), previous)
            if wanted is TargetRole.PROMOTED:
                last = self.out.add(ActionKind.PROMOTE, target, resource.name,
                                    f"{resource.name}: its target role is promoted", (last,))
            previous = (last,)
        return last

    def _start_reason(self, index: int) -> str:
        resource, target = self.group.resources[index], self.placement.node or ""
        if index > self.first:
            before = self.group.resources[index - 1].name
            return f"{resource.name} follows {before} on {target} " \
                   f"(members of {self.group.name} start in order)"
        reason = self._first_start_reason(resource, target)
        count = self.ix.failure_count(resource.name, target)
        if count and not reason.startswith("recover"):
            reason += f"; {count} earlier failure(s) of {resource.name} here"
        return reason

    def _first_start_reason(self, resource: Resource, target: str) -> str:
        old = next((node for r in self.group.resources
                    for node, _ in self.ix.active_raw(r.name) if node != target), None)
        if old is not None:
            return self._move_text(old)
        if self.ix.role(resource.name, target) is Role.FAILED:
            return f"recover {resource.name}: " \
                   f"{recovery.failure_text(self.ix, resource.name, target)}"
        if self.restart:
            return f"restart {self.group.name}: {self.restart}"
        if self.first > 0:
            return f"{resource.name} is not running on {target}, where " \
                   f"{self.group.name} runs"
        return f"{self.group.name} starts on {target}: {self.placement.why}"

    def _note_unwanted(self, start: int | None = None) -> None:
        """Notes for a member whose target role is stopped and the members after it."""
        if self.placement.node is None:
            return
        members = self.group.resources
        index = start if start is not None else next(
            (i for i, r in enumerate(members) if not self._wanted(r)), None)
        if index is None:
            return
        off = members[index].name
        self.notes.append(Note(subject=off, text="stopped: its target role is stopped"))
        self.notes.extend(
            Note(subject=r.name, text=f"stopped: {off} before it in {self.group.name} "
                                      "stays stopped")
            for r in members[index + 1:])
