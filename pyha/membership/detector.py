"""The failure detector: which nodes are alive, from when they were last heard. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

SILENT_HEARTBEATS = 3
"""Heartbeat intervals without a word before a peer's host is asked whether its server
still runs (pyha.cluster.departures)."""


def silent_after(heartbeat_interval: float, dead_after: float) -> float:
    """How long a peer may stay silent before its host is asked: three heartbeat
    intervals, and never more than half of `dead_after` (else asking would not help)."""
    return min(SILENT_HEARTBEATS * heartbeat_interval, dead_after / 2)


class Change(StrEnum):
    """What happened to a node between two looks."""

    UP = "up"
    DOWN = "down"
    RESTARTED = "restarted"
    """Heard with a new incarnation: its server restarted, so its resources need a probe."""


@dataclass(frozen=True)
class Liveness:
    """One node as the detector sees it at some `now`."""

    node: str
    alive: bool
    last_heard: float | None
    links_up: tuple[int, ...]
    incarnation: int | None


@dataclass
class _Peer:
    heard: dict[int, float] = field(default_factory=dict)
    incarnation: int | None = None
    restarted: bool = False
    gone: float | None = None
    """When its cluster server was found gone (its port refused a connection); only
    heartbeats received after that count."""

    def fresh(self) -> list[float]:
        """The receive times that still count (per link)."""
        return [t for t in self.heard.values() if self.gone is None or t > self.gone]


class FailureDetector:
    """Tracks heartbeats per node and link; time only comes in as arguments.

    Invariant: a node is alive at `now` exactly when a valid heartbeat from it arrived
    on some link at a time t with now - t < dead_after, and its server was not found gone
    (`gone`) after t. The local node is always alive.
    """

    def __init__(self, local: str, nodes: list[str], dead_after: float) -> None:
        if dead_after <= 0:
            raise ValueError("dead_after must be positive")
        self.local = local
        self.dead_after = dead_after
        self._peers = {n: _Peer() for n in nodes if n != local}
        self._alive: dict[str, bool] = {n: False for n in self._peers}

    def set_nodes(self, nodes: list[str]) -> None:
        """Follow a configuration change: new nodes start unheard (down), removed ones
        are forgotten; the others keep what was heard of them."""
        self._peers = {n: self._peers.get(n) or _Peer() for n in nodes if n != self.local}
        self._alive = {n: self._alive.get(n, False) for n in self._peers}

    def heard(self, node: str, link: int, at: float, incarnation: int) -> None:
        """Record a valid heartbeat from `node` on `link`, received at `at`."""
        peer = self._peers.get(node)
        if peer is None:
            return  # not a member (yet): its heartbeats do not count
        if peer.incarnation is not None and incarnation > peer.incarnation:
            peer.restarted = True
        if peer.incarnation is None or incarnation >= peer.incarnation:
            peer.incarnation = incarnation
            peer.heard[link] = max(at, peer.heard.get(link, at))

    def gone(self, node: str, at: float) -> None:
        """Record that `node`'s cluster server was found not running at `at` (its port
        refused a connection): it is down from then on, until heard again."""
        peer = self._peers.get(node)
        if peer is not None:
            peer.gone = at if peer.gone is None else max(peer.gone, at)

    def silent(self, now: float, after: float) -> list[str]:
        """The nodes still alive at `now` of which nothing was heard for `after` seconds:
        the ones worth asking whether their server still runs."""
        return [n for n, p in self._peers.items() if self.alive(n, now)
                and now - max(p.fresh()) >= after]

    def ever_heard(self, node: str) -> bool:
        """True once any valid heartbeat of `node` arrived (always for the local node)."""
        peer = self._peers.get(node)
        return node == self.local or (peer is not None and bool(peer.heard))

    def alive(self, node: str, now: float) -> bool:
        """True if `node` is the local node or was heard on any link within dead_after."""
        if node == self.local:
            return True
        peer = self._peers.get(node)
        return peer is not None and any(now - t < self.dead_after for t in peer.fresh())

    def members(self, now: float) -> frozenset[str]:
        """The nodes alive at `now`, the local node included."""
        return frozenset([self.local, *(n for n in self._peers if self.alive(n, now))])

    def liveness(self, now: float) -> list[Liveness]:
        """Every known node, for status displays."""
        out = [Liveness(self.local, True, now, (), None)]
        for name, peer in self._peers.items():
            links = tuple(sorted(k for k, t in peer.heard.items() if now - t < self.dead_after
                                 and (peer.gone is None or t > peer.gone)))
            last = max(peer.heard.values()) if peer.heard else None
            out.append(Liveness(name, bool(links), last, links, peer.incarnation))
        return out

    def changes(self, now: float) -> list[tuple[str, Change]]:
        """What changed since the previous call: nodes that came up, went down, restarted."""
        out: list[tuple[str, Change]] = []
        for name, peer in self._peers.items():
            alive = self.alive(name, now)
            if alive != self._alive[name]:
                out.append((name, Change.UP if alive else Change.DOWN))
                self._alive[name] = alive
            elif alive and peer.restarted:
                out.append((name, Change.RESTARTED))
            peer.restarted = False
        return out

    def next_expiry(self, now: float) -> float | None:
        """The earliest time a node now alive would be declared dead if not heard again."""
        times = [max(p.fresh()) + self.dead_after for p in self._peers.values()
                 if p.fresh() and max(p.fresh()) + self.dead_after > now]
        return min(times) if times else None
