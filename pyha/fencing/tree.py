"""TreeFence: nodes that are process trees on one machine, fenced without root.

Each such node's cluster server runs under a small keeper process (`python -m
pyha.fencing.tree KEEPER_FILE -- COMMAND...`) that makes itself a child subreaper
(prctl PR_SET_CHILD_SUBREAPER): whatever the server starts, even in a new session,
and even after the server itself died, stays a descendant of the keeper. Fencing the
node stops and kills the keeper's whole tree, keeper last, and succeeds once none of
it is left. For demos and tests on one machine; real nodes use a power command.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from pyha.clock import Clock, MonotonicClock
from pyha.fencing.device import FenceResult, NodeState, processes

__all__ = ["TreeFence", "descendants", "keeper_argv", "parent_of"]

_LOG = logging.getLogger("pyha.fencing")
PR_SET_CHILD_SUBREAPER = 36
_LOST = -1
"""A keeper that is gone without having marked a clean exit."""
POLL = 0.005
"""Seconds between scans for processes left after a SIGKILL round: a killed process is
usually gone within a millisecond, and every ms of fencing delays the failover."""


def keeper_argv(keeper_file: Path, argv: Sequence[str]) -> list[str]:
    """A command line that runs `argv` under a keeper that records itself in keeper_file."""
    return [sys.executable, "-m", "pyha.fencing.tree", str(keeper_file), "--", *argv]


def descendants(root: int) -> set[int]:
    """Every live process below `root` (not `root` itself), from /proc's parent links."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = parent_of(int(entry))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


class TreeFence:
    """Fences a node by killing its keeper's process tree.

    Invariant: fence is ok only when the node's keeper exited cleanly (it marks its
    file once its whole tree is gone) or never ran, or when it runs and fencing emptied
    its tree. A keeper that vanished without its mark (killed itself) fails the fence:
    its orphans can no longer be found, so nothing can be confirmed. It never kills the
    process that runs it.
    """

    method = "process-tree"

    def __init__(self, keepers: Mapping[str, Path], *, clock: Clock | None = None,
                 log: logging.Logger | None = None) -> None:
        self.keepers = dict(keepers)
        self._clock = clock or MonotonicClock()
        self._log = log or _LOG

    def fence(self, node: str, deadline: float) -> FenceResult:
        """Stop the tree (so nothing forks away), SIGKILL it, wait until it is gone."""
        started = self._clock.now()
        keeper = self._keeper(node)
        if keeper == _LOST:
            return self._result(False, f"fence {node}: its keeper died without a clean exit, "
                                       "so its processes cannot be found and confirmed gone",
                                started)
        if keeper is None:
            return self._result(True, f"fence {node}: its keeper is not running", started)
        if keeper == os.getpid() or os.getpid() in descendants(keeper):
            return self._result(False, f"fence {node}: refused, this process is in its "
                                       "tree", started)
        killed: set[int] = set()
        while self._clock.now() < deadline:
            tree = descendants(keeper) | ({keeper} if _alive(keeper) else set())
            if not tree:
                # Mark it as a clean keeper would, so later fences know nothing is left.
                _write_atomically(self.keepers[node], {"pid": keeper, "done": True,
                                                       "start": 0})
                return self._result(True, f"fence {node}: its process tree is gone "
                                          f"({processes(len(killed))} killed)", started)
            for sig in (signal.SIGSTOP, signal.SIGKILL):
                for pid in tree:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
            killed |= tree
            self._reap(keeper)
            self._clock.sleep(POLL)
        left = descendants(keeper) | ({keeper} if _alive(keeper) else set())
        return self._result(not left, f"fence {node}: {processes(len(left))} left at the "
                                      "deadline", started)

    def status(self, node: str, deadline: float) -> NodeState:
        """OFF when the node's keeper exited cleanly or never ran, UNKNOWN when it died
        without a trace, else ON."""
        keeper = self._keeper(node)
        if keeper == _LOST:
            return NodeState.UNKNOWN
        return NodeState.OFF if keeper is None else NodeState.ON

    def _keeper(self, node: str) -> int | None:
        """The running keeper's pid; None if it never ran or exited cleanly; _LOST else."""
        path = self.keepers.get(node)
        if path is None:
            return None
        try:
            record = json.loads(path.read_text())
            pid, start = int(record["pid"]), int(record["start"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return _LOST
        if record.get("done"):
            return None
        return pid if _alive(pid) and _start_time(pid) == start else _LOST

    def _reap(self, pid: int) -> None:
        # A keeper started by this process must be waited for, or it stays a zombie.
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)

    def _result(self, ok: bool, message: str, started: float) -> FenceResult:
        (self._log.warning if ok else self._log.error)("%s", message)
        return FenceResult(ok, self.method, message, self._clock.now() - started)


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def parent_of(pid: int) -> int | None:
    """The parent pid of a live process, from /proc; None when it is gone."""
    fields = _stat(pid)
    return int(fields[1]) if fields else None


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _start_time(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def main(args: Sequence[str]) -> int:
    """Keeper: become a subreaper, record ourselves, run the command, reap orphans."""
    if len(args) < 3 or args[1] != "--":
        print("usage: python -m pyha.fencing.tree KEEPER_FILE -- COMMAND [ARG...]",
              file=sys.stderr)
        return 2
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("cannot become a child subreaper", file=sys.stderr)
        return 1
    keeper_file = Path(args[0])
    keeper_file.parent.mkdir(parents=True, exist_ok=True)
    record = {"pid": os.getpid(), "start": _start_time(os.getpid())}
    keeper_file.write_text(json.dumps(record))
    child = os.fork()
    if child == 0:
        os.execvp(args[2], list(args[2:]))  # noqa: S606 - argv runs directly, never via a shell
    for sig in (signal.SIGTERM, signal.SIGINT):  # pass a clean stop on to the server
        signal.signal(sig, lambda s, _f: os.kill(child, s))
    status = 0
    while True:  # reap the command and every orphan that lands here, until none is left
        try:
            pid, code = os.wait()
        except ChildProcessError:
            _write_atomically(keeper_file, {**record, "done": True})  # nothing left below
            return status
        if pid == child:
            status = os.waitstatus_to_exitcode(code)


def _write_atomically(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
