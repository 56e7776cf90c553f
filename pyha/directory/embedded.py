"""The `embedded` backend: the cluster's directory tree in files under a node's state directory.

Clusters without an LDAP server use it: a change goes to the coordinator, gets the next
epoch, is written here on every member, and is acknowledged once a majority of votes has
it on disk (pyha.cluster.node, through `ConfigStore`). At start-up a node runs the newer of
its cluster file and this store, so a change made at runtime survives a restart, and a
node that was away catches up from the coordinator.

The files hold the same tree as the LDAP backend (base DN `o=pyha`):

- `config.json`: the configuration part, in one of two forms. The *entries* form lists
  every entry with who wrote it and when (what `EmbeddedDirectory` writes). The *whole*
  form holds the configuration as JSON with one writer and time for all of it (what the
  replication writes, through `ConfigStore.save`: as fast as a plain JSON dump); its
  entries are derived when something first asks for them. A `pyha-config-1` file of
  earlier releases reads as the whole form.
- `records.json`: status and audit entries (written apart, so status writes never
  rewrite the configuration).
- `directory.lock`: the flock every writer holds around its read-modify-write.

Every write is durable: a temporary file is written, synced, renamed over the old one,
and the folder is synced; a crash leaves the old file or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyha.clock import Clock
from pyha.directory.filestore import (
    LOCK_TIMEOUT,
    RECORDS,
    TREE,
    FileMark,
    TableStore,
    entries_from_json,
    entry_to_json,
    file_lock,
    unchanged,
    write_durably,
)
from pyha.directory.schema import ParseMemo, config_from_entries, config_to_entries
from pyha.directory.store import OnChange, OnReject, Origin
from pyha.directory.tree import ClusterNotFound, Entry, Layout, base_entry, is_under
from pyha.directory.watch import ConfigFollower
from pyha.errors import ConfigError, DirectoryError
from pyha.model.config import ClusterConfig

log = logging.getLogger("pyha.directory")

CONFIG_FILE = "config.json"
"""The file under a node's state directory that holds the replicated configuration."""
STORE_FILE = CONFIG_FILE
RECORDS_FILE = "records.json"
"""The file under a node's state directory that holds status and audit entries."""
LOCK_FILE = "directory.lock"
"""The file every writer of the two files above holds an flock on."""
FORMAT = "pyha-directory-1"
RECORDS_FORMAT = "pyha-records-1"
LEGACY_FORMAT = "pyha-config-1"
"""config.json of earlier releases: {"format": ..., "config": <the configuration>}."""
EMBEDDED_BASE_DN = "o=pyha"
"""The base DN of the embedded tree: its cluster entry is cn=<cluster>,o=pyha."""
POLL_INTERVAL = 0.2
"""How often a watch looks at config.json for a change, in seconds."""


def canonical(config: ClusterConfig) -> bytes:
    """The configuration as JSON with sorted keys: the same bytes on every node."""
    return json.dumps(config.model_dump(mode="json"), sort_keys=True,
                      separators=(",", ":")).encode()


def digest(config: ClusterConfig) -> str:
    """A short fingerprint of the whole configuration (its epoch included): two nodes
    run the same configuration exactly when their digests are equal."""
    return hashlib.sha256(canonical(config)).hexdigest()[:16]


def from_json(data: Any, source: str = "replicated configuration") -> ClusterConfig:
    """A configuration from its JSON form; ConfigError names the bad fields."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: not a configuration (a JSON object is expected)")
    return ClusterConfig.from_mapping(data, source)


def default_actor() -> str:
    """Who this process's writes are recorded as: user@host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


# -- config.json ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredTree:
    """What config.json holds: the whole configuration's JSON, or entries (see the module)."""

    base_dn: str
    cluster: str | None
    whole: Any = None
    """The configuration's JSON form (the whole form), not validated yet."""
    origin: Origin | None = None
    """Who wrote the whole form, and when: the origin of each of its entries."""
    entries: tuple[tuple[Entry, Origin | None], ...] = ()
    """The entries form: each entry with who wrote it, when."""

    def configuration(self, source: Path) -> ClusterConfig | None:
        """The configuration stored (None: no cluster entry); ConfigError names `source`."""
        if self.whole is not None:
            return from_json(self.whole, str(source))
        if self.cluster is None:
            return None
        layout = Layout(self.base_dn, self.cluster)
        try:
            return config_from_entries([e for e, _ in self.entries
                                        if is_under(e.dn, layout.cluster_dn)], layout)
        except ClusterNotFound:
            return None
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc.args[0]}",
                              tuple(f"{source}: {p}" for p in exc.problems)) from None


