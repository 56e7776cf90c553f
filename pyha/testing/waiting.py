"""Bounded waiting for tests: poll a condition until it holds or time runs out."""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(check: Callable[[], bool], seconds: float = 10.0, step: float = 0.01) -> bool:
    """True as soon as `check()` holds; polled every `step` seconds for at most `seconds`
    (bounded in time, and so in count), then one last look."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return check()
