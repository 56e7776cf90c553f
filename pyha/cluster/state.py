"""What a node keeps on disk across restarts: its election vote and its incarnation."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pyha.errors import PyhaError


class StateError(PyhaError):
    """The node's persisted state could not be read or written."""


class NodeState:
    """The election term and vote, and the incarnation counter, of one node.

    Invariant: `save_vote` returns only once the vote is durable (written, fsynced,
    renamed), so a node that crashes after answering never votes twice in a term;
    `next_incarnation` never returns the same number twice for one state directory.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def load_vote(self) -> tuple[int, str | None]:
        """The persisted (term, voted_for); (0, None) on a first start."""
        data = self._read("election.json")
        if data is None:
            return 0, None
        voted, term = data.get("voted_for"), data.get("term", 0)
        if not isinstance(term, int):
            raise StateError(f"{self.directory / 'election.json'}: term is not a number")
        return term, str(voted) if voted is not None else None

    def save_vote(self, term: int, voted_for: str | None) -> None:
        """Make (term, voted_for) durable."""
        self._write("election.json", {"term": term, "voted_for": voted_for})

    def next_incarnation(self) -> int:
        """A number higher than any this node used before: peers see the restart."""
        data = self._read("incarnation.json") or {}
        last = data.get("incarnation", 0)
        if not isinstance(last, int):
            raise StateError(f"{self.directory / 'incarnation.json'}: not a number")
        value = last + 1
        self._write("incarnation.json", {"incarnation": value})
        return value

    def _read(self, name: str) -> dict[str, object] | None:
        path = self.directory / name
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StateError(f"{path}: unreadable node state: {exc}") from None
        if not isinstance(data, dict):
            raise StateError(f"{path}: unreadable node state: not an object")
        return data

    def _write(self, name: str, data: dict[str, object]) -> None:
        path = self.directory / name
        tmp = path.with_name(f".{name}.tmp")
        try:
            with tmp.open("w") as out:
                json.dump(data, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise StateError(f"{path}: cannot save node state: {exc.strerror}") from None
