"""The election rules by table, and a simulation: never two coordinators acting at once."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyha.membership.election import (
    ElectionState,
    Role,
    VoteReply,
    VoteRequest,
    accept_action,
    election_line,
    election_wait,
    may_act,
    on_ack,
    on_coordinator_heartbeat,
    on_vote_reply,
    on_vote_request,
    release_lease,
    restored,
    start_election,
    step_down_if_expired,
)

VOTERS = frozenset({"a", "b", "c"})
LEASE = 1.0


def elect(state: ElectionState, voter: str, now: float = 0.0) -> ElectionState:
    """Pre-vote, then vote, with `voter` granting both."""
    state, pre = start_election(state, epoch=0, now=now)
    assert pre is not None and pre.pre
    state, real = on_vote_reply(state, VoteReply(pre.term, voter, True, pre=True),
                                voters=VOTERS, now=now, lease=LEASE, epoch=0)
    assert real is not None and not real.pre
    state, _ = on_vote_reply(state, VoteReply(real.term, voter, True), voters=VOTERS,
                             now=now, lease=LEASE, epoch=0)
    return state


def test_an_election_starts_with_a_pre_vote_that_keeps_the_term() -> None:
    state, request = start_election(ElectionState("a", term=4), epoch=7, now=10.0)
    assert request == VoteRequest(5, "a", 7, pre=True)
    assert (state.role, state.term, state.voted_for) == (Role.PRE_CANDIDATE, 4, None)
    state, real = on_vote_reply(state, VoteReply(5, "b", True, pre=True), voters=VOTERS,
                                now=10.0, lease=LEASE, epoch=7)
    assert real == VoteRequest(5, "a", 7)
    assert (state.role, state.term, state.voted_for, state.votes) == \
        (Role.CANDIDATE, 5, "a", frozenset({"a"}))


def test_a_pre_vote_changes_nothing_at_the_voter() -> None:
    voter = ElectionState("c", term=2)
    after, reply = on_vote_request(voter, VoteRequest(3, "a", 0, pre=True), epoch=0, now=0.0)
    assert reply.granted and reply.pre
    assert after == voter


def test_one_vote_per_term() -> None:
    voter = ElectionState("c")
    voter, first = on_vote_request(voter, VoteRequest(1, "a", 0), epoch=0, now=0.0)
    voter, second = on_vote_request(voter, VoteRequest(1, "b", 0), epoch=0, now=0.0)
    assert first.granted
    assert not second.granted
    assert second.reason == "already voted for a in term 1"
    voter, again = on_vote_request(voter, VoteRequest(1, "a", 0), epoch=0, now=0.0)
    assert again.granted  # the same candidate asking twice (a lost reply) is fine


def test_a_newer_term_resets_the_vote() -> None:
    voter = ElectionState("c", term=1, voted_for="a")
    voter, reply = on_vote_request(voter, VoteRequest(2, "b", 0), epoch=0, now=0.0)
    assert reply.granted and voter.term == 2 and voter.voted_for == "b"


def test_older_terms_and_older_config_epochs_are_refused() -> None:
    voter = ElectionState("c", term=3)
    _, old_term = on_vote_request(voter, VoteRequest(2, "a", 5), epoch=5, now=0.0)
    assert old_term.reason == "term 2 is not newer than 3"
    voter, old_epoch = on_vote_request(voter, VoteRequest(4, "a", 4), epoch=5, now=0.0)
    assert old_epoch.reason == "config epoch 4 is older than 5"
    assert voter.term == 4 and voter.voted_for is None  # the term still moves on


def test_a_follower_honouring_a_lease_neither_stands_nor_votes_for_others() -> None:
    follower = on_coordinator_heartbeat(ElectionState("c"), 1, "a", received=5.0, lease=LEASE)
    assert start_election(follower, epoch=0, now=5.5) == (follower, None)
    _, reply = on_vote_request(follower, VoteRequest(2, "b", 0), epoch=0, now=5.5)
    assert reply.reason == "a still holds the lease"
    _, later = on_vote_request(follower, VoteRequest(2, "b", 0), epoch=0, now=6.0)
    assert later.granted


def test_a_majority_makes_a_coordinator_with_a_lease() -> None:
    state = elect(ElectionState("a"), "b", now=0.1)
    assert (state.role, state.term) == (Role.COORDINATOR, 1)
    assert may_act(state, 1.0) and not may_act(state, 1.1)
    assert step_down_if_expired(state, 1.1).role is Role.FOLLOWER


def test_refused_votes_and_old_terms_do_not_count() -> None:
    state = ElectionState("a", term=2, voted_for="a", role=Role.CANDIDATE,
                          votes=frozenset({"a"}))

    def reply(r: VoteReply) -> ElectionState:
        return on_vote_reply(state, r, voters=VOTERS, now=0.1, lease=LEASE, epoch=0)[0]

    state = reply(VoteReply(2, "b", False, "no"))
    state = reply(VoteReply(1, "c", True))
    state = reply(VoteReply(3, "c", True, pre=True))
    assert state.role is Role.CANDIDATE
    state = reply(VoteReply(5, "c", False))
    assert (state.role, state.term) == (Role.FOLLOWER, 5)


def test_acks_from_a_majority_renew_the_lease_from_the_send_time() -> None:
    state = ElectionState("a", term=1, role=Role.COORDINATOR, coordinator="a",
                          lease_until=1.0, acks=(("a", 0.0),))
    state = on_ack(state, "b", 2.0, term=1, voters=VOTERS, lease=LEASE, now=2.2)
    assert state.lease_until == 3.0  # a (now 2.2) and b (sent 2.0): the 2nd newest is 2.0
    stale = on_ack(state, "c", 2.5, term=0, voters=VOTERS, lease=LEASE, now=2.6)
    assert stale == state


def test_actions_from_an_older_term_are_refused() -> None:
    state = ElectionState("b", term=4)
    assert accept_action(state, 4) and accept_action(state, 5)
    assert not accept_action(state, 3)


def test_a_restarted_node_honours_a_lease_it_may_have_granted() -> None:
    state = restored("c", term=3, voted_for="a", now=10.0, lease=LEASE)
    _, reply = on_vote_request(state, VoteRequest(4, "b", 0), epoch=0, now=10.5)
    assert not reply.granted
    _, reply = on_vote_request(state, VoteRequest(4, "b", 0), epoch=0, now=11.0)
    assert reply.granted


# --- simulation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    kind: str
    src: str
    dst: str
    term: int
    sent: float
    granted: bool = False


class Cluster:
    """Nodes exchanging election messages over a network that delays, drops and reorders."""

    def __init__(self, nodes: list[str]) -> None:
        self.voters = frozenset(nodes)
        self.now = 0.0
        self.states = {n: restored(n, 0, None, 0.0, LEASE) for n in nodes}
        self.persisted = {n: (0, None) for n in nodes}
        self.net: list[Message] = []
        self.leaders: dict[int, str] = {}

    def send(self, kind: str, src: str, term: int, dst: str | None = None,
             granted: bool = False) -> None:
        for node in ([dst] if dst else sorted(self.voters - {src})):
            self.net.append(Message(kind, src, node, term, self.now, granted))

    def set(self, node: str, state: ElectionState) -> None:
        self.states[node] = state
        self.persisted[node] = (state.term, state.voted_for)
        if state.role is Role.COORDINATOR:
            assert self.leaders.setdefault(state.term, node) == node, "two leaders in a term"

    def timeout(self, node: str) -> None:
        state, request = start_election(self.states[node], 0, self.now)
        self.set(node, state)
        if request:
            self.send("prevote?", node, request.term)

    def heartbeat(self, node: str) -> None:
        state = self.states[node]
        if may_act(state, self.now):
            self.send("hb", node, state.term)

    def restart(self, node: str) -> None:
        term, voted = self.persisted[node]
        self.states[node] = restored(node, term, voted, self.now, LEASE)

    def deliver(self, index: int) -> None:
        m = self.net.pop(index % len(self.net))
        state = self.states[m.dst]
        if m.kind in ("vote?", "prevote?"):
            pre = m.kind == "prevote?"
            state, reply = on_vote_request(state, VoteRequest(m.term, m.src, 0, pre), 0,
                                           self.now)
            self.set(m.dst, state)
            self.send("prevote" if pre else "vote", m.dst, reply.term, m.src, reply.granted)
        elif m.kind in ("vote", "prevote"):
            reply = VoteReply(m.term, m.src, m.granted, pre=m.kind == "prevote")
            state, request = on_vote_reply(state, reply, voters=self.voters, now=self.now,
                                           lease=LEASE, epoch=0)
            self.set(m.dst, state)
            if request:
                self.send("vote?", m.dst, request.term)
        elif m.kind == "hb":
            state = on_coordinator_heartbeat(state, m.term, m.src, self.now, LEASE)
            self.set(m.dst, state)
            if state.coordinator == m.src and state.term == m.term:
                self.net.append(Message("ack", m.dst, m.src, m.term, m.sent))
        else:
            self.set(m.dst, on_ack(state, m.src, m.sent, term=m.term, voters=self.voters,
                                   lease=LEASE, now=self.now))

    def acting(self) -> list[str]:
        return [n for n, s in self.states.items() if may_act(s, self.now)]


# Deliveries dominate, mostly in order, so elections and lease renewals complete often
# enough for the interesting interleavings (a vote granted during a lease) to appear.
events = st.lists(st.one_of(
    st.tuples(st.just("advance"), st.floats(0.0, 0.7)),
    st.tuples(st.sampled_from(["timeout", "timeout", "heartbeat", "heartbeat", "restart"]),
              st.integers(0, 4)),
    st.tuples(st.sampled_from(["deliver"] * 6 + ["drop"]),
              st.one_of(st.just(0), st.just(0), st.integers(0, 1000))),
), max_size=150)


@settings(max_examples=400, deadline=None)
@given(size=st.sampled_from([3, 5]), steps=events)
def test_never_two_coordinators_act_at_once(size: int, steps: list[tuple[str, float]]) -> None:
    cluster = Cluster([f"n{i}" for i in range(size)])
    names = sorted(cluster.voters)
    for kind, arg in steps:
        if kind == "advance":
            cluster.now += arg
        elif kind in ("deliver", "drop"):
            if cluster.net:
                if kind == "deliver":
                    cluster.deliver(int(arg))
                else:
                    cluster.net.pop(int(arg) % len(cluster.net))
        else:
            getattr(cluster, kind)(names[int(arg) % size])
        assert len(cluster.acting()) <= 1, (cluster.now, cluster.states)


def test_the_simulation_can_elect_and_renew() -> None:
    cluster = Cluster(["a", "b", "c"])
    cluster.now = 1.5
    cluster.timeout("a")
    while cluster.net:
        cluster.deliver(0)
    assert cluster.acting() == ["a"]
    for _ in range(5):
        cluster.now += 0.5
        cluster.heartbeat("a")
        while cluster.net:
            cluster.deliver(0)
    assert cluster.acting() == ["a"]
    assert cluster.states["a"].lease_until > cluster.now
    assert replace(cluster.states["b"]).coordinator == "a"


def test_a_lease_holds_off_a_candidate_that_missed_the_heartbeats() -> None:
    cluster = Cluster(["a", "b", "c"])
    cluster.now = 1.5
    cluster.timeout("a")
    while cluster.net:
        cluster.deliver(0)
    cluster.now = 2.0
    cluster.heartbeat("a")
    to_b = next(i for i, m in enumerate(cluster.net) if m.dst == "b")
    cluster.net.pop(to_b)  # b misses the heartbeat, c gets it and acknowledges
    while cluster.net:
        cluster.deliver(0)
    cluster.now = 2.2
    cluster.timeout("b")
    while cluster.net:
        cluster.deliver(0)
    assert cluster.acting() == ["a"]
    assert cluster.states["b"].term == 1  # its pre-vote was refused: nobody was disturbed
    cluster.now = 2.4
    cluster.heartbeat("a")
    while cluster.net:
        cluster.deliver(0)
    assert cluster.states["b"].coordinator == "a"


def test_a_gone_coordinators_lease_is_released_so_a_follower_may_stand_and_vote() -> None:
    follower = on_coordinator_heartbeat(ElectionState("b"), 3, "a", received=10.0, lease=LEASE)
    assert start_election(follower, 0, 10.2)[1] is None  # honours a's lease
    released = release_lease(follower, "a", 10.2)
    assert released.coordinator is None and released.lease_until == 10.2
    _, request = start_election(released, 0, 10.2)
    assert request is not None and request.pre
    _, reply = on_vote_request(released, VoteRequest(4, "c", 0, pre=True), 0, 10.2)
    assert reply.granted
    # Another node's departure, or the coordinator itself, changes nothing.
    assert release_lease(follower, "c", 10.2) is follower
    boss = elect(ElectionState("a"), "b")
    assert boss.role is Role.COORDINATOR
    assert release_lease(boss, "a", 0.1) is boss


def test_candidates_stand_in_line_without_the_coordinator() -> None:
    live = frozenset({"a", "b", "c", "d"})
    line = election_line(live - {"a"}, 7)
    assert sorted(line) == ["b", "c", "d"] and line == election_line(live - {"a"}, 7)
    first, second, third = line
    assert election_wait(first, live, "a", 1.0, draw=0.0, term=7) == pytest.approx(0.01)
    assert 0.16 <= election_wait(second, live, "a", 1.0, draw=0.999, term=7) < 0.21
    assert (election_wait(first, live, "a", 1.0, draw=0.999, term=7)
            < election_wait(second, live, "a", 1.0, draw=0.0, term=7)
            < election_wait(third, live, "a", 1.0, draw=0.0, term=7))
    # A node not (yet) counted live still gets a place; no coordinator: all stand.
    wait = election_wait("e", live, None, 1.0, draw=0.0, term=7)
    assert any(wait == pytest.approx(0.01 + r * 0.15) for r in range(5))
    assert election_wait("a", frozenset(), None, 0.15, draw=0.0) == pytest.approx(0.0015)


def test_the_line_changes_with_the_term() -> None:
    live = frozenset({"n1", "n2", "n3"})
    firsts = {election_line(live, term)[0] for term in range(30)}
    assert firsts == live
