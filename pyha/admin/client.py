"""The typed admin client: one node's admin endpoint over mutual TLS, from Python.

    >>> from pyha.admin.client import AdminClient
    >>> admin = AdminClient("127.0.0.1:7790", ca="ca.crt", cert="alice.crt", key="alice.key")
    >>> admin.status().groups

Remote errors arrive as pyha's own exception types (AdminError and its kin).
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from Pyro5 import errors as pyro_errors
from Pyro5 import protocol, serializers
from Pyro5.client import Proxy
from Pyro5.socketutil import SocketConnection

from pyha.admin import wire
from pyha.admin.auth import client_context
from pyha.admin.daemon import OBJECT_ID
from pyha.admin.errors import AdminUnreachable, CertificateError, ConnectionRefused
from pyha.admin.report import (
    AuditEntry,
    ChangeResult,
    CleanupResult,
    Explanation,
    FlagsResult,
    OperationRecord,
    StatusReport,
    Whoami,
)
from pyha.errors import ConfigError
from pyha.model.config import Group, Resource, ResourceType, parse_endpoint

CONNECT_TIMEOUT = 5.0
CALL_TIMEOUT = 60.0
CONFIG_FILE = Path("~/.config/pyha/client.toml")
"""The client settings file: address, ca, cert and key (paths relative to the file)."""
ENV_ADDRESS = "PYHA_ADMIN"
ENV_CONFIG = "PYHA_ADMIN_CONFIG"
ENV_FILES = {"ca": "PYHA_ADMIN_CA", "cert": "PYHA_ADMIN_CERT", "key": "PYHA_ADMIN_KEY"}


@dataclass(frozen=True)
class ClientSettings:
    """Where to connect and with which certificate."""

    address: str
    ca: Path
    cert: Path
    key: Path

    @classmethod
    def load(cls, address: str | None = None, config: Path | None = None) -> ClientSettings:
        """Settings from, by precedence: the arguments, the environment (PYHA_ADMIN,
        PYHA_ADMIN_CA/_CERT/_KEY), then the settings file (PYHA_ADMIN_CONFIG, else
        ~/.config/pyha/client.toml). ConfigError names what is missing."""
        path = config or Path(os.environ.get(ENV_CONFIG) or CONFIG_FILE).expanduser()
        data = _read_settings(path, required=config is not None or ENV_CONFIG in os.environ)
        found: dict[str, Any] = {
            "address": address or os.environ.get(ENV_ADDRESS) or data.get("address")}
        for name, variable in ENV_FILES.items():
            value = os.environ.get(variable) or data.get(name)
            found[name] = None if not value else (
                Path(value) if variable in os.environ else path.parent / Path(value).expanduser())
        missing = [k for k, v in found.items() if not v]
        if missing:
            raise ConfigError(f"admin client: no {', '.join(missing)} given (use --connect, "
                              f"the PYHA_ADMIN* variables or {path})")
        try:
            parse_endpoint(str(found["address"]))
        except ValueError as exc:
            raise ConfigError(f"admin client: address: {exc}") from None
        return cls(address=str(found["address"]), ca=found["ca"], cert=found["cert"],
                   key=found["key"])


def _read_settings(path: Path, *, required: bool) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{path}: no such client settings file") from None
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    unknown = sorted(set(data) - {"address", "ca", "cert", "key"})
    if unknown:
        raise ConfigError(f"{path}: {', '.join(unknown)}: unknown setting")
    return {k: str(v) for k, v in data.items()}


class AdminClient:
    """A connection to one node's admin endpoint; each method is one remote call.

    Invariant: the connection is made on first use and again after it was lost; one
    call at a time goes over it (the client may be shared between threads).
    """

    def __init__(self, address: str, ca: str | Path, cert: str | Path, key: str | Path, *,
                 timeout: float = CALL_TIMEOUT, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        wire.register()
        try:
            self.host, self.port = parse_endpoint(address)
        except ValueError as exc:
            raise ConfigError(f"admin client: address: {exc}") from None
        self.address = address
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._context = client_context(Path(ca), Path(cert), Path(key))
        self._proxy: Proxy | None = None
        self._sock: ssl.SSLSocket | None = None
        self._lock = threading.Lock()
        self.greeting: dict[str, Any] = {}
        """What the endpoint said at connect: its node, and our name and role."""

    @classmethod
    def from_settings(cls, settings: ClientSettings, **options: float) -> AdminClient:
        """A client for `settings` (see ClientSettings.load)."""
        return cls(settings.address, settings.ca, settings.cert, settings.key, **options)

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (the next call opens a new one)."""
        with self._lock:
            self._drop()

    # -- the calls ------------------------------------------------------------------------

    def whoami(self) -> Whoami:
        """The answering node, and this client's name and role as it sees them."""
        return Whoami.model_validate(self.call("whoami"))

    def status(self, full: bool = False) -> StatusReport:
        """Nodes, coordinator, term, quorum, groups, timing, and resources: every one when
        `full` or when the cluster has at most 200, else only those that are not as they
        should be (`omitted` counts the others)."""
        # `full` travels only when set, so that an older node still answers the default
        answer = self.call("status", full=True) if full else self.call("status")
        return StatusReport.model_validate(answer)

    def explain(self, group: str | None = None) -> Explanation:
        """Why each group (or `group`) is where it is."""
        return Explanation.model_validate(self.call("explain", group=group))

    def history(self, resource: str | None = None, node: str | None = None,
                limit: int = 50) -> list[OperationRecord]:
        """The newest operations (of `resource`, on `node`), oldest first."""
        answer = self.call("history", resource=resource, node=node, limit=limit)
        return [OperationRecord.model_validate(r) for r in answer]

    def audit(self, limit: int = 100) -> list[AuditEntry]:
        """The newest audit records of the answering node, oldest first."""
        return [AuditEntry.model_validate(r) for r in self.call("audit", limit=limit)]

    def cleanup(self, resource: str, node: str | None = None) -> CleanupResult:
        """Forget the failures of `resource` (on `node`, or everywhere) and probe it."""
        return CleanupResult.model_validate(self.call("cleanup", resource=resource, node=node))

    def standby(self, node: str) -> FlagsResult:
        """Put `node` in standby (its groups move away)."""
        return FlagsResult.model_validate(self.call("standby", node=node))

    def online(self, node: str) -> FlagsResult:
        """Take `node` out of standby."""
        return FlagsResult.model_validate(self.call("online", node=node))

    def maintenance(self, on: bool) -> FlagsResult:
        """Cluster maintenance on or off."""
        return FlagsResult.model_validate(self.call("maintenance", on=on))

    def move(self, group: str, node: str, lifetime: float | str | None = None) -> ChangeResult:
        """Move `group` to `node` (for `lifetime`, e.g. "30m", or until `unmove`)."""
        return self._changed("move", group=group, node=node, lifetime=lifetime)

    def unmove(self, group: str) -> ChangeResult:
        """Remove the move of `group`."""
        return self._changed("unmove", group=group)

    def simulate(self, node_down: list[str] | None = None, standby: list[str] | None = None,
                 fail: list[str] | None = None,
                 change: dict[str, Any] | None = None) -> dict[str, Any]:
        """What the scheduler would do on a copy of the cluster: {"text", "plan"}."""
        answer: dict[str, Any] = self.call("simulate", node_down=node_down, standby=standby,
                                           fail=fail, change=change)
        return answer

    # -- the configuration ---------------------------------------------------------------

    def groups(self) -> list[Group]:
        """Every group with its resources, in order."""
        return [Group.model_validate(g) for g in self.call("group_list")]

    def resources(self) -> list[tuple[str, Resource]]:
        """Every resource with the name of its group."""
        return [(str(r.pop("group")), Resource.model_validate(_without(r, "position")))
                for r in self.call("resource_list")]

    def constraints(self) -> list[dict[str, Any]]:
        """Every constraint, moves included (each with its `kind`)."""
        return list(self.call("constraint_list"))

    def resource_types(self) -> list[ResourceType]:
        """The resource types the configuration declares."""
        return [ResourceType.model_validate(t) for t in self.call("resource_type_list")]

    def add_resource(self, group: str, resource: dict[str, Any],
                     position: int | None = None) -> ChangeResult:
        """Add a resource to `group` (last, or at `position`)."""
        return self._changed("resource_add", group=group, resource=resource, position=position)

    def update_resource(self, name: str, **fields: Any) -> ChangeResult:
        """Change fields of a resource, e.g. params={...}."""
        return self._changed("resource_update", name=name, fields=fields)

    def remove_resource(self, name: str) -> ChangeResult:
        """Remove a resource."""
        return self._changed("resource_remove", name=name)

    def add_group(self, group: dict[str, Any], position: int | None = None) -> ChangeResult:
        """Add a group with its resources."""
        return self._changed("group_add", group=group, position=position)

    def update_group(self, name: str, **fields: Any) -> ChangeResult:
        """Change fields of a group."""
        return self._changed("group_update", name=name, fields=fields)

    def remove_group(self, name: str) -> ChangeResult:
        """Remove a group and its resources."""
        return self._changed("group_remove", name=name)

    def add_constraint(self, constraint: dict[str, Any]) -> ChangeResult:
        """Add a constraint (`kind` location, colocation or order)."""
        return self._changed("constraint_add", constraint=constraint)

    def update_constraint(self, id: str, **fields: Any) -> ChangeResult:
        """Change fields of a constraint."""
        return self._changed("constraint_update", id=id, fields=fields)

    def remove_constraint(self, id: str) -> ChangeResult:
        """Remove a constraint."""
        return self._changed("constraint_remove", id=id)

    def add_resource_type(self, resource_type: dict[str, Any]) -> ChangeResult:
        """Declare a resource type."""
        return self._changed("resource_type_add", resource_type=resource_type)

    def remove_resource_type(self, name: str) -> ChangeResult:
        """Remove a declared resource type."""
        return self._changed("resource_type_remove", name=name)

    def add_node(self, node: dict[str, Any]) -> ChangeResult:
        """Add a computer to the cluster."""
        return self._changed("node_add", node=node)

    def update_node(self, name: str, **fields: Any) -> ChangeResult:
        """Change fields of a node."""
        return self._changed("node_update", name=name, fields=fields)

    def remove_node(self, name: str) -> ChangeResult:
        """Remove a node from the cluster."""
        return self._changed("node_remove", name=name)

    def update_options(self, **fields: Any) -> ChangeResult:
        """Change cluster options."""
        return self._changed("options_update", fields=fields)

    def _changed(self, method: str, **kwargs: Any) -> ChangeResult:
        return ChangeResult.model_validate(self.call(method, **kwargs))

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call `method` of the admin service; pyha's errors come back as they were raised."""
        with self._lock:
            proxy = self._proxy or self._connect()
            proxy._pyroClaimOwnership()
            try:
                return getattr(proxy, method)(*args, **kwargs)
            except pyro_errors.CommunicationError as exc:
                self._drop()
                raise AdminUnreachable(self.address, f"connection lost: {exc}") from None
            except (OSError, EOFError) as exc:
                self._drop()
                raise AdminUnreachable(self.address, f"connection lost: {exc}") from None

    # -- the connection -------------------------------------------------------------------

    def _connect(self) -> Proxy:
        sock = self._tls(self._tcp())
        try:
            meta = self._handshake(sock)
        except BaseException:
            sock.close()
            raise
        proxy = Proxy(f"PYRO:{OBJECT_ID}@{self.host}:{self.port}")
        proxy._pyroSerializer = wire.SERIALIZER
        proxy._pyroMaxRetries = 0
        # The TLS socket is this client's own, so it is handed to the proxy ready made;
        # Pyro5's own connect would use its process-wide TLS settings instead.
        proxy._pyroConnection = SocketConnection(sock, OBJECT_ID)
        proxy._pyroGetMetadata(OBJECT_ID, known_metadata=meta)
        sock.settimeout(self.timeout)
        self._proxy, self._sock = proxy, sock
        return proxy

    def _tcp(self) -> socket.socket:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as exc:
            raise AdminUnreachable(self.address, exc.strerror or str(exc)) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # calls are small messages
        return sock

    def _tls(self, raw: socket.socket) -> ssl.SSLSocket:
        try:
            return self._context.wrap_socket(raw, server_hostname=self.host)
        except ssl.SSLCertVerificationError as exc:
            raw.close()
            raise CertificateError(f"{self.address}: the endpoint's certificate is not "
                                   f"trusted: {exc.verify_message}") from None
        except (ssl.SSLError, OSError) as exc:
            raw.close()
            raise ConnectionRefused(self.address, _tls_reason(exc)) from None

    def _handshake(self, sock: ssl.SSLSocket) -> dict[str, Any]:
        """Pyro5's connect handshake; returns the service's metadata."""
        serializer = serializers.serializers[wire.SERIALIZER]
        conn = SocketConnection(sock, OBJECT_ID, keep_open=True)
        data = serializer.dumps({"handshake": "hello", "object": OBJECT_ID})
        try:
            conn.send(protocol.SendingMessage(protocol.MSG_CONNECT, 0, 0,
                                              serializer.serializer_id, data).data)
            reply = protocol.recv_stub(conn, [protocol.MSG_CONNECTOK, protocol.MSG_CONNECTFAIL])
        except (pyro_errors.CommunicationError, OSError) as exc:
            # With TLS 1.3 the server checks the client's certificate after the client
            # finished its side: a refusal shows up here, as the connection closing.
            raise ConnectionRefused(self.address, _tls_reason(exc)) from None
        body = serializers.serializers_by_id[reply.serializer_id].loads(reply.data)
        if reply.type == protocol.MSG_CONNECTFAIL:
            raise ConnectionRefused(self.address, str(body))
        self.greeting = dict(body.get("handshake") or {})
        return dict(body["meta"])

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._proxy, self._sock = None, None


def _tls_reason(exc: BaseException) -> str:
    text = str(getattr(exc, "reason", None) or exc)
    upper = text.upper().replace(" ", "_")
    if "CERTIFICATE_REQUIRED" in upper:
        return "the endpoint requires a client certificate signed by the cluster CA"
    if "UNKNOWN_CA" in upper or "BAD_CERTIFICATE" in upper:
        return "the endpoint does not trust this client's certificate (another CA?)"
    if "EXPIRED" in upper:
        return "this client's certificate has expired"
    if any(word in upper for word in ("EOF", "LOST", "RESET", "BROKEN_PIPE")):
        # TLS 1.3: the server judges the client's certificate after the client is done,
        # and its alert may be lost when it closes at once.
        return ("the endpoint closed the connection at the TLS handshake: it did not accept "
                "this client's certificate (missing, expired, or from another CA)")
    return text.lower().replace("_", " ")


def _without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}
