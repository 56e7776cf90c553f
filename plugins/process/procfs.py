"""Processes as /proc shows them, and the pid record that names one process for good."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PidRecord",
    "ProcInfo",
    "boot_id",
    "group_members",
    "read_proc",
    "signal_group",
    "signal_process",
]


@dataclass(frozen=True)
class ProcInfo:
    """One line of /proc/<pid>/stat, the fields pyha needs."""

    pid: int
    state: str
    pgrp: int
    start_time: int
    """Clock ticks after boot; with the pid, it names one process for the whole boot."""

    @property
    def zombie(self) -> bool:
        """True when the main thread has exited (the process may still have other threads)."""
        return self.state in ("Z", "X")

    def running(self) -> bool:
        """True while any thread of the process runs.

        A main thread that exited shows as a zombie while other threads go on (or are
        still dying after a SIGKILL); the process is gone only when they are all gone.
        """
        if not self.zombie:
            return True
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            return False
        return any(_thread_running(self.pid, tid) for tid in tids)


def _thread_running(pid: int, tid: str) -> bool:
    try:
        text = Path(f"/proc/{pid}/task/{tid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return text[text.rindex(")") + 2 :].split()[0] not in ("Z", "X")


def read_proc(pid: int) -> ProcInfo | None:
    """The process `pid`, or None if there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; it ends at the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return ProcInfo(pid=pid, state=fields[0], pgrp=int(fields[2]), start_time=int(fields[19]))


def group_members(pgid: int) -> list[ProcInfo]:
    """Processes of process group `pgid` that still run."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = read_proc(int(entry))
            if info is not None and info.pgrp == pgid and info.running():
                members.append(info)
    return members


def boot_id() -> str:
    """This boot's id; a pid record from another boot names no process of ours."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class PidRecord:
    """The pid file's content: which process this resource started, in which boot."""

    pid: int
    start_time: int
    boot: str

    @classmethod
    def read(cls, path: Path) -> PidRecord | None:
        """The record in `path`; None when absent or not a record of ours."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(int(data["pid"]), int(data["start_time"]), str(data["boot"]))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def write(self, path: Path) -> None:
        """Write atomically: readers see the old record or the new one, never a part."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        body = {"pid": self.pid, "start_time": self.start_time, "boot": self.boot}
        tmp.write_text(json.dumps(body) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    def leader(self) -> ProcInfo | None:
        """The recorded process if it still exists as the very one recorded, zombie or not."""
        if self.boot != boot_id():
            return None
        info = read_proc(self.pid)
        return info if info is not None and info.start_time == self.start_time else None


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send `sig` to process group `pgid`; False if the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def signal_process(pid: int, sig: signal.Signals) -> None:
    """Send `sig` to process `pid` if it is still there."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
