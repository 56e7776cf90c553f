"""The `ldap` backend: a cluster's configuration in OpenLDAP (or any LDAPv3 server), via ldap3.

Writes and small reads go through a SAFE_SYNC connection (thread-safe). The bulk read
of the whole configuration goes through a SYNC connection behind a lock: SAFE_SYNC
deep-copies every response, which made loading 10,000 resources 3-4 times slower.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlparse

from pyha.directory import ldap3compat
from pyha.directory.ber import read_search_entry
from pyha.directory.bootstrap import DirectorySettings
from pyha.directory.codecs import parse_time
from pyha.directory.diff import Change
from pyha.directory.ldap3compat import escape_filter_chars
from pyha.directory.schema import ParseMemo, config_from_entries
from pyha.directory.store import (
    EntryStore,
    OnChange,
    OnReject,
    Origin,
    exists_error,
    missing_error,
)
from pyha.directory.tree import Entry, Layout, is_under, norm_dn
from pyha.errors import ConfigError, DirectoryError
from pyha.model.config import ClusterConfig

log = logging.getLogger("pyha.directory")

CONFIG_FILTER = ("(!(|(objectClass=pyhaResourceStatus)(objectClass=pyhaNodeStatus)"
                 "(objectClass=pyhaAuditEntry)))")
"""Everything under the cluster entry except what the coordinator writes."""
PAGED_OID = "1.2.840.113556.1.4.319"
_NO_SUCH_OBJECT = 32
_EXISTS = 68
_SWAP_LOST = (16, 19, 20)  # noSuchAttribute, constraintViolation, attributeOrValueExists


def _ldap3() -> Any:
    return ldap3compat.ldap3()


class LdapDirectory(EntryStore):
    """A cluster's configuration in an LDAP directory.

    Invariant: every operation runs on a bound connection; a connection that broke is
    dropped and the operation retried once on a new one (the next URL if the first
    fails), so a directory that comes back is used again without a restart.
    """

    def __init__(self, settings: DirectorySettings, cluster: str | None = None) -> None:
        self.settings = settings
        self._conn: Any = None
        self._bulk: Any = None
        self._conn_lock = threading.Lock()
        self._bulk_lock = threading.Lock()
        self._suffix: str | None = None
        self.last_load_csn: frozenset[str] = frozenset()
        """contextCSN read just before the last load: what that load includes."""
        self._snapshot: dict[str, Entry] = {}
        self._captured: list[Entry] = []
        self._memo = ParseMemo()
        self._build_lock = threading.Lock()
        try:
            name = cluster or settings.cluster or self._discover_cluster()
        except BaseException:
            self.close()
            raise
        super().__init__(Layout(settings.base_dn, name))

    @property
    def name(self) -> str:
        """URL and cluster DN, for logs."""
        return f"{self.settings.urls[0]} {self.layout.cluster_dn}"

    # -- connections ---------------------------------------------------------------------

    def _server(self, url: str) -> Any:
        ldap3 = _ldap3()
        parsed = urlparse(url)
        secure = parsed.scheme == "ldaps"
        tls = None
        if secure or self.settings.starttls:
            tls = ldap3compat.tls(str(self.settings.ca_file) if self.settings.ca_file else None)
        # A new Server per connection: ldap3 remembers a refused address for seconds.
        return ldap3.Server(parsed.hostname, port=parsed.port or (636 if secure else 389),
                            use_ssl=secure, tls=tls, get_info=ldap3.NONE,
                            connect_timeout=self.settings.timeout)

    def open_connection(self, strategy: str) -> Any:
        """A new bound connection with the given ldap3 strategy, trying each URL in turn."""
        problems = []
        for url in self.settings.urls:
            try:
                return self._connect(url, strategy)
            except (DirectoryError, _ldap3().core.exceptions.LDAPException) as exc:
                problems.append(f"{url}: {_reason(exc)}")
        raise DirectoryError("cannot reach the directory: " + "; ".join(problems))

    def _connect(self, url: str, strategy: str) -> Any:
        ldap3 = _ldap3()
        # ldap3's receiver thread (async strategies) retries forever on a socket error when
        # a receive timeout is set, so once the socket is closed it spins at full CPU. The
        # streaming connection blocks in recv instead and ends when the socket does.
        streaming = strategy == ldap3.ASYNC_STREAM
        conn = ldap3.Connection(
            self._server(url), user=self.settings.bind_dn or None,
            password=self.settings.password.get_secret_value() or None,
            client_strategy=strategy, auto_bind=ldap3.AUTO_BIND_NONE, raise_exceptions=False,
            receive_timeout=None if streaming else math.ceil(self.settings.timeout),
            check_names=False, auto_referrals=False)
        try:
            conn.open(read_server_info=False)
            if self.settings.starttls and not url.startswith("ldaps"):
                conn.start_tls(read_server_info=False)
                if not conn.tls_started:
                    raise DirectoryError(f"StartTLS failed: {conn.last_error or 'refused'}")
            conn.bind(read_server_info=False)
            if not conn.bound:
                result = conn.result or {}
                raise DirectoryError(f"bind as {self.settings.bind_dn or 'anonymous'}: "
                                     f"{result.get('description') or conn.last_error}")
        except BaseException:
            ldap3compat.discard(conn)
            raise
        if streaming:
            _stream_socket(conn.socket)
        return conn

    def _safe(self) -> Any:
        with self._conn_lock:
            if self._conn is None or self._conn.closed:
                self._conn = self.open_connection(_ldap3().SAFE_SYNC)
            return self._conn

    def _drop(self, conn: Any) -> None:
        with self._conn_lock:
            if self._conn is conn:
                self._conn = None
        with contextlib.suppress(Exception):
            conn.unbind()

    def _call(self, what: str, op: Callable[[Any], Any]) -> Any:
        """Run `op(connection)` -> (ok, result, response, _); retry once on a broken link."""
        exceptions = _ldap3().core.exceptions
        for attempt in (1, 2):
            conn = self._safe()
            try:
                return op(conn)
            except exceptions.LDAPException as exc:
                self._drop(conn)
                if attempt == 2:
                    raise DirectoryError(f"{what}: {_reason(exc)}") from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Unbind both connections."""
        for conn in (self._conn, self._bulk):
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.unbind()
        self._conn = self._bulk = None

    # -- reads ------------------------------------------------------------------------------

    def _paged(self, base: str, scope: str, flt: str, attrs: Sequence[str]) -> list[Entry]:
        exceptions = _ldap3().core.exceptions
        with self._bulk_lock:
            for attempt in (1, 2):
                if self._bulk is None or self._bulk.closed:
                    self._bulk = self.open_connection(_ldap3().SYNC)
                    self._captured = _capture_entries(self._bulk)
                try:
                    return list(self._pages(self._bulk, base, scope, flt, attrs))
                except exceptions.LDAPException as exc:
                    with contextlib.suppress(Exception):
                        self._bulk.unbind()
                    self._bulk = None
                    if attempt == 2:
                        raise DirectoryError(f"search {base}: {_reason(exc)}") from None
        raise AssertionError("unreachable")

    def _pages(self, conn: Any, base: str, scope: str, flt: str,
               attrs: Sequence[str]) -> Iterator[Entry]:
        cookie = None
        while True:
            self._captured.clear()
            conn.search(base, flt, scope, attributes=list(attrs),
                        paged_size=self.settings.page_size, paged_cookie=cookie)
            result = conn.result
            if result["result"] == _NO_SUCH_OBJECT:
                return
            _check(result, f"search {base}")
            yield from list(self._captured)
            for item in conn.response or ():
                if item.get("type") == "searchResEntry":
                    yield _entry(item)
            paged = (result.get("controls") or {}).get(PAGED_OID, {})
            cookie = paged.get("value", {}).get("cookie")
            if not cookie:
                return

    def _config_entries(self) -> list[Entry]:
        self.last_load_csn = self.context_csn()
        scope = _ldap3().SUBTREE
        return self._paged(self.layout.cluster_dn, scope, CONFIG_FILTER, ["*"])

    def _records(self, container: str, object_class: str) -> list[Entry]:
        flt = f"(objectClass={escape_filter_chars(object_class)})"
        return self._paged(self.layout.container(container), _ldap3().SUBTREE, flt, ["*"])

    def _base(self, dn: str, attrs: Sequence[str]) -> dict[str, Any] | None:
        ldap3 = _ldap3()
        _, result, response, _ = self._call(
            f"read {dn}", lambda c: c.search(dn, "(objectClass=*)", ldap3.BASE,
                                             attributes=list(attrs)))
        if result["result"] == _NO_SUCH_OBJECT:
            return None
        _check(result, f"read {dn}")
        return next((r for r in response if r.get("type") == "searchResEntry"), None)

    def _exists(self, dn: str) -> bool:
        return self._base(dn, ["1.1"]) is not None

    def origin(self, change: Change) -> Origin | None:
        """modifiersName and modifyTimestamp of the changed entry."""
        found = self._base(change.dn(self.layout), ["modifiersName", "modifyTimestamp"])
        if found is None:
            return None
        attrs = _entry(found)
        who = next(iter(attrs.values("modifiersName")), "")
        stamp = next(iter(attrs.values("modifyTimestamp")), "")
        try:
            when = parse_time(stamp) if stamp else None
        except ValueError:
            when = None
        return Origin(who or "unknown", when)

    def root_dse(self) -> Entry:
        """The server's root DSE: naming contexts and supported controls."""
        found = self._base("", ["namingContexts", "supportedControl"])
        return _entry(found) if found else Entry("")

    def supports_sync(self) -> bool:
        """Whether the server announces RFC 4533 content synchronization."""
        from pyha.directory.syncrepl import REQUEST_OID

        return REQUEST_OID in self.root_dse().values("supportedControl")

    def suffix(self) -> str:
        """The naming context that holds the base DN (contextCSN lives there)."""
        if self._suffix is None:
            contexts = self.root_dse().values("namingContexts")
            under = [c for c in contexts if is_under(self.settings.base_dn, c)]
            self._suffix = max(under, key=len) if under else self.settings.base_dn
        return self._suffix

    def context_csn(self) -> frozenset[str]:
        """The suffix's contextCSN values; empty when the server keeps none."""
        found = self._base(self.suffix(), ["contextCSN"])
        return frozenset(_entry(found).values("contextCSN")) if found else frozenset()

    def changed_since(self, csn: str) -> list[tuple[str, str]]:
        """(DN, entryCSN) of entries under the cluster written at or after `csn`."""
        flt = f"(entryCSN>={escape_filter_chars(csn)})"
        found = self._paged(self.layout.cluster_dn, _ldap3().SUBTREE, flt, ["entryCSN"])
        return [(e.dn, next(iter(e.values("entryCSN")), "")) for e in found]

    def _discover_cluster(self) -> str:
        flt = f"(objectClass={escape_filter_chars('pyhaCluster')})"
        found = self._paged(self.settings.base_dn, _ldap3().LEVEL, flt, ["cn"])
        names = sorted(next(iter(e.values("cn")), "") for e in found)
        if len(names) != 1:
            listed = ", ".join(names) or "none"
            raise ConfigError(f"{self.settings.base_dn}: name the cluster (clusters here: "
                              f"{listed})")
        return names[0]

    def load(self) -> ClusterConfig:
        """Read every entry of the configuration (paged) and build the configuration."""
        raw = self._config_entries()
        with self._build_lock:
            self._snapshot = {norm_dn(e.dn): e for e in raw}
            return config_from_entries(raw, self.layout, self._memo)

    def patch(self, changes: Sequence[tuple[str, Entry | None]]) -> None:
        """Apply changes seen by the watcher to the copy of the last load (None: deleted)."""
        with self._build_lock:
            for dn, entry in changes:
                if entry is None:
                    self._snapshot.pop(norm_dn(dn), None)
                else:
                    self._snapshot[norm_dn(dn)] = entry

    def rebuild(self) -> ClusterConfig:
        """The configuration from the last load plus the watcher's patches; no search."""
        with self._build_lock:
            return config_from_entries(list(self._snapshot.values()), self.layout, self._memo)

    # -- writes ----------------------------------------------------------------------------

    def _add(self, entry: Entry) -> None:
        attrs = entry.ldap_attrs()
        classes = attrs.pop("objectClass")
        _, result, _, _ = self._call(f"add {entry.dn}",
                                     lambda c: c.add(entry.dn, classes, attrs))
        if result["result"] == _EXISTS:
            raise exists_error(entry.dn)
        if result["result"] == _NO_SUCH_OBJECT:
            raise missing_error(entry.dn)
        _check(result, f"add {entry.dn}")

    def _modify(self, dn: str, changes: dict[str, list[str]]) -> None:
        replace = _ldap3().MODIFY_REPLACE
        mods = {name: [(replace, values)] for name, values in changes.items()}
        _, result, _, _ = self._call(f"modify {dn}", lambda c: c.modify(dn, mods))
        if result["result"] == _NO_SUCH_OBJECT:
            raise missing_error(dn)
        _check(result, f"modify {dn}")

    def _delete(self, dn: str) -> None:
        _, result, _, _ = self._call(f"delete {dn}", lambda c: c.delete(dn))
        if result["result"] == _NO_SUCH_OBJECT:
            raise missing_error(dn)
        _check(result, f"delete {dn}")

    def _swap(self, dn: str, attribute: str, old: str | None, new: str) -> bool:
        ldap3 = _ldap3()
        steps = [(ldap3.MODIFY_DELETE, [old])] if old is not None else []
        steps.append((ldap3.MODIFY_ADD, [new]))
        _, result, _, _ = self._call(f"modify {dn}",
                                     lambda c: c.modify(dn, {attribute: steps}))
        if result["result"] in _SWAP_LOST:
            return False
        _check(result, f"modify {dn}")
        return True

    # -- watching ----------------------------------------------------------------------------

    def watch(self, on_change: OnChange, on_reject: OnReject | None = None, *,
              known: ClusterConfig | None = None) -> Any:
        """Start a watcher thread (RFC 4533 if the server has it, else contextCSN polls)."""
        from pyha.directory.watch import ConfigFollower, LdapWatcher

        follower = ConfigFollower(self.load, on_change, on_reject, known=known, name=self.name)
        watcher = LdapWatcher(self, follower)
        watcher.start()
        return watcher


