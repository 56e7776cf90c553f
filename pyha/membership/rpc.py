"""Node-to-node calls: request and reply over TCP, authenticated with the cluster key.

The wire, for each connection:

1. Handshake, in plain length-prefixed JSON frames. The client sends its node name and
   a random nonce; the server answers with its name, its own nonce and a proof (an
   HMAC under the cluster key over both nonces and both names); the client checks it
   and sends its own proof. A peer without the key is refused before any method runs.
2. Sealed frames: length (4 bytes), sequence (8 bytes), JSON body, HMAC-SHA256 tag over
   (direction, client nonce, server nonce, sequence, body). The sequence rises by one
   per frame and direction, so a replay within a connection is refused; the nonces
   differ per connection, so a frame recorded on another connection never verifies.

Bodies are JSON objects (never pickle) of at most MAX_BODY bytes. A request is
`{"id", "method", "params"}`; a reply `{"id", "result"}` or `{"id", "error": {"type",
"message"}}`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import select
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pyha.errors import PyhaError

__all__ = [
    "MAX_BODY",
    "BadFrame",
    "Handler",
    "PeerError",
    "PeerTimeout",
    "PeerUnreachable",
    "RpcClient",
    "RpcError",
    "RpcServer",
    "Session",
    "client_hello",
    "client_proof",
    "server_challenge",
    "server_verify",
]

PROTOCOL = "pyha-rpc/1"
MAX_BODY = 1024 * 1024
"""Largest JSON body of a sealed frame; a bigger announced frame ends the connection."""
MAX_PLAIN = 4096
"""Largest handshake frame."""
NONCE_BYTES = 32
TAG_BYTES = 32
DEFAULT_MAX_CONNECTIONS = 64
HANDSHAKE_TIMEOUT = 5.0
"""Seconds a new connection has to prove the key before the server drops it."""
CLOSE_TIMEOUT = 5.0
"""Seconds close() waits for handlers that are still running."""

_LENGTH = struct.Struct("!I")
_SEQ = struct.Struct("!Q")
_CLIENT_TO_SERVER = b"c>s"
_SERVER_TO_CLIENT = b"s>c"
_LOG = logging.getLogger("pyha.rpc")

Handler = Callable[[dict[str, Any], str], dict[str, Any]]
"""A method: gets the params and the caller's node name, returns a JSON-able dict."""


# --- errors ---------------------------------------------------------------------------


class RpcError(PyhaError):
    """A node-to-node call failed; `peer` names the node (or address) called."""

    def __init__(self, peer: str, message: str) -> None:
        self.peer = peer
        super().__init__(f"{peer}: {message}")


class PeerError(RpcError):
    """The peer ran the method and it raised; `remote_type` is the exception's class name."""

    def __init__(self, peer: str, method: str, remote_type: str, message: str) -> None:
        self.method = method
        self.remote_type = remote_type
        self.remote_message = message
        super().__init__(peer, f"{method} failed: {remote_type}: {message}")


class PeerUnreachable(RpcError):
    """No reply: connection refused or lost, key not proven, or the call timed out.

    `request_sent` is True when the request had gone out, so the method may have run.
    """

    def __init__(self, peer: str, message: str, *, request_sent: bool = False) -> None:
        self.request_sent = request_sent
        super().__init__(peer, message)


class PeerTimeout(PeerUnreachable):
    """The call's timeout passed before the reply arrived (a slow, paused or lost peer)."""


