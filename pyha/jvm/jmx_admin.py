"""The JMX bridge: pyha's cluster as the MXBean `io.pyha:type=Cluster`, served over a JMX
RMI connector on 127.0.0.1 to jconsole-style tools, every call made through one node's
admin service with the role the JMX user is mapped to.

Run as `python -m pyha.jvm.jmx_admin --state-dir DIR --node NODE`, one per node that
has `<state_dir>/admin/jmx.toml` (see docs/java.md, "JMX consoles"). It is a process of
its own, with a JVM of its own started through pyha.jvm.host, so neither the cluster
server nor the plugins' JVM host ever loads a JVM for it. Logins are checked by the
JDK against a password file; each call then goes to the admin endpoint over mutual TLS
with the certificate issued for the user's role, so the admin service's own role checks
and audit apply, exactly as for `pyha` commands.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import stat
import sys
import threading
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from pyha.admin.auth import AdminRole
from pyha.admin.client import AdminClient
from pyha.admin.errors import InvalidArgument, PermissionDenied
from pyha.admin.report import GroupRow, NodeRow, ResourceRow, StatusReport
from pyha.errors import ConfigError, PyhaError

__all__ = [
    "MBEAN_NAME",
    "SETTINGS_FILE",
    "ClusterHandler",
    "JmxRefused",
    "JmxSettings",
    "TlsSettings",
    "jmx_jar",
    "main",
    "serve",
]

MBEAN_NAME = "io.pyha:type=Cluster"
SETTINGS_FILE = "jmx.toml"
"""The bridge's settings, in `<state_dir>/admin/` next to the admin endpoint's files."""
ADMIN_CALL_TIMEOUT = 30.0
"""Seconds one admin call may take before the JMX caller gets an error."""

_log = logging.getLogger("pyha.jvm.jmx")
_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_KEYS = {"port", "password_file", "admin", "ca", "users", "certificates", "tls"}
_TLS_KEYS = {"keystore", "keystore_password_file", "truststore", "truststore_password_file",
             "client_auth"}
_JDK_ERRORS = {
    "security": "java.lang.SecurityException",
    "argument": "java.lang.IllegalArgumentException",
    "state": "java.lang.IllegalStateException",
    "unsupported": "java.lang.UnsupportedOperationException",
}


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class TlsSettings:
    """TLS for the registry and the connector: the server's PKCS#12 key store and, when
    clients must present a certificate, the PKCS#12 trust store that vouches for them."""

    keystore: Path
    keystore_password_file: Path
    truststore: Path | None
    truststore_password_file: Path | None
    client_auth: bool


