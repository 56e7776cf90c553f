"""Placement: the node each group should run on, or none, with the reason."""

from __future__ import annotations

from dataclasses import dataclass

from pyha.model.actions import Note
from pyha.model.config import ClusterConfig, Group, NoQuorumPolicy, TargetRole
from pyha.model.status import View
from pyha.model.types import INFINITY, format_score
from pyha.scheduler.scores import NodeScore, explain_ban, group_scores


@dataclass(frozen=True)
class Placement:
    """Where a group goes: `node` None means stopped; `why` says in plain words why."""

    group: str
    node: str | None
    why: str
    scores: tuple[NodeScore, ...] = ()


def place_group(
    config: ClusterConfig, view: View, group: Group, now: float,
    failures: dict[tuple[str, str], int],
) -> tuple[Placement, Note | None]:
    """Choose the best-scoring node for `group`; ties go to the node listed first."""
    if group.meta.target_role is TargetRole.STOPPED:
        return Placement(group.name, None, "its target role is stopped"), Note(
            subject=group.name, text="stopped: target role is stopped"
        )
    if not view.quorum and config.cluster.no_quorum_policy is NoQuorumPolicy.STOP:
        why = "this partition has no quorum (no_quorum_policy=stop)"
        return Placement(group.name, None, why), Note(subject=group.name, text=f"stopped: {why}")
    scores = group_scores(config, view, group, now, failures)
    allowed = [s for s in scores if s.score > -INFINITY]
    if not allowed:
        note = explain_ban(group, scores)
        return Placement(group.name, None, note.text, tuple(scores)), note
    best = max(allowed, key=lambda s: s.score)  # max keeps the first of equals
    why = f"{best.node} scores {format_score(best.score)}"
    if best.parts:
        why += " (" + ", ".join(best.parts) + ")"
    return Placement(group.name, best.node, why, tuple(scores)), None
