"""Quorum: whether a partition may run resources; votes, majority and tiebreakers. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class Tiebreaker(StrEnum):
    """How a partition holding exactly half of the votes decides whether it has quorum."""

    NONE = "none"
    WITNESS = "witness"
    """The partition that wins an atomic compare-and-swap on a witness entry (LDAP)."""
    FENCE_RACE = "fence-race"
    """The partition that fences the other first; the loser is powered off."""


@dataclass(frozen=True)
class QuorumDecision:
    """Whether a partition has quorum, and why, in words."""

    quorate: bool
    present: int
    total: int
    reason: str


def decide(votes: Mapping[str, int], members: frozenset[str], tiebreaker: Tiebreaker,
           tiebreak_won: bool | None = None) -> QuorumDecision:
    """Quorum for the partition `members`, given every node's configured votes.

    Invariant: two disjoint partitions can never both be quorate: a strict majority is
    unique, and at exactly half only the tiebreaker's single winner is quorate.
    `tiebreak_won` is the outcome of the tiebreaker (None when not attempted).
    """
    total = sum(votes.values())
    present = sum(v for n, v in votes.items() if n in members)
    need = total // 2 + 1
    if total == 0:
        return QuorumDecision(False, 0, 0, "no node has a vote")
    if present >= need:
        return QuorumDecision(True, present, total, f"{present} of {total} votes (need {need})")
    if present * 2 == total and tiebreaker is not Tiebreaker.NONE:
        if tiebreak_won:
            return QuorumDecision(True, present, total,
                                  f"{present} of {total} votes and won the {tiebreaker.value}")
        state = "lost" if tiebreak_won is False else "has not yet won"
        return QuorumDecision(False, present, total,
                              f"{present} of {total} votes and {state} the {tiebreaker.value}")
    return QuorumDecision(False, present, total, f"{present} of {total} votes (need {need})")


def setup_problems(votes: Mapping[str, int], tiebreaker: Tiebreaker,
                   fencing: bool) -> list[str]:
    """What makes a quorum setup unsafe; an empty list when it is sound."""
    problems = []
    total = sum(votes.values())
    voters = [n for n, v in votes.items() if v > 0]
    if total == 0:
        problems.append("nodes: at least one node must have a vote")
    if len(voters) == 2 and total % 2 == 0 and tiebreaker is Tiebreaker.NONE:
        problems.append(
            "cluster.tiebreaker: a two-node cluster needs a tiebreaker, or a split leaves "
            "each half unable to tell a dead peer from a cut link (silent split brain); "
            'set tiebreaker = "witness" (the LDAP directory decides) or "fence-race" '
            "(with a fence device)")
    if tiebreaker is Tiebreaker.FENCE_RACE and not fencing:
        problems.append("cluster.tiebreaker: fence-race needs a fence device on every node")
    return problems


def wait_before_fence_race(node: str, nodes: list[str], delay: float) -> float:
    """How long `node` waits before it fences its peer, so two racers never both win.

    The first node in configuration order fences at once; each next one waits `delay`
    longer, so the favoured node's shot lands first unless it is really dead.
    """
    return nodes.index(node) * delay