class BadFrame(PyhaError):
    """A frame that must end its connection; `reason` is a counter name."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


# --- frames and sessions (pure) -------------------------------------------------------


def encode_plain(body: Mapping[str, Any]) -> bytes:
    """A handshake frame: length and JSON, no tag."""
    data = _dump(body)
    if len(data) > MAX_PLAIN:
        raise ValueError(f"handshake frame of {len(data)} bytes exceeds {MAX_PLAIN}")
    return _LENGTH.pack(len(data)) + data


def decode_plain(payload: bytes) -> dict[str, Any]:
    """The body of a handshake frame (without its length prefix)."""
    return _load(payload)


@dataclass
class Session:
    """The state of one authenticated connection, as one of its two sides sees it.

    Invariant: `open` returns a body only for a frame sealed under the key by the other
    side of this very connection (same nonces, opposite direction) carrying the next
    sequence number; anything else raises BadFrame, and the connection must be dropped.
    """

    key: bytes
    client_nonce: bytes
    server_nonce: bytes
    is_client: bool
    sent: int = 0
    received: int = 0

    def seal(self, body: Mapping[str, Any]) -> bytes:
        """The next frame carrying `body`; ValueError if it is not JSON or too large."""
        data = _dump(body)
        if len(data) > MAX_BODY:
            raise ValueError(f"body of {len(data)} bytes exceeds {MAX_BODY}")
        seq = _SEQ.pack(self.sent + 1)
        direction = _CLIENT_TO_SERVER if self.is_client else _SERVER_TO_CLIENT
        payload = seq + data + self._tag(direction, seq, data)
        self.sent += 1
        return _LENGTH.pack(len(payload)) + payload

    def open(self, payload: bytes) -> dict[str, Any]:
        """Check and parse one frame (without its length prefix)."""
        if len(payload) < _SEQ.size + TAG_BYTES:
            raise BadFrame("malformed", "frame too short")
        seq, data, tag = payload[:_SEQ.size], payload[_SEQ.size:-TAG_BYTES], payload[-TAG_BYTES:]
        direction = _SERVER_TO_CLIENT if self.is_client else _CLIENT_TO_SERVER
        if not hmac.compare_digest(tag, self._tag(direction, seq, data)):
            raise BadFrame("forged", "authentication tag does not verify")
        (number,) = _SEQ.unpack(seq)
        if number <= self.received:
            raise BadFrame("replayed", f"sequence {number} after {self.received}")
        if number != self.received + 1:
            raise BadFrame("sequence", f"sequence {number}, expected {self.received + 1}")
        self.received = number
        return _load(data)

    def _tag(self, direction: bytes, seq: bytes, data: bytes) -> bytes:
        message = direction + self.client_nonce + self.server_nonce + seq + data
        return hmac.new(self.key, message, hashlib.sha256).digest()


def max_payload() -> int:
    """The largest sealed frame payload (sequence, body, tag) a reader accepts."""
    return _SEQ.size + MAX_BODY + TAG_BYTES


# --- the handshake (pure) -------------------------------------------------------------


@dataclass(frozen=True)
class Pending:
    """The server's half of a handshake, between its challenge and the client's proof."""

    client: str
    client_nonce: bytes
    server: str
    server_nonce: bytes


def client_hello(node: str, nonce: bytes) -> dict[str, Any]:
    """The client's first frame: who it is and its nonce."""
    _check_name(node)
    return {"protocol": PROTOCOL, "node": node, "nonce": nonce.hex()}


def server_challenge(key: bytes, node: str, hello: Mapping[str, Any],
                     nonce: bytes) -> tuple[dict[str, Any], Pending]:
    """The server's answer to a hello: its name, nonce and proof of the key."""
    if hello.get("protocol") != PROTOCOL:
        raise BadFrame("protocol", f"hello speaks {hello.get('protocol')!r}")
    pending = Pending(_field_name(hello), _field_nonce(hello, "nonce"), node, nonce)
    proof = _proof(key, b"server", pending)
    return {"protocol": PROTOCOL, "node": node, "nonce": nonce.hex(),
            "proof": proof.hex()}, pending


def client_proof(key: bytes, node: str, nonce: bytes, challenge: Mapping[str, Any],
                 expect: str | None = None) -> tuple[dict[str, Any], Session, str]:
    """Check the server's challenge; the client's proof, its session and the server's name."""
    refused = challenge.get("refused")
    if isinstance(refused, str):
        raise BadFrame("refused", refused)
    if challenge.get("protocol") != PROTOCOL:
        raise BadFrame("protocol", f"peer speaks {challenge.get('protocol')!r}")
    server = _field_name(challenge)
    pending = Pending(node, nonce, server, _field_nonce(challenge, "nonce"))
    if not hmac.compare_digest(_field_nonce(challenge, "proof"), _proof(key, b"server", pending)):
        raise BadFrame("auth", "the peer did not prove the cluster key")
    if expect is not None and server != expect:
        raise BadFrame("wrong-node", f"expected node {expect!r}, the peer is {server!r}")
    session = Session(key, nonce, pending.server_nonce, is_client=True)
    return {"proof": _proof(key, b"client", pending).hex()}, session, server


def server_verify(key: bytes, pending: Pending, reply: Mapping[str, Any]) -> Session:
    """Check the client's proof; the server's session of the connection."""
    if not hmac.compare_digest(_field_nonce(reply, "proof"), _proof(key, b"client", pending)):
        raise BadFrame("auth", f"{pending.client!r} did not prove the cluster key")
    return Session(key, pending.client_nonce, pending.server_nonce, is_client=False)


