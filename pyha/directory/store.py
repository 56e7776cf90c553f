"""The Directory interface: read the whole configuration, write changes, status, audit; watch.

Backends: `ldap` (pyha.directory.ldap, OpenLDAP through ldap3) and the in-memory one in
pyha.testing.directory; both store the same entries through `EntryStore`. A backend that
keeps no LDAP entries (the cluster's replicated file store) implements `Directory` directly.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, Self, TypeVar

from pyha.directory import edits
from pyha.directory.codecs import format_time
from pyha.directory.diff import Change
from pyha.directory.records import AuditRecord, NodeStatusRecord, StatusRecord
from pyha.directory.schema import (
    STATUS_ATTRS,
    audit_from_entry,
    audit_to_entry,
    config_and_provenance,
    config_to_entries,
    node_status_from_entry,
    status_from_entry,
    status_to_entry,
)
from pyha.directory.tree import (
    ClusterNotFound,
    Entry,
    EntryError,
    Layout,
    base_entry,
    changed_attrs,
    entries_sorted,
    norm_dn,
)
from pyha.errors import ConfigError, DirectoryError
from pyha.model.config import (
    ClusterConfig,
    ClusterOptions,
    Constraint,
    Group,
    Node,
    Resource,
    ResourceType,
)

log = logging.getLogger("pyha.directory")

T = TypeVar("T")
OnChange = Callable[[ClusterConfig], None]
OnReject = Callable[[ConfigError], None]


class NoSuchEntry(DirectoryError):
    """The entry (or its parent) does not exist."""


class EntryExists(DirectoryError):
    """An entry with that DN exists already."""


class ConcurrentChange(DirectoryError):
    """Someone else changed the configuration between our read and our write; try again."""


@dataclass(frozen=True)
class Origin:
    """Who last changed an entry, and when (wall-clock seconds), as the directory recorded."""

    who: str
    when: float | None


class Watch(Protocol):
    """A running watch; `stop` ends it and waits for its thread, if any."""

    def stop(self) -> None:
        """Stop watching."""
        ...


class Directory(ABC):
    """Where a cluster's configuration lives.

    Invariant: `load` returns a complete, validated ClusterConfig or raises; every write
    is checked against the whole configuration first and a change that would make it
    invalid raises ConfigError with nothing written; each accepted change raises the
    epoch by one.
    """

    @property
    @abstractmethod
    def name(self) -> str:
        """Where the configuration lives, for logs (never with a password)."""

    @abstractmethod
    def load(self) -> ClusterConfig:
        """The whole configuration; ConfigError names the bad entries, DirectoryError I/O."""

    @abstractmethod
    def apply(self, edit: edits.Edit) -> ClusterConfig:
        """Apply one change (see pyha.directory.edits) and return the new configuration."""

    @abstractmethod
    def replace(self, config: ClusterConfig) -> ClusterConfig:
        """Make the stored configuration `config`, creating the cluster if it is absent."""

    @abstractmethod
    def write_status(self, records: Iterable[StatusRecord]) -> None:
        """Create or update the status of each (node, resource)."""

    @abstractmethod
    def remove_status(self, node: str, resource: str) -> None:
        """Forget the status of a resource on a node (it left the configuration)."""

    @abstractmethod
    def read_status(self) -> list[StatusRecord]:
        """Every status record."""

    @abstractmethod
    def write_node_status(self, records: Iterable[NodeStatusRecord]) -> None:
        """Set each node's online flag and last-seen time (its cn=<node> status entry)."""

    @abstractmethod
    def read_node_status(self) -> list[NodeStatusRecord]:
        """Every node's status."""

    @abstractmethod
    def write_audit(self, record: AuditRecord) -> None:
        """Add an audit record."""

    @abstractmethod
    def read_audit(self, limit: int | None = None) -> list[AuditRecord]:
        """Audit records, oldest first; with `limit`, the most recent ones."""

    @abstractmethod
    def origin(self, change: Change) -> Origin | None:
        """Who made `change` and when, if the directory knows."""

    @abstractmethod
    def watch(self, on_change: OnChange, on_reject: OnReject | None = None, *,
              known: ClusterConfig | None = None) -> Watch:
        """Call `on_change` with each new valid configuration; `known` is the current one.

        A configuration that fails to load or validate is logged with its reason (the DN
        and attribute) and passed to `on_reject`; the last good one stays.
        """

    def close(self) -> None:  # noqa: B027 - backends without resources need nothing here
        """Release connections."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- convenience: one change each -------------------------------------------------------

    def add_group(self, group: Group, position: int | None = None) -> ClusterConfig:
        """Add a group with its resources."""
        return self.apply(edits.add_group(group, position))

    def update_group(self, group: Group) -> ClusterConfig:
        """Replace a group, resources included."""
        return self.apply(edits.update_group(group))

    def remove_group(self, name: str) -> ClusterConfig:
        """Remove a group and its resources."""
        return self.apply(edits.remove_group(name))

    def add_resource(self, group: str, resource: Resource,
                     position: int | None = None) -> ClusterConfig:
        """Add a resource to a group."""
        return self.apply(edits.add_resource(group, resource, position))

    def update_resource(self, resource: Resource) -> ClusterConfig:
        """Replace a resource."""
        return self.apply(edits.update_resource(resource))

    def remove_resource(self, name: str) -> ClusterConfig:
        """Remove a resource."""
        return self.apply(edits.remove_resource(name))

    def add_node(self, node: Node, position: int | None = None) -> ClusterConfig:
        """Add a node."""
        return self.apply(edits.add_node(node, position))

    def update_node(self, node: Node) -> ClusterConfig:
        """Replace a node."""
        return self.apply(edits.update_node(node))

    def remove_node(self, name: str) -> ClusterConfig:
        """Remove a node."""
        return self.apply(edits.remove_node(name))

    def add_resource_type(self, rtype: ResourceType) -> ClusterConfig:
        """Declare a resource type."""
        return self.apply(edits.add_resource_type(rtype))

    def remove_resource_type(self, name: str) -> ClusterConfig:
        """Remove a resource type."""
        return self.apply(edits.remove_resource_type(name))

    def add_constraint(self, constraint: Constraint) -> ClusterConfig:
        """Add a constraint."""
        return self.apply(edits.add_constraint(constraint))

    def update_constraint(self, constraint: Constraint) -> ClusterConfig:
        """Replace a constraint."""
        return self.apply(edits.update_constraint(constraint))

    def remove_constraint(self, ident: str) -> ClusterConfig:
        """Remove a constraint."""
        return self.apply(edits.remove_constraint(ident))

    def set_options(self, options: ClusterOptions) -> ClusterConfig:
        """Replace the cluster options."""
        return self.apply(edits.set_options(options))


def _is_constraint(entry: Entry, layout: Layout) -> bool:
    return norm_dn(entry.dn).endswith("," + norm_dn(layout.container("constraints")))


class EntryStore(Directory):
    """A Directory kept as LDAP-shaped entries; backends supply a few entry primitives.

    Invariant: writes compare the stored entries with the entries of the new
    configuration and touch only what differs; the epoch is swapped first (compare and
    swap), so of two concurrent writers one fails with ConcurrentChange.
    """

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._write_lock = threading.Lock()
        self._status_nodes: set[str] = set()

    # -- primitives ---------------------------------------------------------------------------

    @abstractmethod
    def _config_entries(self) -> list[Entry]:
        """Every entry under the cluster entry except status and audit records ([] if none)."""

    @abstractmethod
    def _records(self, container: str, object_class: str) -> list[Entry]:
        """The entries of `object_class` under ou=<container>."""

    @abstractmethod
    def _exists(self, dn: str) -> bool:
        """Whether an entry exists."""

    @abstractmethod
    def _add(self, entry: Entry) -> None:
        """Add an entry; EntryExists, or NoSuchEntry when the parent is missing."""

    @abstractmethod
    def _modify(self, dn: str, changes: dict[str, list[str]]) -> None:
        """Replace attributes ([] deletes one); NoSuchEntry when the entry is missing."""

    @abstractmethod
    def _delete(self, dn: str) -> None:
        """Delete a leaf entry; NoSuchEntry when it is missing."""

    @abstractmethod
    def _swap(self, dn: str, attribute: str, old: str | None, new: str) -> bool:
        """Set a single-valued attribute to `new` only if it is `old` (None: absent)."""

    def _batch(self) -> AbstractContextManager[object]:
        """A context in which several primitives form one change (for notifications)."""
        return contextlib.nullcontext()

    # -- Directory ----------------------------------------------------------------------------

    def load(self) -> ClusterConfig:
        """The whole configuration from the entries."""
        return config_and_provenance(self._config_entries(), self.layout)[0]

    def apply(self, edit: edits.Edit) -> ClusterConfig:
        """Read, change, check, then write only the entries that differ."""
        with self._write_lock:
            raw = self._config_entries()
            old = config_and_provenance(raw, self.layout)[0]
            new = edit(old).model_copy(update={"epoch": old.epoch + 1})
            with self._batch():
                self._claim_epoch(raw, new.epoch)
                self._write_entries(raw, config_to_entries(new, self.layout))
            return new

    def replace(self, config: ClusterConfig) -> ClusterConfig:
        """Write `config` whole; entries of the cluster that it lacks are removed."""
        if config.cluster.name != self.layout.cluster:
            raise ConfigError(f"cluster.name: this directory is set up for cluster "
                              f"{self.layout.cluster!r}, the file is for {config.cluster.name!r}")
        with self._write_lock:
            raw = self._config_entries()
            epoch = max(_stored_epoch(raw, self.layout) + 1, config.epoch)
            new = config.model_copy(update={"epoch": epoch})
            with self._batch():
                if raw:
                    self._claim_epoch(raw, epoch)
                elif not self._exists(self.layout.base_dn):
                    self._add(base_entry(self.layout.base_dn))
                self._write_entries(raw, config_to_entries(new, self.layout))
            return new

    def ensure_base(self) -> bool:
        """Create the base DN's entry if it is missing; True if it was created."""
        if self._exists(self.layout.base_dn):
            return False
        self._add(base_entry(self.layout.base_dn))
        return True

    def _claim_epoch(self, raw: list[Entry], epoch: int) -> None:
        cluster = _cluster_entry(raw, self.layout)
        current = cluster.values("pyhaEpoch")[0] if cluster and cluster.values("pyhaEpoch") \
            else None
        if not self._swap(self.layout.cluster_dn, "pyhaEpoch", current, str(epoch)):
            raise ConcurrentChange(f"{self.layout.cluster_dn}: the configuration changed while "
                                   f"this change was prepared (epoch is no longer {current}); "
                                   "try again")

    def _write_entries(self, raw: list[Entry], target: list[Entry]) -> None:
        """Make the stored entries equal `target`: constraints go first and come last."""
        have = {norm_dn(e.dn): e for e in raw}
        want = {norm_dn(e.dn): e for e in target}
        gone = [e for k, e in have.items() if k not in want]
        layout = self.layout
        self._delete_all([e for e in gone if _is_constraint(e, layout)])
        self._put_all([e for e in target if not _is_constraint(e, layout)], have)
        self._delete_all([e for e in gone if not _is_constraint(e, layout)])
        self._put_all([e for e in target if _is_constraint(e, layout)], have)

    def _put_all(self, entries: Sequence[Entry], have: dict[str, Entry]) -> None:
        for entry in entries_sorted(entries):
            old = have.get(norm_dn(entry.dn))
            if old is None:
                self._add(entry)
            elif old.classes() != entry.classes():
                self._delete(old.dn)  # a structural class cannot change in place
                self._add(entry)
            else:
                changes = changed_attrs(old, entry)
                changes.pop("pyhaEpoch", None)  # already swapped
                if changes:
                    self._modify(old.dn, changes)

    def _delete_all(self, entries: Sequence[Entry]) -> None:
        for entry in reversed(entries_sorted(entries)):
            self._delete(entry.dn)

    # -- status and audit ---------------------------------------------------------------------

    def write_status(self, records: Iterable[StatusRecord]) -> None:
        """Upsert each record's entry under ou=status/cn=<node>."""
        with self._batch():
            for record in records:
                self._status_node(record.node)
                entry = status_to_entry(record, self.layout)
                changes = {a.name: list(entry.values(a.name)) for a in STATUS_ATTRS}
                try:
                    self._modify(entry.dn, changes)
                except NoSuchEntry:
                    self._add(entry)

    def _status_node(self, node: str) -> None:
        if node in self._status_nodes:
            return
        container = self.layout.container("status")
        if not self._exists(container):
            self._add(Entry.of(container, {"objectClass": "organizationalUnit", "ou": "status"}))
        dn = self.layout.status_node_dn(node)
        if not self._exists(dn):
            self._add(Entry.of(dn, {"objectClass": "pyhaNodeStatus", "cn": node}))
        self._status_nodes.add(node)

    def remove_status(self, node: str, resource: str) -> None:
        """Delete one status entry; a missing one is fine."""
        with contextlib.suppress(NoSuchEntry):
            self._delete(self.layout.status_dn(node, resource))

    def read_status(self) -> list[StatusRecord]:
        """Every status record; unreadable entries are logged and skipped."""
        return sorted(_parsed(self._records("status", "pyhaResourceStatus"), status_from_entry),
                      key=lambda r: (r.node, r.resource))

    def write_node_status(self, records: Iterable[NodeStatusRecord]) -> None:
        """Update each node's cn=<node> entry under ou=status."""
        with self._batch():
            for record in records:
                self._status_node(record.node)
                online = "TRUE" if record.online else "FALSE"
                changes = {"pyhaOnline": [online], "pyhaLastSeen": (
                    [format_time(record.last_seen)] if record.last_seen is not None else [])}
                self._modify(self.layout.status_node_dn(record.node), changes)

    def read_node_status(self) -> list[NodeStatusRecord]:
        """Every node's status; unreadable entries are logged and skipped."""
        return sorted(_parsed(self._records("status", "pyhaNodeStatus"),
                              node_status_from_entry), key=lambda r: r.node)

    def write_audit(self, record: AuditRecord) -> None:
        """Add one audit entry."""
        self._add(audit_to_entry(record, self.layout))

    def read_audit(self, limit: int | None = None) -> list[AuditRecord]:
        """Audit records by time."""
        records = sorted(_parsed(self._records("audit", "pyhaAuditEntry"), audit_from_entry),
                         key=lambda r: r.id)
        return records[-limit:] if limit else records

    def export_entries(self, records: bool = False) -> list[Entry]:
        """The cluster's entries as stored; with `records`, status and audit too."""
        entries = self._config_entries()
        if records:
            for container, oc in (("status", "pyhaNodeStatus"), ("status", "pyhaResourceStatus"),
                                  ("audit", "pyhaAuditEntry")):
                entries += self._records(container, oc)
        return entries

    def prune_audit(self, keep: int) -> int:
        """Delete all but the newest `keep` audit records; returns how many went."""
        old = sorted(self._records("audit", "pyhaAuditEntry"), key=lambda e: norm_dn(e.dn))
        doomed = old[:-keep] if keep else old
        for entry in doomed:
            self._delete(entry.dn)
        return len(doomed)


def _cluster_entry(raw: list[Entry], layout: Layout) -> Entry | None:
    want = norm_dn(layout.cluster_dn)
    return next((e for e in raw if norm_dn(e.dn) == want), None)


def _stored_epoch(raw: list[Entry], layout: Layout) -> int:
    cluster = _cluster_entry(raw, layout)
    try:
        return int(cluster.values("pyhaEpoch")[0]) if cluster else 0
    except (IndexError, ValueError):
        return 0


def _parsed(entries: list[Entry], parse: Callable[[Entry], T]) -> list[T]:
    out = []
    for entry in entries:
        try:
            out.append(parse(entry))
        except EntryError as exc:
            log.warning("skipping unreadable record: %s", exc)
    return out


def exists_error(dn: str) -> EntryExists:
    """The error for adding an entry that exists."""
    return EntryExists(f"{dn}: an entry with this DN exists already")


def missing_error(dn: str) -> NoSuchEntry:
    """The error for an entry (or parent) that does not exist."""
    return NoSuchEntry(f"{dn}: no such entry")


__all__ = ["ClusterNotFound", "ConcurrentChange", "Directory", "EntryExists", "EntryStore",
           "NoSuchEntry", "OnChange", "OnReject", "Origin", "Watch"]
