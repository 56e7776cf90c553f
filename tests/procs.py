"""Finding the live processes a test started, from /proc (Linux only)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def live_pids(match: Callable[[Path, list[bytes]], bool]) -> list[int]:
    """Pids of live (not zombie) processes other than this one for which `match(entry,
    argv)` holds, given the /proc entry and the command line split at NULs. A process
    that ends while it is looked at (or a `match` that raises OSError) is left out."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state not in ("Z", "X") and match(entry, args):
                pids.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return pids
