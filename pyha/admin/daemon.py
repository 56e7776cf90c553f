"""The admin endpoint's transport: a Pyro5 daemon on its own thread whose connections are
mutual TLS with this daemon's own context, checked before Pyro5 reads a byte.

Pyro5 keeps one process-wide TLS context and wraps the listening socket, so a slow client
would hold up the accept loop and two daemons in one process (tests, several nodes)
could not have their own certificates. Here the listening socket stays plain; each
accepted connection does its TLS handshake, with a time limit, in a worker thread. A
client without a certificate signed by the cluster CA never reaches the Pyro5
handshake, and one whose certificate carries no role is refused at that handshake:
in both cases before any method runs.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from typing import Any, Protocol

from Pyro5 import config as pyro_config
from Pyro5 import errors as pyro_errors
from Pyro5 import protocol
from Pyro5.server import Daemon
from Pyro5.socketutil import SocketConnection
from Pyro5.svr_threads import ClientConnectionJob, NoFreeWorkersError, SocketServer_Threadpool

from pyha.admin import wire
from pyha.admin.auth import Identity, identity_from_certificate
from pyha.errors import AdminError, PyhaError

OBJECT_ID = "pyha.admin"
"""The Pyro object id of the admin service (the same on every node)."""
HANDSHAKE_TIMEOUT = 10.0
"""Seconds a new connection has to finish its TLS handshake."""

Refused = Callable[[str, str], None]
"""Told (peer address, reason) of each connection refused before any method ran."""

_log = logging.getLogger("pyha.admin")
_SIZES = struct.Struct("!II")


class CheckedConnection(SocketConnection):  # type: ignore[misc]
    """A client connection that knows who is calling and refuses, before reading the
    payload, a message in a serializer other than those in `wire.ACCEPTED` or larger
    than `wire.MAX_REQUEST`.

    Invariant: Pyro5 reads each message in three parts (6 header bytes, the other 34,
    then the payload); the second part is checked before the third is read.
    """

    def __init__(self, sock: ssl.SSLSocket) -> None:
        super().__init__(sock)
        self.identity: Identity | None = None
        self._part = 0

    def recv(self, size: int) -> bytes:
        """Read `size` bytes; check them when they are the rest of a message header."""
        data: bytes = super().recv(size)
        part, self._part = self._part, (self._part + 1) % 3
        if part == 1:
            _check_header(data)
        return data


def _check_header(rest: bytes) -> None:
    msgtype, serializer = rest[0], rest[1]
    data_size, annotations_size = _SIZES.unpack(rest[6:14])
    if msgtype != protocol.MSG_PING and serializer not in wire.ACCEPTED:
        raise pyro_errors.SecurityError(
            f"serializer id {serializer} refused: pyha's admin endpoint speaks "
            f"{wire.SERIALIZER} (Pyro5 serializer ids {sorted(wire.ACCEPTED)})")
    if data_size + annotations_size > wire.MAX_REQUEST:
        raise pyro_errors.SecurityError(f"request of {data_size + annotations_size} bytes "
                                        f"refused: at most {wire.MAX_REQUEST}")


class _TlsJob(ClientConnectionJob):  # type: ignore[misc]
    """One client connection: the TLS handshake first, then Pyro5's own handling."""

    def __init__(self, raw: socket.socket, address: Any, daemon: _Daemon,
                 tls: ssl.SSLContext, refused: Refused) -> None:
        self.raw = raw
        self.caddr = address
        self.daemon = daemon
        self.tls = tls
        self.refused = refused

    def __call__(self) -> None:
        try:
            sock = self.tls.wrap_socket(self.raw, server_side=True)
        except (OSError, ValueError) as exc:
            self.raw.close()
            self.refused(_peer(self.caddr), f"TLS handshake failed: {_tls_reason(exc)}")
            return
        sock.settimeout(None)  # a console may keep its connection open while idle
        self.csock = CheckedConnection(sock)
        super().__call__()

    def denyConnection(self, reason: str) -> None:
        self.raw.close()
        self.refused(_peer(self.caddr), reason)


