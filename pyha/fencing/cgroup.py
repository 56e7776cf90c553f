"""CgroupFence: nodes sharing one machine, each in its own cgroup; fencing empties the cgroup.

A node's cluster server is started inside the cgroup `cgroup_name(cluster, node)`
(`pyha/<cluster>/<node>`), in every usable hierarchy (cgroup v2, and the v1 `freezer`
and `pids` hierarchies when mounted). Everything it starts inherits the cgroup, even
in new sessions, so the cgroup holds the node's whole process tree. To start a
command inside one without a race, run `enter_argv(name, argv)`: a small wrapper
(pyha.fencing.enter) that joins the cgroup, then execs `argv`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from pyha.clock import Clock, MonotonicClock
from pyha.fencing.device import FenceError, FenceResult, NodeState, processes

__all__ = [
    "CgroupFence",
    "CgroupV2",
    "Freezer",
    "Hierarchy",
    "PidsLimit",
    "cgroup_name",
    "detect_hierarchies",
    "enter_argv",
    "place_in_cgroup",
    "remove_cgroup",
]

_LOG = logging.getLogger("pyha.fencing")
TOP = "pyha"
"""The directory under each hierarchy's root that holds every cluster's cgroups."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
HOLD_WAIT = 0.5
"""Seconds to wait for a freeze to take before killing anyway (a task in D state)."""
ROUND = 1.0
"""Seconds one kill round waits for the cgroup to empty before trying again."""
POLL = 0.01


def cgroup_name(cluster: str, node: str) -> str:
    """The cgroup of `node` of `cluster`: `pyha/<cluster>/<node>`."""
    for what, value in (("cluster", cluster), ("node", node)):
        if not _NAME.match(value):
            raise FenceError(f"{what} name {value!r} cannot name a cgroup: use letters, "
                             "digits, '.', '_' and '-', at most 64")
    return f"{TOP}/{cluster}/{node}"


# --- hierarchies --------------------------------------------------------------------


class Hierarchy:
    """One mounted cgroup hierarchy; a subclass knows how it stops forks.

    Invariant: every path it touches is `root` / a validated cgroup name; it never
    writes outside the `pyha` directory of its root.
    """

    kind = "cgroup"

    def __init__(self, root: Path) -> None:
        self.root = root

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"

    def path(self, name: str) -> Path:
        """The directory of cgroup `name`."""
        if not name.startswith(f"{TOP}/") or ".." in name.split("/"):
            raise FenceError(f"cgroup {name!r} is not one of pyha's")
        return self.root / name

    def exists(self, name: str) -> bool:
        """True if cgroup `name` exists here."""
        return self.path(name).is_dir()

    def place(self, name: str, pid: int) -> Path:
        """Create cgroup `name` if needed and move process `pid` into it."""
        path = self.path(name)
        path.mkdir(parents=True, exist_ok=True)
        (path / "cgroup.procs").write_text(f"{pid}\n")
        return path

    def pids(self, name: str) -> set[int]:
        """Every live process in cgroup `name` and the cgroups below it (zombies are not)."""
        found: set[int] = set()
        for directory, _, _ in os.walk(self.path(name)):
            with contextlib.suppress(FileNotFoundError):  # removed while we walk
                found.update(int(w) for w in Path(directory, "cgroup.procs").read_text().split())
        found.discard(0)  # processes of another pid namespace show as 0
        return found

    def hold(self, name: str, until: float, clock: Clock) -> bool:
        """Stop the cgroup's processes from forking; True if that took effect."""
        return False

    def release(self, name: str) -> None:
        """Undo hold()."""

    def kill_all(self, name: str) -> None:
        """Kill the cgroup's processes by the hierarchy's own means, if it has one."""

    def remove(self, name: str) -> None:
        """Remove cgroup `name`, the cgroups below it, and its cluster directory if empty."""
        path = self.path(name)
        if path.is_dir():
            for directory, _, _ in sorted(os.walk(path), key=lambda w: -len(w[0])):
                _rmdir(Path(directory), name)
        parent = path.parent
        while parent != self.root / TOP and parent != self.root:
            with contextlib.suppress(FileNotFoundError, OSError):
                parent.rmdir()  # fails while another node of the cluster is still there
            parent = parent.parent


