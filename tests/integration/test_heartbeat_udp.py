"""Heartbeats over real UDP on loopback: delivered on every link, bad datagrams counted."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from pyha.membership.heartbeat import Heartbeat, HeartbeatCodec, HeartbeatEndpoint
from pyha.testing.waiting import eventually

KEY = b"k" * 32


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


Pair = tuple[HeartbeatEndpoint, HeartbeatEndpoint, list[Heartbeat], list[list[tuple[str, int]]]]


@pytest.fixture
def pair() -> Iterator[Pair]:
    got: list[Heartbeat] = []
    arrived = threading.Event()

    def receive(hb: Heartbeat, at: float) -> None:
        got.append(hb)
        arrived.set()

    codec = HeartbeatCodec("c1", KEY)
    b_links = [("127.0.0.1", free_udp_port()), ("127.0.0.2", free_udp_port())]
    a = HeartbeatEndpoint(codec, "a", [("127.0.0.1", 0), ("127.0.0.2", 0)],
                          lambda hb, at: None, time.monotonic)
    b = HeartbeatEndpoint(codec, "b", b_links, receive, time.monotonic)
    b.start()
    yield a, b, got, [b_links]
    a.close()
    b.close()


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    assert eventually(check, timeout), "condition not met in time"


def test_heartbeats_arrive_on_both_links_and_bad_ones_are_counted(pair: Pair) -> None:
    a, b, got, peers = pair
    assert a.send(Heartbeat("a", 1, 1, 0, 0), peers) == 2
    wait_until(lambda: len(got) == 2)
    assert sorted(h.link for h in got) == [0, 1]

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        good = HeartbeatCodec("c1", KEY).encode(Heartbeat("a", 1, 2, 0, 0))
        raw.sendto(good, peers[0][0])
        raw.sendto(good, peers[0][0])  # a replay
        raw.sendto(HeartbeatCodec("c1", b"x" * 32).encode(Heartbeat("a", 1, 3, 0, 0)),
                   peers[0][0])
        raw.sendto(HeartbeatCodec("c2", KEY).encode(Heartbeat("a", 1, 4, 0, 0)), peers[0][0])
        raw.sendto(b"hello", peers[0][0])
        raw.sendto(HeartbeatCodec("c1", KEY).encode(Heartbeat("b", 1, 1, 0, 0)), peers[0][0])
    wait_until(lambda: sum(b.dropped.values()) == 5)
    assert dict(b.dropped) == {"replayed": 1, "forged": 1, "foreign": 1, "malformed": 1,
                               "own": 1}
    assert len(got) == 3
