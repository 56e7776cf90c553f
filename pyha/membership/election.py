"""The coordinator election: Raft's voting rules with terms, a pre-vote, and a lease. Pure.

Every function takes the current state and the facts (messages, `now`) and returns a
new state and what to send; the caller persists `term` and `voted_for` before it sends
anything, so a restarted node never votes twice in one term.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from enum import StrEnum


class Role(StrEnum):
    """A node's part in the election."""

    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    """Asking whether it could win, without raising its term (Raft's pre-vote)."""
    CANDIDATE = "candidate"
    COORDINATOR = "coordinator"


@dataclass(frozen=True)
class VoteRequest:
    """A candidate asking for votes in `term`; `epoch` is its config epoch.

    A pre-vote (`pre`) asks "would you vote for me in `term`?" and changes nothing at
    the voter, so a node that only missed some heartbeats cannot depose a coordinator.
    """

    term: int
    candidate: str
    epoch: int
    pre: bool = False


@dataclass(frozen=True)
class VoteReply:
    """A voter's answer, with the reason when refused."""

    term: int
    voter: str
    granted: bool
    reason: str = ""
    pre: bool = False


@dataclass(frozen=True)
class ElectionState:
    """What one node knows of the election.

    Invariants: `voted_for` names at most one candidate per `term` (persisted);
    a COORDINATOR holds votes from a majority of voters for its `term`;
    `lease_until` is, for a coordinator, the time until which it may act, and for a
    follower, the time until which it honours the coordinator it last heard.
    """

    node: str
    term: int = 0
    voted_for: str | None = None
    role: Role = Role.FOLLOWER
    coordinator: str | None = None
    votes: frozenset[str] = frozenset()
    lease_until: float = 0.0
    acks: tuple[tuple[str, float], ...] = ()
    """Coordinator only: per voter, the send time of the newest heartbeat it acknowledged."""


def restored(node: str, term: int, voted_for: str | None, now: float,
             lease: float) -> ElectionState:
    """The state of a node that just started, from its persisted term and vote.

    It honours a lease until `now + lease`: before the restart it may have acknowledged
    a coordinator whose lease still runs, and must not help elect another meanwhile.
    """
    return ElectionState(node=node, term=term, voted_for=voted_for, lease_until=now + lease)


WAIT_FIRST = 0.01
"""The first candidate's election wait, as a fraction of dead_after."""
WAIT_STEP = 0.15
"""How much longer each next candidate in line waits (several RPC round trips at the
default timing, so the second rarely asks before the first has won)."""
WAIT_JITTER = 0.02
"""The random part of every wait (ties between nodes that disagree on the line)."""


def election_line(live: frozenset[str], term: int) -> list[str]:
    """The order in which `live` nodes stand after `term`: shuffled by the term (a hash
    every node works out alike), so the coordinator's role moves around rather than
    always falling to the same node (which the scheduler's name order favours too)."""
    return sorted(live, key=lambda n: hashlib.blake2s(f"{term}/{n}".encode()).digest())


def election_wait(node: str, live: frozenset[str], coordinator: str | None,
                  dead_after: float, *, draw: float, term: int = 0) -> float:
    """How long `node` waits, after a lease ran out or a round failed, before it stands.

    The live voters other than the coordinator stand in the line of `term`
    (`election_line`), `WAIT_STEP` x dead_after apart, the first after `WAIT_FIRST` x
    dead_after; `draw` in [0, 1) adds a random `WAIT_JITTER` x dead_after. So a lost
    coordinator is replaced by the first in line within about 0.01-0.03 x dead_after,
    without two candidates splitting the vote, and if the first cannot win, the next
    one stands soon after.
    """
    line = election_line((live - {coordinator}) | {node}, term)
    rank = line.index(node)
    return dead_after * (WAIT_FIRST + WAIT_STEP * rank + WAIT_JITTER * draw)


def majority(voters: frozenset[str]) -> int:
    """How many of `voters` make a majority."""
    return len(voters) // 2 + 1


def start_election(state: ElectionState, epoch: int, now: float) -> tuple[ElectionState,
                                                                          VoteRequest | None]:
    """Ask for pre-votes for the next term, unless this node honours a lease.

    A follower that heard a coordinator within its lease does not stand: that keeps a
    paused-but-alive coordinator's lease safe and avoids needless elections.
    """
    if state.role is Role.COORDINATOR or now < state.lease_until:
        return state, None
    new = replace(state, role=Role.PRE_CANDIDATE, coordinator=None,
                  votes=frozenset([state.node]), acks=())
    return new, VoteRequest(state.term + 1, state.node, epoch, pre=True)


def on_vote_request(state: ElectionState, request: VoteRequest, epoch: int,
                    now: float) -> tuple[ElectionState, VoteReply]:
    """Answer a vote request by Raft's rules; the new state must be persisted first."""
    refuse = _refusal(state, request, epoch, now)
    if request.pre:
        return state, VoteReply(request.term, state.node, not refuse, refuse, pre=True)
    if refuse.endswith("holds the lease"):
        # Leader stickiness: a request refused for a live lease does not move our term.
        return state, VoteReply(state.term, state.node, False, refuse)
    if request.term > state.term:
        state = _follow_term(state, request.term)
    if refuse:
        return state, VoteReply(state.term, state.node, False, refuse)
    state = replace(state, voted_for=request.candidate)
    return state, VoteReply(state.term, state.node, True)