class CgroupV2(Hierarchy):
    """The unified hierarchy: cgroup.freeze holds, cgroup.kill kills (Linux 5.14+)."""

    kind = "v2"

    def hold(self, name: str, until: float, clock: Clock) -> bool:
        control = self.path(name) / "cgroup.freeze"
        if not control.exists():
            return False
        control.write_text("1\n")
        return _wait(lambda: "frozen 1" in _read(self.path(name) / "cgroup.events"),
                     until, clock)

    def release(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.path(name) / "cgroup.freeze").write_text("0\n")

    def kill_all(self, name: str) -> None:
        control = self.path(name) / "cgroup.kill"
        if control.exists():
            control.write_text("1\n")  # the kernel kills every member, forks in flight too


class Freezer(Hierarchy):
    """The v1 freezer: a FROZEN cgroup's processes cannot fork; SIGKILL lands on thaw."""

    kind = "freezer"

    def hold(self, name: str, until: float, clock: Clock) -> bool:
        state = self.path(name) / "freezer.state"
        state.write_text("FROZEN\n")
        return _wait(lambda: _read(state).strip() == "FROZEN", until, clock)

    def release(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.path(name) / "freezer.state").write_text("THAWED\n")


class PidsLimit(Hierarchy):
    """The v1 pids hierarchy: pids.max = 0 makes every fork fail while we kill."""

    kind = "pids"

    def hold(self, name: str, until: float, clock: Clock) -> bool:
        (self.path(name) / "pids.max").write_text("0\n")
        return True

    def release(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.path(name) / "pids.max").write_text("max\n")


def detect_hierarchies(mounts: str = "/proc/self/mounts") -> list[Hierarchy]:
    """The writable hierarchies pyha can use, best first: v2, v1 freezer, v1 pids."""
    found: dict[str, Hierarchy] = {}
    with open(mounts) as table:
        for line in table:
            fields = line.split()
            if len(fields) < 4 or "rw" not in fields[3].split(","):
                continue
            hierarchy = _hierarchy(fields[2], Path(fields[1]), fields[3].split(","))
            if hierarchy is not None and hierarchy.kind not in found \
                    and os.access(hierarchy.root, os.W_OK):
                found[hierarchy.kind] = hierarchy
    return [found[kind] for kind in ("v2", "freezer", "pids") if kind in found]


def _hierarchy(fstype: str, root: Path, options: list[str]) -> Hierarchy | None:
    if fstype == "cgroup2":
        return CgroupV2(root)
    if fstype == "cgroup" and "freezer" in options:
        return Freezer(root)
    if fstype == "cgroup" and "pids" in options:
        return PidsLimit(root)
    return None


# --- placing processes --------------------------------------------------------------


def place_in_cgroup(name: str, pid: int,
                    hierarchies: Sequence[Hierarchy] | None = None) -> list[Path]:
    """Move process `pid` into cgroup `name` in every usable hierarchy; the paths used.

    Raises FenceError when no hierarchy took it: such a node could not be fenced.
    """
    hierarchies = detect_hierarchies() if hierarchies is None else hierarchies
    placed: list[Path] = []
    problems: list[str] = []
    for hierarchy in hierarchies:
        try:
            placed.append(hierarchy.place(name, pid))
        except OSError as exc:
            problems.append(f"{hierarchy.root}: {exc.strerror or exc}")
    if not placed:
        raise FenceError(f"cannot place process {pid} in cgroup {name}: "
                         + ("; ".join(problems) or "no writable cgroup hierarchy"))
    return placed


def remove_cgroup(name: str, hierarchies: Sequence[Hierarchy] | None = None) -> None:
    """Remove cgroup `name` everywhere; FenceError if a process is still in it."""
    for hierarchy in detect_hierarchies() if hierarchies is None else hierarchies:
        hierarchy.remove(name)


def enter_argv(name: str, argv: Sequence[str]) -> list[str]:
    """A command line that runs `argv` inside cgroup `name` from its first instruction."""
    return [sys.executable, "-m", "pyha.fencing.enter", name, "--", *argv]


# --- the fence device ---------------------------------------------------------------


