"""The tiebreaker as a virtual voter: who counts as a voter, and when the tiebreak is won
(fence race with its head start, witness compare-and-swap) or renewed."""

from __future__ import annotations

import threading

from pyha.cluster.tiebreak import TIEBREAK, Tiebreak, voters
from pyha.model.config import ClusterConfig
from pyha.quorum import Tiebreaker
from pyha.testing.clock import FakeClock
from pyha.testing.harness import make_config
from pyha.testing.witness import MemoryWitness


def config(nodes: str, tiebreaker: str) -> ClusterConfig:
    made = make_config(nodes)
    options = made.cluster.model_copy(update={"tiebreaker": Tiebreaker(tiebreaker),
                                              "fence_race_delay": 2.0, "dead_after": 1.0})
    return made.model_copy(update={"cluster": options})


def tiebreak(node: str, kind: str, clock: FakeClock, fenced: list[str], *,
             ok: bool = True, witness: MemoryWitness | None = None) -> Tiebreak:
    def fence(peer: str, why: str) -> bool:
        fenced.append(peer)
        return ok
    return Tiebreak.of(config("n1 n2", kind), node, clock, fence, witness)


def test_the_virtual_voter_joins_only_an_even_number_of_real_voters() -> None:
    assert voters(config("n1 n2", "fence-race")) == {"n1", "n2", TIEBREAK}
    assert voters(config("n1 n2 n3", "witness")) == {"n1", "n2", "n3"}
    assert voters(config("n1 n2 n3 n4", "witness")) == {"n1", "n2", "n3", "n4", TIEBREAK}
    assert TIEBREAK not in voters(config("n1 n2 n3 n4", "none"))


def test_the_first_node_fences_at_once_the_second_waits_its_delay() -> None:
    clock, fenced = FakeClock(), []
    won, why = tiebreak("n1", "fence-race", clock, fenced).win(
        3, ["n2"], lambda n: False, threading.Event())
    assert won and fenced == ["n2"] and clock.now() == 1000.0
    assert "fenced n2" in why
    clock2, fenced2 = FakeClock(), []
    won, _ = tiebreak("n2", "fence-race", clock2, fenced2).win(
        3, ["n1"], lambda n: False, threading.Event())
    assert won and fenced2 == ["n1"] and clock2.now() >= 1002.0


def test_a_peer_that_comes_back_during_the_wait_is_not_fenced() -> None:
    clock, fenced = FakeClock(), []
    won, why = tiebreak("n2", "fence-race", clock, fenced).win(
        3, ["n1"], lambda n: clock.now() > 1001.0, threading.Event())
    assert not won and fenced == [] and "came back" in why


def test_a_failed_fence_loses_the_race_and_renewal_needs_every_missing_voter_fenced() -> None:
    clock, fenced = FakeClock(), []
    race = tiebreak("n1", "fence-race", clock, fenced, ok=False)
    won, why = race.win(3, ["n2"], lambda n: False, threading.Event())
    assert not won and "could not fence n2" in why
    assert race.renew(3, ["n2"], set()) is None
    assert race.renew(3, ["n2"], {"n2"}) == clock.now()


def test_only_one_node_holds_the_witness_and_the_holder_renews_it() -> None:
    clock, witness = FakeClock(), MemoryWitness()
    one = tiebreak("n1", "witness", clock, [], witness=witness)
    two = tiebreak("n2", "witness", clock, [], witness=witness)
    assert one.win(5, ["n2"], lambda n: False, threading.Event())[0]
    won, why = two.win(6, ["n1"], lambda n: False, threading.Event())
    assert not won and "n1" in why
    assert one.renew(5, ["n2"], set()) is not None
    assert two.renew(6, ["n1"], set()) is None
    clock.advance(10)  # n1's claim (2 leases) ran out without renewal
    assert two.win(7, ["n1"], lambda n: False, threading.Event())[0]
    assert one.renew(8, ["n2"], set()) is None
    two.release()
    assert one.win(9, ["n2"], lambda n: False, threading.Event())[0]


def test_without_a_directory_the_witness_is_never_won() -> None:
    clock, witness = FakeClock(), MemoryWitness()
    witness.available = False
    one = tiebreak("n1", "witness", clock, [], witness=witness)
    won, why = one.win(5, ["n2"], lambda n: False, threading.Event())
    assert not won and why