def _capture_entries(conn: Any) -> list[Entry]:
    """Have a connection hand search entries to a list instead of decoding them itself.

    Complete messages from the socket that are search entries are read by
    pyha.directory.ber and kept out of ldap3's generic decoding, which builds two dicts
    per entry and formats every value; the rest (the search result, referrals) goes
    through ldap3 as usual, and so does an entry the reader does not understand.
    """
    strategy = conn.strategy
    receive = strategy.receiving
    captured: list[Entry] = []

    def receiving() -> list[bytes]:
        # ldap3 reads an empty answer as a closed session: keep reading until a
        # message is left for it, or the socket really has nothing more.
        while True:
            messages = receive()
            if not messages:
                return []
            rest = []
            for raw in messages:
                entry = read_search_entry(raw)
                if entry is None:
                    rest.append(raw)
                else:
                    captured.append(entry)
            if rest:
                return rest

    strategy.receiving = receiving
    conn.empty_attributes = False
    return captured


def _entry(item: dict[str, Any]) -> Entry:
    raw = item.get("raw_attributes") or {}
    attrs = {name.lower(): tuple(v.decode("utf-8", "replace") for v in values)
             for name, values in raw.items() if values}
    return Entry(str(item.get("dn", "")), attrs)


def _check(result: dict[str, Any], what: str) -> None:
    if result["result"] != 0:
        detail = f" ({result['message']})" if result.get("message") else ""
        raise DirectoryError(f"{what}: {result.get('description', result['result'])}{detail}")


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.replace("\n", " ")


def _stream_socket(sock: Any) -> None:
    """A watch's socket waits for the next change as long as it takes (ldap3 leaves the
    connect timeout on it, which would drop an idle watch every few seconds); TCP
    keepalives still notice a directory that vanished without closing it."""
    import socket

    if sock is None:
        return
    sock.settimeout(None)
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
