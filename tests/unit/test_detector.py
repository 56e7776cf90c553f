"""The failure detector on simulated time: alive within dead_after on any link."""

from __future__ import annotations

import pytest

from pyha.membership.detector import Change, FailureDetector


def detector() -> FailureDetector:
    return FailureDetector("a", ["a", "b", "c"], dead_after=1.0)


def test_the_local_node_is_always_alive_and_peers_start_dead() -> None:
    d = detector()
    assert d.members(0.0) == frozenset({"a"})
    assert d.alive("a", 100.0)


def test_a_node_is_alive_until_dead_after_without_heartbeats() -> None:
    d = detector()
    d.heard("b", 0, at=10.0, incarnation=1)
    assert d.alive("b", 10.99)
    assert not d.alive("b", 11.0)


def test_any_link_keeps_a_node_alive() -> None:
    d = detector()
    d.heard("b", 0, at=10.0, incarnation=1)
    d.heard("b", 1, at=10.8, incarnation=1)
    assert d.alive("b", 11.5)
    (b,) = [x for x in d.liveness(11.5) if x.node == "b"]
    assert b.links_up == (1,)
    assert b.last_heard == 10.8


def test_changes_report_up_down_and_restart_once() -> None:
    d = detector()
    d.heard("b", 0, at=1.0, incarnation=1)
    assert d.changes(1.0) == [("b", Change.UP)]
    assert d.changes(1.5) == []
    d.heard("b", 0, at=1.6, incarnation=2)
    assert d.changes(1.6) == [("b", Change.RESTARTED)]
    assert d.changes(3.0) == [("b", Change.DOWN)]


def test_an_older_incarnation_does_not_count() -> None:
    d = detector()
    d.heard("b", 0, at=1.0, incarnation=5)
    d.heard("b", 0, at=5.0, incarnation=4)
    assert not d.alive("b", 5.5)


def test_strangers_are_ignored_and_next_expiry_is_known() -> None:
    d = detector()
    d.heard("z", 0, at=1.0, incarnation=1)
    assert d.members(1.0) == frozenset({"a"})
    d.heard("b", 0, at=2.0, incarnation=1)
    d.heard("c", 0, at=2.5, incarnation=1)
    assert d.next_expiry(2.6) == 3.0
    assert d.next_expiry(4.0) is None


def test_dead_after_must_be_positive() -> None:
    with pytest.raises(ValueError, match="dead_after"):
        FailureDetector("a", ["a"], dead_after=0)


def test_a_node_found_gone_is_down_until_heard_again() -> None:
    d = detector()
    d.heard("b", 0, at=10.0, incarnation=1)
    d.changes(10.0)
    d.gone("b", at=10.3)
    assert not d.alive("b", 10.3)
    assert d.changes(10.3) == [("b", Change.DOWN)]
    assert d.next_expiry(10.3) is None  # nothing left to expire
    d.heard("b", 0, at=10.25, incarnation=1)  # sent before it went, arrived late
    assert not d.alive("b", 10.4)
    d.heard("b", 0, at=10.5, incarnation=2)  # its server is back
    assert d.alive("b", 10.5)
    assert d.changes(10.5) == [("b", Change.UP)]


def test_silent_names_live_nodes_not_heard_for_a_while() -> None:
    d = detector()
    d.heard("b", 0, at=10.0, incarnation=1)
    d.heard("c", 0, at=10.2, incarnation=1)
    assert d.silent(10.3, after=0.3) == ["b"]
    assert d.silent(10.5, after=0.3) == ["b", "c"]
    assert d.silent(11.1, after=0.3) == ["c"]  # b is down already: dead_after did it
    assert d.silent(11.3, after=0.3) == []
    d.gone("x", at=10.0)  # not a member: ignored
