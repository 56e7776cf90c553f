"""One node of a multi-node cluster: heartbeats, election, calls, and the coordinator cycle."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, as_completed, wait
from concurrent.futures import TimeoutError as FuturesTimeout
from pathlib import Path
from typing import Any

from pyha.clock import Clock, MonotonicClock
from pyha.cluster import tiebreak as tb
from pyha.cluster.departures import DepartureWatch
from pyha.cluster.fence import fence_devices
from pyha.cluster.replication import ConfigReplication, _setup_problems, _votes
from pyha.cluster.source import DirectorySource
from pyha.cluster.state import NodeState
from pyha.cluster.view import NodeReport, build_view
from pyha.cluster.watchdog_duty import WatchdogDuty
from pyha.directory.embedded import ConfigStore, newest
from pyha.directory.embedded import digest as config_digest
from pyha.directory.records import NodeStatusRecord
from pyha.directory.witness import Witness
from pyha.errors import ConfigError, PyhaError
from pyha.fencing import FenceDevice
from pyha.membership import election as el
from pyha.membership.detector import Change, FailureDetector
from pyha.membership.heartbeat import Heartbeat, HeartbeatCodec, HeartbeatEndpoint
from pyha.membership.rpc import PeerUnreachable, RpcClient, RpcServer
from pyha.model.actions import Action, ActionKind, Transition
from pyha.model.config import ClusterConfig, NoQuorumPolicy, parse_endpoint
from pyha.model.status import Role, View
from pyha.quorum import decide
from pyha.resources.registry import Registry
from pyha.scheduler import schedule
from pyha.server import ClusterServer, Member

log = logging.getLogger("pyha.cluster")

_WAITING = {True: el.Role.PRE_CANDIDATE, False: el.Role.CANDIDATE}
"""The role a node has while its pre-vote (True) or vote (False) round is open."""

STARTUP_GRACE = 10
"""In units of dead_after: how long after its own start a node waits for a peer it has
never heard to join before it fences that peer (the peer may be booting; Pacemaker's
dc-deadtime plays this part)."""
LEAVE_TIMEOUT = 60.0
"""How long a node shutting down waits for the coordinator to move its groups away."""
SENT_KEPT = 256
"""How many of its own heartbeats' send times a node keeps, to learn which one the
coordinator confirmed (its watchdog's lease starts at that one's send time)."""


class ClusterNode(ConfigReplication, WatchdogDuty):
    """The cluster server of one node among several.

    Invariants: only the coordinator of the current term with a running lease schedules
    and sends actions; a node runs an action only if its term is not older than the
    newest term it knows; a lost node's groups start elsewhere only after its fence
    device confirmed it off (or, if the admin chose it, with recovery_without_fencing).
    Configuration changes are `ConfigReplication`'s part, the watchdog `WatchdogDuty`'s.
    """

    peers: dict[str, RpcClient]
    """A client per other node of the configuration."""
    _links: list[list[tuple[str, int]]]
    """The heartbeat addresses of every other node."""
    _acked: tuple[int, float] | None
    """The term and time of the coordinator heartbeat this node last answered."""
    _wake: _Wake
    """Set to ask for a coordinator cycle at once; it also pokes the main loop."""
    on_decision: Callable[[str], None] | None = None
    """Called with each new decision line (the demo shows them)."""
    last_view: View | None = None
    """The view the coordinator scheduled from in its last cycle (admin status)."""

    def __init__(self, config: ClusterConfig, registry: Registry, *, node: str, key: bytes,
                 state_dir: Path | None = None, clock: Clock | None = None,
                 fences: Mapping[str, FenceDevice] | None = None,
                 witness: Witness | None = None, source: DirectorySource | None = None) -> None:
        self.state_dir = Path(state_dir or config.cluster.state_dir)
        self.store = ConfigStore(self.state_dir, actor=f"pyha-server@{node}")
        self.source = source
        if source is None:
            config = newest(config, self.store)  # changes made at runtime survive a restart
        problems = _setup_problems(config, node, witness is not None)
        if problems:
            raise ConfigError("the cluster cannot run safely", tuple(problems))
        self.config, self.node, self.key = config, node, key
        self.clock = clock or MonotonicClock()
        self.local = ClusterServer(config, registry, node=node, state_dir=self.state_dir)
        self.options = config.cluster
        self.lease = self.options.dead_after
        self.votes = _votes(config)
        self.voters = tb.voters(config)
        self.witness, self._stopping = witness, threading.Event()
        self.tiebreak = tb.Tiebreak.of(config, node, self.clock, self._fence, witness)
        self.persisted = NodeState(self.state_dir / "node")
        self.incarnation = self.persisted.next_incarnation()
        self.election = el.restored(node, *self.persisted.load_vote(), self.clock.now(),
                                    self.lease)
        self.detector = FailureDetector(node, [n.name for n in config.nodes],
                                        self.options.dead_after)
        self._given_fences = fences is not None
        self.fences = dict(fence_devices(config, self._watchdog_heard, self.clock)
                           if fences is None else fences)
        self._init_watchdog(config, node)
        me = config.node(node)
        self.endpoint = HeartbeatEndpoint(
            HeartbeatCodec(self.options.name, key), node,
            [parse_endpoint(a) for a in me.addresses], self._heard, self.clock.now)
        self.rpc = RpcServer(key, node, parse_endpoint(me.rpc or ""), self._handlers())
        self.peers, self._links = {}, []
        self._connect(config, None)
        self._lock = threading.RLock()
        """Guards the election state, the detector and the coordinator's caches."""
        self._local_lock = threading.Lock()
        """One operation path into the local resources at a time."""
        self._sequence, self._acked = 0, None
        self._reports: dict[str, NodeReport] = {}
        self._fenced: dict[str, int] = {}  # node -> the term it was fenced in, until heard
        self._uncertain: dict[str, set[str]] = {}
        """Node -> resources whose start was sent there but never confirmed either way."""
        self._probed_term = self._reports_term = -1
        """The term in which `_reports` and `_fenced` were gathered."""
        self._init_election()
        self._wake = _Wake()
        self._leaving, self._quorate = False, True
        self._born, self._waited, self._joined = self.clock.now(), set[str](), dict[str, float]()
        self._last_line, self._last_cycle = "", 0.0
        self._init_replication(config)
        self.departures = DepartureWatch(self.clock, lambda: self.options, self._silent,
                                         self._rpc_address, self._gone)

    def _init_election(self) -> None:
        self._next_election = self.election.lease_until
        """When this node stands next. At start it honours a lease for one lease time
        (el.restored); it then takes its place in line among the peers it heard by then."""
        self._placed = False
        """Whether `_next_election` was worked out from the live peers (see _membership)."""
        self._renewing: int | None = None
        """The term in which this coordinator renews its lease through the tiebreaker."""
        self._elector: threading.Thread | None = None

    def _handlers(self) -> dict[str, Callable[[dict[str, Any], str], dict[str, Any]]]:
        """What other nodes may call here."""
        return {"vote": self._on_vote, "report": self._on_report, "act": self._on_act,
                "status": self._on_status, "admin": self._on_admin,
                "config": self._on_config, "change": self._on_change}

    # -- the loop -------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Join the cluster and keep its groups running until `stop`; then leave cleanly."""
        log.info("node %s of cluster %s starting (incarnation %d, term %d)", self.node,
                 self.options.name, self.incarnation, self.election.term)
        self._stopping = stop
        with self._local_lock:
            self.local.probe()
        self.rpc.start()
        from pyha.admin.target import serve_admin

        admin = serve_admin(self)  # None unless <state_dir>/admin holds its TLS files
        if self.source is not None:
            self.source.on_change = self._wake.set
            self.source.start(self.config)
        self.endpoint.start()
        beats = threading.Thread(target=self._beat, args=(stop,), name="pyha heartbeats",
                                 daemon=True)
        beats.start()
        threading.Thread(target=self._hold_tiebreak, args=(stop,), daemon=True,
                         name="pyha tiebreak").start()
        threading.Thread(target=self.departures.run, args=(stop,), daemon=True,
                         name="pyha departures").start()
        clean = False  # an exception leaves the watchdog armed: the machine resets
        try:
            threading.Thread(target=self._wake.after, args=(stop,), daemon=True,
                             name="pyha stop").start()
            while not stop.is_set():
                self._wake.poke.clear()
                self.tick()
                self.clock.wait(self._wake.poke, self._pause())
            self._leave()
            clean = True
            self._disarm_if_idle()
        finally:
            stop.set()
            beats.join(timeout=2)
            self.endpoint.close()
            self.rpc.close()
            if admin is not None:
                admin.close()
            for client in self.peers.values():
                client.close()
            self.tiebreak.release()
            if self.source is not None:
                self.source.stop()
            with self._local_lock:
                self.local.shutdown()
            if clean:
                self._disarm_if_idle()
            log.info("node %s stopped", self.node)

    def tick(self) -> None:
        """One pass of the main loop: membership, monitors, quorum, and if coordinator,
        a scheduling cycle when one is due."""
        now = self.clock.now()
        self._membership(now)
        with self._local_lock:
            self.local.apply_pending()
            self.local.monitor_tick()
        self._enforce_quorum(now)
        self._tend_watchdog(now)
        with self._lock:
            acting = el.may_act(self.election, now)
        due = self._wake.is_set() or now - self._last_cycle >= self.options.cycle_interval
        if acting and due:
            self._wake.clear()
            self._last_cycle = now
            self.coordinate()

    def _pause(self) -> float:
        """How long the loop may sleep: a heartbeat interval, but never past the moment
        a peer would be declared down or this node is to stand for election (so a death
        is acted on at once, not a tick later)."""
        now = self.clock.now()
        with self._lock:
            due = [t for t in (self.detector.next_expiry(now), self._next_election)
                   if t is not None and t > now]
        pause = self.options.heartbeat_interval
        if due:
            pause = min(pause, max(0.001, min(due) - now + 0.001))
        return pause

    # -- heartbeats and the election ------------------------------------------------------

    def _beat(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.endpoint.send(self._heartbeat(), self._links)
            self.clock.wait(stop, self.options.heartbeat_interval)

    def _heartbeat(self) -> Heartbeat:
        now = self.clock.now()
        with self._lock:
            self._sequence += 1
            self._sent[self._sequence] = now
            self._sent.pop(self._sequence - SENT_KEPT, None)
            payload: dict[str, Any] = {}
            if el.may_act(self.election, now):
                payload["coordinator"] = now
                # Confirm to each watchdog node its newest heartbeat heard here: the
                # node feeds its watchdog until `lease` after it sent that one.
                heard = {n.name: list(self._newest[n.name]) for n in self.config.nodes
                         if n.fence and n.fence.kind == "watchdog" and n.name in self._newest}
                if heard:
                    payload["heard"] = heard
            elif self._acked is not None:
                payload["ack"] = list(self._acked)
            if self._leaving:
                payload["leaving"] = True
            return Heartbeat(self.node, self.incarnation, self._sequence, self.election.term,
                             self.config.epoch, payload=payload)

    def _heard(self, hb: Heartbeat, at: float) -> None:
        with self._lock:
            self.detector.heard(hb.node, hb.link, at, hb.incarnation)
            seen = self._newest.get(hb.node)
            if seen is None or (hb.incarnation, hb.sequence) > seen:
                self._newest[hb.node] = (hb.incarnation, hb.sequence)
            sent = hb.payload.get("coordinator")
            if isinstance(sent, int | float):
                before = self.election
                self.election = el.on_coordinator_heartbeat(before, hb.term, hb.node, at,
                                                            self.lease)
                if self.election.coordinator == hb.node and self.election.term == hb.term:
                    self._acked = (hb.term, float(sent))
                    self._next_election = at + self.lease + self._election_timeout()
                    self._placed = True
                    self._note_confirmed(hb.payload.get("heard"))
                self._persist_if_changed(before)
            ack = hb.payload.get("ack")
            if isinstance(ack, list) and len(ack) == 2:
                self.election = el.on_ack(self.election, hb.node, float(ack[1]),
                                          term=int(ack[0]), voters=self.voters,
                                          lease=self.lease, now=at)

    def _silent(self, after: float) -> list[str]:
        with self._lock:
            return self.detector.silent(self.clock.now(), after)

    def _rpc_address(self, node: str) -> tuple[str, int] | None:
        client = self.peers.get(node)
        return None if client is None else client.address

    def _gone(self, node: str, at: float) -> bool:
        """`node`'s host refused a connection to its server: down now; if it was the
        coordinator, its lease is not honoured any longer and this node stands at its
        place in line (el.election_wait). False when it was known down already."""
        with self._lock:
            was_alive = self.detector.alive(node, at)
            self.detector.gone(node, at)
            before = self.election
            self.election = el.release_lease(before, node, at)
            if self.election is not before:
                self._next_election = min(self._next_election,
                                          at + self._election_timeout(without=node))
                self._placed = True
        self._wake.set()
        return was_alive

    def _membership(self, now: float) -> None:
        with self._lock:
            for node, change in self.detector.changes(now):
                log.warning("node %s is %s", node, change.value)
                if change in (Change.UP, Change.RESTARTED):
                    self._fenced.pop(node, None)
                    self._dog_waits.discard(node)
                if change is Change.RESTARTED:  # its fresh probe is the truth now
                    self._uncertain.pop(node, None)
                    self._probed_term = -1  # probe it before deciding anything for it
                self._wake.set()
            before = self.election
            self.election = el.step_down_if_expired(self.election, now)
            if before.role is el.Role.COORDINATOR and self.election.role is not before.role:
                log.warning("coordinator lease of term %d ran out: stepping down", before.term)
            start = (self.election.role is not el.Role.COORDINATOR
                     and now >= self._next_election
                     and not (self._elector and self._elector.is_alive()))
            if start and not self._placed:  # just started: take a place in line first
                self._placed, start = True, False
                self._next_election = now + self._election_timeout()
            if start:
                self._next_election = now + self._election_timeout()
                self._elector = threading.Thread(target=self._elect, name="pyha election",
                                                 daemon=True)
                self._elector.start()

    def _election_timeout(self, without: str | None = None) -> float:
        """How long after a coordinator's lease ran out (or a round failed) this node
        stands: its place in the term's line among the live voters other than the coordinator
        (or `without`), so a lost coordinator is replaced within about 0.01-0.06 x dead_after
        of its lease by the first in line, and two nodes rarely stand at once (voters
        refuse anyone while they still honour that lease)."""
        with self._lock:
            now = self.clock.now()
            live = frozenset(n for n in self.detector.members(now) if n in self.voters)
            return el.election_wait(self.node, live - {without}, self.election.coordinator,
                                    self.options.dead_after, draw=random.random(),
                                    term=self.election.term)

    def _elect(self) -> None:
        with self._lock:
            state, request = el.start_election(self.election, self.config.epoch,
                                               self.clock.now())
            self.election = state
        while request is not None:
            request = self._round(request)

    def _round(self, request: el.VoteRequest) -> el.VoteRequest | None:
        """Ask every voter at once and count answers as they come: a paused peer must not
        hold up the others, and a peer declared down must not hold up the next round (after
        a split vote, each candidate retries at its own random time, not when the dead
        node's call times out). Returns the real request when the pre-vote was won."""
        peers = [n for n in self.peers if n in self.voters]
        pool = ThreadPoolExecutor(max_workers=max(1, len(peers)))
        try:
            calls = {pool.submit(self.peers[p].call, "vote", _request_body(request)): p
                     for p in peers}
            pending = set(calls)
            while pending:
                done, pending = wait(pending, timeout=self.options.heartbeat_interval,
                                     return_when=FIRST_COMPLETED)
                for future in done:
                    try:
                        answer = future.result()
                    except PyhaError as exc:
                        log.debug("vote from %s: %s", calls[future], exc)
                        continue
                    follow_up = self._count(_reply(calls[future], answer))
                    if follow_up is not None or self.election.role is not _WAITING[request.pre]:
                        return follow_up
                if pending and not self._any_alive(calls[f] for f in pending):
                    log.debug("term %d: no vote left to wait for from a live node", request.term)
                    break
            return self._try_tiebreak(request)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _try_tiebreak(self, request: el.VoteRequest) -> el.VoteRequest | None:
        """The tiebreaker's vote, when every voter that did not vote for this node is
        down (see pyha.cluster.tiebreak); a pre-vote only checks that they are down."""
        now = self.clock.now()
        with self._lock:
            if tb.TIEBREAK not in self.voters or self.election.role is not _WAITING[request.pre]:
                return None
            missing = sorted(v for v in self.voters - self.election.votes - {tb.TIEBREAK}
                             if v != self.node)
            if not missing or any(self.detector.alive(n, now) for n in missing):
                return None
        if request.pre:
            won, why = True, f"{', '.join(missing)} down: the tiebreaker decides"
        else:
            won, why = self.tiebreak.win(request.term, missing, self._alive_now,
                                         self._stopping)
        (log.warning if won else log.info)("term %d: tiebreak (%s): %s", request.term,
                                           self.options.tiebreaker.value, why)
        if not won:
            return None
        return self._count(el.VoteReply(request.term, tb.TIEBREAK, True, why, request.pre))

    def _alive_now(self, node: str) -> bool:
        with self._lock:
            return self.detector.alive(node, self.clock.now())

    def _hold_tiebreak(self, stop: threading.Event) -> None:
        """Renew the coordinator's lease through the tiebreaker on a thread of its own,
        so that long actions in a coordinator cycle (a Tomcat start) never let it lapse."""
        while not stop.is_set():
            now = self.clock.now()
            with self._lock:
                acting = el.may_act(self.election, now)
            if acting:
                self._renew_tiebreak(now)
            self.clock.wait(stop, self.options.heartbeat_interval)

    def _renew_tiebreak(self, now: float) -> None:
        """A coordinator that cannot hear some voters renews its lease through the
        tiebreaker: they stay fenced, or it still holds the witness."""
        with self._lock:
            if tb.TIEBREAK not in self.voters:
                return
            missing = [v for v in self.voters - {tb.TIEBREAK, self.node}
                       if not self.detector.alive(v, now)]
            term, fenced = self.election.term, set(self._fenced)
        if not missing:
            self._renewing = None
            return
        sent = self.tiebreak.renew(term, missing, fenced)
        if sent is not None:
            if self._renewing != term:
                log.warning("term %d: tiebreak (%s): the lease is renewed through it while "
                            "%s %s down", term, self.options.tiebreaker.value,
                            ", ".join(sorted(missing)), "is" if len(missing) == 1 else "are")
                self._renewing = term
            with self._lock:
                self.election = el.on_ack(self.election, tb.TIEBREAK, sent, term=term,
                                          voters=self.voters, lease=self.lease,
                                          now=self.clock.now())

    def _tiebreak_held(self, members: frozenset[str], now: float) -> bool | None:
        """At exactly half the votes: this partition holds the tiebreak when it has an
        acting coordinator (one can only act with the tiebreaker's vote or ack); None
        while that is not known (no coordinator here yet)."""
        with self._lock:
            state = self.election
            if el.may_act(state, now):
                return True
            if state.coordinator in members and now < state.lease_until:
                return True
            return None

    def _any_alive(self, nodes: Iterable[str]) -> bool:
        now = self.clock.now()
        with self._lock:
            return any(self.detector.alive(n, now) for n in nodes)

    def _count(self, reply: el.VoteReply) -> el.VoteRequest | None:
        with self._lock:
            before = self.election
            self.election, follow_up = el.on_vote_reply(
                before, reply, voters=self.voters, now=self.clock.now(), lease=self.lease,
                epoch=self.config.epoch)
            self._persist_if_changed(before)  # durable before the real request leaves
            became = (self.election.role is el.Role.COORDINATOR
                      and before.role is not el.Role.COORDINATOR)
        if became:
            self._office = self.clock.now()
            log.warning("elected coordinator for term %d", self.election.term)
            self._wake.set()
        return follow_up

    def _on_vote(self, params: dict[str, Any], caller: str) -> dict[str, Any]:
        request = el.VoteRequest(int(params["term"]), caller, int(params["epoch"]),
                                 bool(params.get("pre", False)))
        with self._lock:
            holder = self.election.coordinator
            honoured = self.clock.now() < self.election.lease_until
        if honoured and holder not in (None, caller, self.node):
            self.departures.ask_now(str(holder))  # a gone holder's lease is not honoured
        with self._lock:
            before = self.election
            self.election, reply = el.on_vote_request(before, request, self.config.epoch,
                                                      self.clock.now())
            self._persist_if_changed(before)  # durable before the answer leaves
        if reply.granted and not reply.pre:
            self._next_election = self.clock.now() + self.lease + self._election_timeout()
        return {"term": reply.term, "granted": reply.granted, "reason": reply.reason,
                "pre": reply.pre}

    def _persist_if_changed(self, before: el.ElectionState) -> None:
        now = self.election
        if (now.term, now.voted_for) != (before.term, before.voted_for):
            self.persisted.save_vote(now.term, now.voted_for)

    # -- what a node answers --------------------------------------------------------------

    def report(self, probe: bool = False) -> NodeReport:
        """This node's resources and failures, after a fresh probe when asked."""
        with self._local_lock:
            if probe:
                self.local.probe()
            view = self.local.view()
        config = self.config
        return NodeReport(node=self.node, incarnation=self.incarnation,
                          leaving=self._leaving, resources=view.resources,
                          failures=view.failures, epoch=config.epoch,
                          digest=config_digest(config))

    def _on_report(self, params: dict[str, Any], caller: str) -> dict[str, Any]:
        return self.report(bool(params.get("probe"))).model_dump(mode="json")

    def membership(self) -> dict[str, Any]:
        """This node's view of the cluster: term, role, coordinator, members, last decision."""
        now = self.clock.now()
        with self._lock:
            state = self.election
            return {
                "node": self.node, "incarnation": self.incarnation, "term": state.term,
                "role": state.role.value, "coordinator": state.coordinator,
                "members": sorted(self.detector.members(now)),
                "quorate": self._quorate, "leaving": self._leaving,
                "decision": self._last_line,
                "dropped": dict(self.endpoint.dropped),
            }

    def _on_status(self, params: dict[str, Any], caller: str) -> dict[str, Any]:
        return {**self.membership(), "resources": [
            r.model_dump(mode="json") for r in self.report().resources]}

    def _on_admin(self, params: dict[str, Any], caller: str) -> dict[str, Any]:
        from pyha.admin.target import answer_peer

        return answer_peer(self, params)

    def _on_act(self, params: dict[str, Any], caller: str) -> dict[str, Any]:
        stale = self._refusal_if_stale(int(params["term"]))
        if stale is not None:
            return stale
        action = Action.model_validate(params["action"])
        refusal = self._watchdog_refusal(action)
        if refusal:
            return {"ok": False, "reason": refusal}
        with self._local_lock:
            ok = self.local.perform(action)
        return {"ok": ok}

    # -- the coordinator ------------------------------------------------------------------

    def coordinate(self) -> str:
        """One coordinator cycle: reports, view, schedule, fence and dispatch."""
        with self._lock:
            term = self.election.term
            online = self.detector.members(self.clock.now())
            probe = self._probed_term != term
        reports = self._gather(online, probe)
        if reports is None:
            return self._decide(f"term {term}: waiting for reports from every live node")
        if probe:
            self._probed_term = term
        self._catch_up(reports, term)
        self._follow_source(term)
        quorum = decide(self.votes, online, self.options.tiebreaker,
                        self._tiebreak_held(online, self.clock.now()))
        with self._lock:
            if self._reports_term != term:
                # What this node learnt as coordinator of an earlier term may be stale:
                # others coordinated since. A node not heard in this term counts as
                # unheard (fenced before its groups move), whatever it said or was before.
                # Fences made in this term (by the tiebreak of its election) still hold.
                self._fenced = {n: t for n, t in self._fenced.items() if t == term}
                self._reports, self._reports_term = {}, term
            self._reports.update(reports)
            view = build_view(self.config, self._reports, online, frozenset(self._fenced),
                              quorum.quorate,
                              uncertain={n: frozenset(r) for n, r in self._uncertain.items()})
        self.last_view = view
        if self.source is not None:
            self.source.offer_status(view)
            self.source.offer_nodes(self._node_records())
        transition = schedule(self.config, view, self.clock.wall())
        line = self._decide(f"term {term}: {transition.summary}")
        outcome = self._dispatch(transition, term)
        if outcome:
            log.info("term %d: %s", term, outcome)
        return line

    def _node_records(self) -> list[NodeStatusRecord]:
        """Each node's liveness as status records (last seen in wall-clock time)."""
        now, wall = self.clock.now(), self.clock.wall()
        with self._lock:
            seen = self.detector.liveness(now)
        return [NodeStatusRecord(node=s.node, online=s.alive,
                                 last_seen=None if s.last_heard is None
                                 else wall - (now - s.last_heard))
                for s in seen]

    def _gather(self, online: frozenset[str], probe: bool) -> dict[str, NodeReport] | None:
        """Every live node's report, asked of all at once (a probe runs each node's
        monitors, so a new coordinator waits for the slowest node, not for their sum);
        None when a node did not answer."""
        peers = sorted(online - {self.node})
        pool = ThreadPoolExecutor(max_workers=max(1, len(peers)),
                                  thread_name_prefix="pyha-gather")
        try:
            asked = {pool.submit(self._call_while_alive, peer, "report", {"probe": probe},
                                 self._report_timeout(probe)): peer for peer in peers}
            reports = {self.node: self.report(probe)}
            for future in as_completed(asked):
                peer = asked[future]
                try:
                    reports[peer] = NodeReport.model_validate(future.result())
                except PyhaError as exc:
                    log.warning("no report from %s: %s", peer, exc)
                    return None  # the other calls end by themselves (their timeouts)
            return {node: reports[node] for node in [self.node, *peers]}
        finally:
            pool.shutdown(wait=False)

    def _report_timeout(self, probe: bool) -> float:
        # A probe runs every resource's monitor once: give it the monitors' time.
        return self.options.call_timeout * (10 if probe else 1)

    def _dispatch(self, transition: Transition, term: int) -> str:
        done: set[int] = set()
        while ready := transition.ready(done):
            for action in ready:
                if not self._run_action(action, term):
                    left = len(transition.actions) - len(done) - 1
                    return f"{action.describe()} failed; {left} action(s) left for later"
                done.add(action.id)
        return f"{len(done)} action(s) done" if done else ""

    def _run_action(self, action: Action, term: int) -> bool:
        with self._lock:
            if not el.may_act(self.election, self.clock.now()):
                log.warning("lease lost: not running %s", action.describe())
                return False
        if action.kind is ActionKind.FENCE:
            return self._fence(action.node, action.reason)
        if action.node == self.node:
            refusal = self._watchdog_refusal(action)
            if refusal:
                log.warning("%s: %s", action.describe(), refusal)
                return False
            with self._local_lock:
                return self.local.perform(action)
        try:
            answer = self._call_while_alive(action.node, "act", {
                "term": term, "action": action.model_dump(mode="json")},
                self._action_timeout(action))
        except PyhaError as exc:
            # The action may have run there anyway: until a stop there succeeds or the
            # node is fenced, what it may have started counts as active there.
            if action.kind in (ActionKind.START, ActionKind.PROMOTE) and action.resource:
                with self._lock:
                    self._uncertain.setdefault(action.node, set()).add(action.resource)
            log.warning("%s: %s", action.describe(), exc)
            return False
        ok = bool(answer.get("ok"))
        if action.kind in (ActionKind.START, ActionKind.PROMOTE):
            # The report we hold predates this start. Forget it: should the node be lost
            # before its next report, it counts as unheard, so it is fenced before its
            # groups start anywhere else.
            with self._lock:
                self._reports.pop(action.node, None)
        if ok and action.kind is ActionKind.STOP and action.resource:
            with self._lock:
                self._uncertain.get(action.node, set()).discard(action.resource)
                # The report we hold predates this stop: should the node be lost before
                # its next report (it is leaving), the resource must not count as active
                # there, or the node would be fenced for nothing.
                held = self._reports.get(action.node)
                if held is not None:
                    self._reports[action.node] = _with_stopped(held, action.resource)
        if not ok:
            log.warning("%s failed on %s: %s", action.describe(), action.node,
                        answer.get("reason", "see that node's log"))
        return ok

    def _call_while_alive(self, node: str, method: str, params: dict[str, Any],
                          timeout: float) -> dict[str, Any]:
        """Call `node`, but give up as soon as it is declared down or our lease ends: an
        operation's full timeout must not hold up the failover of the node running it."""
        pool = ThreadPoolExecutor(max_workers=1)
        try:
            future = pool.submit(self.peers[node].call, method, params, timeout)
            while True:
                try:
                    return future.result(timeout=self.options.heartbeat_interval)
                except FuturesTimeout:
                    pass
                now = self.clock.now()
                with self._lock:
                    alive = self.detector.alive(node, now)
                    acting = el.may_act(self.election, now)
                if not alive or not acting:
                    why = "is down" if not alive else "cannot be told: our lease ended"
                    raise PeerUnreachable(node, f"{method}: {node} {why}; outcome unknown",
                                          request_sent=True)
        finally:
            pool.shutdown(wait=False)

    def _action_timeout(self, action: Action) -> float:
        member = self.local.members.get(action.resource or "")
        if member is None:
            return self.options.call_timeout
        configured = member.timeout(action.kind.value)
        limit = configured if configured is not None else member.agent.meta.timeout(
            action.kind.value)
        return limit + self.options.call_timeout

    def _fence(self, node: str, why: str) -> bool:
        if self._booting(node):
            return False
        device = self.fences.get(node)
        if device is None:
            if self.options.recovery_without_fencing:
                log.warning("NOT fencing %s (recovery_without_fencing is on): %s", node, why)
                self._forget(node)
                return True
            log.error("cannot recover from %s: it has no fence device, so its groups wait "
                      "(set recovery_without_fencing to accept the risk)", node)
            return False
        waiting = device.method == "watchdog"  # not ok yet is a wait there, not a failure
        if not waiting or node not in self._dog_waits:
            log.warning("fencing %s: %s", node, why)
        result = device.fence(node, self.clock.now() + max(10.0, 5 * self.options.dead_after))
        if waiting and not result.ok:
            self._dog_waits.add(node)  # the device says how long is left
        elif not result.ok:  # the device logs what it did; a failure must stand out here
            log.error("fencing %s failed: %s", node, result.message)
        if result.ok:
            self._forget(node)
        return result.ok

    def _booting(self, node: str) -> bool:
        """True while `node` was never heard and this node started (or learnt of `node`,
        added at runtime) less than the startup grace ago: it may be starting, so it is
        waited for rather than fenced."""
        now = self.clock.now()
        since = max(self._born, self._joined.get(node, self._born))
        left = STARTUP_GRACE * self.options.dead_after - (now - since)
        with self._lock:
            heard = self.detector.ever_heard(node)
        if heard or left <= 0:
            return False
        if node not in self._waited:
            self._waited.add(node)
            log.info("not fencing %s yet: never heard since this node started; it may be "
                     "starting (%.1fs of startup grace left)", node, left)
        return True

    def _forget(self, node: str) -> None:
        self._dog_waits.discard(node)
        with self._lock:
            self._fenced[node] = self.election.term
            self._reports.pop(node, None)
            self._uncertain.pop(node, None)

    def _decide(self, line: str) -> str:
        if line != self._last_line:
            log.info("%s", line)
            self._last_line = line
            if self.on_decision:
                self.on_decision(line)
        return line

    # -- running a configuration ----------------------------------------------------------

    def _adopt(self, config: ClusterConfig, source: str,
               members: dict[str, Member] | None = None) -> None:
        """Run with `config` from now on: resources through the local server (at the next
        tick), membership, votes, peers and fence devices here."""
        self.local.reconfigure(config, members)
        with self._lock:
            old = self.config
            self.config, self.options = config, config.cluster
            self.lease = config.cluster.dead_after
            self.votes = _votes(config)
            self.voters = tb.voters(config)
            self.tiebreak = tb.Tiebreak.of(config, self.node, self.clock, self._fence,
                                           self.witness)
            self._epoch_seen = max(self._epoch_seen, config.epoch)
            for added in {n.name for n in config.nodes} - {n.name for n in old.nodes}:
                self._joined[added] = self.clock.now()
            self.detector.set_nodes([n.name for n in config.nodes])
            self.detector.dead_after = config.cluster.dead_after
            self._connect(config, old)
            if not self._given_fences:
                self.fences = dict(fence_devices(config, self._watchdog_heard, self.clock))
            self._adopt_watchdog(config)
        log.info("configuration epoch %d adopted (%s)", config.epoch, source)

    def _connect(self, config: ClusterConfig, old: ClusterConfig | None) -> None:
        """Clients for the peers of `config` (new ones, or where a peer's address changed
        since `old`), none for nodes that left, and the heartbeat links."""
        names = {n.name for n in config.nodes}
        for gone in set(self.peers) - names:
            self.peers.pop(gone).close()
        before = {n.name: n.rpc for n in old.nodes} if old is not None else {}
        for n in config.nodes:
            if n.name == self.node or (n.name in self.peers and before.get(n.name) == n.rpc):
                continue
            if n.name in self.peers:
                self.peers[n.name].close()
            self.peers[n.name] = RpcClient(self.key, self.node, parse_endpoint(n.rpc or ""),
                                           config.cluster.call_timeout, peer=n.name)
        self._links = [[parse_endpoint(a) for a in n.addresses]
                       for n in config.nodes if n.name != self.node]

    # -- quorum and leaving ---------------------------------------------------------------

    def _enforce_quorum(self, now: float) -> None:
        with self._lock:
            members = self.detector.members(now)
        quorum = decide(self.votes, members, self.options.tiebreaker,
                        self._tiebreak_held(members, now))
        if quorum.quorate != self._quorate:
            (log.info if quorum.quorate else log.warning)(
                "quorum %s: %s", "regained" if quorum.quorate else "lost", quorum.reason)
            self._quorate = quorum.quorate
        if quorum.quorate or self.options.no_quorum_policy is not NoQuorumPolicy.STOP:
            return
        if now - self._born < 2 * self.options.dead_after:
            return  # just started: peers may not have been heard yet; a restart must not
            # bounce services that kept running while this server was away
        with self._local_lock:
            active = [s for s in self.local.view().resources
                      if s.role not in (Role.STOPPED, Role.UNKNOWN)]
            if active:
                self.local.stop_all(f"no quorum ({quorum.reason}; no_quorum_policy=stop)")

    def _leave(self) -> None:
        """Ask the coordinator to move this node's groups away, then return."""
        self._leaving = True
        self._wake.set()
        deadline = self.clock.now() + LEAVE_TIMEOUT
        log.info("leaving: waiting for the groups here to move away")
        while self.clock.now() < deadline:
            self.tick()
            with self._local_lock:
                active = [s for s in self.local.view().resources
                          if s.role not in (Role.STOPPED, Role.UNKNOWN)]
            if not active:
                return
            self.clock.sleep(self.options.heartbeat_interval)
        log.warning("leaving: groups still here after %.0fs; stopping them", LEAVE_TIMEOUT)

def _request_body(request: el.VoteRequest) -> dict[str, Any]:
    return {"term": request.term, "epoch": request.epoch, "pre": request.pre}


def _reply(peer: str, answer: Mapping[str, Any]) -> el.VoteReply:
    return el.VoteReply(int(answer["term"]), peer, bool(answer["granted"]),
                        str(answer.get("reason", "")), bool(answer.get("pre", False)))


def _with_stopped(report: NodeReport, resource: str) -> NodeReport:
    """`report` with `resource` stopped (a stop there just succeeded)."""
    resources = tuple(s.model_copy(update={"role": Role.STOPPED}) if s.resource == resource
                      else s for s in report.resources)
    return report.model_copy(update={"resources": resources})


class _Wake(threading.Event):
    """The "schedule now" flag: setting it also pokes the main loop out of its sleep."""

    def __init__(self) -> None:
        super().__init__()
        self.poke = threading.Event()

    def set(self) -> None:
        """Ask for a coordinator cycle at once."""
        super().set()
        self.poke.set()

    def after(self, event: threading.Event) -> None:
        """Poke the loop once `event` is set (the node is asked to stop)."""
        event.wait()
        self.poke.set()
