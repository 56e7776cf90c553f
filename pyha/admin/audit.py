"""The admin audit log of one node: who called what, when, and the result."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import deque
from pathlib import Path

from pydantic import ValidationError

from pyha.admin.report import AuditEntry

KEEP = 1000
"""Records kept in memory (the newest), and read back from the file at start."""
MAX_BYTES = 10 * 1024 * 1024
"""Past this size the file is renamed to `<name>.1` (replacing the older one)."""

_log = logging.getLogger("pyha.admin")


class AuditLog:
    """The newest `keep` records in memory, every record appended to `path` (JSON lines).

    Invariant: `record` returns once the record is in memory and handed to the file
    (flushed), so an answer never leaves before its audit record; a file that cannot
    be written is logged, never fatal, and the memory copy stays.
    """

    def __init__(self, path: Path | None, *, keep: int = KEEP,
                 max_bytes: int = MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._recent: deque[AuditEntry] = deque(maxlen=keep)
        self._lock = threading.Lock()
        if path is not None:
            self._recent.extend(_read(path, keep))

    def record(self, entry: AuditEntry) -> None:
        """Keep `entry` and append it to the file."""
        line = entry.model_dump_json() + "\n"
        with self._lock:
            self._recent.append(entry)
            if self.path is not None:
                self._append(self.path, line)

    def recent(self, limit: int) -> list[AuditEntry]:
        """The newest `limit` records, oldest first."""
        with self._lock:
            items = list(self._recent)
        return items[-limit:] if limit > 0 else []

    def _append(self, path: Path, line: str) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists() and path.stat().st_size + len(line) > self.max_bytes:
                os.replace(path, path.with_name(path.name + ".1"))
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as out:
                out.write(line)
        except OSError as exc:
            _log.error("cannot write the admin audit log %s: %s", path, exc.strerror or exc)


def _read(path: Path, keep: int) -> list[AuditEntry]:
    try:
        lines = path.read_text().splitlines()[-keep:]
    except FileNotFoundError:
        return []
    except OSError as exc:
        _log.error("cannot read the admin audit log %s: %s", path, exc.strerror or exc)
        return []
    entries = []
    for line in lines:
        try:
            entries.append(AuditEntry.model_validate(json.loads(line)))
        except (ValueError, ValidationError):
            continue  # a torn last line after a crash; the rest is still worth having
    return entries