def read_tree(data: bytes, path: Path) -> StoredTree:
    """Parse config.json's bytes; ConfigError names `path` when they are no such file."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    fmt = doc.get("format") if isinstance(doc, dict) else None
    if fmt == LEGACY_FORMAT:
        whole = doc.get("config")
        return StoredTree(EMBEDDED_BASE_DN, _cluster_of(whole), whole=whole)
    if fmt != FORMAT or not isinstance(doc.get("base_dn"), str):
        raise ConfigError(f"{path}: format: not a {FORMAT} file")
    cluster = doc.get("cluster") if isinstance(doc.get("cluster"), str) else None
    if "config" in doc:
        who, when = doc.get("modifiersName"), doc.get("modifyTime")
        origin = Origin(str(who), float(when) if isinstance(when, int | float) else None) \
            if who else None
        return StoredTree(doc["base_dn"], cluster, whole=doc["config"], origin=origin)
    return StoredTree(doc["base_dn"], cluster,
                      entries=tuple(entries_from_json(doc.get("entries"), str(path))))


def _cluster_of(whole: Any) -> str | None:
    cluster = whole.get("cluster") if isinstance(whole, dict) else None
    name = cluster.get("name") if isinstance(cluster, dict) else None
    return name if isinstance(name, str) else None


def whole_body(config: ClusterConfig, origin: Origin, base_dn: str = EMBEDDED_BASE_DN) -> bytes:
    """config.json in the whole form."""
    # No indent: json's fast C encoder only runs without one (10,000 resources).
    return json.dumps({"format": FORMAT, "base_dn": base_dn, "cluster": config.cluster.name,
                       "modifiersName": origin.who, "modifyTime": origin.when,
                       "config": config.model_dump(mode="json")},
                      sort_keys=True, separators=(",", ":")).encode()


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


class ConfigStore:
    """One node's durable copy of the configuration: the embedded directory's config.json.

    Invariant: the file holds either the previous or the new configuration, never a
    mix (see write_durably); a save holds the directory's lock, so it never interleaves
    with an EmbeddedDirectory's read-modify-write of the same file.
    """

    def __init__(self, state_dir: Path, *, actor: str | None = None) -> None:
        self.path = Path(state_dir) / CONFIG_FILE
        self.lock_path = Path(state_dir) / LOCK_FILE
        self.actor = actor or default_actor()
        self._lock = threading.Lock()

    def load(self) -> ClusterConfig | None:
        """The stored configuration, or None when there is none; ConfigError when the
        file exists but cannot be read or is not a valid configuration."""
        data = _read_bytes(self.path)
        if data is None:
            return None
        return read_tree(data, self.path).configuration(self.path)

    def save(self, config: ClusterConfig) -> None:
        """Write `config` durably: when this returns, it survives a crash or power loss."""
        body = whole_body(config, Origin(self.actor, time.time()))
        with self._lock, file_lock(self.lock_path):
            write_durably(self.path, body).close()


def newest(config: ClusterConfig, store: ConfigStore) -> ClusterConfig:
    """The configuration a node starts with: the stored one when its epoch is higher than
    the cluster file's (changes made at runtime), else the file's (an admin edited it).
    A stored configuration of another cluster is refused."""
    stored = store.load()
    if stored is None:
        return config
    if stored.cluster.name != config.cluster.name:
        raise ConfigError(f"{store.path}: holds cluster {stored.cluster.name!r}, not "
                          f"{config.cluster.name!r}; remove it or use another state_dir")
    if stored.epoch > config.epoch:
        log.info("running the stored configuration epoch %d (the cluster file has epoch %d)",
                 stored.epoch, config.epoch)
        return stored
    return config


# -- the directory -----------------------------------------------------------------------------


class EmbeddedDirectory(TableStore):
    """A cluster's directory tree in files under a state directory (see the module).

    Invariant: every batch of writes holds an exclusive flock of directory.lock from
    start to end, starts from the files as they are on disk (read again when changed),
    and ends by writing each file it changed once, durably; a batch that fails writes
    nothing. So writers in several processes lose nothing, and of two concurrent
    configuration changes the later one fails with ConcurrentChange (the epoch swap).
    Reads outside a batch take the files as they are (a rename is atomic).
    """

    def __init__(self, state_dir: Path, cluster: str | None = None, *,
                 base_dn: str | None = None, actor: str | None = None,
                 clock: Clock | None = None, poll_interval: float = POLL_INTERVAL,
                 lock_timeout: float = LOCK_TIMEOUT) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / CONFIG_FILE
        self.records_path = self.state_dir / RECORDS_FILE
        self.lock_path = self.state_dir / LOCK_FILE
        self.poll_interval = poll_interval
        self.lock_timeout = lock_timeout
        mark = FileMark.open(self.path)
        try:
            stored = read_tree(mark.read(), self.path) if mark else None
            name = cluster or (stored.cluster if stored else None)
            if not name:
                raise ConfigError(f"{self.path}: no cluster is stored here; name the cluster")
            if stored and stored.cluster and stored.cluster != name:
                raise ConfigError(f"{self.path}: holds cluster {stored.cluster!r}, not "
                                  f"{name!r}; a state directory holds one cluster")
        except BaseException:
            if mark:
                mark.close()
            raise
        base = base_dn or (stored.base_dn if stored else EMBEDDED_BASE_DN)
        super().__init__(Layout(base, name), actor=actor or default_actor(), clock=clock)
        self._marks: dict[str, FileMark | None] = {TREE: None, RECORDS: None}
        self._current: set[str] = set()
        self._whole: StoredTree | None = None
        self._whole_config: ClusterConfig | None = None
        self._derived = False
        self._memo = ParseMemo()
        self._held: contextlib.ExitStack | None = None
        self._install(TREE, mark, stored)

    @property
    def name(self) -> str:
        """embedded: the file and the cluster DN."""
        return f"embedded:{self.path} {self.layout.cluster_dn}"

    def close(self) -> None:
        """Let go of the files (a later call reads them again)."""
        with self._lock:
            for part, mark in self._marks.items():
                if mark is not None:
                    mark.close()
                self._marks[part] = None
            self._current.clear()

    # -- reading the files ----------------------------------------------------------------------

    def _fresh(self) -> None:
        self._refresh()
        self._derive()

    def _refresh(self) -> None:
        """Read again each file that changed on disk since the table was filled from it."""
        for part, path in ((TREE, self.path), (RECORDS, self.records_path)):
            if part in self._current and unchanged(self._marks[part], path):
                continue
            mark = FileMark.open(path)
            try:
                data = mark.read() if mark else None
                stored = read_tree(data, path) if part == TREE and data is not None else None
                records = _read_records(data, path) if part == RECORDS else ()
            except BaseException:
                if mark:
                    mark.close()
                raise
            self._install(part, mark, stored, records)

    def _install(self, part: str, mark: FileMark | None, stored: StoredTree | None,
                 records: Iterable[tuple[Entry, Origin | None]] = ()) -> None:
        """Make `part` of the table what a file (marked `mark`) holds."""
        if part == TREE:
            whole = stored is not None and stored.whole is not None
            self._whole = stored if whole else None
            self._whole_config = None
            self._derived = False
            self._fill(TREE, () if stored is None or whole else stored.entries)
        else:
            self._fill(RECORDS, records)
            self._status_nodes.clear()  # the status entries known to exist may be gone
        old = self._marks[part]
        if old is not None:
            old.close()
        self._marks[part] = mark
        self._current.add(part)

    def _whole_parsed(self) -> ClusterConfig | None:
        """The whole form's configuration, validated (once per version of the file)."""
        if self._whole is None:
            return None
        if self._whole_config is None:
            self._whole_config = from_json(self._whole.whole, str(self.path))
        return self._whole_config

    def _derive(self) -> None:
        """Fill the configuration part with the whole form's entries, if not done yet."""
        config = self._whole_parsed()
        if config is None or self._derived:
            return
        assert self._whole is not None
        layout = Layout(self.layout.base_dn, config.cluster.name)
        entries = [base_entry(layout.base_dn), *config_to_entries(config, layout)]
        self._fill(TREE, [(e, self._whole.origin) for e in entries])
        self._derived = True

    def _forget(self) -> None:
        """Read both files again before the table is next used (a batch failed)."""
        self._current.clear()

    # -- writing them -----------------------------------------------------------------------------

    def _begin(self) -> None:
        held = contextlib.ExitStack()
        held.enter_context(file_lock(self.lock_path, self.lock_timeout))
        try:
            self._fresh()
        except BaseException:
            held.close()
            raise
        self._held = held

    def _end(self, dirty: frozenset[str], failed: bool) -> bool:
        try:
            if failed:
                self._forget()
                return False
            for part in (TREE, RECORDS):
                if part in dirty:
                    self._write(part)
            return TREE in dirty
        except OSError as exc:
            self._forget()
            raise DirectoryError(f"{self.state_dir}: cannot write: {exc.strerror or exc}") \
                from None
        finally:
            if self._held is not None:
                self._held.close()
                self._held = None

    def _write(self, part: str) -> None:
        items = sorted(self._parts[part].items(), key=lambda kv: (kv[0].count(","), kv[0]))
        entries = [entry_to_json(e, self._origins.get(k)) for k, e in items]
        if part == TREE:
            doc: dict[str, Any] = {"format": FORMAT, "base_dn": self.layout.base_dn,
                                   "cluster": self.layout.cluster, "entries": entries}
            path = self.path
            self._whole, self._whole_config, self._derived = None, None, False
        else:
            doc, path = {"format": RECORDS_FORMAT, "entries": entries}, self.records_path
        mark = write_durably(path, json.dumps(doc, separators=(",", ":")).encode())
        old = self._marks[part]
        if old is not None:
            old.close()
        self._marks[part] = mark

    # -- Directory ----------------------------------------------------------------------------

    def load(self) -> ClusterConfig:
        """The configuration: straight from the whole form, else built from the entries."""
        with self._lock:
            if self._depth == 0:
                self._refresh()
            if TREE not in self._dirty:
                config = self._whole_parsed()
                if config is not None and config.cluster.name == self.layout.cluster:
                    return config
            return config_from_entries(self._config_entries(), self.layout, self._memo)

    def watch(self, on_change: OnChange, on_reject: OnReject | None = None, *,
              known: ClusterConfig | None = None) -> FileWatch:
        """Start a thread that polls config.json every `poll_interval` seconds."""
        follower = ConfigFollower(self.load, on_change, on_reject, known=known, name=self.name)
        watch = FileWatch(self, follower)
        self._add_watch(watch)
        watch.start()
        return watch


