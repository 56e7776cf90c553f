"""Departures: a silent peer whose host refuses a connection to its server is gone.

The questions are real TCP connections on loopback (a port nothing listens on, and one
that listens); time is a fake clock.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from pyha.cluster.departures import DepartureWatch, refuses
from pyha.membership.detector import silent_after
from pyha.model.config import ClusterOptions
from pyha.ports import free_port
from pyha.testing.clock import FakeClock


@pytest.fixture
def listening() -> Iterator[tuple[str, int]]:
    server = socket.create_server(("127.0.0.1", free_port()))
    try:
        yield server.getsockname()[:2]
    finally:
        server.close()


def closed() -> tuple[str, int]:
    return ("127.0.0.1", free_port())


def test_silent_after_is_three_heartbeats_at_most_half_dead_after() -> None:
    assert silent_after(0.1, 1.0) == pytest.approx(0.3)
    assert silent_after(0.02, 0.15) == pytest.approx(0.06)
    assert silent_after(0.5, 1.0) == pytest.approx(0.5)


def test_only_a_refused_connection_counts(listening: tuple[str, int]) -> None:
    assert refuses(closed(), 0.5)
    assert not refuses(listening, 0.5)
    # 198.18.0.0/15 has no route here: fails at once or times out, never "refused".
    assert not refuses(("198.18.255.254", 9), 0.05)


class Peers:
    """What the node tells the watch: who is silent, where they listen; what went."""

    def __init__(self, addresses: dict[str, tuple[str, int]], probe: bool = True) -> None:
        self.addresses = addresses
        self.silent = list(addresses)
        self.gone: list[tuple[str, float]] = []
        self.options = ClusterOptions(name="t", probe_departures=probe)
        self.asked_after: list[float] = []

    def watch(self, clock: FakeClock) -> DepartureWatch:
        def silent(after: float) -> list[str]:
            self.asked_after.append(after)
            return list(self.silent)

        return DepartureWatch(clock, lambda: self.options, silent, self.addresses.get,
                              self.went)

    def went(self, node: str, at: float) -> bool:
        self.gone.append((node, at))
        return True


def run(watch: DepartureWatch) -> int:
    threads = watch.ask_due()
    for t in threads:
        t.join(5)
    return len(threads)


def test_a_refusing_peer_is_reported_gone_and_a_listening_one_is_not(
        listening: tuple[str, int]) -> None:
    clock = FakeClock()
    peers = Peers({"b": closed(), "c": listening})
    assert run(peers.watch(clock)) == 2
    assert peers.gone == [("b", clock.now())]
    assert peers.asked_after == [pytest.approx(0.3)]


def test_a_peer_is_asked_at_most_once_per_silent_after(listening: tuple[str, int]) -> None:
    clock = FakeClock()
    peers = Peers({"c": listening})
    watch = peers.watch(clock)
    assert run(watch) == 1
    clock.advance(0.1)
    assert run(watch) == 0
    clock.advance(0.2)
    assert run(watch) == 1


def test_nothing_is_asked_when_turned_off_or_nobody_is_silent() -> None:
    clock = FakeClock()
    peers = Peers({"b": closed()}, probe=False)
    watch = peers.watch(clock)
    assert run(watch) == 0 and not watch.ask_now("b")
    peers.options = ClusterOptions(name="t")
    peers.silent = []
    assert run(watch) == 0 and not watch.ask_now("b")
    assert peers.gone == []


def test_ask_now_answers_in_the_calling_thread() -> None:
    clock = FakeClock()
    peers = Peers({"b": closed()})
    watch = peers.watch(clock)
    assert watch.ask_now("b")
    assert peers.gone == [("b", clock.now())]
    assert not watch.ask_now("unknown")
