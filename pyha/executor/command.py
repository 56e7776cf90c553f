"""Run one command under a deadline: own process group; on expiry terminate, grace, kill."""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import selectors
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from pyha.clock import Clock
from pyha.model.types import format_duration

__all__ = ["MAX_CAPTURE", "CommandResult", "run_command"]

_LOG = logging.getLogger("pyha.executor.command")

MAX_CAPTURE = 8 * 1024 * 1024
"""Bytes kept per stream; a runaway command cannot fill the server's memory."""
_CHUNK = 64 * 1024
_TICK = 0.05
"""Seconds between checks when no pidfd can tell us the process exited."""
_REAP_WAIT = 5.0
"""Seconds to wait for a SIGKILLed leader to be reaped (a process in D state is slow)."""


@dataclass(frozen=True)
class CommandResult:
    """How one command ended.

    Invariant: `returncode` is None only when the command never ran (not found, not
    permitted, deadline already passed) or could not be reaped after SIGKILL; `killed`
    implies `timed_out`; `warning` is empty when nothing unusual happened.
    """

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    killed: bool = False
    duration: float = 0.0
    warning: str = ""

    @property
    def ok(self) -> bool:
        """True when the command ran to the end and exited 0."""
        return self.returncode == 0 and not self.timed_out


def run_command(
    argv: Sequence[str],
    *,
    deadline: float,
    clock: Clock,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    grace: float = 5.0,
    user: str | None = None,
    stdin_data: bytes | None = None,
    log: logging.Logger | None = None,
    label: str | None = None,
) -> CommandResult:
    """Run `argv` (never through a shell) in its own session, done by `deadline`.

    `deadline` is in `clock`'s time. On expiry the whole process group gets SIGTERM,
    then SIGKILL if anything is left after `grace` seconds, and a warning says so.
    `label` names the call in warnings ("ocf:heartbeat:Dummy start web1"); the
    command line by default. Output is captured without deadlocking, up to
    MAX_CAPTURE bytes per stream.
    """
    if not argv:
        raise ValueError("run_command needs a program to run")
    log = log or _LOG
    label = label or shlex.join(argv)
    # The child lives in real time whatever clock the caller decides with, so the
    # budget is converted once and all waiting below uses the monotonic clock.
    budget = deadline - clock.now()
    started = time.monotonic()
    if budget <= 0:
        return _not_run(label, "not started: its deadline had already passed", log, timed_out=True)
    try:
        proc = _spawn(argv, env, cwd, user, stdin_data)
    except (OSError, KeyError, ValueError) as exc:
        return _not_run(label, _spawn_failure(argv[0], user, exc), log)
    with _Pump(proc, stdin_data) as pump:
        if pump.run_until(started + budget):
            return pump.result(time.monotonic() - started)
        warning, killed = _terminate(pump, label, budget, grace)
        log.warning("%s", warning)
        return pump.result(
            time.monotonic() - started, warning=warning, killed=killed, timed_out=True
        )


def _spawn(
    argv: Sequence[str],
    env: Mapping[str, str] | None,
    cwd: str | None,
    user: str | None,
    stdin_data: bytes | None,
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=True,
        close_fds=True,
        **_identity(user),
    )


def _identity(user: str | None) -> dict[str, Any]:
    """Popen arguments that switch to `user` with its own groups (KeyError if unknown).

    Switching the uid alone would leave the command in root's groups.
    """
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    if entry.pw_uid == os.geteuid():
        return {}  # already that user; setgroups would need privileges we may lack
    groups = os.getgrouplist(entry.pw_name, entry.pw_gid)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": groups}


def _spawn_failure(program: str, user: str | None, exc: Exception) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"not started: command not found: {program}"
    if isinstance(exc, PermissionError):
        return f"not started: permission denied: {program}"
    if isinstance(exc, KeyError):
        return f"not started: no such user: {user}"
    return f"not started: {program}: {exc}"


def _not_run(
    label: str, reason: str, log: logging.Logger, *, timed_out: bool = False
) -> CommandResult:
    warning = f"{label}: {reason}"
    log.warning("%s", warning)
    return CommandResult(None, "", reason, timed_out=timed_out, warning=warning)


def _terminate(pump: _Pump, label: str, budget: float, grace: float) -> tuple[str, bool]:
    """SIGTERM the group, wait `grace`, SIGKILL what is left; (warning, killed)."""
    head = f"{label}: timed out after {_seconds(budget)}; sent SIGTERM"
    pump.signal_group(signal.SIGTERM)
    if pump.run_until(time.monotonic() + grace, whole_group=True):
        return f"{head}, it ended within {_seconds(grace)} grace", False
    pump.signal_group(signal.SIGKILL)
    warning = f"{head}, still running after {_seconds(grace)} grace, sent SIGKILL"
    if not pump.run_until(time.monotonic() + _REAP_WAIT):
        warning += f"; still not reaped {_seconds(_REAP_WAIT)} later"
    return warning, True


def _seconds(value: float) -> str:
    """A duration for people: 19.9993 reads as '20s', 0.9996 as '1s', 0.25 as '250ms'."""
    return format_duration(round(value, 1) if value >= 0.95 else round(value, 3))


