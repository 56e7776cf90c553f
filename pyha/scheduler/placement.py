"""Placement: the node each group should run on, or none, with the reason in plain words."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyha.model.actions import Note
from pyha.model.config import ColocationConstraint, Group, NoQuorumPolicy, TargetRole
from pyha.model.types import INFINITY, format_score
from pyha.scheduler import recovery
from pyha.scheduler.constraints import Constraints
from pyha.scheduler.index import RUNNING, Index
from pyha.scheduler.moves import is_move
from pyha.scheduler.scores import Bases, GroupScores, format_parts, group_scores, node_bases


@dataclass(frozen=True)
class Placement:
    """Where a group goes: `node` None means stopped; `why` says in plain words why.

    Invariant: an unmanaged placement (`managed` False) is where the group is now, and
    the scheduler plans no action for it.
    """

    group: str
    node: str | None
    why: str
    scores: GroupScores | None = None
    managed: bool = True
    note: str = ""
    """The note for a group left stopped or left as it is ('' when it runs normally)."""


def place_all(ix: Index, cons: Constraints) -> dict[str, Placement]:
    """Place every group, with-groups first; then stop the `then` of mandatory orders
    whose `first` cannot run, and place again until nothing more is blocked."""
    bases = node_bases(ix)
    blocked: dict[str, str] = {}
    placements: dict[str, Placement] = {}
    for _ in range(len(ix.groups) + 1):  # each round blocks at least one more group
        placements = _place_round(ix, cons, bases, blocked)
        more = _order_blocks(ix, cons, placements, blocked)
        if not more:
            break
        blocked.update(more)
    return {name: placements[name] for name in ix.groups}


def notes(ix: Index, placements: dict[str, Placement]) -> dict[str, list[Note]]:
    """The note of each group left stopped or left as it is, and of each move that
    cannot be followed."""
    out = {p.group: [Note(subject=p.group, text=p.note)] for p in placements.values() if p.note}
    for p in placements.values():
        for c in ix.locations.get(p.group, ()):
            if is_move(c) and p.scores is not None and p.node != c.node and \
                    (c.expires is None or ix.now < c.expires):
                row = p.scores.row(c.node)
                why = row.blocking() or f"{c.node} scores {format_score(row.score)}"
                out.setdefault(p.group, []).append(
                    Note(subject=p.group, text=f"move {c.id} to {c.node} not followed: {why}"))
    return out


def _place_round(ix: Index, cons: Constraints, bases: Bases,
                 blocked: dict[str, str]) -> dict[str, Placement]:
    placing = _Round(ix, cons, bases, blocked, load=dict.fromkeys(ix.nodes, 0))
    for name in cons.place_order:
        placing.place(ix.groups[name])
    return placing.placed


@dataclass
class _Round:
    """One placement of every group. Invariant: a group is placed after every group its
    colocations refer to, and `load` counts the resources placed on each node so far."""

    ix: Index
    cons: Constraints
    bases: Bases
    blocked: dict[str, str]
    placed: dict[str, Placement] = field(default_factory=dict)
    load: dict[str, int] = field(default_factory=dict)

    def place(self, group: Group) -> None:
        """Place `group` and count its resources on its node."""
        placement = self._place(group)
        self.placed[group.name] = placement
        if placement.node in self.load:
            self.load[placement.node] += self._running_members(group)

    def _running_members(self, group: Group) -> int:
        """Members that will run: those before the first whose target role is stopped."""
        count = 0
        for resource in group.resources:
            if self.ix.target_role(resource) is TargetRole.STOPPED:
                break
            count += 1
        return count

    def _place(self, group: Group) -> Placement:
        node, why = recovery.unmanaged(self.ix, group)
        if why:
            return Placement(group.name, node, why, managed=False, note=why)
        stopped = _stopped_reason(self.ix, group, self.blocked.get(group.name))
        if stopped:
            return Placement(group.name, None, stopped, note=f"stopped: {stopped}")
        scores = group_scores(self.ix, group, self.bases)
        for c in self.cons.colocations.get(group.name, ()):
            _colocate(scores, c, self.placed[c.with_group])
        here: dict[str, int] = {}
        for r in group.resources:
            for node, _ in self.ix.active(r.name):
                here[node] = here.get(node, 0) + 1
        return _best(scores, self.load, here)


def _stopped_reason(ix: Index, group: Group, blocked: str | None) -> str | None:
    if group.meta.target_role is TargetRole.STOPPED:
        return "its target role is stopped"
    if not ix.view.quorum and ix.config.cluster.no_quorum_policy is NoQuorumPolicy.STOP:
        return "this partition has no quorum (no_quorum_policy=stop)"
    if blocked:
        return blocked
    failed = recovery.stop_policy(ix, group)
    if failed:
        return f"{failed}; it stays stopped until a cleanup"
    return None


def _colocate(scores: GroupScores, c: ColocationConstraint, other: Placement) -> None:
    """Add colocation `c` to `scores`, given where its `with_group` goes."""
    where = other.node
    if where is None:
        if c.score >= INFINITY:
            scores.confine(None, f"colocation {c.id}: must run with {c.with_group}, "
                                 "which stays stopped")
        return
    if where not in scores.base:
        return
    if c.score >= INFINITY:
        scores.add(where, c.score, f"colocation {c.id}: with {c.with_group}")
        scores.confine(where, f"colocation {c.id}: must run with {c.with_group}, "
                              f"which is placed on {where}")
    elif c.score <= -INFINITY:
        scores.add(where, c.score, f"colocation {c.id}: never with {c.with_group}")
    elif c.score:
        side = "with" if c.score > 0 else "apart from"
        scores.add(where, c.score, f"colocation {c.id}: {side} {c.with_group}")


def _best(scores: GroupScores, load: dict[str, int], here: dict[str, int]) -> Placement:
    """The best-scoring allowed node. Ties go to the node where most members already run
    (scores saturate at INFINITY, and a tie must not move a group), then to the node
    running the fewest resources, then to the node listed first."""
    top, tied = -INFINITY, []
    for node, total in scores.totals():  # one pass: this runs for every group
        if total > top:
            top, tied = total, [node]
        elif total == top and top > -INFINITY:
            tied.append(node)
    if not tied:
        why = ban_text(scores)
        return Placement(scores.group, None, why, scores, note=why)
    best = tied[0] if len(tied) == 1 else _tied_best(tied, load, here)
    row = scores.row(best)
    why = f"{best} scores {format_score(row.score)} ({format_parts(row.parts)})"
    if len(tied) > 1:
        others = [node for node in tied if node != best]
        named = ", ".join(others) if len(others) <= 3 else f"{len(others)} other nodes"
        why += f"; tied with {named}, {_tie_break(best, others, load, here)}"
    return Placement(scores.group, best, why, scores)


def _tied_best(tied: list[str], load: dict[str, int], here: dict[str, int]) -> str:
    """Of tied nodes: where most members run, then the least loaded, then the first.
    (`load` holds every node; `min` and `max` keep the first of equals.)"""
    mine = [node for node in tied if node in here]
    if mine:
        most = max(here[node] for node in mine)
        tied = [node for node in mine if here[node] == most]
    return min(tied, key=load.__getitem__)


def _tie_break(best: str, others: list[str], load: dict[str, int],
               here: dict[str, int]) -> str:
    if here.get(best, 0) > max(here.get(node, 0) for node in others):
        return "it runs there already"
    loads = [load[node] for node in others]
    if load[best] < min(loads):
        return "it runs the fewest resources"
    if load[best] == max(loads):
        return "it comes first in the node list"
    return "it comes first of those running the fewest resources"


def ban_text(scores: GroupScores) -> str:
    """Why a group can run nowhere: each node's first blocking reason, nodes that share a
    reason named together (or not at all when every node shares it)."""
    rows = scores.rows()
    nodes_by_reason: dict[str, list[str]] = {}
    for row in rows:
        reason = row.blocking() or f"{row.node} scores {format_score(row.score)}"
        nodes_by_reason.setdefault(reason, []).append(row.node)
    reasons = []
    for reason, nodes in nodes_by_reason.items():
        # Name the nodes unless the reason does, or it holds for every node.
        named = len(nodes) == len(rows) or any(n in reason.split() for n in nodes)
        reasons.append(reason if named else f"{', '.join(nodes)}: {reason}")
    return "cannot run anywhere: " + "; ".join(reasons)


def will_run(ix: Index, placement: Placement) -> bool:
    """True when the group will be running once the transition is done (as far as placement
    knows: a group left as it is runs only if its wanted members all run)."""
    if placement.node is None:
        return False
    if placement.managed:
        return True
    group = ix.groups[placement.group]
    return all(ix.role(r.name, placement.node) in RUNNING for r in group.resources
               if ix.target_role(r) is not TargetRole.STOPPED)


def _order_blocks(ix: Index, cons: Constraints, placements: dict[str, Placement],
                  blocked: dict[str, str]) -> dict[str, str]:
    """Groups newly stopped by a mandatory order whose `first` will not run, chains
    followed in one pass because the orders are taken `first` first."""
    rank = {name: i for i, name in enumerate(cons.plan_order)}
    new: dict[str, str] = {}
    for o in sorted(cons.orders, key=lambda o: rank[o.first]):
        then = placements[o.then]
        if not o.mandatory or o.then in blocked or o.then in new or not then.managed:
            continue
        if then.node is None:
            continue
        first = placements[o.first]
        if o.first in new or not will_run(ix, first):
            state = "stays stopped" if first.node is None or o.first in new \
                else "is left as it is and not running"
            new[o.then] = f"order {o.id}: {o.then} starts only after {o.first}, " \
                          f"which {state}"
    return new