def _proof(key: bytes, role: bytes, pending: Pending) -> bytes:
    message = b"\0".join([PROTOCOL.encode(), role, pending.client_nonce, pending.server_nonce,
                          _length_prefixed(pending.client), _length_prefixed(pending.server)])
    return hmac.new(key, message, hashlib.sha256).digest()


def _length_prefixed(name: str) -> bytes:
    raw = name.encode()
    return _LENGTH.pack(len(raw)) + raw


def _check_name(node: str) -> None:
    if not isinstance(node, str) or not 0 < len(node.encode()) <= 255:
        raise ValueError(f"node name {node!r} must be 1 to 255 bytes")


def _field_name(body: Mapping[str, Any]) -> str:
    node = body.get("node")
    if not isinstance(node, str) or not 0 < len(node.encode()) <= 255:
        raise BadFrame("malformed", "node name missing or invalid")
    return node


def _field_nonce(body: Mapping[str, Any], name: str) -> bytes:
    text = body.get(name)
    try:
        value = bytes.fromhex(text) if isinstance(text, str) else b""
    except ValueError:
        value = b""
    if len(value) != NONCE_BYTES:
        raise BadFrame("malformed", f"{name} missing or not {NONCE_BYTES} hex bytes")
    return value


def _dump(body: Mapping[str, Any]) -> bytes:
    try:
        return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not JSON: {exc}") from None


def _load(data: bytes) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        raise BadFrame("malformed", "body is not JSON") from None
    if not isinstance(body, dict):
        raise BadFrame("malformed", "body is not a JSON object")
    return body


# --- sockets --------------------------------------------------------------------------


def read_payload(sock: socket.socket, limit: int, deadline: float | None = None) -> bytes:
    """Read one frame's payload; BadFrame if the peer closed or announces more than `limit`.

    With a `deadline` (monotonic), every wait is bounded by it (TimeoutError after).
    """
    (length,) = _LENGTH.unpack(_read_exact(sock, _LENGTH.size, deadline))
    if length > limit:
        raise BadFrame("oversize", f"frame of {length} bytes exceeds {limit}")
    return _read_exact(sock, length, deadline)


def _read_exact(sock: socket.socket, size: int, deadline: float | None) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        _bound(sock, deadline)
        chunk = sock.recv(min(size - len(chunks), 1 << 16))
        if not chunk:
            raise BadFrame("closed", "the peer closed the connection")
        chunks += chunk
    return bytes(chunks)


def _send(sock: socket.socket, data: bytes, deadline: float | None) -> None:
    _bound(sock, deadline)
    sock.sendall(data)


def _bound(sock: socket.socket, deadline: float | None) -> None:
    if deadline is None:
        return
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    sock.settimeout(left)


