"""The scheduler: a pure function from desired and observed state to a transition."""

from __future__ import annotations

from pyha.model.actions import Action, ActionKind, Note, Transition
from pyha.model.config import ClusterConfig, NoQuorumPolicy
from pyha.model.status import View
from pyha.scheduler.ordering import ActionList, plan_group
from pyha.scheduler.placement import Placement, place_group
from pyha.scheduler.scores import failure_counts

__all__ = ["Placement", "schedule"]


def schedule(config: ClusterConfig, view: View, now: float) -> Transition:
    """Decide where every group runs and what to do next.

    Pure: no I/O, no clock reads. `now` is wall-clock seconds, compared with the
    failure and constraint times in `config` and `view`.
    """
    frozen = _frozen_reason(config, view)
    if frozen:
        frozen_notes = tuple(
            Note(subject=g.name, text=f"left as it is: {frozen}") for g in config.groups
        )
        return Transition(notes=frozen_notes, summary=f"nothing to do: {frozen}")
    failures = failure_counts(config, view, now)
    out = ActionList()
    notes: list[Note] = []
    placements: dict[str, str | None] = {}
    for group in config.groups:
        placement, note = place_group(config, view, group, now, failures)
        placements[group.name] = placement.node
        notes.extend([note] if note else [])
        if _in_maintenance(config, view, group.name):
            notes.append(Note(subject=group.name, text="left as it is: its node is in maintenance"))
            continue
        notes.extend(plan_group(config, view, placement, failures, out))
    return Transition(actions=tuple(out.actions), placement=placements, notes=tuple(notes),
                      summary=summarize(out.actions, placements, notes))


def _frozen_reason(config: ClusterConfig, view: View) -> str | None:
    if config.cluster.maintenance:
        return "the cluster is in maintenance mode"
    if not view.quorum and config.cluster.no_quorum_policy is NoQuorumPolicy.FREEZE:
        return "this partition has no quorum (no_quorum_policy=freeze)"
    return None


def _in_maintenance(config: ClusterConfig, view: View, group: str) -> bool:
    members = [r.name for r in config.group(group).resources]
    nodes = {n for m in members for n in view.active_nodes(m)}
    for name in nodes:
        status = view.node_status(name)
        try:
            configured = config.node(name).maintenance
        except KeyError:
            configured = False
        if configured or (status is not None and status.maintenance):
            return True
    return False


def summarize(actions: list[Action] | tuple[Action, ...], placements: dict[str, str | None],
              notes: list[Note]) -> str:
    """One line: what the transition does, or where everything stays."""
    if not actions:
        said: dict[str, list[str]] = {}
        for note in notes:
            said.setdefault(note.subject, []).append(note.text)
        where = ", ".join(
            (f"{g} on {n}" if n else f"{g} stopped")
            + (" (" + "; ".join(said[g]) + ")" if g in said else "")
            for g, n in placements.items()
        )
        return f"nothing to do: {where}" if where else "nothing to do: no groups configured"
    parts = []
    for kind in (ActionKind.FENCE, ActionKind.STOP, ActionKind.START):
        chosen = [a for a in actions if a.kind is kind]
        if chosen:
            parts.append(f"{kind.value} " + ", ".join(_target(a) for a in chosen))
    # The root cause reads best: skip the knock-on restarts of later group members.
    lead = next((a for a in actions if not a.reason.startswith("restart after")), actions[0])
    return "; ".join(parts) + f" ({lead.reason})"


def _target(action: Action) -> str:
    return f"{action.resource} on {action.node}" if action.resource else action.node