class CgroupFence:
    """Fences a node by emptying its cgroup: hold (freeze), SIGKILL all, release, wait.

    Invariant: fence is ok only when no live process is left in the node's cgroup in
    any hierarchy where it exists (a missing cgroup has none: the kernel refuses to
    remove a cgroup with processes). It never kills the process that runs it.
    """

    method = "cgroup"

    def __init__(self, cluster: str, *, hierarchies: Sequence[Hierarchy] | None = None,
                 clock: Clock | None = None, log: logging.Logger | None = None) -> None:
        self.cluster = cluster
        self.hierarchies = list(detect_hierarchies() if hierarchies is None else hierarchies)
        if not self.hierarchies:
            raise FenceError("no writable cgroup hierarchy: cgroup fencing is not possible")
        self._clock = clock or MonotonicClock()
        self._log = log or _LOG

    def fence(self, node: str, deadline: float) -> FenceResult:
        """Kill every process in the node's cgroup; ok once the cgroup is empty."""
        started = self._clock.now()
        name = cgroup_name(self.cluster, node)
        present = [h for h in self.hierarchies if h.exists(name)]
        if not present:
            return self._result(True, f"fence {node}: cgroup {name} does not exist, nothing "
                                      "of it runs", started)
        if os.getpid() in _members(present, name):
            return self._result(False, f"fence {node}: refused, this process is in cgroup "
                                       f"{name} itself", started)
        killed: set[int] = set()
        while True:
            left = self._round(present, name, deadline, killed)
            if not left:
                return self._result(True, f"fence {node}: cgroup {name} is empty "
                                          f"({_killed(killed)}, {_how(present)})", started)
            if self._clock.now() >= deadline:
                return self._result(False, f"fence {node}: {processes(len(left))} still in "
                                           f"cgroup {name} at the deadline: "
                                           f"{_pid_list(left)}", started)

    def status(self, node: str, deadline: float) -> NodeState:
        """OFF when the node's cgroup is empty or absent, else ON."""
        name = cgroup_name(self.cluster, node)
        present = [h for h in self.hierarchies if h.exists(name)]
        return NodeState.ON if _members(present, name) else NodeState.OFF

    def _round(self, present: list[Hierarchy], name: str, deadline: float,
               killed: set[int]) -> set[int]:
        """One hold, kill, release, wait; the processes still there after it."""
        victims = _members(present, name)
        if not victims:
            return victims
        guard = present[0]
        try:
            guard.hold(name, min(deadline, self._clock.now() + HOLD_WAIT), self._clock)
        except OSError as exc:  # killing still helps; the next round holds again
            self._log.warning("cgroup %s: could not hold %s: %s", name, guard.kind, exc)
        try:
            victims = _members(present, name)  # a fork just before the hold is in now
            for hierarchy in present:
                hierarchy.kill_all(name)
            _kill(victims)
            killed.update(victims)
        finally:
            guard.release(name)
        until = min(deadline, self._clock.now() + ROUND)
        _wait(lambda: not _members(present, name), until, self._clock)
        return _members(present, name)

    def _result(self, ok: bool, message: str, started: float) -> FenceResult:
        (self._log.warning if ok else self._log.error)("%s", message)
        return FenceResult(ok, self.method, message, self._clock.now() - started)


def _members(present: Iterable[Hierarchy], name: str) -> set[int]:
    found: set[int] = set()
    for hierarchy in present:
        found |= hierarchy.pids(name)
    return found


def _kill(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _killed(pids: set[int]) -> str:
    return f"killed {processes(len(pids))}" if pids else "it was empty"


def _how(present: Sequence[Hierarchy]) -> str:
    return "held by " + present[0].kind + ", checked in " + ", ".join(h.kind for h in present)


def _pid_list(pids: set[int]) -> str:
    shown = ", ".join(str(p) for p in sorted(pids)[:10])
    return shown + (", ..." if len(pids) > 10 else "")


def _wait(done: Callable[[], bool], until: float, clock: Clock) -> bool:
    """Poll `done()` until true or `until` (clock time); its last answer."""
    while not done():
        if clock.now() >= until:
            return bool(done())
        clock.sleep(POLL)
    return True


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _rmdir(path: Path, name: str) -> None:
    try:
        path.rmdir()
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno in (errno.EBUSY, errno.ENOTEMPTY):
            raise FenceError(f"cgroup {name}: {path} still has processes") from None
        raise