def _tune(sock: socket.socket) -> None:
    """Small frames go out at once; a peer that vanished without a word is noticed."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


# --- the server -----------------------------------------------------------------------


class RpcServer:
    """Serves methods to the cluster's other nodes, one thread per connection.

    Invariant: a handler runs only for a request that came, in sequence, over a
    connection whose peer proved the cluster key; at most `max_connections` are open
    at once (more are refused with a "busy" answer); after close() the port is closed,
    every connection is shut, and every thread has ended (a handler still running after
    `close_timeout` is named in a warning; its thread ends when the handler returns).
    `refused` counts dropped connections by reason.
    """

    def __init__(self, key: bytes, node: str, bind: tuple[str, int],
                 handlers: Mapping[str, Handler], *,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 handshake_timeout: float = HANDSHAKE_TIMEOUT,
                 close_timeout: float = CLOSE_TIMEOUT) -> None:
        _check_key(key)
        _check_name(node)
        self.node = node
        self.refused: Counter[str] = Counter()
        self._key = key
        self._handlers = dict(handlers)
        self._max = max_connections
        self._handshake_timeout = handshake_timeout
        self._close_timeout = close_timeout
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._closing = False
        self._listener = socket.create_server(bind, backlog=max(16, max_connections))
        self._accepter: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) it listens on; the port the kernel chose when bound to 0."""
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Accept connections in a background thread until close()."""
        self._accepter = threading.Thread(target=self._accept_loop, daemon=True,
                                          name=f"pyha rpc {self.node}")
        self._accepter.start()

    def close(self) -> None:
        """Stop accepting, shut every connection, and wait for the threads to end."""
        with self._lock:
            self._closing = True
            connections = dict(self._connections)
        _shut(self._listener)  # shutdown wakes the accept() blocked in the other thread
        if self._accepter is not None:
            self._accepter.join(self._close_timeout)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        until = time.monotonic() + self._close_timeout
        for thread in connections.values():
            thread.join(max(0.0, until - time.monotonic()))
        busy = [t.name for t in connections.values() if t.is_alive()]
        if busy:
            _LOG.warning("rpc server %s closed with handlers still running: %s",
                         self.node, ", ".join(busy))

    def connections(self) -> int:
        """How many connections are open now."""
        with self._lock:
            return len(self._connections)

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, peer = self._listener.accept()
            except OSError:
                return  # closed
            self._admit(sock, f"{peer[0]}:{peer[1]}")

    def _admit(self, sock: socket.socket, peer: str) -> None:
        with self._lock:
            full = self._closing or len(self._connections) >= self._max
            if not full:
                thread = threading.Thread(target=self._serve, args=(sock, peer), daemon=True,
                                          name=f"pyha rpc {self.node} from {peer}")
                self._connections[sock] = thread
        if full:
            reason = "closing" if self._closing else "busy"
            self._count(reason)
            self._refuse(sock, f"{self.node} is {reason}")
            return
        thread.start()

    def _refuse(self, sock: socket.socket, why: str) -> None:
        with contextlib.suppress(OSError):
            sock.settimeout(0.5)
            sock.sendall(encode_plain({"refused": why}))
        _shut(sock)

    def _serve(self, sock: socket.socket, peer: str) -> None:
        try:
            _tune(sock)
            session, caller = self._handshake(sock)
            sock.settimeout(None)  # a persistent connection may idle between calls
            while True:
                request = session.open(read_payload(sock, max_payload()))
                sock.sendall(self._seal_reply(session, self._dispatch(request, caller)))
        except BadFrame as exc:
            if exc.reason != "closed":
                self._count(exc.reason)
                _LOG.warning("rpc %s: dropped the connection from %s: %s", self.node, peer, exc)
        except TimeoutError:
            self._count("handshake-timeout")
            _LOG.warning("rpc %s: %s did not finish the handshake in time", self.node, peer)
        except OSError as exc:
            _LOG.debug("rpc %s: connection from %s ended: %s", self.node, peer, exc)
        finally:
            with self._lock:
                self._connections.pop(sock, None)
            _shut(sock)

    def _count(self, reason: str) -> None:
        with self._lock:
            self.refused[reason] += 1

    def _handshake(self, sock: socket.socket) -> tuple[Session, str]:
        deadline = time.monotonic() + self._handshake_timeout
        hello = decode_plain(read_payload(sock, MAX_PLAIN, deadline))
        challenge, pending = server_challenge(self._key, self.node, hello,
                                              secrets.token_bytes(NONCE_BYTES))
        _send(sock, encode_plain(challenge), deadline)
        reply = decode_plain(read_payload(sock, MAX_PLAIN, deadline))
        return server_verify(self._key, pending, reply), pending.client

    def _dispatch(self, request: Mapping[str, Any], caller: str) -> dict[str, Any]:
        rid, method, params = request.get("id"), request.get("method"), request.get("params")
        if not isinstance(method, str) or not isinstance(params, dict):
            return _error_reply(rid, "BadRequest", "a request needs a method name and params")
        handler = self._handlers.get(method)
        if handler is None:
            return _error_reply(rid, "UnknownMethod", f"{self.node} has no method {method!r}")
        try:
            result = handler(params, caller)
        except Exception as exc:  # a failing handler answers the caller; the server goes on
            _log_failure(self.node, method, caller, exc)
            return _error_reply(rid, type(exc).__name__, str(exc))
        if not isinstance(result, dict):
            return _error_reply(rid, "TypeError",
                                f"{method} returned {type(result).__name__}, not a dict")
        return {"id": rid, "result": result}

    @staticmethod
    def _seal_reply(session: Session, reply: Mapping[str, Any]) -> bytes:
        try:
            return session.seal(reply)
        except ValueError as exc:  # a result that is not JSON or too large
            return session.seal(_error_reply(reply.get("id"), "BadReply", str(exc)))


def _error_reply(rid: Any, kind: str, message: str) -> dict[str, Any]:
    return {"id": rid, "error": {"type": kind, "message": message}}


def _log_failure(node: str, method: str, caller: str, exc: Exception) -> None:
    if isinstance(exc, PyhaError):
        _LOG.warning("rpc %s: %s from %s failed: %s", node, method, caller, exc)
    else:  # not raised on purpose: keep the traceback
        _LOG.exception("rpc %s: %s from %s failed", node, method, caller)


def _check_key(key: bytes) -> None:
    if len(key) < 16:
        raise ValueError("the cluster key must be at least 16 bytes")


# --- the client -----------------------------------------------------------------------


@dataclass
class _Connection:
    sock: socket.socket
    session: Session
    server: str


class RpcClient:
    """Calls one peer's methods over one persistent, authenticated connection.

    Invariant: at most one call is on the wire at a time (threads take turns, and the
    wait counts against each call's timeout); a connection that failed, timed out or
    was refused is closed at once and the next call opens a new one, so a late reply
    can never be taken for the answer to a later call.
    """

    def __init__(self, key: bytes, node: str, address: tuple[str, int],
                 timeout: float = 5.0, *, peer: str | None = None) -> None:
        _check_key(key)
        _check_name(node)
        self.node = node
        self.address = address
        self.timeout = timeout
        self.peer = peer
        """The node expected at `address`; a different node there is refused."""
        self._key = key
        self._lock = threading.Lock()
        self._conn: _Connection | None = None

    @property
    def name(self) -> str:
        """The peer as errors name it."""
        return self.peer or f"{self.address[0]}:{self.address[1]}"

    def call(self, method: str, params: Mapping[str, Any] | None = None,
             timeout: float | None = None) -> dict[str, Any]:
        """Run `method` on the peer and return its result.

        Raises PeerError when the method raised there, PeerTimeout when no reply came
        within `timeout` (the client's default when None), PeerUnreachable when the
        peer could not be reached or did not prove the key.
        """
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        if not self._lock.acquire(timeout=max(0.0, timeout)):
            raise PeerTimeout(self.name, f"{method}: timed out after {timeout:g}s waiting "
                              "for an earlier call to the same peer")
        try:
            return self._call(method, dict(params or {}), deadline, timeout)
        finally:
            self._lock.release()

    def close(self) -> None:
        """Close the connection (the next call opens a new one)."""
        with self._lock:
            self._drop()

    def _call(self, method: str, params: dict[str, Any], deadline: float,
              timeout: float) -> dict[str, Any]:
        sent = False
        try:
            conn = self._connection(deadline)
            rid = conn.session.sent + 1
            _send(conn.sock, conn.session.seal({"id": rid, "method": method,
                                                "params": params}), deadline)
            sent = True
            reply = conn.session.open(read_payload(conn.sock, max_payload(), deadline))
        except (OSError, BadFrame) as exc:
            self._drop()
            raise self._unreachable(method, exc, sent, timeout) from None
        if reply.get("id") != rid:
            self._drop()
            raise PeerUnreachable(self.name, f"{method}: reply to another request",
                                  request_sent=True)
        return self._result(method, reply)

    def _connection(self, deadline: float) -> _Connection:
        if self._conn is not None and _stale(self._conn.sock):
            self._drop()  # the peer closed it while idle (restart, close): reconnect
        if self._conn is None:
            self._conn = self._connect(deadline)
        return self._conn

    def _connect(self, deadline: float) -> _Connection:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        sock = socket.create_connection(self.address, timeout=left)
        try:
            _tune(sock)
            nonce = secrets.token_bytes(NONCE_BYTES)
            _send(sock, encode_plain(client_hello(self.node, nonce)), deadline)
            challenge = decode_plain(read_payload(sock, MAX_PLAIN, deadline))
            proof, session, server = client_proof(self._key, self.node, nonce, challenge,
                                                  self.peer)
            _send(sock, encode_plain(proof), deadline)
        except BaseException:
            _shut(sock)
            raise
        return _Connection(sock, session, server)

    def _drop(self) -> None:
        if self._conn is not None:
            _shut(self._conn.sock)
            self._conn = None

    def _unreachable(self, method: str, exc: Exception, sent: bool,
                     timeout: float) -> PeerUnreachable:
        if isinstance(exc, TimeoutError):
            return PeerTimeout(self.name, f"{method}: no reply within {timeout:g}s",
                               request_sent=sent)
        return PeerUnreachable(self.name, f"{method}: {_describe(exc)}", request_sent=sent)

    def _result(self, method: str, reply: Mapping[str, Any]) -> dict[str, Any]:
        error = reply.get("error")
        if isinstance(error, dict):
            raise PeerError(self.name, method, str(error.get("type", "Error")),
                            str(error.get("message", "")))
        result = reply.get("result")
        if not isinstance(result, dict):
            raise PeerError(self.name, method, "BadReply", "the reply has no result")
        return result


def _stale(sock: socket.socket) -> bool:
    """True if an idle connection has something to read: the peer's close, or junk."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _describe(exc: Exception) -> str:
    if isinstance(exc, BadFrame):
        if exc.reason == "closed":
            return "the peer closed the connection (a wrong cluster key, or it stopped)"
        return str(exc)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
