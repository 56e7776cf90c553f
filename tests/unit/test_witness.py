"""The witness tiebreaker: claim values, leases, renewals, takeovers, and racing claims."""

from __future__ import annotations

import threading

import pytest

from pyha.directory.witness import Claim, WitnessResult, WitnessValueError, decide_claim
from pyha.testing.witness import MemoryWitness

NOW = 1_767_225_600.0  # wall-clock seconds


def write(step: tuple[Claim, str] | WitnessResult) -> tuple[Claim, str]:
    """The claim decide_claim says to write, and its reason (failing if it said lost)."""
    assert isinstance(step, tuple), step
    return step


# -- the claim value -----------------------------------------------------------------------


def test_a_claim_round_trips_through_its_attribute_value() -> None:
    claim = Claim("n1", 7, 1_767_225_605_000)
    assert claim.encode() == "node=n1;term=7;until=1767225605000"
    assert Claim.parse(claim.encode()) == claim
    assert claim.until() == NOW + 5


def test_parsing_tolerates_spaces_order_and_unknown_keys() -> None:
    text = " until = 12 ; term=3;node=n-2.a ; flavour=new ;"
    assert Claim.parse(text) == Claim("n-2.a", 3, 12)


@pytest.mark.parametrize(("text", "message"), [
    ("", "missing node, term, until (expected node=NAME;term=N;until=UNIX-MS)"),
    ("node=n1;term=7", "missing until"),
    ("node=n1;term=seven;until=1", "term='seven' is not a non-negative integer"),
    ("node=n1;term=-1;until=1", "term='-1' is not a non-negative integer"),
    ("node=n1;term=1;until=1;node=n2", "node appears twice"),
    ("node=n1;term=1;until", "'until' is not key=value"),
    ("node=;term=1;until=1", "'' is not a node name"),
    ("node=1n;term=1;until=1", "'1n' is not a node name"),
])
def test_a_bad_value_is_named_with_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(WitnessValueError) as caught:
        Claim.parse(text)
    assert message in str(caught.value)


def test_a_claim_is_live_until_its_lease_ends() -> None:
    claim = Claim("n1", 1, int((NOW + 5) * 1000))
    assert claim.live(NOW) and claim.live(NOW + 4.999)
    assert not claim.live(NOW + 5) and not claim.live(NOW + 60)


# -- deciding a claim (pure) ---------------------------------------------------------------


def test_a_free_witness_is_claimed_with_the_callers_term() -> None:
    new, reason = write(decide_claim(None, "n1", 4, 5.0, NOW))
    assert new == Claim("n1", 4, int((NOW + 5) * 1000))
    assert reason == "claimed the free witness (term 4)"


def test_the_holder_renews_and_its_term_never_goes_back() -> None:
    held = Claim("n1", 9, int((NOW + 1) * 1000))
    new, reason = write(decide_claim(held, "n1", 4, 5.0, NOW))
    assert new == Claim("n1", 9, int((NOW + 5) * 1000))
    assert reason == "renewed the witness (term 9) for 5 s"


def test_a_live_claim_of_another_node_wins_over_ours() -> None:
    held = Claim("n2", 9, int((NOW + 3.5) * 1000))
    lost = decide_claim(held, "n1", 20, 5.0, NOW)
    assert lost == WitnessResult(False, "n2", "n2 holds the witness (term 9) for 3.5 s more",
                                 9, NOW + 3.5)


def test_a_lapsed_claim_is_taken_over_with_a_higher_term() -> None:
    lapsed = Claim("n2", 9, int((NOW - 2) * 1000))
    new, reason = write(decide_claim(lapsed, "n1", 3, 5.0, NOW))
    assert new == Claim("n1", 10, int((NOW + 5) * 1000))
    assert reason == "took over the witness from n2, whose claim lapsed 2.0 s ago (term 10)"
    new, _ = write(decide_claim(lapsed, "n1", 30, 5.0, NOW))
    assert new.term == 30


def test_our_own_lapsed_claim_is_taken_back_as_a_new_term() -> None:
    lapsed = Claim("n1", 9, int((NOW - 1) * 1000))
    new, _ = write(decide_claim(lapsed, "n1", 9, 5.0, NOW))
    assert new.term == 10  # another node may have held it in between: the term says so


def test_a_lease_must_be_positive() -> None:
    with pytest.raises(ValueError, match="lease must be positive"):
        decide_claim(None, "n1", 1, 0, NOW)


# -- the claim round, in memory --------------------------------------------------------------


def test_claim_renew_and_takeover_after_the_lease() -> None:
    witness = MemoryWitness()
    first = witness.claim("n1", 1, 5.0, NOW)
    assert first.won and first.holder == "n1" and first.until == NOW + 5
    assert witness.value == "node=n1;term=1;until=1767225605000"
    assert witness.claim("n1", 1, 5.0, NOW + 4).won  # renewed: now lasts until NOW + 9
    other = witness.claim("n2", 1, 5.0, NOW + 8)
    assert not other.won and other.holder == "n1"
    assert other.reason == "n1 holds the witness (term 1) for 1.0 s more"
    taken = witness.claim("n2", 1, 5.0, NOW + 9)
    assert taken.won and taken.term == 2
    assert not witness.claim("n1", 1, 5.0, NOW + 10).won


