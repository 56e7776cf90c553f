"""What ran on this node: the recent operations of each resource, and its fail counts."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from pyha.errors import Severity
from pyha.model.status import FailRecord
from pyha.resources.spi import CallStatus, OperationResult

_FATAL = (Severity.BAN_NODE, Severity.BAN_EVERYWHERE)


class OperationHistory:
    """The last `limit_per_resource` results of each resource, safe to share between threads.

    Invariant: each resource's results are kept in the order they were recorded, and
    never more than the limit; the oldest drop out first.
    """

    def __init__(self, limit_per_resource: int = 50) -> None:
        if limit_per_resource < 1:
            raise ValueError("limit_per_resource must be at least 1")
        self._limit = limit_per_resource
        # Each result with its sequence number, so all() keeps the order of recording
        # even when start times are equal (a fake clock, a coarse wall clock).
        self._results: dict[str, deque[tuple[int, OperationResult]]] = {}
        self._sequence = 0
        self._lock = threading.Lock()

    def record(self, result: OperationResult) -> None:
        """Append `result` to its resource's history."""
        with self._lock:
            self._sequence += 1
            kept = self._results.setdefault(result.resource, deque(maxlen=self._limit))
            kept.append((self._sequence, result))

    def for_resource(self, name: str) -> list[OperationResult]:
        """The kept results of resource `name`, oldest first."""
        with self._lock:
            return [r for _, r in self._results.get(name, ())]

    def last(self, resource: str, operation: str | None = None) -> OperationResult | None:
        """The most recent result of `resource` (of `operation`, if given), if any."""
        for result in reversed(self.for_resource(resource)):
            if operation is None or result.operation == operation:
                return result
        return None

    def all(self) -> list[OperationResult]:
        """Every kept result, by start time, then in the order they were recorded."""
        with self._lock:
            results = [item for kept in self._results.values() for item in kept]
        return [r for _, r in sorted(results, key=lambda item: (item[1].started, item[0]))]

    def forget(self, resource: str) -> None:
        """Drop the history of `resource` (it was removed from the configuration)."""
        with self._lock:
            self._results.pop(resource, None)


class FailCounts:
    """Failures per (resource, node), safe to share between threads.

    Invariant: a record exists only for a pair with at least one failure since it was
    last cleared or expired; `fatal` once set stays set until the record is cleared.
    """

    def __init__(self) -> None:
        self._records: dict[tuple[str, str], FailRecord] = {}
        self._lock = threading.Lock()

    def record(
        self, result: OperationResult, at: float, *, fatal: bool = False
    ) -> FailRecord | None:
        """Count `result` if it failed (at wall-clock `at`); the updated record, else None.

        `fatal` bans the node whatever the severity (on-fail=move or stop asks for that).
        """
        if result.ok or result.status is CallStatus.CANCELLED:
            return None
        key = (result.resource, result.node)
        with self._lock:
            old = self._records.get(key)
            updated = FailRecord(
                resource=result.resource,
                node=result.node,
                count=(old.count if old else 0) + 1,
                last_failure=at,
                fatal=fatal or (old is not None and old.fatal) or result.severity in _FATAL,
            )
            self._records[key] = updated
        return updated

    def get(self, resource: str, node: str) -> FailRecord | None:
        """The failure record of `resource` on `node`, if any."""
        with self._lock:
            return self._records.get((resource, node))

    def records(self) -> tuple[FailRecord, ...]:
        """Every record, sorted by resource then node (for the view)."""
        with self._lock:
            return tuple(self._records[key] for key in sorted(self._records))

    def clear(self, resource: str | None = None, node: str | None = None) -> int:
        """Forget failures (cleanup), of one resource and/or node or all; how many went."""
        with self._lock:
            keys = [
                key
                for key in self._records
                if resource in (None, key[0]) and node in (None, key[1])
            ]
            for key in keys:
                del self._records[key]
        return len(keys)

    def expire(self, now: float, failure_timeout: Callable[[str], float]) -> list[FailRecord]:
        """Drop records older than their resource's failure timeout; returns the dropped ones.

        A timeout of 0 means failures never expire, and fatal records never expire by
        time: a node that lacks a program or is misconfigured stays banned until cleanup.
        """
        stale = [r for r in self.records() if _expired(r, now, failure_timeout(r.resource))]
        dropped = []
        with self._lock:
            for record in stale:
                key = (record.resource, record.node)
                # A failure recorded since the snapshot keeps the record alive.
                if self._records.get(key) is record:
                    del self._records[key]
                    dropped.append(record)
        return dropped


def _expired(record: FailRecord, now: float, timeout: float) -> bool:
    return not record.fatal and timeout > 0 and now - record.last_failure >= timeout
