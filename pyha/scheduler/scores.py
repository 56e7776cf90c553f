"""Scores: how much each group wants each node, from constraints, stickiness and failures."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyha.model.actions import Note
from pyha.model.config import ClusterConfig, Group, LocationConstraint
from pyha.model.status import View
from pyha.model.types import INFINITY, add_scores, format_score


@dataclass
class NodeScore:
    """A group's score on one node, with the contributions that made it."""

    node: str
    score: int = 0
    parts: list[str] = field(default_factory=list)

    def add(self, value: int, why: str) -> None:
        """Add one contribution and remember why."""
        self.score = add_scores(self.score, value)
        self.parts.append(f"{format_score(value)} {why}")


def failure_counts(config: ClusterConfig, view: View, now: float) -> dict[tuple[str, str], int]:
    """Failures per (resource, node) that still count at `now` (failure_timeout applied).

    A fatal failure counts as INFINITY; an expired one is gone.
    """
    counts: dict[tuple[str, str], int] = {}
    for record in view.failures:
        try:
            resource = config.resource(record.resource)
        except KeyError:
            continue
        timeout = resource.meta.failure_timeout
        if not record.fatal and timeout and now - record.last_failure >= timeout:
            continue
        counts[(record.resource, record.node)] = INFINITY if record.fatal else record.count
    return counts


def group_scores(
    config: ClusterConfig, view: View, group: Group, now: float,
    failures: dict[tuple[str, str], int],
) -> list[NodeScore]:
    """The score of `group` on every configured node, in config order."""
    scores = []
    for node in config.nodes:
        entry = NodeScore(node.name)
        _node_state(view, node.name, entry)
        _locations(config, group, node.name, now, entry)
        _stickiness(config, view, group, node.name, entry)
        _failures(group, node.name, failures, entry)
        scores.append(entry)
    return scores


def _node_state(view: View, node: str, entry: NodeScore) -> None:
    status = view.node_status(node)
    if status is None or not status.online:
        entry.add(-INFINITY, f"{node} is down")
    elif status.standby:
        entry.add(-INFINITY, f"{node} is in standby")


def _locations(config: ClusterConfig, group: Group, node: str, now: float,
               entry: NodeScore) -> None:
    for c in config.constraints:
        if isinstance(c, LocationConstraint) and c.group == group.name and c.node == node:
            if c.expires is not None and now >= c.expires:
                continue
            entry.add(c.score, f"location {c.id}")


def _stickiness(config: ClusterConfig, view: View, group: Group, node: str,
                entry: NodeScore) -> None:
    for resource in group.resources:
        if node in view.active_nodes(resource.name):
            stickiness = config.stickiness_of(group, resource)
            if stickiness:
                entry.add(stickiness, f"{resource.name} is active there (stickiness)")


def _failures(group: Group, node: str, failures: dict[tuple[str, str], int],
              entry: NodeScore) -> None:
    for resource in group.resources:
        count = failures.get((resource.name, node), 0)
        if count >= resource.meta.migration_threshold:
            shown = "a fatal error" if count >= INFINITY else f"{count} failures"
            entry.add(
                -INFINITY,
                f"{resource.name} had {shown} there "
                f"(migration threshold {resource.meta.migration_threshold})",
            )


def explain_ban(group: Group, scores: list[NodeScore]) -> Note:
    """Why a group can run nowhere: each node's blocking reason."""
    reasons = []
    for s in scores:
        blocking = [p.split(" ", 1)[1] for p in s.parts if p.startswith("-INFINITY")]
        reasons.append(blocking[0] if blocking else f"{s.node} scores {format_score(s.score)}")
    return Note(subject=group.name, text="cannot run anywhere: " + "; ".join(reasons))