def test_a_won_result_holds_until_its_lease_ends_less_the_margin() -> None:
    won = MemoryWitness().claim("n1", 1, 5.0, NOW)
    assert won.holds(NOW + 4.9) and not won.holds(NOW + 5)
    assert won.holds(NOW + 3.9, margin=1.0) and not won.holds(NOW + 4, margin=1.0)
    lost = WitnessResult.losing("n2 holds the witness", Claim("n2", 1, int((NOW + 5) * 1000)))
    assert not lost.holds(NOW)


def test_a_bad_node_name_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="'n;1' is not a node name"):
        MemoryWitness().claim("n;1", 1, 5.0, NOW)


def test_release_frees_the_witness_and_keeps_the_term() -> None:
    witness = MemoryWitness()
    assert witness.claim("n1", 6, 60.0, NOW).won
    assert not witness.release("n2")  # not its claim
    assert witness.release("n1")
    assert not witness.release("n1")  # already released
    assert witness.value == "node=n1;term=6;until=0"
    assert witness.holder(NOW) is None
    again = witness.claim("n2", 1, 5.0, NOW + 1)
    assert again.won and again.term == 7
    assert again.reason == "claimed the witness n1 released (term 7)"


def test_an_unreachable_store_loses_the_claim_with_the_reason() -> None:
    witness = MemoryWitness()
    witness.available = False
    lost = witness.claim("n1", 1, 5.0, NOW)
    assert not lost.won and lost.holder is None
    assert lost.reason == "witness in memory: cannot reach the directory (it is down)"
    assert not witness.release("n1")


def test_an_unreadable_value_is_never_overwritten() -> None:
    witness = MemoryWitness()
    witness.set_value("garbage")
    lost = witness.claim("n1", 1, 5.0, NOW)
    assert not lost.won
    assert "'garbage' is not key=value" in lost.reason
    assert "an admin may delete the pyhaWitnessClaim value to reset the witness" in lost.reason
    assert witness.value == "garbage"


def test_an_entry_without_a_value_is_claimed_by_swap() -> None:
    witness = MemoryWitness()
    witness.set_value("node=n1;term=1;until=5")
    with witness._lock:  # an admin deleted the attribute but left the entry
        witness._value = None
    assert witness.claim("n2", 1, 5.0, NOW).won


def test_a_write_between_our_read_and_our_swap_loses_us_the_race() -> None:
    witness = MemoryWitness()
    sneaked: list[bool] = []

    def meanwhile() -> None:
        if not sneaked:
            sneaked.append(True)
            witness.set_value(Claim("n2", 3, int((NOW + 5) * 1000)).encode())

    witness.set_value(Claim("n2", 2, int((NOW - 1) * 1000)).encode())  # lapsed
    witness.after_read = meanwhile
    lost = witness.claim("n1", 1, 5.0, NOW)
    assert lost == WitnessResult(False, "n2", "lost the race: n2 changed the witness first",
                                 3, NOW + 5)


def test_a_created_entry_between_our_read_and_our_add_is_read_again() -> None:
    witness = MemoryWitness()
    sneaked: list[bool] = []

    def meanwhile() -> None:
        if not sneaked:
            sneaked.append(True)
            witness.set_value(Claim("n2", 1, int((NOW + 5) * 1000)).encode())

    witness.after_read = meanwhile
    lost = witness.claim("n1", 1, 5.0, NOW)
    assert not lost.won and lost.holder == "n2"
    assert lost.reason.startswith("n2 holds the witness")


@pytest.mark.parametrize("start", ["absent", "lapsed", "released"])
def test_two_threads_racing_exactly_one_wins(start: str) -> None:
    """Both read the same value before either writes; the compare-and-swap picks one."""
    for round_ in range(50):
        witness = MemoryWitness()
        if start == "lapsed":
            witness.set_value(Claim("n3", 5, int((NOW - 1) * 1000)).encode())
        elif start == "released":
            witness.set_value(Claim("n3", 5, 0).encode())
        barrier = threading.Barrier(2, timeout=10)
        first_read = threading.local()

        def hold_until_both_read(b: threading.Barrier = barrier,
                                 seen: threading.local = first_read) -> None:
            if not getattr(seen, "done", False):
                seen.done = True
                b.wait()

        witness.after_read = hold_until_both_read
        results: dict[str, WitnessResult] = {}

        def contend(node: str, w: MemoryWitness = witness,
                    out: dict[str, WitnessResult] = results, term: int = round_) -> None:
            out[node] = w.claim(node, term, 5.0, NOW)

        threads = [threading.Thread(target=contend, args=(n,)) for n in ("n1", "n2")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert len(results) == 2, "a contender hung"
        winners = [n for n, r in results.items() if r.won]
        assert len(winners) == 1, results
        loser = next(r for r in results.values() if not r.won)
        assert loser.holder == winners[0], loser
        witness.after_read = None
        assert witness.holder(NOW) == Claim.parse(witness.value or "")
        assert witness.writes == 1
