"""Scores: how much each group wants each node, from node states, constraints, stickiness
and failures, each contribution kept with its reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from pyha.model.config import Group, OnFail, TargetRole
from pyha.model.status import Role
from pyha.model.types import INFINITY, format_score
from pyha.scheduler.index import Index
from pyha.scheduler.recovery import failed_policy

Part = tuple[int, str]


def signed(value: int) -> str:
    """A contribution as people write it: +50, -INFINITY, +INFINITY."""
    text = format_score(value)
    return text if value <= 0 else f"+{text}"


def format_parts(parts: list[Part]) -> str:
    """'+50 location prefer-n2, +100 stickiness (ip active there)' or 'no preference'."""
    return ", ".join(f"{signed(v)} {why}" for v, why in parts) or "no preference"


def add2(a: int, b: int) -> int:
    """`add_scores(a, b)` for two scores, without the generality (it runs per node)."""
    if a <= -INFINITY or b <= -INFINITY:
        return -INFINITY
    if a >= INFINITY or b >= INFINITY:
        return INFINITY
    return max(-INFINITY, min(INFINITY, a + b))


@dataclass
class NodeScore:
    """A score on one node with the contributions that made it, in the order added."""

    node: str
    score: int = 0
    parts: list[Part] = field(default_factory=list)

    def add(self, value: int, why: str) -> None:
        """Add one contribution and remember why."""
        self.score = add2(self.score, value)
        self.parts.append((value, why))

    def blocking(self) -> str | None:
        """The first reason this node is forbidden (-INFINITY), if it is."""
        if self.score > -INFINITY:
            return None
        return next((why for v, why in self.parts if v <= -INFINITY), None)


@dataclass(frozen=True)
class Bases:
    """What each node's own state adds for every group (down, fenced, standby,
    maintenance), with the totals precomputed in node order."""

    scores: dict[str, NodeScore]
    totals: tuple[tuple[str, int], ...]

    @property
    def nodes(self) -> tuple[str, ...]:
        """The nodes, in config order."""
        return tuple(self.scores)


@dataclass
class GroupScores:
    """A group's score on every node: the node's own state (shared by every group) plus
    the group's own contributions, and the nodes a colocation confines it to.

    Invariant: `total(n)` is the saturating sum of the base and the group's own score on
    n, or -INFINITY when a confinement leaves n out; nodes without own contributions cost
    nothing, so scoring stays linear in resources.
    """

    group: str
    bases: Bases
    own: dict[str, NodeScore] = field(default_factory=dict)
    confined: list[tuple[str | None, str]] = field(default_factory=list)
    """(the only node allowed, or None for none, why): from colocations with INFINITY."""

    @property
    def nodes(self) -> tuple[str, ...]:
        """The nodes, in config order."""
        return self.bases.nodes

    @property
    def base(self) -> dict[str, NodeScore]:
        """Each node's own state."""
        return self.bases.scores

    def add(self, node: str, value: int, why: str) -> None:
        """Add one of the group's own contributions on `node`."""
        entry = self.own.get(node)
        if entry is None:
            entry = self.own[node] = NodeScore(node)
        entry.add(value, why)

    def confine(self, node: str | None, why: str) -> None:
        """Forbid every node but `node` (every node if None), saying why."""
        self.confined.append((node, why))

    def total(self, node: str) -> int:
        """The score of the group on `node`."""
        for allowed, _ in self.confined:
            if node != allowed:
                return -INFINITY
        own = self.own.get(node)
        base = self.bases.scores[node].score
        return add2(base, own.score) if own else base

    def totals(self) -> list[tuple[str, int]]:
        """(node, total) for every node, in config order."""
        if not self.own and not self.confined:
            return list(self.bases.totals)
        allowed = self._allowed()
        own = self.own
        out = []
        for node, base in self.bases.totals:
            if allowed is not None and node not in allowed:
                out.append((node, -INFINITY))
                continue
            entry = own.get(node)
            out.append((node, add2(base, entry.score) if entry else base))
        return out

    def _allowed(self) -> set[str] | None:
        """The nodes the confinements leave (None when there is none)."""
        if not self.confined:
            return None
        return {n for n, _ in self.confined if n is not None} \
            if len({n for n, _ in self.confined}) == 1 else set()

    def row(self, node: str) -> NodeScore:
        """The score on `node` with every contribution, node state first."""
        own = self.own.get(node)
        parts = self.bases.scores[node].parts + (own.parts if own else [])
        parts += [(-INFINITY, why) for allowed, why in self.confined if node != allowed]
        return NodeScore(node, self.total(node), list(parts))

    def rows(self) -> list[NodeScore]:
        """Every node's score with its contributions, in config order."""
        return [self.row(n) for n in self.nodes]


