"""The channel between a cluster server and its JVM host: length-prefixed JSON, Unix socket."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyha.errors import PyhaError

__all__ = [
    "MAX_FRAME",
    "ChannelClosed",
    "ChannelError",
    "Connection",
    "Pending",
    "decode",
    "encode",
    "peer_uid",
    "read_frame",
    "write_frame",
]

MAX_FRAME = 16 * 1024 * 1024
"""Bytes a message may take; anything larger is a broken or hostile peer."""
_HEADER = struct.Struct(">I")
_LOG = logging.getLogger("pyha.jvm")

Message = dict[str, Any]
LogSink = Callable[[Message], None]


class ChannelError(PyhaError):
    """The peer sent something that is not a channel message, or the socket failed."""


class ChannelClosed(ChannelError):
    """The peer closed the channel (or died); pending requests will get no answer."""


def encode(message: Message) -> bytes:
    """One frame: a 4-byte big-endian length, then the message as UTF-8 JSON."""
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    if len(body) > MAX_FRAME:
        raise ChannelError(f"message of {len(body)} bytes exceeds the {MAX_FRAME}-byte limit")
    return _HEADER.pack(len(body)) + body


def decode(body: bytes) -> Message:
    """The message in a frame's body; ChannelError unless it is a JSON object."""
    try:
        message = json.loads(body.decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise ChannelError(f"not a JSON message: {exc}") from None
    if not isinstance(message, dict):
        raise ChannelError(f"a message must be a JSON object, got {type(message).__name__}")
    return message


def read_frame(sock: socket.socket) -> Message | None:
    """The next message, or None if the peer closed the channel between messages."""
    header = _read_exactly(sock, _HEADER.size, allow_eof=True)
    if header is None:
        return None
    (length,) = _HEADER.unpack(header)
    if length > MAX_FRAME:
        raise ChannelError(f"frame of {length} bytes exceeds the {MAX_FRAME}-byte limit")
    body = _read_exactly(sock, length, allow_eof=False)
    assert body is not None  # allow_eof=False raises instead
    return decode(body)


def write_frame(sock: socket.socket, message: Message) -> None:
    """Send one message; the caller serialises writers."""
    try:
        sock.sendall(encode(message))
    except OSError as exc:
        raise ChannelClosed(f"cannot send: {exc}") from None


def _read_exactly(sock: socket.socket, size: int, *, allow_eof: bool) -> bytes | None:
    chunks: list[bytes] = []
    got = 0
    while got < size:
        try:
            chunk = sock.recv(min(size - got, 1 << 20))
        except OSError as exc:
            raise ChannelClosed(f"cannot receive: {exc}") from None
        if not chunk:
            if allow_eof and got == 0:
                return None
            raise ChannelClosed(f"the peer closed the channel inside a frame ({got}/{size} bytes)")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def peer_uid(sock: socket.socket) -> int:
    """The user id of the process at the other end of a Unix socket (SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


@dataclass(eq=False)
class Pending:
    """A request sent and not yet answered; `reply` and `failure` are set once, then `done`."""

    id: int
    on_log: LogSink | None
    done: threading.Event = field(default_factory=threading.Event)
    reply: Message | None = None
    failure: str | None = None


class Connection:
    """The server's end of an authenticated channel: many requests in flight, one reader.

    Invariant: every request gets exactly one outcome: its reply, or a failure once the
    channel closes; log messages for a request go to its sink until its reply arrives.
    """

    def __init__(self, sock: socket.socket, *, name: str = "jvm-host") -> None:
        self._sock = sock
        self._write = threading.Lock()
        self._guard = threading.Lock()
        self._pending: dict[int, Pending] = {}
        self._next_id = 1
        self._closed: str | None = None
        self.on_stray_log: LogSink | None = None
        """Gets log messages of requests already answered (a plugin thread logging late)."""
        self._reader = threading.Thread(
            target=self._read_loop, name=f"pyha {name} reader", daemon=True
        )
        self._reader.start()

    @property
    def closed(self) -> str | None:
        """Why the channel closed, or None while it is open."""
        with self._guard:
            return self._closed

    def send(self, message: Message, on_log: LogSink | None = None) -> Pending:
        """Send a request (an `id` is added); its Pending tells when it is answered."""
        with self._guard:
            if self._closed is not None:
                raise ChannelClosed(self._closed)
            pending = Pending(self._next_id, on_log)
            self._next_id += 1
            self._pending[pending.id] = pending
        try:
            self.notify({**message, "id": pending.id})
        except ChannelError:
            with self._guard:
                self._pending.pop(pending.id, None)
            raise
        return pending

    def notify(self, message: Message) -> None:
        """Send a message that gets no reply (a cancel)."""
        with self._write:
            write_frame(self._sock, message)

    def close(self, reason: str = "closed by the server") -> None:
        """Close the socket; every pending request fails with `reason`."""
        self._fail_all(reason)
        with contextlib.suppress(OSError):  # already closed by the peer
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()

    def _read_loop(self) -> None:
        reason = "the JVM host closed the channel"
        try:
            while (message := read_frame(self._sock)) is not None:
                self._dispatch(message)
        except ChannelError as exc:
            reason = f"the channel to the JVM host broke: {exc}"
        self._fail_all(reason)

    def _dispatch(self, message: Message) -> None:
        ident = message.get("id")
        with self._guard:
            pending = self._pending.get(ident) if isinstance(ident, int) else None
            if pending is not None and "log" not in message:
                del self._pending[pending.id]
        if "log" in message:
            sink = pending.on_log if pending is not None else self.on_stray_log
            if sink is not None:
                try:
                    sink(message["log"])
                except Exception:  # a broken sink must not stop the reader
                    _LOG.exception("cannot log a line of the JVM host")
            return
        if pending is None:
            _LOG.debug("JVM host answered unknown request %r", ident)
            return
        pending.reply = message
        pending.done.set()

    def _fail_all(self, reason: str) -> None:
        with self._guard:
            if self._closed is None:
                self._closed = reason
            pending, self._pending = list(self._pending.values()), {}
        for item in pending:
            item.failure = reason
            item.done.set()
