"""What runs for a data directory: its postmaster.pid, its postmaster, and leftover children."""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PidFile",
    "ServerState",
    "inspect",
    "is_postgres",
    "is_postmaster",
    "kill_all",
    "parse_probe",
    "server_processes",
]


@dataclass(frozen=True)
class PidFile:
    """The lines of postmaster.pid pyha reads (PostgreSQL 10 and later write all of them)."""

    pid: int
    """Negative for a single-user backend, which is not a postmaster."""
    data_directory: str
    port: int | None
    socket_dir: str
    status: str
    """'starting', 'ready', 'standby' or 'stopping'; empty while not yet written."""

    @classmethod
    def parse(cls, text: str) -> PidFile | None:
        """The pid file's content; None when the first line is no pid (a torn write)."""
        lines = [line.strip() for line in text.splitlines()]
        try:
            pid = int(lines[0])
        except (IndexError, ValueError):
            return None

        def line(number: int) -> str:
            return lines[number - 1] if len(lines) >= number else ""

        port = line(4)
        return cls(
            pid=pid,
            data_directory=line(2),
            port=int(port) if port.isdigit() else None,
            socket_dir=line(5),
            status=line(8),
        )

    @classmethod
    def read(cls, path: Path) -> PidFile | None:
        """The pid file at `path`, None when there is none or it cannot be read."""
        try:
            return cls.parse(path.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            return None


def parse_probe(output: str) -> bool | None:
    """In recovery (True) or not (False) from psql -At's '1|f'; None if it is not that."""
    lines = output.strip().splitlines()
    if len(lines) != 1:
        return None
    answer = lines[0].strip().split("|")
    if len(answer) != 2 or answer[0] != "1" or answer[1] not in ("t", "f"):
        return None
    return answer[1] == "t"


# --- processes ----------------------------------------------------------------------


def _link(pid: int, name: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/{name}")
    except OSError:
        return None


def _live(pid: int) -> bool:
    """True when `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def is_postgres(pid: int) -> bool:
    """True when `pid` is a live PostgreSQL server process (of any data directory)."""
    exe = _link(pid, "exe")
    if exe is None or not Path(exe.removesuffix(" (deleted)")).name.startswith("postgres"):
        return False
    return _live(pid)


def _is_server_of(pid: int, data_dir: str) -> bool:
    """A live postgres process whose working directory is `data_dir` (every one chdirs there)."""
    return pid > 0 and _link(pid, "cwd") == data_dir and is_postgres(pid)


def is_postmaster(pid: int, data_directory: Path) -> bool:
    """True when `pid` is a live server process of this data directory.

    A pid file left by a killed server may name a pid the kernel gave to another
    program since; that one has another executable or working directory.
    """
    return _is_server_of(pid, os.path.realpath(data_directory))


def server_processes(data_directory: Path) -> list[int]:
    """Pids of every live server process of this data directory."""
    data_dir = os.path.realpath(data_directory)
    own = os.getpid()
    return [
        int(entry)
        for entry in os.listdir("/proc")
        if entry.isdigit() and int(entry) != own and _is_server_of(int(entry), data_dir)
    ]


@dataclass(frozen=True)
class ServerState:
    """One look at a data directory's processes.

    Invariant: `postmaster` is the live process postmaster.pid names; `leftovers` are
    the other server processes of the directory, and are only looked for when there is
    no postmaster (children of a killed postmaster, or a server without its pid file).
    """

    pid_file: PidFile | None
    postmaster: int | None
    leftovers: tuple[int, ...]

    @property
    def stopped(self) -> bool:
        """True when nothing of the server runs."""
        return self.postmaster is None and not self.leftovers


def inspect(data_directory: Path) -> ServerState:
    """What runs for `data_directory` now."""
    pid_file = PidFile.read(data_directory / "postmaster.pid")
    if pid_file is not None and is_postmaster(pid_file.pid, data_directory):
        return ServerState(pid_file, pid_file.pid, ())
    return ServerState(pid_file, None, tuple(server_processes(data_directory)))


def kill_all(data_directory: Path, pids: tuple[int, ...] | list[int]) -> None:
    """SIGKILL each of `pids` that is still a server process of this data directory."""
    data_dir = os.path.realpath(data_directory)
    for pid in pids:
        # Checked again just before the signal: the pid may name another program by now.
        if _is_server_of(pid, data_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
