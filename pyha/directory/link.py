"""A cluster server wired to its directory: configuration changes in, status and audit out."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from pyha.clock import Clock, MonotonicClock
from pyha.directory.diff import Change, diff_configs
from pyha.directory.records import AuditRecord, StatusRecord
from pyha.directory.store import Directory, Watch
from pyha.errors import ConfigError, DirectoryError
from pyha.model.config import ClusterConfig
from pyha.model.status import Role
from pyha.server import ClusterServer, ServerStatus

log = logging.getLogger("pyha.directory")

STATUS_INTERVAL = 1.0
"""At most one write per status entry per second."""
AUDIT_ITEMS = 50
"""Changes applied at once beyond this many are audited as one summary record."""
AUDIT_KEEP = 10_000
"""Audit records kept; older ones are pruned now and then (every AUDIT_PRUNE writes)."""
AUDIT_PRUNE = 100

Key = tuple[str, str]


class StatusBuffer:
    """Decides which status records to write.

    Invariant: a record is written only when it differs from the last one written for
    its (node, resource), never twice within `interval` seconds for the same entry, and
    the newest record offered is always written eventually; entries of resources that
    are gone are removed once.
    """

    def __init__(self, interval: float = STATUS_INTERVAL) -> None:
        self.interval = interval
        self._latest: dict[Key, StatusRecord] = {}
        self._written: dict[Key, tuple[StatusRecord, float]] = {}
        self._gone: set[Key] = set()
        self._lock = threading.Lock()

    def offer(self, records: Iterable[StatusRecord]) -> None:
        """The current status of every resource; resources not listed have gone."""
        latest = {(r.node, r.resource): r for r in records}
        with self._lock:
            self._gone |= set(self._written) - set(latest)
            self._gone -= set(latest)
            self._latest = latest

    def due(self, now: float) -> tuple[list[StatusRecord], list[Key]]:
        """Records to write now, and entries to remove."""
        with self._lock:
            write = [r for key, r in self._latest.items() if self._is_due(key, r, now)]
            return write, sorted(self._gone)

    def _is_due(self, key: Key, record: StatusRecord, now: float) -> bool:
        last = self._written.get(key)
        return last is None or (last[0] != record and now - last[1] >= self.interval)

    def written(self, records: Iterable[StatusRecord], now: float) -> None:
        """Note that `records` reached the directory at `now`."""
        with self._lock:
            for r in records:
                self._written[(r.node, r.resource)] = (r, now)

    def removed(self, keys: Iterable[Key]) -> None:
        """Note that these entries were removed."""
        with self._lock:
            for key in keys:
                self._written.pop(key, None)
                self._gone.discard(key)


class StatusWriter:
    """Writes the status records a StatusBuffer says are due, from a background thread;
    a directory that cannot be written is reported once, and again when it recovers."""

    def __init__(self, directory: Directory, clock: Clock, interval: float = STATUS_INTERVAL
                 ) -> None:
        self.directory = directory
        self.clock = clock
        self.buffer = StatusBuffer(interval)
        self.also: Callable[[], None] | None = None
        """Called after each flush from the writer's thread (more status to write)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pyha-status-writer",
                                        daemon=True)
        self._failed = False

    def start(self) -> None:
        """Write in the background from now on."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the background writes; write what is due one last time."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.flush()

    def _loop(self) -> None:
        while not self._stop.wait(min(0.2, self.buffer.interval / 2)):
            try:
                self.flush()
                if self.also is not None:
                    self.also()
            except Exception:  # a loop boundary: keep writing status
                log.exception("writing status failed")

    def flush(self) -> None:
        """Write the status records that are due now."""
        now = self.clock.now()
        records, gone = self.buffer.due(now)
        if not records and not gone:
            return
        try:
            if records:
                self.directory.write_status(records)
                self.buffer.written(records, now)
            for node, resource in gone:
                self.directory.remove_status(node, resource)
            self.buffer.removed(gone)
        except DirectoryError as exc:
            if not self._failed:
                log.warning("cannot write status to %s: %s", self.directory.name, exc)
            self._failed = True
            return
        if self._failed:
            log.info("writing status to %s again", self.directory.name)
        self._failed = False


def status_records(server: ClusterServer) -> list[StatusRecord]:
    """What the server knows about each of its resources on this node, as records."""
    view = server.view()
    failures = {(f.resource, f.node): f for f in view.failures}
    records = []
    for name in server.members:
        state = next((s for s in view.resources if s.resource == name), None)
        failure = failures.get((name, server.node))
        records.append(StatusRecord(
            resource=name, node=server.node, role=state.role if state else Role.UNKNOWN,
            since=state.since if state else 0.0, message=state.message if state else "",
            failed_operation=state.failed_operation if state else "",
            fail_count=failure.count if failure else 0,
            last_failure=failure.last_failure if failure else None))
    return records


class Auditor:
    """Writes audit records of configurations applied from, or refused from, a directory:
    one record per changed item, with who changed it (the entry's modifiersName) and
    when; the newest AUDIT_KEEP records are kept."""

    def __init__(self, directory: Directory, actor: str, clock: Clock) -> None:
        self.directory = directory
        self.actor = actor
        self.clock = clock
        self._written = 0

    def applied(self, old: ClusterConfig, new: ClusterConfig) -> None:
        """Audit the changes from `old` to `new`, which is now in force."""
        changes = diff_configs(old, new)
        now = self.clock.wall()
        records = [self._one(change, new.epoch, now) for change in changes[:AUDIT_ITEMS]]
        if len(changes) > AUDIT_ITEMS:
            records.append(AuditRecord.new(
                now, self.actor, "apply", epoch=new.epoch,
                changes=(f"and {len(changes) - AUDIT_ITEMS} more changes",)))
        for record in records:
            self.write(record)

    def _one(self, change: Change, epoch: int, now: float) -> AuditRecord:
        origin = None
        try:
            origin = self.directory.origin(change)
        except DirectoryError as exc:
            log.debug("cannot read who changed %s: %s", change.describe(), exc)
        who = origin.who if origin else "unknown"
        when = origin.when if origin and origin.when else now
        subject = _subject(self.directory, change)
        text = f"{change.describe()}; applied by {self.actor} (epoch {epoch})"
        return AuditRecord.new(when, who, change.action, subjects=(subject,),
                               changes=(text,), epoch=epoch)

    def rejection(self, config: ClusterConfig | None, exc: ConfigError) -> None:
        """Audit a configuration that was refused, with the reasons."""
        epoch = config.epoch if config else None
        self.write(AuditRecord.new(self.clock.wall(), self.actor, "reject", epoch=epoch,
                                   changes=tuple(exc.problems)[:AUDIT_ITEMS]))

    def write(self, record: AuditRecord) -> None:
        """Write one record (a failure is logged, never raised)."""
        try:
            self.directory.write_audit(record)
            self._written += 1
            prune = getattr(self.directory, "prune_audit", None)
            if prune is not None and self._written % AUDIT_PRUNE == 0:
                prune(AUDIT_KEEP)
        except DirectoryError as exc:
            log.warning("cannot write the audit record of %s: %s", record.action, exc)


class DirectoryLink:
    """Connects one cluster server to the directory that holds its configuration.

    Invariant: the server only ever gets configurations that loaded and validated
    (reconfigure checks the rest); the link writes only status entries (rate-limited,
    on change) and audit entries, never configuration entries.
    """

    def __init__(self, directory: Directory, server: ClusterServer, *,
                 clock: Clock | None = None, interval: float = STATUS_INTERVAL) -> None:
        self.directory = directory
        self.server = server
        self.clock = clock or MonotonicClock()
        self.actor = f"pyha-server@{server.node}"
        self.status = StatusWriter(directory, self.clock, interval)
        self.audit = Auditor(directory, self.actor, self.clock)
        self.buffer = self.status.buffer
        self.applied = 0
        self.rejected = 0
        self._watch: Watch | None = None

    def start(self) -> None:
        """Watch the directory and start writing status."""
        self._watch = self.directory.watch(self.config_changed, self.config_rejected,
                                           known=self.server.config)
        self.status.start()

    def stop(self) -> None:
        """Stop watching; write the last status."""
        if self._watch is not None:
            self._watch.stop()
        self.status.stop()

    def on_cycle(self, status: ServerStatus) -> None:
        """ClusterServer.on_cycle: offer the current status (cheap, in the loop's thread)."""
        self.buffer.offer(status_records(self.server))

    # -- configuration in ---------------------------------------------------------------------

    def config_changed(self, config: ClusterConfig) -> None:
        """A new valid configuration from the directory: hand it to the server, audit it."""
        old = self.server.config
        try:
            self.server.reconfigure(config)
        except ConfigError as exc:
            self.rejected += 1
            self.audit.rejection(config, exc)
            return
        self.applied += 1
        self.audit.applied(old, config)

    def config_rejected(self, exc: ConfigError) -> None:
        """The directory holds a configuration that does not load: audit why."""
        self.rejected += 1
        self.audit.rejection(None, exc)

    def flush(self) -> None:
        """Write the status records that are due now."""
        self.status.flush()


def _subject(directory: Directory, change: Change) -> str:
    layout: Any = getattr(directory, "layout", None)
    return change.dn(layout) if layout is not None else f"{change.kind} {change.name}"
