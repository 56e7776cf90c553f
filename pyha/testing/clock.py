"""A fake clock: time moves only when told, or jumps to the end of any wait."""

from __future__ import annotations

import threading


class FakeClock:
    """Satisfies pyha.clock.Clock; `sleep` and `wait` jump instead of blocking.

    Invariant: `now()` never goes backwards, and nothing ever really sleeps, so unit
    tests of timeouts and intervals run in microseconds and are deterministic.
    """

    def __init__(self, start: float = 1000.0, wall_start: float = 1_767_225_600.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def wall(self) -> float:
        with self._lock:
            return self._now + self._wall_offset

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`."""
        if seconds < 0:
            raise ValueError("a fake clock never goes backwards")
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)

    def wait(self, event: threading.Event, timeout: float) -> bool:
        if event.is_set():
            return True
        self.sleep(timeout)
        return event.is_set()