@dataclass(frozen=True)
class JmxSettings:
    """What `<state_dir>/admin/jmx.toml` says, checked.

    Invariants: the port is 1-65535; the password file exists and only its owner may read
    it; at least one user, each mapped to a known role; each mapped role has a certificate
    and key to call the admin endpoint with.
    """

    port: int
    password_file: Path
    admin: str
    ca: Path
    users: Mapping[str, AdminRole]
    certificates: Mapping[AdminRole, tuple[Path, Path]]
    tls: TlsSettings | None = None

    @classmethod
    def find(cls, state_dir: Path, node: str) -> JmxSettings | None:
        """The settings of `node` (None when it has no jmx.toml): the admin endpoint's
        address and CA default to the node's own (admin.toml, ca.crt)."""
        from pyha.admin.target import ADMIN_DIR, AdminSettings

        folder = state_dir / ADMIN_DIR
        if not (folder / SETTINGS_FILE).is_file():
            return None
        admin = AdminSettings.find(state_dir, node)
        if admin is None:
            raise ConfigError(f"{folder / SETTINGS_FILE}: the node has no admin endpoint "
                              f"(its TLS files are missing from {folder})")
        host, port = admin.bind
        wildcard = host in ("", "0.0.0.0", "::")  # noqa: S104 - a listen address, to connect to
        host = "127.0.0.1" if wildcard else host
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return cls.load(folder / SETTINGS_FILE, admin=address, ca=admin.ca)

    @classmethod
    def load(cls, path: Path, *, admin: str | None = None,
             ca: Path | None = None) -> JmxSettings:
        """The settings in `path` (file names are relative to its folder); `admin` and `ca`
        are the defaults for the keys of those names. ConfigError says what is wrong."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
        return _Reader(path, data).settings(admin, ca)


class _Reader:
    """Reads one jmx.toml; every error names the file and the key."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.folder = path.parent
        self.data = data

    def fail(self, key: str, reason: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {reason}")

    def settings(self, admin: str | None, ca: Path | None) -> JmxSettings:
        unknown = sorted(set(self.data) - _KEYS)
        if unknown:
            raise ConfigError(f"{self.path}: {', '.join(unknown)}: unknown setting")
        port = self.data.get("port")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise self.fail("port", f"must be a port from 1 to 65535, got {port!r}")
        admin = self.text("admin", admin)
        users = self.users()
        return JmxSettings(
            port=port,
            password_file=self.private(self.file("password_file", None), "password_file"),
            admin=admin,
            ca=self.file("ca", ca),
            users=users,
            certificates=self.certificates(set(users.values())),
            tls=self.tls(),
        )

    def text(self, key: str, default: str | None, data: Mapping[str, Any] | None = None) -> str:
        value = (self.data if data is None else data).get(key, default)
        if not isinstance(value, str) or not value:
            raise self.fail(key, "missing" if value is None else f"must be text, got {value!r}")
        return value

    def file(self, key: str, default: Path | None, data: Mapping[str, Any] | None = None,
             where: str = "") -> Path:
        raw = (self.data if data is None else data).get(key)
        path = default if raw is None else self.folder / Path(self.text(key, None, data))
        name = where + key
        if path is None:
            raise self.fail(name, "missing")
        if not path.is_file():
            raise self.fail(name, f"{path}: no such file")
        return path

    def private(self, path: Path, key: str) -> Path:
        # As the JDK's own agent insists: a password file others can read is no secret.
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise self.fail(key, f"{path}: read access must be restricted to its owner "
                                 f"(chmod 600)")
        return path

    def users(self) -> dict[str, AdminRole]:
        table = self.data.get("users")
        if not isinstance(table, dict) or not table:
            raise self.fail("users", "a table of JMX user = role, with at least one user")
        users: dict[str, AdminRole] = {}
        roles = ", ".join(r.value for r in AdminRole)
        for user, role in table.items():
            if not _USER.match(user):
                raise self.fail("users", f"{user!r}: 1 to 64 letters, digits and ._@- only")
            if role not in {r.value for r in AdminRole}:
                raise self.fail(f"users.{user}", f"{role!r} is not a role (one of {roles})")
            users[user] = AdminRole(role)
        return users

    def certificates(self, roles: set[AdminRole]) -> dict[AdminRole, tuple[Path, Path]]:
        table = self.data.get("certificates", {})
        if not isinstance(table, dict):
            raise self.fail("certificates", "must be a table of role = {cert, key}")
        unknown = sorted(set(table) - {r.value for r in AdminRole})
        if unknown:
            raise self.fail("certificates", f"{', '.join(unknown)}: not a role")
        found: dict[AdminRole, tuple[Path, Path]] = {}
        for role in sorted(roles, key=lambda r: r.rank):
            entry = table.get(role.value, {})
            if not isinstance(entry, dict):
                raise self.fail(f"certificates.{role.value}", "must be a table {cert, key}")
            where = f"certificates.{role.value}."
            default = self.folder / f"jmx-{role.value}"
            found[role] = (
                self.file("cert", default.with_suffix(".crt"), entry, where),
                self.file("key", default.with_suffix(".key"), entry, where),
            )
        return found

    def tls(self) -> TlsSettings | None:
        table = self.data.get("tls")
        if table is None:
            return None
        if not isinstance(table, dict):
            raise self.fail("tls", "must be a table")
        unknown = sorted(set(table) - _TLS_KEYS)
        if unknown:
            raise self.fail("tls", f"{', '.join(unknown)}: unknown setting")
        client_auth = table.get("client_auth", False)
        if not isinstance(client_auth, bool):
            raise self.fail("tls.client_auth", "must be true or false")
        trust = pass_file = None
        if client_auth or "truststore" in table:
            trust = self.file("truststore", None, table, "tls.")
            pass_file = self.private(
                self.file("truststore_password_file", None, table, "tls."),
                "tls.truststore_password_file")
        return TlsSettings(
            keystore=self.file("keystore", None, table, "tls."),
            keystore_password_file=self.private(
                self.file("keystore_password_file", None, table, "tls."),
                "tls.keystore_password_file"),
            truststore=trust,
            truststore_password_file=pass_file,
            client_auth=client_auth,
        )


# ---------------------------------------------------------------- the calls


class JmxRefused(PyhaError):
    """A JMX caller that pyha maps to no role (the connector refuses it before this)."""


class ClusterHandler:
    """What the MXBean does, in Python terms: each call made through the admin client of
    the JMX user's role. Errors are pyha's own; the bean turns them into JDK ones.

    Invariant: a call runs with the client of the role `users` maps its user to, and
    with no other; a user mapped to no role gets JmxRefused and no admin call.
    """

    def __init__(self, users: Mapping[str, AdminRole],
                 clients: Mapping[AdminRole, AdminClient]) -> None:
        self.users = dict(users)
        self.clients = dict(clients)

    def client(self, user: str | None) -> AdminClient:
        """The admin client for `user`'s role."""
        role = self.users.get(user or "")
        if role is None or role not in self.clients:
            raise JmxRefused(f"JMX user {user or '(none)'} has no pyha role")
        return self.clients[role]

    def status(self, user: str | None) -> StatusReport:
        """The cluster as the admin endpoint's node sees it, every resource listed."""
        return self.client(user).status(full=True)

    def move_group(self, user: str | None, group: str, node: str) -> str:
        """Ask the cluster to move `group` to `node`."""
        answer = self.client(user).call("move", group=group, node=node)
        return _summary(f"move {group} to {node}", answer)

    def unmove_group(self, user: str | None, group: str) -> str:
        """Remove the move of `group`."""
        return _summary(f"unmove {group}", self.client(user).call("unmove", group=group))

    def standby_node(self, user: str | None, node: str) -> str:
        """Put `node` in standby."""
        done = self.client(user).standby(node)
        return f"{node} in standby (applied on {', '.join(done.applied_on) or 'no node'})"

    def online_node(self, user: str | None, node: str) -> str:
        """Take `node` out of standby."""
        done = self.client(user).online(node)
        return f"{node} online (applied on {', '.join(done.applied_on) or 'no node'})"

    def cleanup(self, user: str | None, resource: str) -> str:
        """Forget the failures of `resource` on every node."""
        done = self.client(user).cleanup(resource)
        return (f"cleaned up {done.resource}: {done.cleared} failure record(s) on "
                f"{', '.join(done.nodes) or 'no node'}")

    def set_maintenance(self, user: str | None, on: bool) -> str:
        """Cluster maintenance on or off."""
        done = self.client(user).maintenance(on)
        return (f"maintenance {'on' if on else 'off'} (applied on "
                f"{', '.join(done.applied_on) or 'no node'})")

    def close(self) -> None:
        """Close every admin connection."""
        for client in self.clients.values():
            client.close()


def _summary(what: str, answer: Any) -> str:
    if isinstance(answer, dict) and {"epoch", "acked"} <= set(answer):
        return (f"{what}: configuration epoch {answer['epoch']}, written on "
                f"{', '.join(answer['acked']) or 'no node'}")
    if isinstance(answer, dict):
        parts = [f"{k}={v}" for k, v in answer.items() if v not in (None, "", [], {})]
        return f"{what}: {', '.join(parts)}" if parts else f"{what}: done"
    return f"{what}: {answer}" if answer is not None else f"{what}: done"


def jdk_error(exc: BaseException, method: str, user: str | None,
              role: AdminRole | None) -> tuple[str, str]:
    """The JDK exception class and message a JMX client gets for `exc`."""
    who = f"JMX user {user or '(none)'}" + (f" ({role.value})" if role else "")
    if isinstance(exc, PermissionDenied):
        return _JDK_ERRORS["security"], f"{method}: needs the {exc.needed} role; {who}"
    if isinstance(exc, JmxRefused):
        return _JDK_ERRORS["security"], str(exc)
    if isinstance(exc, InvalidArgument):
        return _JDK_ERRORS["argument"], f"{method}: {exc.argument}: {exc.reason}"
    if isinstance(exc, AttributeError) and "no exposed attribute" in str(exc):
        return _JDK_ERRORS["unsupported"], (f"{method}: this cluster's admin service does "
                                            f"not offer it yet")
    if isinstance(exc, PyhaError):
        return _JDK_ERRORS["state"], f"{method}: {exc}"
    return _JDK_ERRORS["state"], f"{method}: internal error: {type(exc).__name__}: {exc}"


# ---------------------------------------------------------------- the bean (needs the JVM)


def make_bean(handler: ClusterHandler) -> Any:
    """A Java object implementing io.pyha.jmx.ClusterMXBean that calls `handler`.

    Runs only once the JVM is up. Every error leaves as a JDK exception: an exception
    class of JPype's own would reach the remote client as a ClassNotFoundException.
    """
    from jpype import JArray, JClass, JImplements, JOverride, JString

    caller = JClass("io.pyha.jmx.Caller")
    node_info = JClass("io.pyha.jmx.NodeInfo")
    group_info = JClass("io.pyha.jmx.GroupInfo")
    resource_info = JClass("io.pyha.jmx.ResourceInfo")

    def strings(values: Sequence[str]) -> Any:
        return JArray(JString)(list(values))

    def node(row: NodeRow) -> Any:
        return node_info(row.name, row.online, row.standby, row.maintenance,
                         row.coordinator, row.votes)

    def group(row: GroupRow) -> Any:
        return group_info(row.name, row.node, strings(row.active_on), row.state,
                          row.target, row.why)

    def resource(row: ResourceRow) -> Any:
        return resource_info(row.name, row.group, row.type, row.node, row.role,
                             strings(row.active_on), row.message, row.last_operation)

    def call(method: str, work: Callable[[str | None], Any]) -> Any:
        user = caller.user()
        user = None if user is None else str(user)
        try:
            return work(user)
        except Exception as exc:
            role = handler.users.get(user or "")
            kind, message = jdk_error(exc, method, user, role)
            if kind == _JDK_ERRORS["state"] and not isinstance(exc, PyhaError):
                _log.exception("JMX %s by %s failed", method, user)
            else:
                outcome = "refused" if kind == _JDK_ERRORS["security"] else "failed"
                _log.info("JMX %s by %s %s: %s", method, user, outcome, message)
            raise JClass(kind)(message) from None

    def audited(method: str, work: Callable[[str | None], str]) -> Any:
        def logged(user: str | None) -> str:
            answer = work(user)
            _log.info("JMX %s by %s: %s", method, user, answer)
            return answer

        return JString(call(method, logged))

    class ClusterBean:
        def getNodes(self) -> Any:
            return call("Nodes", lambda u: JArray(node_info)(
                [node(r) for r in handler.status(u).nodes]))

        def getGroups(self) -> Any:
            return call("Groups", lambda u: JArray(group_info)(
                [group(r) for r in handler.status(u).groups]))

        def getResources(self) -> Any:
            return call("Resources", lambda u: JArray(resource_info)(
                [resource(r) for r in handler.status(u).resources]))

        def getCoordinator(self) -> Any:
            return call("Coordinator", lambda u: handler.status(u).coordinator)

        def isQuorum(self) -> Any:
            return call("Quorum", lambda u: handler.status(u).quorum)

        def moveGroup(self, group: Any, node: Any) -> Any:
            return audited("moveGroup", lambda u: handler.move_group(u, str(group), str(node)))

        def unmoveGroup(self, group: Any) -> Any:
            return audited("unmoveGroup", lambda u: handler.unmove_group(u, str(group)))

        def standbyNode(self, node: Any) -> Any:
            return audited("standbyNode", lambda u: handler.standby_node(u, str(node)))

        def onlineNode(self, node: Any) -> Any:
            return audited("onlineNode", lambda u: handler.online_node(u, str(node)))

        def cleanup(self, resource: Any) -> Any:
            return audited("cleanup", lambda u: handler.cleanup(u, str(resource)))

        def setMaintenance(self, on: Any) -> Any:
            return audited("setMaintenance", lambda u: handler.set_maintenance(u, bool(on)))

    # Applied as functions (not decorators) so mypy keeps the methods typed; JPype's own
    # decorators are untyped.
    methods = {name: JOverride(getattr(ClusterBean, name))
               for name in vars(ClusterBean) if not name.startswith("_")}
    return JImplements("io.pyha.jmx.ClusterMXBean")(type("ClusterBean", (), methods))()


# ---------------------------------------------------------------- the process


def jmx_jar() -> Path:
    """The jar of java/src/io/pyha/jmx (the MXBean, the connector and its guard), built
    on its own: it needs the JDK only, not the plugin SPI."""
    from pyha.jvm.build import build_jar, java_source_dir

    return build_jar("pyha-jmx", [java_source_dir() / "src" / "io" / "pyha" / "jmx"])


def _ssl_context(tls: TlsSettings) -> Any:
    """A javax.net.ssl.SSLContext from the PKCS#12 stores; the passwords never become
    system properties (which any JMX reader could see in the Runtime MBean)."""
    from jpype import JArray, JChar, JClass

    def store(path: Path, password_file: Path) -> tuple[Any, Any]:
        secret = password_file.read_text(encoding="utf-8").strip()
        chars = JArray(JChar)(secret)
        keys = JClass("java.security.KeyStore").getInstance("PKCS12")
        stream = JClass("java.io.FileInputStream")(str(path))
        try:
            keys.load(stream, chars)
        finally:
            stream.close()
        return keys, chars

    key_store, key_password = store(tls.keystore, tls.keystore_password_file)
    managers = JClass("javax.net.ssl.KeyManagerFactory")
    keys = managers.getInstance(managers.getDefaultAlgorithm())
    keys.init(key_store, key_password)
    trust = None
    if tls.truststore is not None and tls.truststore_password_file is not None:
        trust_store, _ = store(tls.truststore, tls.truststore_password_file)
        factories = JClass("javax.net.ssl.TrustManagerFactory")
        factory = factories.getInstance(factories.getDefaultAlgorithm())
        factory.init(trust_store)
        trust = factory.getTrustManagers()
    context = JClass("javax.net.ssl.SSLContext").getInstance("TLS")
    context.init(keys.getKeyManagers(), trust, None)
    return context


@dataclass
class Serving:
    """A running bridge: its URL, and how to stop it."""

    url: str
    stop: Callable[[], None]


def serve(settings: JmxSettings) -> Serving:
    """Start the JVM, register the MXBean and open the connector (once per process)."""
    from pyha.jvm.build import java_home
    from pyha.jvm.host import start_jvm

    clients = {role: AdminClient(settings.admin, settings.ca, cert, key,
                                 timeout=ADMIN_CALL_TIMEOUT)
               for role, (cert, key) in settings.certificates.items()}
    handler = ClusterHandler(settings.users, clients)
    # -Xrs: the JVM leaves SIGTERM/SIGINT to Python, which stops the connector cleanly.
    start_jvm(java_home(), [jmx_jar()], ["-Xrs", "-Djava.rmi.server.hostname=127.0.0.1"])
    from jpype import JClass

    server = JClass("java.lang.management.ManagementFactory").getPlatformMBeanServer()
    name = JClass("javax.management.ObjectName")(MBEAN_NAME)
    server.registerMBean(make_bean(handler), name)
    users = JClass("java.util.HashSet")()
    for user in settings.users:
        users.add(user)
    tls = settings.tls
    endpoint = JClass("io.pyha.jmx.Endpoint").start(
        settings.port, str(settings.password_file), users,
        None if tls is None else _ssl_context(tls), bool(tls and tls.client_auth))

    def stop() -> None:
        endpoint.stop()
        server.unregisterMBean(name)
        handler.close()

    return Serving(str(endpoint.url()), stop)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pyha.jvm.jmx_admin",
                                     description="Serve io.pyha:type=Cluster over JMX/RMI.")
    parser.add_argument("--state-dir", type=Path, required=True,
                        help="the node's state directory (its admin/ folder holds jmx.toml)")
    parser.add_argument("--node", required=True, help="the node's name")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT; print one JSON line (url, pid) once ready."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s pyha-jmx[{os.getpid()}] %(levelname)s %(message)s")
    args = _parse(argv)
    try:
        settings = JmxSettings.find(args.state_dir, args.node)
        if settings is None:
            _log.error("no %s in %s: nothing to serve", SETTINGS_FILE,
                       args.state_dir / "admin")
            return 2
        serving = serve(settings)
    except PyhaError as exc:
        _log.error("JMX bridge not started: %s", exc)
        return 1
    except Exception as exc:  # a Java exception: the port is taken, a key store is bad
        _log.error("JMX bridge not started: %s: %s", type(exc).__name__, exc)
        return 1
    done = threading.Event()

    def finish(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    _log.info("JMX bridge for %s serving %s at %s", args.node, MBEAN_NAME, serving.url)
    print(json.dumps({"url": serving.url, "pid": os.getpid()}), flush=True)
    while not done.wait(1.0):
        pass
    serving.stop()
    _log.info("JMX bridge stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
