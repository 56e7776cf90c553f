"""Heartbeats on the wire: an authenticated UDP packet format, replay guard and sockets."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import select
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAGIC = b"PYHB"
VERSION = 1
TAG_BYTES = 32
MAX_PACKET = 1400
"""Stay under a typical MTU: one datagram, never fragmented."""
_HEAD = struct.Struct("!4sBBHQQQQ")  # magic, version, link, payload length, incarnation,
#                                     sequence, term, epoch


class BadPacket(Exception):
    """A datagram that is not a valid heartbeat of this cluster; `reason` is a counter name."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True)
class Heartbeat:
    """One node saying "I am alive" on one link, with what it knows of the cluster."""

    node: str
    incarnation: int
    """Rises at every start of the node's cluster server (persisted), so a restart shows."""
    sequence: int
    """Rises with every packet of one incarnation."""
    term: int
    epoch: int
    link: int = 0
    payload: Mapping[str, Any] = field(default_factory=dict)
    """Small facts for the election and the coordinator (JSON; stays under MAX_PACKET)."""


class HeartbeatCodec:
    """Encodes and checks heartbeats of one cluster under its key (HMAC-SHA256).

    Invariant: decode returns a Heartbeat only for a packet whose tag verifies under the
    key and whose cluster name is ours; anything else raises BadPacket.
    """

    def __init__(self, cluster: str, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the cluster key must be at least 16 bytes")
        self.cluster = cluster
        self._key = key

    def encode(self, hb: Heartbeat) -> bytes:
        """The datagram for `hb`; ValueError if it would not fit in one packet."""
        payload = json.dumps(dict(hb.payload), separators=(",", ":")).encode()
        names = _name(self.cluster) + _name(hb.node)
        body = _HEAD.pack(MAGIC, VERSION, hb.link, len(payload), hb.incarnation,
                          hb.sequence, hb.term, hb.epoch) + names + payload
        packet = body + hmac.new(self._key, body, hashlib.sha256).digest()
        if len(packet) > MAX_PACKET:
            raise ValueError(f"heartbeat of {len(packet)} bytes exceeds {MAX_PACKET}")
        return packet

    def decode(self, packet: bytes) -> Heartbeat:
        """Check and parse a datagram; BadPacket says why it was refused."""
        if len(packet) < _HEAD.size + 2 + TAG_BYTES or packet[:4] != MAGIC:
            raise BadPacket("malformed", "not a pyha heartbeat")
        body, tag = packet[:-TAG_BYTES], packet[-TAG_BYTES:]
        if not hmac.compare_digest(tag, hmac.new(self._key, body, hashlib.sha256).digest()):
            raise BadPacket("forged", "authentication tag does not verify")
        magic, version, link, length, incarnation, sequence, term, epoch = \
            _HEAD.unpack_from(body)
        del magic
        if version != VERSION:
            raise BadPacket("malformed", f"version {version}")
        cluster, offset = _read_name(body, _HEAD.size)
        node, offset = _read_name(body, offset)
        if cluster != self.cluster:
            raise BadPacket("foreign", f"cluster {cluster!r}")
        if len(body) - offset != length:
            raise BadPacket("malformed", "payload length")
        try:
            payload = json.loads(body[offset:]) if length else {}
        except ValueError:
            raise BadPacket("malformed", "payload is not JSON") from None
        if not isinstance(payload, dict):
            raise BadPacket("malformed", "payload is not an object")
        return Heartbeat(node, incarnation, sequence, term, epoch, link, payload)


def _name(text: str) -> bytes:
    raw = text.encode()
    if not raw or len(raw) > 255:
        raise ValueError(f"name {text!r} must be 1 to 255 bytes")
    return bytes([len(raw)]) + raw


def _read_name(body: bytes, offset: int) -> tuple[str, int]:
    if offset >= len(body):
        raise BadPacket("malformed", "truncated")
    length = body[offset]
    end = offset + 1 + length
    if end > len(body):
        raise BadPacket("malformed", "truncated name")
    try:
        return body[offset + 1:end].decode(), end
    except UnicodeDecodeError:
        raise BadPacket("malformed", "name is not UTF-8") from None


class ReplayGuard:
    """Drops stale and replayed heartbeats.

    Invariant: per (node, link), an accepted packet has a higher incarnation than any
    accepted before, or the same incarnation and a higher sequence; an old incarnation
    (a recording of an earlier boot) and a repeated sequence are refused.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[str, int], tuple[int, int]] = {}

    def accept(self, hb: Heartbeat) -> str | None:
        """None when `hb` is fresh (and remember it); else the reason to drop it."""
        key = (hb.node, hb.link)
        last = self._seen.get(key)
        if last is not None:
            incarnation, sequence = last
            if hb.incarnation < incarnation:
                return "stale"
            if hb.incarnation == incarnation and hb.sequence <= sequence:
                return "replayed"
        self._seen[key] = (hb.incarnation, hb.sequence)
        return None


Receiver = Callable[[Heartbeat, float], None]


class HeartbeatEndpoint:
    """One UDP socket per link: sends our heartbeats, receives and checks the peers'.

    Invariant: `on_heartbeat` sees only authenticated, fresh heartbeats of other nodes;
    every dropped datagram is counted under its reason in `dropped`.
    """

    def __init__(self, codec: HeartbeatCodec, node: str, bind: list[tuple[str, int]],
                 on_heartbeat: Receiver, now: Callable[[], float]) -> None:
        self.codec = codec
        self.node = node
        self.dropped: Counter[str] = Counter()
        self.received = 0
        self._guard = ReplayGuard()
        self._on_heartbeat = on_heartbeat
        self._now = now
        self._log = logging.getLogger("pyha.heartbeat")
        self._sockets = [_udp_socket(address) for address in bind]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def send(self, hb: Heartbeat, peers: list[list[tuple[str, int]]]) -> int:
        """Send `hb` on every link to every peer (peers[i] are the link-i addresses)."""
        sent = 0
        for link, sock in enumerate(self._sockets):
            packet = self.codec.encode(_on_link(hb, link))
            for addresses in peers:
                if link < len(addresses):
                    try:
                        sock.sendto(packet, addresses[link])
                        sent += 1
                    except OSError as exc:  # a down link must not stop the others
                        self._log.debug("link %d to %s: %s", link, addresses[link], exc)
        return sent

    def start(self) -> None:
        """Receive in a background thread until close()."""
        self._thread = threading.Thread(target=self._loop, name="pyha heartbeat",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop receiving and close the sockets."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        for sock in self._sockets:
            sock.close()

    def handle(self, packet: bytes) -> Heartbeat | None:
        """Check one datagram; the heartbeat if it is valid, fresh and not our own."""
        try:
            hb = self.codec.decode(packet)
        except BadPacket as exc:
            self.dropped[exc.reason] += 1
            return None
        if hb.node == self.node:
            self.dropped["own"] += 1
            return None
        reason = self._guard.accept(hb)
        if reason:
            self.dropped[reason] += 1
            return None
        self.received += 1
        return hb

    def _loop(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select(self._sockets, [], [], 0.2)
            for sock in readable:
                try:
                    packet = sock.recv(MAX_PACKET + 1)
                except OSError:
                    continue
                hb = self.handle(packet)
                if hb is not None:
                    self._on_heartbeat(hb, self._now())


def _on_link(hb: Heartbeat, link: int) -> Heartbeat:
    return Heartbeat(hb.node, hb.incarnation, hb.sequence, hb.term, hb.epoch, link,
                     hb.payload)


def _udp_socket(address: tuple[str, int]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.setblocking(False)
    return sock
