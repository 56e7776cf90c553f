"""The node's side of watchdog self-fencing (sbd-style): arm, feed, refuse, disarm.

The device itself is `pyha.fencing.watchdog.Watchdog`, and the feeding rule is the pure
`why_not_feed` there; this module is what a cluster node does with them.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from pyha.clock import Clock
from pyha.fencing.watchdog import Watchdog, why_not_feed
from pyha.membership import election as el
from pyha.membership.detector import FailureDetector
from pyha.model.actions import Action, ActionKind
from pyha.model.config import ClusterConfig
from pyha.model.status import Role
from pyha.server import ClusterServer

log = logging.getLogger("pyha.cluster")

_STARTS = (ActionKind.START, ActionKind.PROMOTE)


class WatchdogDuty:
    """This node's watchdog, for `ClusterNode`.

    Invariants: no resource starts here while this node's watchdog is not armed; it is
    fed only while the feeding rule allows (quorate, and coordinating or within `lease`
    of sending the newest heartbeat the coordinator confirmed hearing), so a node cut
    off, paused or without quorum resets itself within the lease plus the watchdog's
    timeout; it is disarmed only on a clean stop, with nothing active here. On the
    coordinator, the wait for a watchdog node's fence starts no earlier than when this
    node last heard it or took office.

    Needs from the node: the attributes annotated below. The node keeps the bookkeeping
    set up in `_init_watchdog` current: `_sent` as it sends heartbeats, `_newest` as it
    hears them, `_office` when it is elected, `_dog_waits` as it fences.
    """

    node: str
    incarnation: int
    clock: Clock
    lease: float
    election: el.ElectionState
    detector: FailureDetector
    local: ClusterServer
    _quorate: bool
    _lock: threading.RLock
    _local_lock: threading.Lock

    # -- the watchdog (sbd-style self-fencing) ---------------------------------------------

    def _init_watchdog(self, config: ClusterConfig, node: str) -> None:
        self._office: float | None = None
        """When this node last became coordinator (its clock)."""
        self.watchdog = _watchdog_of(config, node)
        """This node's own watchdog, when its fence is one (armed at the first tick
        that may feed it, before any resource starts here)."""
        self._sent: dict[int, float] = {}
        """Sequence -> send time of this node's recent heartbeats."""
        self._confirmed: float | None = None
        """Send time of this node's newest heartbeat the coordinator confirmed hearing."""
        self._newest: dict[str, tuple[int, int]] = {}
        """Node -> (incarnation, sequence) of its newest heartbeat heard here."""
        self._starving, self._arm_error = "", ""
        """Why this node does not feed its armed watchdog now ('' while it does), and why
        arming it failed last."""
        self._dog_waits = set[str]()
        """Watchdog nodes whose fence this coordinator is waiting out."""

    def _note_confirmed(self, heard: object) -> None:
        """From the coordinator's heartbeat: which heartbeat of ours it heard last (the
        watchdog may be fed until `lease` after that one was sent)."""
        if not isinstance(heard, dict):
            return
        mine = heard.get(self.node)
        if not (isinstance(mine, list) and len(mine) == 2 and mine[0] == self.incarnation):
            return
        sent = self._sent.get(int(mine[1]))
        if sent is not None and (self._confirmed is None or sent > self._confirmed):
            self._confirmed = sent

    def _tend_watchdog(self, now: float) -> None:
        """Main loop only: feed this node's watchdog, arming it first, while the feeding
        rule allows (quorate, and holding the membership lease; see WatchdogPolicy)."""
        dog = self.watchdog
        if dog is None or dog.closed:
            return
        with self._lock:
            why = why_not_feed(quorate=self._quorate,
                               coordinating=el.may_act(self.election, now),
                               confirmed_sent=self._confirmed, lease=self.lease, now=now)
        if why:
            if dog.armed and not self._starving:
                log.warning("watchdog %s: not feeding it (%s): it resets this machine "
                            "within %ds unless that changes", dog.device, why, dog.timeout)
                self._starving = why
            return
        if dog.armed:
            if self._starving:
                log.info("watchdog %s: feeding it again", dog.device)
            self._starving = ""
            dog.feed()
            return
        try:
            dog.arm()
        except (OSError, ValueError) as exc:
            if str(exc) != self._arm_error:
                log.error("watchdog %s cannot be armed: %s; no resource starts here until "
                          "it is", dog.device, exc)
            self._arm_error = str(exc)

    def _watchdog_refusal(self, action: Action) -> str:
        """Why this node must not run `action` (a start) for want of an armed watchdog."""
        dog = self.watchdog
        if dog is None or action.kind not in _STARTS:
            return ""
        if dog.closed:
            return "this node is stopping (its watchdog is disarmed)"
        if not dog.armed:
            return (f"its watchdog {dog.device} is not armed yet"
                    + (f" ({self._arm_error})" if self._arm_error else ""))
        return ""

    def _watchdog_heard(self, node: str) -> float:
        """Coordinator: when `node`'s watchdog wait starts here: when this node last heard
        it, or took office if later (heartbeats an earlier coordinator confirmed were
        confirmed before that); never heard and not in office: now."""
        now = self.clock.now()
        with self._lock:
            last = next((s.last_heard for s in self.detector.liveness(now) if s.node == node),
                        None)
            office = self._office
        known = [t for t in (last, office) if t is not None]
        return max(known) if known else now

    def _adopt_watchdog(self, config: ClusterConfig) -> None:
        """A new configuration's fence for this node: a watchdog that appears is armed at
        the next tick that may feed it; one already open keeps its device and timeout."""
        wanted = _watchdog_of(config, self.node)
        dog = self.watchdog
        if dog is None:
            self.watchdog = wanted
        elif wanted is None:
            log.warning("this node's fence is no longer its watchdog: %s stays armed and fed "
                        "until this server stops", dog.device)
        elif (wanted.device, wanted.timeout) != (dog.device, dog.timeout):
            log.warning("watchdog: fence now names %s with %ds; %s with %ds stays in use "
                        "until this server restarts", wanted.device, wanted.timeout,
                        dog.device, dog.timeout)

    def _disarm_if_idle(self) -> None:
        """On a clean stop, once nothing runs here: the magic close disarms the watchdog."""
        dog = self.watchdog
        if dog is None or dog.closed:
            return
        with self._local_lock:
            active = [s.resource for s in self.local.view().resources
                      if s.role not in (Role.STOPPED, Role.UNKNOWN)]
        if active:
            log.error("watchdog %s stays armed: %s still active here", dog.device,
                      ", ".join(active))
            return
        dog.disarm()


def _watchdog_of(config: ClusterConfig, node: str) -> Watchdog | None:
    """The watchdog `node` self-fences with, when its fence is one."""
    spec = next((n.fence for n in config.nodes if n.name == node), None)
    if spec is None or spec.kind != "watchdog":
        return None
    return Watchdog(Path(spec.device), spec.timeout, log=log)
