"""The schedule of recurring monitors: which resource to check next, and when (pure)."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Monitor:
    """A recurring monitor of a resource: every `interval` seconds, next at `due`."""

    resource: str
    interval: float
    timeout: float | None
    """The configured timeout; None lets the plugin's default apply."""
    due: float
    """Monotonic time at which it should run next."""


class MonitorSchedule:
    """Recurring monitors keyed by (resource, interval); time is always passed in.

    Invariant: at most one monitor per (resource, interval); once `due(now)` hands a
    monitor out, its next due time is `now` plus its interval.
    """

    def __init__(self) -> None:
        self._monitors: dict[tuple[str, float], Monitor] = {}

    def add(self, resource: str, interval: float, timeout: float | None, now: float) -> Monitor:
        """Schedule (or replace) a monitor of `resource`; it first runs at now + interval."""
        if interval <= 0:
            raise ValueError(f"monitor of {resource}: interval must be > 0, got {interval:g}")
        monitor = Monitor(resource, interval, timeout, now + interval)
        self._monitors[(resource, interval)] = monitor
        return monitor

    def remove(self, resource: str) -> int:
        """Drop every monitor of `resource`; returns how many there were."""
        keys = [key for key in self._monitors if key[0] == resource]
        for key in keys:
            del self._monitors[key]
        return len(keys)

    def due(self, now: float) -> list[Monitor]:
        """Monitors whose time has come, earliest first; each is rescheduled at now + interval.

        Rescheduling from `now` rather than from the old due time means a late or slow
        cycle runs each monitor once, never a burst of catch-up runs.
        """
        ready = sorted(
            (m for m in self._monitors.values() if m.due <= now),
            key=lambda m: (m.due, m.resource, m.interval),
        )
        for monitor in ready:
            key = (monitor.resource, monitor.interval)
            self._monitors[key] = replace(monitor, due=now + monitor.interval)
        return ready

    def next_due(self) -> float | None:
        """The earliest due time, or None when nothing is scheduled."""
        return min((m.due for m in self._monitors.values()), default=None)

    def __contains__(self, resource: object) -> bool:
        return any(key[0] == resource for key in self._monitors)

    def __len__(self) -> int:
        return len(self._monitors)

    def monitors(self) -> list[Monitor]:
        """Every scheduled monitor, earliest due first."""
        return sorted(self._monitors.values(), key=lambda m: (m.due, m.resource, m.interval))
