"""Processes that keep a file system busy, found through /proc, and stopping them."""

from __future__ import annotations

import contextlib
import os
import select
import signal
from collections.abc import Iterator
from pathlib import Path

from pyha.resources.spi import OperationContext

__all__ = ["describe_pids", "stop_processes", "users_of"]

PROC = Path("/proc")
_LINKS = ("cwd", "root", "exe")
_SPARED = frozenset({1})
"""Never signalled: init (in a container, its whole world)."""


def users_of(dev: int, proc: Path = PROC) -> list[int]:
    """Pids of processes with a directory, open file or mapping on device `dev` (st_dev).

    As `fuser -m` does, it matches the device, so a process using the same file
    system through a bind mount elsewhere counts too. pyha's own process is left out.
    """
    spared = _SPARED | {os.getpid()}
    found = []
    for entry in _pids(proc):
        if entry not in spared and _uses(proc / str(entry), dev):
            found.append(entry)
    return found


def _pids(proc: Path) -> Iterator[int]:
    with os.scandir(proc) as entries:
        for entry in entries:
            if entry.name.isdigit():
                yield int(entry.name)


def _uses(pid_dir: Path, dev: int) -> bool:
    return (
        any(_on_device(pid_dir / link, dev) for link in _LINKS)
        or _fd_on_device(pid_dir / "fd", dev)
        or _maps_device(pid_dir / "maps", dev)
    )


def _on_device(path: Path, dev: int) -> bool:
    try:
        return os.stat(path).st_dev == dev
    except OSError:
        return False  # gone, a kernel thread, or a dangling link


def _fd_on_device(fd_dir: Path, dev: int) -> bool:
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return False
    return any(_on_device(fd_dir / fd, dev) for fd in fds)


def _maps_device(maps: Path, dev: int) -> bool:
    """True if a mapped file of the process lives on `dev` (a binary or library run from it)."""
    wanted = f"{os.major(dev):02x}:{os.minor(dev):02x}"
    try:
        text = maps.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) >= 5 and fields[3] == wanted and fields[4] != "0":
            return True
    return False


def describe_pids(pids: list[int], proc: Path = PROC, limit: int = 10) -> str:
    """'1234 (sleep), 1240 (bash)' naming up to `limit` processes."""
    names = [f"{pid} ({_command_name(proc, pid)})" for pid in pids[:limit]]
    more = len(pids) - limit
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def _command_name(proc: Path, pid: int) -> str:
    try:
        return (proc / str(pid) / "comm").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return "gone"


def stop_processes(ctx: OperationContext, pids: list[int], grace: float) -> list[int]:
    """SIGTERM `pids`, wait up to `grace` (never past the deadline), SIGKILL the rest.

    Signals go through pidfds, so a pid reused by a new process is never hit.
    Returns the pids still alive when the deadline came.
    """
    handles = _open_pidfds(pids)
    try:
        _signal_all(handles, signal.SIGTERM)
        left = _wait_exit(ctx, handles, grace)
        if left:
            ctx.log.warning(
                "%s: still running %ss after SIGTERM, sending SIGKILL: %s",
                ctx.resource,
                f"{grace:g}",
                describe_pids(sorted(left)),
            )
            _signal_all(left, signal.SIGKILL)
            left = _wait_exit(ctx, left, ctx.remaining())
        return sorted(left)
    finally:
        for fd in handles.values():
            os.close(fd)


def _open_pidfds(pids: list[int]) -> dict[int, int]:
    handles = {}
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            handles[pid] = os.pidfd_open(pid)
    return handles


def _signal_all(handles: dict[int, int], signum: signal.Signals) -> None:
    for fd in handles.values():
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(fd, signum)


def _wait_exit(ctx: OperationContext, handles: dict[int, int], timeout: float) -> dict[int, int]:
    """Wait until every process exited or `timeout` (capped by the deadline) passed.

    A pidfd turns readable when its process exits, so this needs no polling of /proc.
    """
    left = dict(handles)
    until = ctx.clock.now() + min(timeout, ctx.remaining())
    poller = select.poll()
    for fd in left.values():
        poller.register(fd, select.POLLIN)
    while left and not ctx.cancelled.is_set():
        wait = until - ctx.clock.now()
        if wait <= 0:
            break
        for fd, _event in poller.poll(min(wait, 0.5) * 1000):
            poller.unregister(fd)
            left = {pid: handle for pid, handle in left.items() if handle != fd}
    return left
