"""Noticing configuration changes: the follower (load, validate, hand over) and LDAP watchers.

In LDAP, changes are seen through RFC 4533 refreshAndPersist (about a millisecond after
the write) with the cookie kept in the state dir so a restart resumes; servers without
it are polled for the suffix's contextCSN every `poll_interval`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyha.directory import ldap3compat, syncrepl
from pyha.directory.store import OnChange, OnReject
from pyha.errors import ConfigError, DirectoryError
from pyha.model.config import ClusterConfig

if TYPE_CHECKING:
    from pyha.directory.ldap import LdapDirectory

log = logging.getLogger("pyha.directory")

DEBOUNCE = 0.01
"""Changes that arrive together (one ldapmodify file, one pyha write) are loaded once."""
MAX_BACKOFF = 1.0
"""Longest wait between two attempts to reach a directory that went away."""


class ConfigFollower:
    """Turns "the configuration may have changed" into validated configurations.

    Invariant: `on_change` only ever receives a configuration that loaded and
    validated and differs from the last one it received; a bad one is logged once with
    its reason (DN, attribute) and the last good one stays in force.
    """

    def __init__(self, load: Callable[[], ClusterConfig], on_change: OnChange,
                 on_reject: OnReject | None = None, *, known: ClusterConfig | None = None,
                 name: str = "the directory") -> None:
        self._load = load
        self._on_change = on_change
        self._on_reject = on_reject
        self.current = known
        self.name = name
        self.last_problem: str | None = None
        self.reachable = True
        self.checks = 0
        self._lock = threading.Lock()

    def check(self, load: Callable[[], ClusterConfig] | None = None) -> bool:
        """Load (with `load`, else the full load) and validate; True if handed over."""
        with self._lock:
            self.checks += 1
            try:
                config = (load or self._load)()
            except ConfigError as exc:
                self._rejected(exc)
                return False
            except DirectoryError as exc:
                self.unreachable(str(exc))
                return False
            self._reached()
            self.last_problem = None
            if config == self.current:
                return False
            self._on_change(config)  # if it raises, the next check offers it again
            self.current = config
            return True

    def _rejected(self, exc: ConfigError) -> None:
        self._reached()
        text = str(exc)
        if text != self.last_problem:
            log.error("configuration in %s rejected; keeping the last good one%s: %s",
                      self.name, self._epoch(), text)
            if self._on_reject:
                self._on_reject(exc)
        self.last_problem = text

    def unreachable(self, reason: str) -> None:
        """Note (once) that the directory cannot be read; the last good config stays."""
        if self.reachable:
            log.warning("directory %s unreachable; running on the last good configuration%s: "
                        "%s", self.name, self._epoch(), reason)
        self.reachable = False

    def _reached(self) -> None:
        if not self.reachable:
            log.warning("directory %s reachable again", self.name)
        self.reachable = True

    def _epoch(self) -> str:
        return f" (epoch {self.current.epoch})" if self.current else ""


class CookieStore:
    """The last sync cookie of one (server, cluster), in a small file written atomically."""

    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        self.key = key

    def load(self) -> bytes | None:
        """The saved cookie, if it belongs to this key."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("key") != self.key:
            return None
        try:
            return base64.b64decode(data["cookie"])
        except (KeyError, ValueError, TypeError):
            return None

    def save(self, cookie: bytes) -> None:
        """Replace the saved cookie."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": self.key,
                                   "cookie": base64.b64encode(cookie).decode()}))
        os.replace(tmp, self.path)

    def clear(self) -> None:
        """Forget the cookie (the server said it is too old)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class _Lost(Exception):
    """The watch connection ended; reconnect."""


class _NoSync(Exception):
    """The server refused the sync control; fall back to polling."""


