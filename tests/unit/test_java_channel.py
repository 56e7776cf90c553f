"""The JVM host channel: frames, their limits, and the server's multiplexing connection."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from typing import Any

import pytest

from pyha.jvm import channel
from pyha.jvm.channel import (
    ChannelClosed,
    ChannelError,
    Connection,
    decode,
    encode,
    peer_uid,
    read_frame,
    write_frame,
)

WAIT = 5.0
"""Seconds a test waits for the connection's reader thread; it answers in microseconds."""


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    yield left, right
    left.close()
    right.close()


def test_a_frame_is_a_big_endian_length_then_json() -> None:
    frame = encode({"op": "ping", "id": 7})
    (length,) = struct.unpack(">I", frame[:4])
    assert length == len(frame) - 4
    assert decode(frame[4:]) == {"op": "ping", "id": 7}


def test_non_ascii_text_survives() -> None:
    assert decode(encode({"message": "Größe — ok"})[4:]) == {"message": "Größe — ok"}


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"{not json", b"\xff\xfe"])
def test_only_json_objects_are_messages(body: bytes) -> None:
    with pytest.raises(ChannelError):
        decode(body)


def test_an_oversized_message_is_refused_on_both_ends(
    monkeypatch: pytest.MonkeyPatch, pair: tuple[socket.socket, socket.socket]
) -> None:
    monkeypatch.setattr(channel, "MAX_FRAME", 32)
    with pytest.raises(ChannelError, match="exceeds"):
        encode({"message": "x" * 64})
    left, right = pair
    left.sendall(struct.pack(">I", 33) + b"{}")
    with pytest.raises(ChannelError, match="exceeds"):
        read_frame(right)


def test_frames_are_read_one_by_one_then_eof(pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    write_frame(left, {"n": 1})
    write_frame(left, {"n": 2})
    left.shutdown(socket.SHUT_WR)
    assert read_frame(right) == {"n": 1}
    assert read_frame(right) == {"n": 2}
    assert read_frame(right) is None


def test_eof_inside_a_frame_is_an_error(pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    left.sendall(encode({"n": 1})[:6])
    left.shutdown(socket.SHUT_WR)
    with pytest.raises(ChannelClosed, match="inside a frame"):
        read_frame(right)


def test_peer_uid_is_our_own_user(pair: tuple[socket.socket, socket.socket]) -> None:
    assert peer_uid(pair[0]) == os.getuid()


# ---------------------------------------------------------------- Connection


def _answer(peer: socket.socket, **reply: Any) -> dict[str, Any]:
    """Read one request on the host's end and answer it with `reply`; the request."""
    request = read_frame(peer)
    assert request is not None
    write_frame(peer, {**reply, "id": request["id"]})
    return request


def test_replies_find_their_requests_and_logs_their_sinks(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, host = pair
    connection = Connection(ours)
    logs: list[dict[str, Any]] = []
    first = connection.send({"op": "invoke"}, logs.append)
    second = connection.send({"op": "ping"})
    request_one, request_two = read_frame(host), read_frame(host)
    assert request_one is not None and request_two is not None
    assert (request_one["id"], request_two["id"]) == (first.id, second.id)
    write_frame(host, {"id": second.id, "ok": True, "pong": 1})
    write_frame(host, {"id": first.id, "log": {"level": "info", "message": "hi"}})
    write_frame(host, {"id": first.id, "ok": True, "code": 0})
    assert first.done.wait(WAIT) and second.done.wait(WAIT)
    assert second.reply == {"id": second.id, "ok": True, "pong": 1}
    assert first.reply == {"id": first.id, "ok": True, "code": 0}
    assert logs == [{"level": "info", "message": "hi"}]
    connection.close()


def test_log_lines_of_answered_requests_go_to_the_stray_sink(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, host = pair
    connection = Connection(ours)
    strays: list[dict[str, Any]] = []
    connection.on_stray_log = strays.append
    pending = connection.send({"op": "invoke"})
    _answer(host, ok=True, code=7)
    write_frame(host, {"id": pending.id, "log": {"level": "warning", "message": "late"}})
    probe = connection.send({"op": "ping"})
    _answer(host, ok=True)
    assert probe.done.wait(WAIT)
    assert strays == [{"level": "warning", "message": "late"}]
    connection.close()


def test_a_closed_channel_fails_every_pending_request(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, host = pair
    connection = Connection(ours)
    pending = connection.send({"op": "invoke"})
    assert read_frame(host) is not None  # unread data would make close() send a reset
    host.close()
    assert pending.done.wait(WAIT)
    assert pending.reply is None
    assert pending.failure == "the JVM host closed the channel"
    assert connection.closed == "the JVM host closed the channel"
    with pytest.raises(ChannelClosed):
        connection.send({"op": "ping"})


def test_garbage_from_the_host_breaks_the_channel(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, host = pair
    connection = Connection(ours)
    pending = connection.send({"op": "ping"})
    body = b"[]"
    host.sendall(struct.pack(">I", len(body)) + body)
    assert pending.done.wait(WAIT)
    assert pending.failure is not None
    assert pending.failure.startswith("the channel to the JVM host broke: a message must be")
    connection.close()


def test_close_fails_pending_requests_with_the_reason(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    connection = Connection(pair[0])
    pending = connection.send({"op": "invoke"})
    connection.close("the JVM host was killed")
    assert pending.done.is_set()
    assert pending.failure == "the JVM host was killed"
