"""Entry tables: the in-memory core of the in-memory and embedded directories, and files.

`TableStore` implements EntryStore's entry primitives on a table of entries held in
memory (pyha.testing.directory keeps it there; pyha.directory.embedded keeps it in files
under a node's state directory). The rest of this module is what those files need: a
durable write (write a temporary file, fsync, rename, fsync the folder), a lock between
processes (flock on a lock file), a mark that tells whether a file changed on disk, and
the JSON form of an entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from pyha.clock import Clock, MonotonicClock
from pyha.directory.diff import Change
from pyha.directory.store import EntryStore, Origin, exists_error, missing_error
from pyha.directory.tree import Entry, Layout, is_under, norm_dn, parent_dn
from pyha.errors import ConfigError, DirectoryError

TREE = "tree"
"""The part of a table that holds the base, cluster and configuration entries."""
RECORDS = "records"
"""The part of a table that holds status and audit records."""
RECORD_CLASSES = frozenset({"pyharesourcestatus", "pyhanodestatus", "pyhaauditentry"})
"""Object classes of the entries kept in RECORDS (lower case)."""
LOCK_TIMEOUT = 30.0
"""Longest wait for another writer's lock on a file, in seconds."""


def part_of(entry: Entry) -> str:
    """Which part of a table an entry belongs to: RECORDS or TREE."""
    return RECORDS if entry.classes() & RECORD_CLASSES else TREE


class TableWatch(Protocol):
    """A watch a TableStore tells about changes: `poke` asks it to look again."""

    def poke(self) -> None: ...