class LdapWatcher:
    """A thread that notices changes to a cluster's entries in LDAP and has them loaded.

    Invariant: while the directory is reachable, each change to a configuration entry
    leads to a `follower.check()` within about a debounce interval (RFC 4533) or a poll
    interval (contextCSN); after every reconnection the configuration is loaded once,
    so changes made during an outage are never missed.
    """

    def __init__(self, directory: LdapDirectory, follower: ConfigFollower) -> None:
        self.directory = directory
        self.follower = follower
        self.settings = directory.settings
        self.mode = self.settings.watch
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pyha-directory-watch",
                                        daemon=True)
        self.cookies = self._cookie_store()
        self._cookie: bytes | None = None
        self.sessions = 0
        self.connected = threading.Event()

    def _cookie_store(self) -> CookieStore | None:
        state = self.settings.state_dir
        if state is None:
            return None
        key = f"{self.settings.urls[0]} {self.directory.layout.cluster_dn}"
        return CookieStore(Path(state) / "directory.cookie", key)

    def start(self) -> None:
        """Start watching in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching, save the cookie, wait for the thread."""
        self._stop.set()
        self._thread.join(timeout=10)
        self._save_cookie()

    # -- the loop -----------------------------------------------------------------------------

    def _run(self) -> None:
        if self.follower.current is None:
            self.follower.check()
        backoff = 0.1
        lost = False
        while not self._stop.is_set():
            try:
                self._session(recheck=lost)
                lost = False
            except (_Lost, DirectoryError) as exc:
                self._lost(str(exc), lost)
                lost = True
            except Exception:  # a loop boundary: log and keep watching
                log.exception("directory watch failed; restarting it")
                lost = True
            self.connected.clear()
            if self._stop.wait(backoff):
                break
            backoff = min(backoff * 2, MAX_BACKOFF) if lost else 0.1

    def _lost(self, reason: str, already: bool) -> None:
        if not already:
            log.warning("directory watch on %s lost: %s; retrying", self.directory.name, reason)
        self.follower.unreachable(reason)

    def _session(self, recheck: bool) -> None:
        self.sessions += 1
        mode = self.mode
        if mode == "auto":
            mode = "sync" if self.directory.supports_sync() else "poll"
        if mode == "sync":
            try:
                self._sync_session(recheck)
            except _NoSync as exc:
                log.info("directory %s: %s; polling contextCSN instead", self.directory.name,
                         exc)
                self.mode = "poll"
        else:
            self._poll_session(recheck)

    # -- RFC 4533 -----------------------------------------------------------------------------

    def _sync_session(self, recheck: bool) -> None:
        from pyha.directory.ldap import CONFIG_FILTER

        conn = self.directory.open_connection(_ldap3().ASYNC_STREAM)
        inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        if self._cookie is None and self.cookies:
            self._cookie = self.cookies.load()
        search = conn.extend.standard.persistent_search(
            self.directory.layout.cluster_dn, CONFIG_FILTER, _ldap3().SUBTREE,
            attributes=["*"], controls=[syncrepl.request_control(self._cookie)],
            show_additions=False, show_deletions=False, show_modifications=False,
            show_dn_modifications=False, callback=inbox.put)
        try:
            self._pump(conn, inbox, recheck)
        finally:
            with contextlib.suppress(Exception):
                search.stop()
            ldap3compat.discard(conn)  # its receiver thread ends with the socket

    def _pump(self, conn: Any, inbox: queue.Queue[dict[str, Any]], recheck: bool) -> None:
        refreshing, dirty = True, recheck
        patches: list[tuple[str, Any]] = []
        full = False
        while not self._stop.is_set():
            pending = bool(patches) or full
            try:
                event = syncrepl.decode(inbox.get(timeout=DEBOUNCE if pending else 0.2))
            except queue.Empty:
                if conn.closed:
                    raise _Lost("the connection closed") from None
                if pending:
                    self._deliver(patches, full)
                    patches, full = [], False
                continue
            self._note_cookie(event)
            if event.kind == "done":
                self._ended(event)
            changed = event.kind == "entry" or event.deletes
            if refreshing:
                dirty = dirty or changed
                if event.refresh_done:
                    refreshing = False
                    self._refreshed(dirty)
            elif changed:
                patch = _patch(event)
                if patch is None:
                    full = True
                else:
                    patches.append(patch)

    def _deliver(self, patches: list[tuple[str, Any]], full: bool) -> None:
        """Hand over the changed configuration: patched in memory, or loaded again."""
        if full:
            self.follower.check()
        else:
            self.directory.patch(patches)
            self.follower.check(self.directory.rebuild)
        self._save_cookie()

    def _refreshed(self, dirty: bool) -> None:
        """The refresh phase ended: load if anything changed since the cookie or the load."""
        self.connected.set()
        if not self.follower.reachable:
            log.warning("directory watch on %s resumed", self.directory.name)
        current = syncrepl.cookie_csns(self._cookie)
        if dirty and not (current and current == self.directory.last_load_csn
                          and self.follower.reachable):
            self.follower.check()
        self._save_cookie()

    def _ended(self, event: syncrepl.SyncEvent) -> None:
        if event.result == syncrepl.REFRESH_REQUIRED:
            self._cookie = None
            if self.cookies:
                self.cookies.clear()
            raise _Lost("the server asked for a full refresh")
        if event.result in (12, 53):  # unavailableCriticalExtension, unwillingToPerform
            raise _NoSync(f"sync refused ({event.message or event.result})")
        raise _Lost(f"the server ended the sync search ({event.result} {event.message})")

    def _note_cookie(self, event: syncrepl.SyncEvent) -> None:
        if event.cookie:
            self._cookie = event.cookie

    def _save_cookie(self) -> None:
        if self.cookies and self._cookie:
            try:
                self.cookies.save(self._cookie)
            except OSError as exc:
                log.warning("cannot save the sync cookie to %s: %s", self.cookies.path, exc)

    # -- contextCSN polls ----------------------------------------------------------------------

    def _poll_session(self, recheck: bool) -> None:
        seen = self.directory.context_csn()
        self.connected.set()
        if recheck or seen != self.directory.last_load_csn:
            self.follower.check()
        quiet = 0.0
        while not self._stop.wait(self.settings.poll_interval):
            now = self.directory.context_csn()
            if not now:  # no contextCSN on this server: reload now and then, compare
                quiet += self.settings.poll_interval
                if quiet >= 10 * self.settings.poll_interval:
                    quiet = 0.0
                    self.follower.check()
                continue
            if now != seen and self._config_touched(seen):
                self.follower.check()
            seen = now

    def _config_touched(self, before: frozenset[str]) -> bool:
        """Whether a write after `before` touched the configuration (not only status)."""
        if not before:
            return True
        since = max(before)
        written = [(dn, csn) for dn, csn in self.directory.changed_since(since) if csn > since]
        if not written:
            return True  # only a delete leaves no newer entry behind
        return any(self.directory.layout.is_config(dn) for dn, _ in written)


def _patch(event: syncrepl.SyncEvent) -> tuple[str, Any] | None:
    """What a persist-phase event does to the copy of the entries; None: reload everything."""
    from pyha.directory.tree import Entry

    if event.state == "delete" and event.dn:
        return (event.dn, None)
    if event.state in ("add", "modify") and event.dn and event.attributes:
        return (event.dn, Entry(event.dn, dict(event.attributes)))
    return None


def _ldap3() -> Any:
    from pyha.directory.ldap3compat import ldap3

    return ldap3()
