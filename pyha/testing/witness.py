"""An in-memory witness with the LDAP witness's semantics, for tests of the quorum wiring."""

from __future__ import annotations

import threading
from collections.abc import Callable

from pyha.directory.witness import CasWitness
from pyha.errors import DirectoryError


class MemoryWitness(CasWitness):
    """The witness entry as one string behind a lock; satisfies pyha.directory.witness.Witness.

    Invariant: each primitive (read, create, compare-and-swap) is atomic, and nothing
    more: a claim's read and its write are separate steps, as they are against LDAP,
    so racing claims are settled by the compare-and-swap alone.

    Knobs: `available = False` makes every primitive fail as an unreachable directory
    does; `after_read`, if set, runs between a claim's read and its write (a
    threading.Barrier's wait there makes two claims read the same value).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._exists = False
        self._value: str | None = None
        self.available = True
        self.after_read: Callable[[], None] | None = None
        self.writes = 0
        """Successful creates and swaps, for tests."""

    @property
    def where(self) -> str:
        """A name for reasons."""
        return "witness in memory"

    @property
    def value(self) -> str | None:
        """The stored claim, as the directory would hold it."""
        with self._lock:
            return self._value

    def set_value(self, value: str | None) -> None:
        """Store any value, as an admin with ldapmodify could (None: the entry is removed)."""
        with self._lock:
            self._exists, self._value = value is not None, value

    def _up(self) -> None:
        if not self.available:
            raise DirectoryError("cannot reach the directory (it is down)")

    def _read(self) -> tuple[bool, str | None]:
        with self._lock:
            self._up()
            found = self._exists, self._value
        if self.after_read is not None:
            self.after_read()
        return found

    def _create(self, value: str) -> bool:
        with self._lock:
            self._up()
            if self._exists:
                return False
            self._exists, self._value = True, value
            self.writes += 1
            return True

    def _swap(self, old: str | None, new: str) -> bool:
        with self._lock:
            self._up()
            if not self._exists:
                raise DirectoryError("the witness entry is gone: no such entry")
            if self._value != old:
                return False
            self._value = new
            self.writes += 1
            return True
