"""Logging set-up for the server and the command line: plain lines, or rich on a terminal."""

from __future__ import annotations

import logging
import sys
from collections import deque

PLAIN_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s"


def setup(level: str = "INFO", *, rich: bool | None = None) -> None:
    """Send pyha's log to stderr, with colours when stderr is a terminal."""
    use_rich = sys.stderr.isatty() if rich is None else rich
    handler: logging.Handler
    if use_rich:
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, log_time_format="%H:%M:%S.%f")
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT, "%H:%M:%S"))
    root = logging.getLogger("pyha")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


class RecentLines(logging.Handler):
    """Keeps the last few formatted log lines, for a live display."""

    def __init__(self, size: int = 12) -> None:
        super().__init__()
        self.lines: deque[str] = deque(maxlen=size)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
