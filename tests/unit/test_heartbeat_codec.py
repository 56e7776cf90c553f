"""Heartbeat packets: authenticated, bounded, and refused when forged, foreign or replayed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyha.membership.heartbeat import BadPacket, Heartbeat, HeartbeatCodec, ReplayGuard

KEY = bytes(range(32))
CODEC = HeartbeatCodec("prod", KEY)


def hb(seq: int = 1, incarnation: int = 7, node: str = "n2", link: int = 0) -> Heartbeat:
    return Heartbeat(node, incarnation, seq, term=3, epoch=9, link=link,
                     payload={"coordinator": "n1", "ack": 41})


def test_round_trip() -> None:
    assert CODEC.decode(CODEC.encode(hb())) == hb()


def test_a_flipped_bit_is_forged() -> None:
    packet = bytearray(CODEC.encode(hb()))
    packet[20] ^= 1
    with pytest.raises(BadPacket) as info:
        CODEC.decode(bytes(packet))
    assert info.value.reason == "forged"


def test_another_key_is_forged_and_another_cluster_is_foreign() -> None:
    with pytest.raises(BadPacket, match="forged"):
        HeartbeatCodec("prod", bytes(32)).decode(CODEC.encode(hb()))
    with pytest.raises(BadPacket, match="foreign"):
        CODEC.decode(HeartbeatCodec("test", KEY).encode(hb()))


@given(st.binary(max_size=300))
def test_garbage_never_decodes(data: bytes) -> None:
    with pytest.raises(BadPacket):
        CODEC.decode(data)


def test_oversized_payloads_and_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        CODEC.encode(Heartbeat("n1", 1, 1, 1, 1, payload={"x": "y" * 2000}))
    with pytest.raises(ValueError, match="at least 16 bytes"):
        HeartbeatCodec("prod", b"short")


def test_replays_and_old_incarnations_are_dropped_per_link() -> None:
    guard = ReplayGuard()
    assert guard.accept(hb(seq=1)) is None
    assert guard.accept(hb(seq=1)) == "replayed"
    assert guard.accept(hb(seq=1, link=1)) is None  # the same packet on the other link
    assert guard.accept(hb(seq=2)) is None
    assert guard.accept(hb(seq=1, incarnation=6)) == "stale"
    assert guard.accept(hb(seq=1, incarnation=8)) is None  # a restart starts again at 1