def node_bases(ix: Index) -> Bases:
    """What each node's own state adds for every group: down, fenced, standby, maintenance."""
    scores = {}
    for node in ix.nodes:
        entry = NodeScore(node)
        if node in ix.fenced:
            state = "is being fenced" if ix.online(node) else "is down (fenced first)"
            entry.add(-INFINITY, f"{node} {state}")
        elif not ix.online(node):
            entry.add(-INFINITY, f"{node} is down")
        elif ix.standby(node):
            entry.add(-INFINITY, f"{node} is in standby")
        elif ix.maintenance(node):
            entry.add(-INFINITY, f"{node} is in maintenance")
        scores[node] = entry
    return Bases(scores, tuple((n, e.score) for n, e in scores.items()))


def group_scores(ix: Index, group: Group, bases: Bases) -> GroupScores:
    """The score of `group` on every node before colocation (placement adds that)."""
    scores = GroupScores(group.name, bases)
    _locations(ix, group, scores)
    _stickiness(ix, group, scores)
    if group.name in ix.failing:
        _failures(ix, group, scores)
    return scores


def _locations(ix: Index, group: Group, scores: GroupScores) -> None:
    for c in ix.locations.get(group.name, ()):
        if c.expires is not None and ix.now >= c.expires:
            continue
        bans = f" bans {c.node}" if c.score <= -INFINITY else ""
        scores.add(c.node, c.score, f"location {c.id}{bans}" + _lifetime(c.expires))


def _lifetime(expires: float | None) -> str:
    # An absolute time keeps the reason the same from one cycle to the next.
    return "" if expires is None else f" (until {format_time(expires)})"


def format_time(wall: float) -> str:
    """A wall-clock time in UTC, to the second: '2026-01-01 12:00:00 UTC'."""
    return datetime.fromtimestamp(wall, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _stickiness(ix: Index, group: Group, scores: GroupScores) -> None:
    per_node: dict[str, tuple[int, list[str]]] = {}
    for resource in group.resources:
        if ix.target_role(resource) is TargetRole.STOPPED:
            break  # it and the members after it stop, so they hold the group nowhere
        stickiness = ix.config.stickiness_of(group, resource)
        for node, _role in ix.active(resource.name):
            if node in ix.nodes and stickiness:
                total, names = per_node.get(node, (0, []))
                per_node[node] = (total + stickiness, [*names, resource.name])
    for node, (total, names) in per_node.items():
        scores.add(node, total, f"stickiness: {_names(names)} active there")


def _names(names: list[str]) -> str:
    if len(names) <= 4:
        return ", ".join(names)
    return ", ".join(names[:3]) + f" and {len(names) - 3} more"


def _failures(ix: Index, group: Group, scores: GroupScores) -> None:
    for resource in group.resources:
        threshold = resource.meta.migration_threshold
        for node in ix.failed_on.get(resource.name, ()):
            count = ix.failures[(resource.name, node)]
            if node not in ix.nodes:
                continue
            if count >= INFINITY:
                moved = ix.records[(resource.name, node)].on_fail is OnFail.MOVE
                scores.add(node, -INFINITY, f"{resource.name} failed there (on-fail=move)"
                           if moved else f"{resource.name} had a fatal failure there")
            elif count >= threshold:
                scores.add(node, -INFINITY, f"{resource.name} had {count} failures there "
                                            f"(migration threshold {threshold})")
        _policy_bans(ix, group, resource.name, scores)


def _policy_bans(ix: Index, group: Group, name: str, scores: GroupScores) -> None:
    """on-fail=move bans the node where the operation failed, whatever the fail count says."""
    for status in ix.troubled.get(name, ()):
        node = status.node
        if status.role is not Role.FAILED or node in ix.fenced or node not in ix.nodes:
            continue
        if ix.failures.get((name, node), 0) >= INFINITY:
            continue  # already banned there by the fatal failure
        operation = status.failed_operation
        if failed_policy(ix, name, operation) is OnFail.MOVE:
            scores.add(node, -INFINITY,
                       f"{name}'s {operation or 'operation'} failed there (on-fail=move)")
