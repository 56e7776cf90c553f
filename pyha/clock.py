"""The Clock protocol and the real monotonic clock; the fake clock is in pyha.testing."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Time as decision code and loops see it; pass one in, never read time directly."""

    def now(self) -> float:
        """Monotonic seconds; only differences mean anything."""
        ...

    def wall(self) -> float:
        """Wall-clock seconds since the epoch, for logs and records shown to people."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for `seconds` (a fake clock jumps instead)."""
        ...

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Block until `event` is set or `timeout` passes; True if it was set."""
        ...


class MonotonicClock:
    """The real clock: time.monotonic for intervals, time.time for records."""

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(max(0.0, timeout))