class TableStore(EntryStore):
    """An EntryStore whose entries sit in a table in memory, with who wrote each and when.

    Invariant: the table is read and changed only under `_lock`; a batch (every write
    primitive is one, and batches nest) holds the lock from start to end, and only the
    outermost one calls `_begin` and `_end`, which a subclass uses to make the batch's
    changes durable at once. Watchers hear about a batch once, after it, and only when
    it changed the configuration part (TREE).
    """

    def __init__(self, layout: Layout, *, actor: str, clock: Clock | None = None) -> None:
        super().__init__(layout)
        self.clock = clock or MonotonicClock()
        self.actor = actor
        """Who the writes of this object are recorded as (an LDAP server's bind DN)."""
        self._parts: dict[str, dict[str, Entry]] = {TREE: {}, RECORDS: {}}
        self._origins: dict[str, Origin] = {}
        self._kids: dict[str, int] | None = None
        self._lock = threading.RLock()
        self._depth = 0
        self._dirty: set[str] = set()
        self._watches: list[TableWatch] = []

    # -- what a subclass adds ----------------------------------------------------------------

    def _fresh(self) -> None:
        """Bring the table up to date before it is read (called under the lock)."""

    def _begin(self) -> None:
        """The outermost batch starts (under the lock): make the table current to change it."""
        self._fresh()

    def _end(self, dirty: frozenset[str], failed: bool) -> bool:
        """The outermost batch ended (under the lock); True if watchers should be told."""
        return TREE in dirty

    def _add_watch(self, watch: TableWatch) -> None:
        with self._lock:
            self._watches.append(watch)

    def _unwatch(self, watch: TableWatch) -> None:
        with self._lock:
            if watch in self._watches:
                self._watches.remove(watch)

    def _tree_changed(self) -> None:
        """Tell watchers that the configuration part changed (called outside the lock)."""
        with self._lock:
            watches = list(self._watches)
        for watch in watches:
            watch.poke()

    # -- the table ----------------------------------------------------------------------------

    def _fill(self, part: str, entries: Iterable[tuple[Entry, Origin | None]]) -> None:
        """Replace one part of the table with `entries` (read from where they are kept)."""
        table = self._parts[part]
        for key in table:
            self._origins.pop(key, None)
        table.clear()
        for entry, origin in entries:
            key = norm_dn(entry.dn)
            table[key] = entry
            if origin is not None:
                self._origins[key] = origin
        self._kids = None

    def _get(self, key: str) -> Entry | None:
        found = self._parts[TREE].get(key)
        return found if found is not None else self._parts[RECORDS].get(key)

    def _put(self, entry: Entry, actor: str | None) -> None:
        """Add or replace an entry and record who wrote it."""
        key = norm_dn(entry.dn)
        old = self._get(key)
        if old is None:
            self._count(parent_dn(key), 1)
        else:
            del self._parts[part_of(old)][key]
        part = part_of(entry)
        self._parts[part][key] = entry
        self._origins[key] = Origin(actor or self.actor, self.clock.wall())
        self._dirty.add(part)

    def _pop(self, key: str) -> Entry:
        entry = self._get(key)
        if entry is None:
            raise missing_error(key)
        part = part_of(entry)
        del self._parts[part][key]
        self._origins.pop(key, None)
        self._count(parent_dn(key), -1)
        self._dirty.add(part)
        return entry

    def _count(self, parent: str, step: int) -> None:
        if self._kids is not None:
            self._kids[parent] = self._kids.get(parent, 0) + step

    def _children(self, key: str) -> int:
        if self._kids is None:
            self._kids = {}
            for table in self._parts.values():
                for child in table:
                    parent = parent_dn(child)
                    self._kids[parent] = self._kids.get(parent, 0) + 1
        return self._kids.get(key, 0)

    @contextmanager
    def _batch(self) -> Iterator[object]:
        with self._lock:
            if self._depth == 0:
                self._dirty.clear()
                self._begin()
            self._depth += 1
            failed = True
            try:
                yield self
                failed = False
            finally:
                self._depth -= 1
                tell = False
                if self._depth == 0:
                    dirty = frozenset(self._dirty)
                    self._dirty.clear()
                    tell = self._end(dirty, failed)
        if tell:
            self._tree_changed()

    def _reading(self) -> None:
        """Under the lock, before a read: outside a batch, bring the table up to date."""
        if self._depth == 0:
            self._fresh()

    # -- raw writes, as a direct LDAP write would make them ------------------------------------

    def put_entry(self, dn: str, attrs: Mapping[str, Iterable[str] | str], *,
                  actor: str | None = None) -> None:
        """Create or replace an entry as a direct LDAP write would (no pyha checks)."""
        with self._batch():
            self._put(Entry.of(dn, attrs), actor)

    def modify_entry(self, dn: str, changes: Mapping[str, Iterable[str] | str], *,
                     actor: str | None = None) -> None:
        """Replace some attributes of an entry directly ([] deletes one)."""
        with self._batch():
            old = self._get(norm_dn(dn))
            if old is None:
                raise missing_error(dn)
            attrs = dict(old.attrs)
            attrs.update(Entry.of(dn, {k: v for k, v in changes.items() if v}).attrs)
            for name, values in changes.items():
                if not values:
                    attrs.pop(name.lower(), None)
            self._put(Entry(old.dn, attrs), actor)

    def delete_entry(self, dn: str) -> None:
        """Delete an entry and everything below it directly."""
        with self._batch():
            doomed = [k for table in self._parts.values() for k in table if is_under(k, dn)]
            for key in sorted(doomed, key=lambda k: -k.count(",")):
                self._pop(key)

    def entries(self) -> list[Entry]:
        """Every entry, in no particular order."""
        with self._lock:
            self._reading()
            return [*self._parts[TREE].values(), *self._parts[RECORDS].values()]

    # -- primitives ----------------------------------------------------------------------------

    def _config_entries(self) -> list[Entry]:
        with self._lock:
            self._reading()
            cluster = self.layout.cluster_dn
            return [e for k, e in self._parts[TREE].items() if is_under(k, cluster)]

    def _records(self, container: str, object_class: str) -> list[Entry]:
        with self._lock:
            self._reading()
            base = self.layout.container(container)
            return [e for k, e in self._parts[RECORDS].items()
                    if is_under(k, base) and object_class.lower() in e.classes()]

    def _exists(self, dn: str) -> bool:
        with self._lock:
            self._reading()
            return self._get(norm_dn(dn)) is not None

    def _add(self, entry: Entry) -> None:
        with self._batch():
            key = norm_dn(entry.dn)
            if self._get(key) is not None:
                raise exists_error(entry.dn)
            parent = parent_dn(key)
            if parent and self._get(parent) is None \
                    and not is_under(self.layout.base_dn, parent):
                raise missing_error(entry.dn)
            self._put(entry, None)

    def _modify(self, dn: str, changes: dict[str, list[str]]) -> None:
        with self._batch():
            old = self._get(norm_dn(dn))
            if old is None:
                raise missing_error(dn)
            attrs = dict(old.attrs)
            for name, values in changes.items():
                if values:
                    attrs[name.lower()] = tuple(values)
                else:
                    attrs.pop(name.lower(), None)
            self._put(Entry(old.dn, attrs), None)

    def _delete(self, dn: str) -> None:
        with self._batch():
            key = norm_dn(dn)
            if self._get(key) is None:
                raise missing_error(dn)
            if self._children(key):
                raise DirectoryError(f"delete {dn}: notAllowedOnNonLeaf")
            self._pop(key)

    def _swap(self, dn: str, attribute: str, old: str | None, new: str) -> bool:
        with self._batch():
            entry = self._get(norm_dn(dn))
            if entry is None:
                raise missing_error(dn)
            current = entry.values(attribute)
            if (old is None and current) or (old is not None and current != (old,)):
                return False
            self._modify(dn, {attribute: [new]})
            return True

    def origin(self, change: Change) -> Origin | None:
        """Who wrote the changed entry last, and when."""
        with self._lock:
            self._reading()
            return self._origins.get(norm_dn(change.dn(self.layout)))

    def prune_audit(self, keep: int) -> int:
        """Delete all but the newest `keep` audit records, in one batch."""
        with self._batch():
            return super().prune_audit(keep)


