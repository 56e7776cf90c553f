"""The scheduler: a pure function from desired and observed state to a transition."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pyha.model.actions import ActionKind, Note, Transition
from pyha.model.config import ClusterConfig, NoQuorumPolicy
from pyha.model.status import View
from pyha.scheduler import constraints, ordering, placement, recovery
from pyha.scheduler.explain import summary_line
from pyha.scheduler.index import INACTIVE, Index
from pyha.scheduler.moves import move, unmove
from pyha.scheduler.placement import Placement

__all__ = ["Placement", "Plan", "move", "plan", "schedule", "unmove"]


@dataclass(frozen=True)
class Plan:
    """A transition with what explains it: each group's placement with its scores.

    Invariant: `transition.placement[g]` is `placements[g].node` for every group g.
    """

    transition: Transition
    placements: dict[str, Placement] = field(default_factory=dict)
    index: Index | None = None
    """None when nothing was scored (cluster maintenance, frozen without quorum)."""


def schedule(config: ClusterConfig, view: View, now: float) -> Transition:
    """Decide where every group runs and what to do next.

    Pure: no I/O, no clock reads. `now` is wall-clock seconds, compared with the
    failure and constraint times in `config` and `view`.
    """
    return plan(config, view, now).transition


def plan(config: ClusterConfig, view: View, now: float) -> Plan:
    """`schedule`, keeping the placements and scores that explain the transition."""
    with _collections_paused():
        return _plan(config, view, now)


@contextmanager
def _collections_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while scheduling.

    A transition for 10,000 resources allocates some 100,000 short-lived objects, none in
    a cycle; each full collection they trigger would walk the whole config again, which
    made scheduling grow faster than linearly. Reference counting still frees them.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _plan(config: ClusterConfig, view: View, now: float) -> Plan:
    frozen = _frozen_reason(config, view)
    if frozen:
        return _frozen(config, view, frozen)
    ix = Index.build(config, view, now)
    fenced, fence_notes = recovery.fencing(ix)  # lost nodes, on-fail=fence
    ix.fence(fenced)
    cons = constraints.check(ix)  # colocation and order graphs, cycles rejected
    placements = placement.place_all(ix, cons)  # scores, colocation, mandatory orders
    out = ordering.ActionList()
    fences = {node: out.add(ActionKind.FENCE, node, None, why) for node, why in ix.fenced.items()}
    group_notes = ordering.plan_groups(ix, cons, placements, fences, out)
    _stop_orphans(ix, out)
    notes = [*fence_notes, *_by_group(ix, cons.notes, placement.notes(ix, placements), group_notes)]
    actions = out.freeze()
    where = {name: p.node for name, p in placements.items()}
    transition = Transition(actions=actions, placement=where, notes=tuple(notes),
                            summary=summary_line(actions, where, notes))
    return Plan(transition, placements, ix)


def _by_group(ix: Index, *sources: list[Note] | dict[str, list[Note]]) -> list[Note]:
    """Every note, group by group in config order (a member's notes with its group)."""
    per_group: dict[str, list[Note]] = {}
    for source in sources:
        items = source if isinstance(source, list) else \
            [n for notes in source.values() for n in notes]
        for note in items:
            group = ix.group_of[note.subject].name if note.subject in ix.group_of \
                else note.subject
            per_group.setdefault(group, []).append(note)
    ordered = sorted(per_group, key=lambda g: ix.group_pos.get(g, len(ix.group_pos)))
    return [n for g in ordered for n in per_group[g]]


def _stop_orphans(ix: Index, out: ordering.ActionList) -> None:
    """Stop what runs but is no longer configured (on a lost node the fence does it)."""
    for status in ix.view.resources:
        if status.resource in ix.resources or status.role in INACTIVE:
            continue
        if ix.usable(status.node) and not ix.maintenance(status.node):
            out.add(ActionKind.STOP, status.node, status.resource,
                    f"{status.resource} is no longer configured")


def _frozen_reason(config: ClusterConfig, view: View) -> str | None:
    if config.cluster.maintenance:
        return "the cluster is in maintenance mode"
    if not view.quorum and config.cluster.no_quorum_policy is NoQuorumPolicy.FREEZE:
        return "this partition has no quorum (no_quorum_policy=freeze)"
    return None


def _frozen(config: ClusterConfig, view: View, why: str) -> Plan:
    """Nothing changes: every group stays where it is, with a note saying why."""
    ix = Index.build(config, view, 0.0)
    placements = {}
    for group in config.groups:
        node = next((n for r in group.resources for n, _ in ix.active(r.name)), None)
        placements[group.name] = Placement(group.name, node, f"left as it is: {why}",
                                           managed=False, note=f"left as it is: {why}")
    notes = tuple(Note(subject=g, text=p.note) for g, p in placements.items())
    where = {g: p.node for g, p in placements.items()}
    return Plan(Transition(placement=where, notes=notes, summary=f"nothing to do: {why}"),
                placements)
