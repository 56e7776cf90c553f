"""A cluster whose configuration lives in an LDAP directory: every node follows the
directory, the coordinator applies what it holds and writes status back.

The directory is the source of truth (DESIGN.md, "Config"): each node watches it (RFC 4533,
or contextCSN polls) and keeps the newest valid configuration it read; the coordinator
makes the cluster run it (the same replication path as the embedded store: every member
writes it to disk, then adopts it). Admin changes are written to the directory by the
coordinator only (one writer per entry), which also writes where each resource runs
under ou=status, rate-limited. When the directory is unreachable the cluster keeps the
last good configuration and says so.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from pyha.clock import Clock, MonotonicClock
from pyha.directory.link import Auditor, StatusWriter
from pyha.directory.records import NodeStatusRecord, StatusRecord
from pyha.directory.store import Directory, Watch
from pyha.errors import ConfigError, DirectoryError
from pyha.model.config import ClusterConfig
from pyha.model.status import View

log = logging.getLogger("pyha.directory")

NODE_STATUS_EVERY = 10.0
"""Seconds between two writes of a node's last-seen time while it stays up or down."""


def view_records(view: View) -> list[StatusRecord]:
    """The coordinator's view as status records: one per resource and node it is on."""
    failures = {(f.resource, f.node): f for f in view.failures}
    records = []
    for state in view.resources:
        failure = failures.get((state.resource, state.node))
        records.append(StatusRecord(
            resource=state.resource, node=state.node, role=state.role, since=state.since,
            message=state.message, failed_operation=state.failed_operation,
            fail_count=failure.count if failure else 0,
            last_failure=failure.last_failure if failure else None))
    return records


class DirectorySource:
    """One node's link to the directory that holds the cluster's configuration.

    Invariant: `latest` is the newest configuration that loaded and validated (never
    one the directory rejected); status is written only while `coordinating()` says so.
    """

    def __init__(self, directory: Directory, *, on_change: Callable[[], None] | None = None,
                 clock: Clock | None = None, actor: str = "pyha-coordinator") -> None:
        self.directory = directory
        self.clock = clock or MonotonicClock()
        self.audit = Auditor(directory, actor, self.clock)
        """The coordinator audits what it applies from the directory, and what it refuses."""
        self.on_change = on_change
        self.latest: ClusterConfig | None = None
        self.status = StatusWriter(directory, self.clock)
        self.status.also = self._flush_nodes
        self._nodes: dict[str, NodeStatusRecord] = {}
        self._nodes_written: dict[str, tuple[bool, float]] = {}
        self._lock = threading.Lock()
        self._watch: Watch | None = None

    @property
    def name(self) -> str:
        """Where the configuration lives (no password)."""
        return self.directory.name

    def load(self, fallback: ClusterConfig | None) -> ClusterConfig:
        """The directory's configuration; `fallback` (the last good one) when the
        directory cannot be read, with a warning; DirectoryError when there is none."""
        try:
            config = self.directory.load()
        except (DirectoryError, ConfigError) as exc:
            if fallback is None:
                raise
            log.warning("cannot load the configuration from %s (%s): running the last good "
                        "one, epoch %d", self.name, exc, fallback.epoch)
            return fallback
        with self._lock:
            self.latest = config
        return config

    def start(self, known: ClusterConfig) -> None:
        """Follow the directory's changes, and write status in the background."""
        self._watch = self.directory.watch(self._changed, self._rejected, known=known)
        self.status.start()

    def stop(self) -> None:
        """Stop following and writing (the last status is written first)."""
        if self._watch is not None:
            self._watch.stop()
        self.status.stop()
        self.directory.close()

    def newest(self) -> ClusterConfig | None:
        """The newest valid configuration read from the directory."""
        with self._lock:
            return self.latest

    def apply(self, edit: Callable[[ClusterConfig], ClusterConfig]) -> ClusterConfig:
        """Write one change to the directory (coordinator only); the new configuration."""
        config = self.directory.apply(edit)
        with self._lock:
            if self.latest is None or config.epoch >= self.latest.epoch:
                self.latest = config
        return config

    def offer_status(self, view: View) -> None:
        """The coordinator's latest view, to be written under ou=status."""
        self.status.buffer.offer(view_records(view))

    def offer_nodes(self, records: list[NodeStatusRecord]) -> None:
        """Every node as the coordinator sees it now, for its cn=<node> status entry."""
        with self._lock:
            self._nodes = {r.node: r for r in records}

    def _flush_nodes(self) -> None:
        """Write a node's entry when it went up or down, else at most every
        NODE_STATUS_EVERY seconds (its last-seen time moves on all the time)."""
        now = self.clock.now()
        with self._lock:
            due = [r for r in self._nodes.values()
                   if (last := self._nodes_written.get(r.node)) is None or last[0] != r.online
                   or now - last[1] >= NODE_STATUS_EVERY]
        if not due:
            return
        try:
            self.directory.write_node_status(due)
        except DirectoryError as exc:
            log.debug("cannot write node status to %s: %s", self.name, exc)
            return
        with self._lock:
            for record in due:
                self._nodes_written[record.node] = (record.online, now)

    # -- the watch ------------------------------------------------------------------------

    def _changed(self, config: ClusterConfig) -> None:
        with self._lock:
            self.latest = config
        log.info("directory %s: configuration epoch %d", self.name, config.epoch)
        if self.on_change is not None:
            self.on_change()

    def _rejected(self, exc: ConfigError) -> None:
        log.error("directory %s holds a configuration that does not load; the last good "
                  "one stays: %s", self.name, exc)