# -- files -------------------------------------------------------------------------------------


class FileMark:
    """One version of a file, held open: its inode cannot be reused while the mark lives.

    Invariant: files are replaced by rename, never rewritten in place (an edit in place
    still changes mtime or size), so a path whose device, inode, mtime and size equal the
    mark's holds exactly the bytes the mark was taken of.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        st = os.fstat(fd)
        self.key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        self._closer = weakref.finalize(self, os.close, fd)  # a forgotten mark frees its fd

    @classmethod
    def open(cls, path: Path) -> FileMark | None:
        """A mark of the file at `path` now; None if there is none."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DirectoryError(f"{path}: cannot read: {exc.strerror}") from None
        try:
            return cls(fd)
        except BaseException:
            os.close(fd)
            raise

    def current(self, path: Path) -> bool:
        """Whether `path` still holds the marked version."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return False
        return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size) == self.key

    def read(self) -> bytes:
        """The marked version's bytes."""
        chunks: list[bytes] = []
        offset = 0
        while True:
            chunk = os.pread(self.fd, 1 << 20, offset)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            offset += len(chunk)

    def close(self) -> None:
        """Let the file go."""
        self._closer()
        self.fd = -1


def unchanged(mark: FileMark | None, path: Path) -> bool:
    """Whether `path` is as `mark` saw it (None: there was no file)."""
    return mark.current(path) if mark is not None else not path.exists()


def temporary_path(path: Path) -> Path:
    """Where a new version of `path` is written before it is renamed into place."""
    return path.with_name(f".{path.name}.tmp")


def write_durably(path: Path, body: bytes) -> FileMark:
    """Replace `path` with `body` so that a crash leaves the old file or the new one, and
    the new one survives power loss once this returns; a mark of the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an older temporary file keeps its mode otherwise
        view = memoryview(body)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        os.replace(temporary, path)
        mark = FileMark(fd)  # the descriptor now names the new file
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    folder = os.open(path.parent, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return mark


@contextmanager
def file_lock(path: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if missing); DirectoryError after
    `timeout` seconds of another holder. Two opens conflict even in one process."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise DirectoryError(f"{path}: another writer has held this lock for "
                                         f"more than {timeout:g} s") from None
                time.sleep(0.002)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def entry_to_json(entry: Entry, origin: Origin | None) -> dict[str, Any]:
    """An entry (and who wrote it, when) as a JSON object."""
    item: dict[str, Any] = {"dn": entry.dn, "attributes": entry.ldap_attrs()}
    if origin is not None:
        item["modifiersName"] = origin.who
        if origin.when is not None:
            item["modifyTime"] = origin.when
    return item


def entries_from_json(items: Any, source: str) -> list[tuple[Entry, Origin | None]]:
    """Entries and their origins from `entry_to_json`'s form; ConfigError names `source`."""
    if not isinstance(items, list):
        raise ConfigError(f"{source}: entries: a list is expected")
    out: list[tuple[Entry, Origin | None]] = []
    origins: dict[tuple[Any, Any], Origin] = {}  # a batch's entries share one origin
    for index, item in enumerate(items):
        try:
            dn = item["dn"]
            if dn.__class__ is not str:
                raise TypeError("the DN is no text")
            attrs: dict[str, tuple[str, ...]] = {}
            for name, values in item["attributes"].items():
                if values.__class__ is not list:
                    raise TypeError(f"{name}: a list of values is expected")
                "".join(values)  # TypeError unless every value is text
                if values:
                    attrs[name.lower()] = tuple(values)
            stamp = (item.get("modifiersName"), item.get("modifyTime"))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{source}: entries[{index}]: malformed ({exc!s}): "
                              f"{str(item)[:80]}") from None
        origin = origins.get(stamp)
        if origin is None and stamp[0]:
            when = stamp[1]
            origin = origins[stamp] = Origin(str(stamp[0]), float(when) if isinstance(
                when, int | float) else None)
        out.append((Entry(dn, attrs), origin))
    return out


__all__ = ["LOCK_TIMEOUT", "RECORDS", "RECORD_CLASSES", "TREE", "FileMark", "TableStore",
           "entries_from_json", "entry_to_json", "file_lock", "part_of", "temporary_path",
           "unchanged", "write_durably"]
