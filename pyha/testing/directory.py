"""An in-memory directory for tests: the same entries, codecs and checks as LDAP, no server."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from pyha.clock import Clock, MonotonicClock
from pyha.directory.diff import Change
from pyha.directory.store import (
    EntryStore,
    OnChange,
    OnReject,
    Origin,
    exists_error,
    missing_error,
)
from pyha.directory.tree import Entry, Layout, is_under, norm_dn, parent_dn
from pyha.directory.watch import ConfigFollower
from pyha.errors import DirectoryError
from pyha.model.config import ClusterConfig

__all__ = ["MemoryDirectory", "MemoryWatch", "sample_config"]

_STATUS_CLASSES = {"pyharesourcestatus", "pyhanodestatus", "pyhaauditentry"}


class MemoryWatch:
    """A watch on a MemoryDirectory: checks run in the writer's thread, synchronously."""

    def __init__(self, directory: MemoryDirectory, follower: ConfigFollower) -> None:
        self.directory = directory
        self.follower = follower

    def stop(self) -> None:
        """Stop being told about changes."""
        self.directory._unwatch(self)


class MemoryDirectory(EntryStore):
    """A Directory held in a dict, for unit tests and for the contract suite.

    Invariant: it behaves like the LDAP backend for every Directory call (same entries,
    same errors); watchers are told after each complete change, in the writer's thread,
    so tests never wait. `put_entry` and `delete_entry` write raw entries the way
    `ldapmodify` would, without pyha's checks.
    """

    def __init__(self, base_dn: str = "dc=pyha,dc=test", cluster: str = "pyha", *,
                 clock: Clock | None = None, actor: str = "cn=admin,dc=pyha,dc=test") -> None:
        super().__init__(Layout(base_dn, cluster))
        self.clock = clock or MonotonicClock()
        self.actor = actor
        self.available = True
        """Set to False to make every call fail as if the server were down."""
        self._entries: dict[str, Entry] = {}
        self._origins: dict[str, Origin] = {}
        self._watches: list[MemoryWatch] = []
        self._lock = threading.RLock()
        self._depth = 0
        self._dirty = False

    @property
    def name(self) -> str:
        """memory: and the cluster DN."""
        return f"memory:{self.layout.cluster_dn}"

    # -- test helpers ---------------------------------------------------------------------------

    def put_entry(self, dn: str, attrs: Mapping[str, Iterable[str] | str], *,
                  actor: str | None = None) -> None:
        """Create or replace an entry as a direct LDAP write would (no pyha checks)."""
        entry = Entry.of(dn, attrs)
        with self._batch():
            self._up()
            self._entries[norm_dn(dn)] = entry
            self._touch(dn, actor)

    def modify_entry(self, dn: str, changes: Mapping[str, Iterable[str] | str], *,
                     actor: str | None = None) -> None:
        """Replace some attributes of an entry directly ([] deletes one)."""
        with self._batch():
            self._up()
            old = self._entries.get(norm_dn(dn))
            if old is None:
                raise missing_error(dn)
            attrs = dict(old.attrs)
            attrs.update(Entry.of(dn, {k: v for k, v in changes.items() if v}).attrs)
            for name, values in changes.items():
                if not values:
                    attrs.pop(name.lower(), None)
            self._entries[norm_dn(dn)] = Entry(old.dn, attrs)
            self._touch(dn, actor)

    def delete_entry(self, dn: str) -> None:
        """Delete an entry and everything below it directly."""
        with self._batch():
            self._up()
            for key in [k for k in self._entries if is_under(k, dn)]:
                del self._entries[key]
            self._dirty = True

    def entries(self) -> list[Entry]:
        """Every entry, in no particular order."""
        with self._lock:
            return list(self._entries.values())

    # -- primitives ----------------------------------------------------------------------------

    def _up(self) -> None:
        if not self.available:
            raise DirectoryError(f"{self.name}: cannot reach the directory (it is down)")

    def _touch(self, dn: str, actor: str | None) -> None:
        self._origins[norm_dn(dn)] = Origin(actor or self.actor, self.clock.wall())
        if not _is_record(self._entries.get(norm_dn(dn))):
            self._dirty = True

    def _config_entries(self) -> list[Entry]:
        with self._lock:
            self._up()
            return [e for k, e in self._entries.items()
                    if is_under(k, self.layout.cluster_dn) and not _is_record(e)]

    def _records(self, container: str, object_class: str) -> list[Entry]:
        with self._lock:
            self._up()
            base = self.layout.container(container)
            return [e for k, e in self._entries.items()
                    if is_under(k, base) and object_class.lower() in e.classes()]

    def _exists(self, dn: str) -> bool:
        with self._lock:
            self._up()
            return norm_dn(dn) in self._entries

    def _add(self, entry: Entry) -> None:
        with self._lock:
            self._up()
            key = norm_dn(entry.dn)
            if key in self._entries:
                raise exists_error(entry.dn)
            parent = norm_dn(parent_dn(entry.dn))
            if parent not in self._entries and not is_under(self.layout.base_dn, parent):
                raise missing_error(entry.dn)
            self._entries[key] = entry
            self._touch(entry.dn, None)

    def _modify(self, dn: str, changes: dict[str, list[str]]) -> None:
        with self._lock:
            self._up()
            old = self._entries.get(norm_dn(dn))
            if old is None:
                raise missing_error(dn)
            attrs = dict(old.attrs)
            for name, values in changes.items():
                if values:
                    attrs[name.lower()] = tuple(values)
                else:
                    attrs.pop(name.lower(), None)
            self._entries[norm_dn(dn)] = Entry(old.dn, attrs)
            self._touch(dn, None)

    def _delete(self, dn: str) -> None:
        with self._lock:
            self._up()
            key = norm_dn(dn)
            if key not in self._entries:
                raise missing_error(dn)
            if any(norm_dn(parent_dn(k)) == key for k in self._entries):
                raise DirectoryError(f"delete {dn}: notAllowedOnNonLeaf")
            entry = self._entries.pop(key)
            self._origins.pop(key, None)
            if not _is_record(entry):
                self._dirty = True

    def _swap(self, dn: str, attribute: str, old: str | None, new: str) -> bool:
        with self._lock:
            self._up()
            entry = self._entries.get(norm_dn(dn))
            if entry is None:
                raise missing_error(dn)
            current = entry.values(attribute)
            if (old is None and current) or (old is not None and current != (old,)):
                return False
            self._modify(dn, {attribute: [new]})
            return True

    @contextmanager
    def _batch(self) -> Iterator[object]:
        with self._lock:
            self._depth += 1
        try:
            yield self
        finally:
            with self._lock:
                self._depth -= 1
                notify = self._depth == 0 and self._dirty
                if notify:
                    self._dirty = False
            if notify:
                self._notify()

    # -- watching and origins --------------------------------------------------------------------

    def origin(self, change: Change) -> Origin | None:
        """Who wrote the changed entry last, and when."""
        with self._lock:
            return self._origins.get(norm_dn(change.dn(self.layout)))

    def watch(self, on_change: OnChange, on_reject: OnReject | None = None, *,
              known: ClusterConfig | None = None) -> MemoryWatch:
        """Register a watcher; if `known` is None it gets the current config at once."""
        follower = ConfigFollower(self.load, on_change, on_reject, known=known, name=self.name)
        watch = MemoryWatch(self, follower)
        with self._lock:
            self._watches.append(watch)
        if known is None:
            follower.check()
        return watch

    def _unwatch(self, watch: MemoryWatch) -> None:
        with self._lock:
            if watch in self._watches:
                self._watches.remove(watch)

    def _notify(self) -> None:
        with self._lock:
            watches = list(self._watches)
        for watch in watches:
            watch.follower.check()

    def recheck(self) -> None:
        """Have every watcher load again (as an LDAP watcher does after reconnecting)."""
        self._notify()