class _TlsTransport(SocketServer_Threadpool):  # type: ignore[misc]
    """Pyro5's thread-pool server, accepting plain sockets and handing each to a worker
    that does the TLS handshake (so no client can hold up the accept loop)."""

    tls: ssl.SSLContext
    refused: Refused

    def events(self, eventsockets: list[Any]) -> None:
        """Accept one waiting connection, if any, and give it to a worker."""
        with contextlib.suppress(TimeoutError):
            if not self._selector.select(pyro_config.POLLTIMEOUT):
                return
            raw, address = self.sock.accept()
            if self.shutting_down:
                raw.close()
                return
            raw.settimeout(HANDSHAKE_TIMEOUT)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small requests
            job = _TlsJob(raw, address, self.daemon, self.tls, self.refused)
            try:
                self.pool.process(job)
            except NoFreeWorkersError:
                job.denyConnection("too many admin connections at once")


class _Daemon(Daemon):  # type: ignore[misc]
    """Pyro5's daemon with the TLS transport, and the caller's identity taken from its
    verified certificate at Pyro5's connection handshake."""

    def __init__(self, bind: tuple[str, int], tls: ssl.SSLContext, refused: Refused,
                 greeting: dict[str, str]) -> None:
        if pyro_config.SERVERTYPE != "thread":
            raise AdminError("the admin endpoint needs Pyro5's thread server type")
        super().__init__(host=bind[0], port=bind[1])
        transport = self.transportServer
        # Pyro5 builds its transport inside Daemon.__init__ from the process-wide config;
        # the subclass adds only the per-daemon TLS handshake in events().
        transport.__class__ = _TlsTransport
        transport.tls, transport.refused = tls, refused
        self._refused = refused
        self._greeting = greeting

    def validateHandshake(self, conn: CheckedConnection, data: Any) -> Any:
        """Take the caller's identity from its certificate; refuse one without a role."""
        try:
            conn.identity = identity_from_certificate(conn.sock.getpeercert())
        except PyhaError as exc:
            self._refused(_peer(conn.sock.getpeername()), str(exc))
            raise
        return {**self._greeting, "identity": conn.identity.name,
                "role": conn.identity.role.value}


class Closeable(Protocol):
    """Something stopped with the endpoint."""

    def close(self) -> None:
        """Stop it."""
        ...


class AdminDaemon:
    """One admin service served over mutual TLS on `bind`, on a thread of its own.

    Invariant: every connection that reaches the service presented a certificate
    signed by the CA in `tls` and carrying a role; every other one was refused and
    reported to `on_refused` before any method ran.
    """

    def __init__(self, service: object, bind: tuple[str, int], tls: ssl.SSLContext, *,
                 on_refused: Refused | None = None, node: str = "") -> None:
        wire.register()
        self._on_refused = on_refused
        try:
            self._daemon = _Daemon(bind, tls, self._refused,
                                   {"service": "pyha-admin", "node": node})
        except OSError as exc:
            raise AdminError(f"cannot listen on {bind[0]}:{bind[1]} for admin calls: "
                             f"{exc.strerror or exc}") from None
        self._daemon.register(service, objectId=OBJECT_ID)
        self._thread = threading.Thread(target=self._daemon.requestLoop, daemon=True,
                                        name=f"pyha admin {self.address_text}")
        self.refusals = 0
        self.companions: list[Closeable] = []
        """Processes that live as long as the endpoint (the JMX bridge)."""

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the daemon listens on (the real port when 0 was asked)."""
        host, port = self._daemon.sock.getsockname()[:2]
        return str(host), int(port)

    @property
    def address_text(self) -> str:
        """host:port, as clients write it."""
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def start(self) -> None:
        """Serve calls on the daemon's thread."""
        self._thread.start()
        _log.info("admin endpoint listening on %s (mutual TLS)", self.address_text)

    def close(self) -> None:
        """Stop the companions, then serving, and close every connection."""
        for companion in self.companions:
            companion.close()
        if self._thread.is_alive():
            self._daemon.shutdown()
            self._thread.join(timeout=5)
        else:
            self._daemon.close()

    def _refused(self, peer: str, reason: str) -> None:
        self.refusals += 1
        _log.warning("admin connection from %s refused: %s", peer, reason)
        if self._on_refused is not None:
            self._on_refused(peer, reason)


def _peer(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


def _tls_reason(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc).lower().replace("_", " ")
    return str(exc) or type(exc).__name__