class _Pump:
    """Moves bytes between a child's pipes and buffers while waiting for it to end.

    Invariant: no call blocks on a pipe (all are non-blocking and multiplexed), so a
    child writing megabytes never deadlocks; once the leader has exited the pipes are
    drained of what is already there and closed, even if a process it left behind
    (a daemon it started) still holds them open.
    """

    def __init__(self, proc: subprocess.Popen[bytes], stdin_data: bytes | None) -> None:
        self.proc = proc
        self.pgid = proc.pid  # start_new_session makes the child its group's leader
        self._selector = selectors.DefaultSelector()
        self._buffers: dict[int, bytearray] = {}
        self._truncated: set[int] = set()
        self._pending = memoryview(stdin_data or b"")
        self._pidfd = _open_pidfd(proc.pid)
        self._out = self._watch_output(proc.stdout)
        self._err = self._watch_output(proc.stderr)
        if proc.stdin is not None:
            self._watch_input(proc.stdin)
        if self._pidfd is not None:
            self._selector.register(self._pidfd, selectors.EVENT_READ)

    def __enter__(self) -> _Pump:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _watch_output(self, stream: IO[bytes] | None) -> int:
        assert stream is not None  # both output pipes are always requested
        fd = stream.fileno()
        os.set_blocking(fd, False)
        self._buffers[fd] = bytearray()
        self._selector.register(stream, selectors.EVENT_READ)
        return fd

    def _watch_input(self, stream: IO[bytes]) -> None:
        if not self._pending:
            stream.close()
            return
        os.set_blocking(stream.fileno(), False)
        self._selector.register(stream, selectors.EVENT_WRITE)

    def run_until(self, until: float, *, whole_group: bool = False) -> bool:
        """Pump until the leader (or its whole group) is gone, or monotonic `until`.

        Returns True if it ended in time.
        """
        while not self._ended(whole_group):
            left = until - time.monotonic()
            if left <= 0:
                return False
            # Only the leader's exit is signalled through the pidfd; other members
            # of the group are checked on a tick.
            wait = left if self._pidfd is not None and not whole_group else min(left, _TICK)
            for key, _events in self._selector.select(wait):
                self._serve(key)
        self._drain()
        return True

    def _ended(self, whole_group: bool) -> bool:
        if self.proc.poll() is None:
            return False
        if self._pidfd is not None and self._pidfd in self._selector.get_map():
            # An exited leader's pidfd stays readable; watching it would spin.
            self._selector.unregister(self._pidfd)
        return not whole_group or not _group_alive(self.pgid)

    def _serve(self, key: selectors.SelectorKey) -> None:
        if key.fd == self._pidfd:
            return
        if key.events & selectors.EVENT_WRITE:
            self._write(key)
        else:
            self._read(key)

    def _read(self, key: selectors.SelectorKey) -> bool:
        """Read one chunk; False when the pipe is empty for now or closed."""
        try:
            chunk = os.read(key.fd, _CHUNK)
        except BlockingIOError:
            return False
        if not chunk:
            self._selector.unregister(key.fileobj)
            return False
        buffer = self._buffers[key.fd]
        room = MAX_CAPTURE - len(buffer)
        if len(chunk) > room:
            self._truncated.add(key.fd)
        buffer += chunk[: max(room, 0)]
        return True

    def _write(self, key: selectors.SelectorKey) -> None:
        try:
            sent = os.write(key.fd, self._pending[:_CHUNK])
        except BlockingIOError:
            return
        except BrokenPipeError:
            sent = len(self._pending)  # the child closed its stdin: it wants no more
        self._pending = self._pending[sent:]
        if not self._pending:
            self._selector.unregister(key.fileobj)
            assert self.proc.stdin is not None  # only stdin is ever watched for writing
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def _drain(self) -> None:
        """Take what the ended leader left in the pipes, without waiting for EOF."""
        for key in list(self._selector.get_map().values()):
            if key.events & selectors.EVENT_READ and key.fd != self._pidfd:
                while self._read(key):
                    pass

    def signal_group(self, signum: signal.Signals) -> None:
        """Send `signum` to every process of the command's group."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signum)

    def result(
        self, duration: float, *, warning: str = "", killed: bool = False, timed_out: bool = False
    ) -> CommandResult:
        """The outcome so far, with output decoded and truncation noted."""
        out, err = (self._text(fd) for fd in (self._out, self._err))
        if self._truncated:
            note = f"output truncated at {MAX_CAPTURE // (1024 * 1024)} MiB per stream"
            warning = f"{warning}; {note}" if warning else note
        return CommandResult(self.proc.returncode, out, err, timed_out, killed, duration, warning)

    def _text(self, fd: int) -> str:
        return self._buffers[fd].decode("utf-8", errors="replace")

    def close(self) -> None:
        """Close pipes and selector; a leader still running here is killed with its group."""
        if self.proc.poll() is None:
            # Only reached when the caller is interrupted mid-run: never leave it behind.
            self.signal_group(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(_REAP_WAIT)
        self._selector.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _open_pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when `pid` exits (Linux 5.3+), else None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _group_alive(pgid: int) -> bool:
    """True while a live (not zombie) process is in group `pgid`."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # members exist but belong to someone else (after a setuid)
    # kill() also reaches zombies that init has not reaped yet; /proc tells them apart.
    return _live_member_in_proc(pgid) if os.path.isdir("/proc/self") else True


def _live_member_in_proc(pgid: int) -> bool:
    with os.scandir("/proc") as entries:
        return any(_is_live_member(entry.name, pgid) for entry in entries if entry.name.isdigit())


def _is_live_member(pid: str, pgid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except OSError:
        return False  # it exited while we looked
    return int(fields[2]) == pgid and fields[0] != b"Z"