def _is_record(entry: Entry | None) -> bool:
    return entry is not None and bool(entry.classes() & _STATUS_CLASSES)


def sample_config(name: str = "pyha") -> ClusterConfig:
    """A configuration in which every field of every model differs from its default.

    Round-trip tests of a backend store and load it; a test of this module checks that
    no field was left at its default, so a field added to the models shows up there.
    """
    return ClusterConfig.from_mapping({
        "cluster": {
            "name": name, "stickiness": "INFINITY", "no_quorum_policy": "freeze",
            "maintenance": True, "dead_after": 0.1234, "heartbeat_interval": "50ms",
            "tiebreaker": "witness", "fence_race_delay": 7.5, "cycle_interval": "2s",
            "call_timeout": "3s", "key_file": "/etc/pyha/cluster.key",
            "recovery_without_fencing": True, "state_dir": "/var/lib/pyha-x",
            "plugin_paths": ["/opt/b", "/opt/a"],
        },
        "epoch": 7,
        "nodes": [
            {"name": "n2", "addresses": ["10.0.0.2:5405", "[fe80::1]:5405"],
             "rpc": "10.0.0.2:5406", "votes": 2, "standby": True, "maintenance": True,
             "attributes": {"rack": "r1", "note": "a=b, c"},
             "fence": {"kind": "command", "off": ["ipmitool", "-H", "bmc2", "power", "off"],
                       "status": ["ipmitool", "-H", "bmc2", "power", "status"]}},
            {"name": "n1", "fence": {"kind": "namespace", "namespace": "pyha-n1"}},
        ],
        "resource_types": [{"name": "web", "plugin": "python:pyha:process",
                            "description": "a web server, ünïcode"}],
        "groups": [
            {"name": "g", "description": "the first group",
             "meta": {"target_role": "stopped", "stickiness": -5},
             "resources": [
                 {"name": "b", "type": "dummy", "description": "b: a dummy",
                  "params": {"s": "1", "i": 1, "f": 1.5, "t": True, "l": ["a", "b c"],
                             "q": '"x"', "e": "", "sp": " a ", "eq": "k=v"},
                  "operations": [
                      {"name": "monitor", "interval": "10s", "timeout": "20s",
                       "on_fail": "stop", "role": "promoted"},
                      {"name": "start", "timeout": "1m"}],
                  "meta": {"target_role": "promoted", "stickiness": "-INFINITY",
                           "migration_threshold": 5, "failure_timeout": 0}},
                 {"name": "a", "type": "ocf:heartbeat:Dummy"},
             ]},
            {"name": "g2", "resources": [{"name": "c", "type": "dummy"}]},
        ],
        "constraints": [
            {"kind": "order", "id": "o1", "first": "g", "then": "g2", "mandatory": False,
             "symmetrical": False},
            {"kind": "location", "id": "l1", "group": "g", "node": "n1", "score": 50,
             "expires": 1_767_225_600.123456},
            {"kind": "colocation", "id": "c1", "group": "g2", "with_group": "g",
             "score": -100},
        ],
    })
