"""Quorum: majorities, tiebreakers, and refusing unsafe two-node setups."""

from __future__ import annotations

from itertools import combinations

from pyha.quorum import Tiebreaker, decide, setup_problems, wait_before_fence_race

THREE = {"a": 1, "b": 1, "c": 1}
TWO = {"a": 1, "b": 1}


def test_a_strict_majority_is_quorate() -> None:
    assert decide(THREE, frozenset({"a", "b"}), Tiebreaker.NONE).quorate
    lone = decide(THREE, frozenset({"a"}), Tiebreaker.NONE)
    assert not lone.quorate
    assert lone.reason == "1 of 3 votes (need 2)"


def test_half_needs_the_tiebreaker_and_only_its_winner_is_quorate() -> None:
    assert not decide(TWO, frozenset({"a"}), Tiebreaker.NONE).quorate
    won = decide(TWO, frozenset({"a"}), Tiebreaker.WITNESS, tiebreak_won=True)
    lost = decide(TWO, frozenset({"b"}), Tiebreaker.WITNESS, tiebreak_won=False)
    assert won.quorate and not lost.quorate
    assert lost.reason == "1 of 2 votes and lost the witness"
    pending = decide(TWO, frozenset({"b"}), Tiebreaker.FENCE_RACE)
    assert pending.reason == "1 of 2 votes and has not yet won the fence-race"


def test_no_two_disjoint_partitions_are_both_quorate() -> None:
    votes = {"a": 1, "b": 2, "c": 1, "d": 1, "e": 1}
    nodes = sorted(votes)
    for size in range(len(nodes) + 1):
        for left in combinations(nodes, size):
            right = frozenset(nodes) - set(left)
            for winner in (True, False):
                one = decide(votes, frozenset(left), Tiebreaker.WITNESS, winner)
                other = decide(votes, right, Tiebreaker.WITNESS, not winner)
                assert not (one.quorate and other.quorate), (left, winner)


def test_a_two_node_cluster_without_a_tiebreaker_is_refused() -> None:
    (problem,) = setup_problems(TWO, Tiebreaker.NONE, fencing=True)
    assert problem.startswith("cluster.tiebreaker: a two-node cluster needs a tiebreaker")
    assert setup_problems(TWO, Tiebreaker.WITNESS, fencing=False) == []
    assert setup_problems(THREE, Tiebreaker.NONE, fencing=False) == []
    assert setup_problems({"a": 1}, Tiebreaker.NONE, fencing=False) == []


def test_fence_race_needs_fencing_and_staggers_the_racers() -> None:
    assert setup_problems(TWO, Tiebreaker.FENCE_RACE, fencing=False) == [
        "cluster.tiebreaker: fence-race needs a fence device on every node"]
    assert wait_before_fence_race("a", ["a", "b"], 2.0) == 0.0
    assert wait_before_fence_race("b", ["a", "b"], 2.0) == 2.0