def _refusal(state: ElectionState, request: VoteRequest, epoch: int, now: float) -> str:
    if request.term < state.term or (request.pre and request.term == state.term):
        return f"term {request.term} is not newer than {state.term}"
    if request.epoch < epoch:
        return f"config epoch {request.epoch} is older than {epoch}"
    if now < state.lease_until and state.coordinator != request.candidate:
        holder = state.coordinator or "a coordinator this node may have acknowledged"
        return f"{holder} still holds the lease"
    if request.term == state.term and state.voted_for not in (None, request.candidate):
        return f"already voted for {state.voted_for} in term {state.term}"
    return ""


def _follow_term(state: ElectionState, term: int) -> ElectionState:
    return replace(state, term=term, voted_for=None, role=Role.FOLLOWER, coordinator=None,
                   votes=frozenset(), acks=())


def on_vote_reply(state: ElectionState, reply: VoteReply, *, voters: frozenset[str],
                  now: float, lease: float, epoch: int) -> tuple[ElectionState,
                                                                 VoteRequest | None]:
    """Count a (pre-)vote. A majority of pre-votes starts the real election (returned
    request); a majority of votes makes the candidate coordinator of its term.

    No earlier coordinator's lease can still run at `now`: a majority voted, and each
    voter refuses its vote while it honours a lease, so at least one voter that granted
    the old lease saw it end before voting.
    """
    if not reply.pre and reply.term > state.term:
        return _follow_term(state, reply.term), None
    wanted = Role.PRE_CANDIDATE if reply.pre else Role.CANDIDATE
    expected_term = state.term + 1 if reply.pre else state.term
    if state.role is not wanted or reply.term != expected_term or not reply.granted:
        return state, None
    votes = state.votes | {reply.voter}
    if len(votes & voters) < majority(voters):
        return replace(state, votes=votes), None
    if reply.pre:
        term = state.term + 1
        new = replace(state, term=term, voted_for=state.node, role=Role.CANDIDATE,
                      votes=frozenset([state.node]))
        return new, VoteRequest(term, state.node, epoch)
    return replace(state, votes=votes, role=Role.COORDINATOR, coordinator=state.node,
                   lease_until=now + lease, acks=((state.node, now),)), None


def on_coordinator_heartbeat(state: ElectionState, term: int, coordinator: str,
                             received: float, lease: float) -> ElectionState:
    """A follower hears the coordinator of `term`: follow it and honour its lease."""
    if term < state.term or coordinator == state.node:
        return state
    voted = state.voted_for if term == state.term else None
    return replace(state, term=term, voted_for=voted, role=Role.FOLLOWER,
                   coordinator=coordinator, votes=frozenset(), acks=(),
                   lease_until=received + lease)


def on_ack(state: ElectionState, voter: str, sent: float, *, term: int,
           voters: frozenset[str], lease: float, now: float) -> ElectionState:
    """The coordinator learns `voter` acknowledged its heartbeat sent at `sent`.

    The lease runs until `lease` after the newest send time a majority acknowledged:
    every one of them honours it at least that long, since each heard it after `sent`.
    """
    if state.role is not Role.COORDINATOR or term != state.term:
        return state
    acks = dict(state.acks)
    acks[state.node] = now
    acks[voter] = max(sent, acks.get(voter, sent))
    times = sorted((t for n, t in acks.items() if n in voters), reverse=True)
    need = majority(voters)
    until = times[need - 1] + lease if len(times) >= need else state.lease_until
    return replace(state, acks=tuple(sorted(acks.items())),
                   lease_until=max(state.lease_until, until))


def release_lease(state: ElectionState, coordinator: str, now: float) -> ElectionState:
    """A follower learns that `coordinator`'s cluster server is not running (its port
    refused a connection): a process that is gone cannot act, so its lease need not be
    honoured any longer and this node may stand, or vote for another, at once."""
    if state.role is Role.COORDINATOR or state.coordinator != coordinator:
        return state
    return replace(state, coordinator=None, lease_until=min(state.lease_until, now))


def may_act(state: ElectionState, now: float) -> bool:
    """True while this node is coordinator and its lease runs."""
    return state.role is Role.COORDINATOR and now < state.lease_until


def accept_action(state: ElectionState, term: int) -> bool:
    """Whether a node takes an action sent under `term`: never from an older term."""
    return term >= state.term


def step_down_if_expired(state: ElectionState, now: float) -> ElectionState:
    """A coordinator whose lease ran out becomes a follower of nobody."""
    if state.role is Role.COORDINATOR and now >= state.lease_until:
        return replace(state, role=Role.FOLLOWER, coordinator=None, votes=frozenset(),
                       acks=())
    return state
