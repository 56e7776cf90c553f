"""Departures: a peer whose cluster server stopped, found before `dead_after` runs out.

A server that crashes or is killed on a host that keeps running leaves a trace the host
will tell: its node-to-node port is closed, so a TCP connection to it is refused at once.
When nothing has been heard from a peer for `silent_after` (a few heartbeat intervals),
this node asks the peer's host by opening (and at once closing) such a connection:

- refused: nothing listens there, so the peer's server is not running; it is down now
  (the detector's `gone`), and a lease it held is no longer honoured (a process that is
  gone cannot act). Its groups still move only after it is fenced, as for any lost node.
- accepted, or no answer (a paused server: the kernel still accepts for it; a host that
  lost power, or a cut link: nothing answers): nothing is concluded, and the peer is
  declared down when `dead_after` runs out, as always.

So a lost server costs about `silent_after` instead of `dead_after`, and a lost host
still costs `dead_after`. A heartbeat that arrives later brings the peer back. Only the
refusal counts, never a timeout; where a firewall between the nodes rejects connections
(rather than dropping them), set `probe_departures = false`.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
from collections.abc import Callable

from pyha.clock import Clock
from pyha.membership.detector import silent_after
from pyha.model.config import ClusterOptions

log = logging.getLogger("pyha.cluster")

def refuses(address: tuple[str, int], timeout: float) -> bool:
    """True when a TCP connection to `address` is refused (nothing listens there);
    False when it is accepted, times out, or fails any other way."""
    try:
        with socket.create_connection(address, timeout=timeout):
            return False
    except ConnectionRefusedError:
        return True
    except OSError as exc:
        return exc.errno == errno.ECONNREFUSED


class DepartureWatch:
    """Asks the hosts of silent peers whether their servers still run, on a thread of
    its own: it looks every heartbeat interval, and asks about one peer once at a time
    and at most once per `silent_after` (a paused peer is not flooded with connections).

    `options()` gives the cluster options in force (timing, `probe_departures`);
    `silent(after)` names the live peers heard nothing from for `after` seconds;
    `address(node)` is the peer's node-to-node endpoint (None: do not ask);
    `on_gone(node, at)` is called when the peer's host refused the connection at `at`
    (True when that made the peer down, False when it was known down already).
    """

    def __init__(self, clock: Clock, options: Callable[[], ClusterOptions],
                 silent: Callable[[float], list[str]],
                 address: Callable[[str], tuple[str, int] | None],
                 on_gone: Callable[[str, float], bool]) -> None:
        self.clock, self._options = clock, options
        self._silent, self._address, self._on_gone = silent, address, on_gone
        self._asked: dict[str, float] = {}
        self._busy: set[str] = set()
        self._lock = threading.Lock()

    def run(self, stop: threading.Event) -> None:
        """Until `stop`: every heartbeat interval, ask about each silent peer due."""
        while not stop.is_set():
            self.ask_due()
            self.clock.wait(stop, self._options().heartbeat_interval)

    def ask_due(self) -> list[threading.Thread]:
        """Start the questions that are due; returns their threads (tests join them)."""
        options = self._options()
        if not options.probe_departures:
            return []
        after = silent_after(options.heartbeat_interval, options.dead_after)
        now = self.clock.now()
        started = []
        for node in self._silent(after):
            address = self._address(node)
            with self._lock:
                if (address is None or node in self._busy
                        or now - self._asked.get(node, float("-inf")) < after):
                    continue
                self._busy.add(node)
                self._asked[node] = now
            thread = threading.Thread(target=self._ask, args=(node, address, after),
                                      daemon=True, name=f"pyha departure {node}")
            thread.start()
            started.append(thread)
        return started

    def ask_now(self, node: str) -> bool:
        """Ask about `node` at once, in this thread, if it is silent (a voter asked to
        vote while it still honours `node`'s lease); True when its server is gone."""
        options = self._options()
        if not options.probe_departures:
            return False
        after = silent_after(options.heartbeat_interval, options.dead_after)
        address = self._address(node)
        if address is None or node not in self._silent(after):
            return False
        return self._ask(node, address, after, busy=False)

    def _ask(self, node: str, address: tuple[str, int], timeout: float,
             busy: bool = True) -> bool:
        try:
            if not refuses(address, timeout):
                return False
            if self._on_gone(node, self.clock.now()):
                log.warning("node %s: its cluster server is gone (%s:%d refused a "
                            "connection): down without waiting for dead_after", node,
                            *address)
            return True
        finally:
            if busy:
                with self._lock:
                    self._busy.discard(node)