def _read_records(data: bytes | None, path: Path) -> list[tuple[Entry, Origin | None]]:
    """The entries of records.json; DirectoryError names the file when it is damaged."""
    if data is None:
        return []
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != RECORDS_FORMAT:
            raise ConfigError(f"{path}: format: not a {RECORDS_FORMAT} file")
        return entries_from_json(doc.get("entries"), str(path))
    except ValueError as exc:
        raise DirectoryError(f"{path}: not valid JSON: {exc}") from None
    except ConfigError as exc:
        raise DirectoryError(str(exc)) from None


class FileWatch:
    """A thread that has an embedded directory loaded whenever its config.json changed.

    Invariant: a change to the file (another process's write, or this directory's own,
    which also wakes the thread at once) leads to a `follower.check()` within one poll
    interval; the first check runs when the thread starts, so a change made between the
    caller's last load and the start is not missed.
    """

    def __init__(self, directory: EmbeddedDirectory, follower: ConfigFollower) -> None:
        self.directory = directory
        self.follower = follower
        self.path = directory.path
        self.interval = directory.poll_interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pyha-embedded-watch",
                                        daemon=True)
        self._mark: FileMark | None = None

    def start(self) -> None:
        """Start watching in the background."""
        self._thread.start()

    def poke(self) -> None:
        """Look at the file now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Stop watching and wait for the thread."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self.directory._unwatch(self)

    def _run(self) -> None:
        try:
            self._look(first=True)
            while not self._stop.is_set():
                self._wake.wait(self.interval)
                self._wake.clear()
                if not self._stop.is_set():
                    self._look(first=False)
        finally:
            if self._mark is not None:
                self._mark.close()

    def _look(self, first: bool) -> None:
        try:
            if not first and unchanged(self._mark, self.path):
                return
            if self._mark is not None:
                self._mark.close()
                self._mark = None
            self._mark = FileMark.open(self.path)
        except (OSError, DirectoryError) as exc:
            self.follower.unreachable(f"{self.path}: {exc}")
            return
        try:
            self.follower.check()
        except Exception:  # a loop boundary: log and keep watching
            log.exception("embedded directory watch on %s failed; watching on", self.path)


__all__ = ["CONFIG_FILE", "EMBEDDED_BASE_DN", "LOCK_FILE", "POLL_INTERVAL", "RECORDS_FILE",
           "ConfigStore", "EmbeddedDirectory", "FileWatch", "StoredTree", "canonical",
           "default_actor", "digest", "from_json", "newest", "read_tree"]
