"""The cluster server's side of the JVM host: start it on demand, call it under deadlines, kill it.

This module never imports JPype: the JVM lives in the host process only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pyha.clock import Clock, MonotonicClock
from pyha.errors import PyhaError
from pyha.jvm.channel import (
    ChannelError,
    Connection,
    LogSink,
    Message,
    Pending,
    read_frame,
    write_frame,
)

__all__ = ["HostReply", "HostUnavailable", "JvmHost", "describe_exit", "host_environment"]

_LOG = logging.getLogger("pyha.jvm")
START_TIMEOUT = 60.0
"""Seconds a JVM host may take to start and load its plugins."""
GRACE = 1.0
"""Seconds a call has, after its deadline passed and it was cancelled, before the host is killed."""
POLL = 0.05
"""Seconds between looks at the server's cancel flag while a call runs."""
_SUN_PATH_MAX = 100
"""Unix socket paths longer than this do not fit in sockaddr_un (108 bytes with the NUL)."""

ReplyStatus = Literal["done", "timeout", "cancelled", "died"]


class HostUnavailable(PyhaError):
    """The JVM host could not be started or reached; `timed_out` if it ran out of time."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


@dataclass(frozen=True)
class HostReply:
    """How a call to the JVM host ended: its reply, or why there is none.

    `status` is "done" (the host answered; see `body`), "timeout" (the deadline
    passed), "cancelled" (the server cancelled) or "died" (the host exited meanwhile).
    For timeout and cancelled, `body` is the late answer if one came within the grace.
    """

    status: ReplyStatus
    body: Message | None = None
    message: str = ""


def describe_exit(code: int | None) -> str:
    """'exit code 3', 'killed by SIGKILL' or 'still running' for a Popen return code."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def host_environment() -> dict[str, str]:
    """The host's environment: the server's, with pyha importable and no stray JVM options."""
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    # Options meant for other JVMs would change this one's behaviour (or its output).
    for name in ("JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "_JAVA_OPTIONS"):
        env.pop(name, None)
    return env


@dataclass
class _Process:
    """A started host: its process, channel and the lifeline pipe that keeps it alive."""

    popen: subprocess.Popen[bytes]
    connection: Connection
    lifeline: int
    generation: int
    run_dir: Path
    private_dir: bool
    socket: Path


class JvmHost:
    """The node's JVM host process, started on demand and restarted after it dies or hangs.

    Invariant: at most one host process is alive at a time, and `generation` counts
    the processes started; a call either gets the host's answer or a HostReply saying
    why not, and returns by its deadline plus the grace (plus, for a hung call, the
    time to kill the host). A call that does not return within the grace after its
    deadline kills the host, with every other call in it: the JVM cannot stop one thread.
    """

    def __init__(
        self,
        jars: Callable[[], tuple[Path, Sequence[Path]]],
        *,
        java_home: Path,
        run_dir: Path | None = None,
        grace: float = GRACE,
        start_timeout: float = START_TIMEOUT,
        jvm_options: Sequence[str] = (),
        python: str = sys.executable,
    ) -> None:
        self._jars = jars
        """Returns (the SPI jar, the plugin jars); called at each start, so it may build."""
        self.java_home = java_home
        self.run_dir = run_dir
        """Where the socket goes; None: the first call's state dir, else a private temp dir."""
        self.grace = grace
        self.start_timeout = start_timeout
        self.jvm_options = tuple(jvm_options)
        self.python = python
        self.generation = 0
        self._lock = threading.Lock()
        self._process: _Process | None = None
        self._listeners: list[Callable[[int], None]] = []
        self.on_stray_log: LogSink | None = None
        self.directory: Callable[[], Message | None] | None = None
        """Gives the `directory` the host's hello carries (how plugins reach the cluster's
        directory; see pyha.jvm.jndi), asked at each start; None: plugins get none."""

    # ------------------------------------------------------------ public surface

    @property
    def restarts(self) -> int:
        """How many times a host was started after an earlier one (died, hung or was killed)."""
        return max(0, self.generation - 1)

    @property
    def pid(self) -> int | None:
        """The running host's process id, or None when none runs."""
        with self._lock:
            process = self._process
        return process.popen.pid if process and process.popen.poll() is None else None

    def on_restart(self, listener: Callable[[int], None]) -> None:
        """Call `listener(generation)` after each restart, from the thread that restarted it.

        The server uses this to re-probe its Java resources: whatever ran in the old host
        may have been half done. The listener must not call into the host itself.
        """
        self._listeners.append(listener)

    def call(
        self,
        request: Message,
        *,
        deadline: float,
        clock: Clock | None = None,
        cancelled: threading.Event | None = None,
        on_log: LogSink | None = None,
        run_dir: Path | None = None,
    ) -> HostReply:
        """Send `request` and wait for its answer until `deadline` (on `clock`).

        Adds `timeout_ms` (the time left) to the request. HostUnavailable if no host
        could be started.
        """
        clock = clock or MonotonicClock()
        for attempt in (1, 2):
            process = self._ensure(run_dir, deadline, clock)
            remaining = max(0.0, deadline - clock.now())
            try:
                pending = process.connection.send(
                    {**request, "timeout_ms": int(remaining * 1000)}, on_log
                )
            except ChannelError as exc:
                # The host died before the request reached it, so nothing ran: one new
                # host may take it. A second failure in a row is reported.
                self._forget(process, f"the channel broke: {exc}")
                if attempt == 2:
                    return HostReply("died", message=self._death(process, str(exc)))
                continue
            return self._wait(process, pending, deadline, clock, cancelled)
        raise AssertionError("unreachable: the loop returns")

    def start(self, run_dir: Path | None = None) -> int:
        """Start the host now if none runs; its pid."""
        clock = MonotonicClock()
        return self._ensure(run_dir, clock.now() + self.start_timeout, clock).popen.pid

    def send_directory(self, timeout: float = 10.0) -> None:
        """Tell a running host the directory `self.directory` gives now (a host started
        later gets it in its hello); nothing when no host runs."""
        with self._lock:
            process = self._process
        if process is None or not _usable(process):
            return
        message = self._directory()
        clock = MonotonicClock()
        try:
            pending = process.connection.send({"op": "directory", "directory": message})
        except ChannelError:
            return  # the host is gone; the next one gets the directory in its hello
        reply = self._wait(process, pending, clock.now() + timeout, clock, None)
        body = reply.body or {}
        if message is not None:
            _LOG.info("Java plugins read %s", body.get("directory", reply.message or "nothing"))

    def kill(self, reason: str) -> None:
        """Kill the host (SIGKILL) if one runs; calls in flight end as 'died'."""
        with self._lock:
            process, self._process = self._process, None
        if process is not None:
            _LOG.warning("killing the JVM host (pid %d): %s", process.popen.pid, reason)
            self._stop(process, kill=True, reason=reason)

    def close(self) -> None:
        """Stop the host: close its lifeline (it exits by itself), kill it if it lingers."""
        with self._lock:
            process, self._process = self._process, None
        if process is not None:
            self._stop(process, kill=False, reason="the JVM host is being shut down")

    # ------------------------------------------------------------ waiting for answers

    def _wait(
        self,
        process: _Process,
        pending: Pending,
        deadline: float,
        clock: Clock,
        cancelled: threading.Event | None,
    ) -> HostReply:
        while not pending.done.is_set():
            if cancelled is not None and cancelled.is_set():
                return self._give_up(process, pending, "cancelled", "cancelled by the server")
            left = deadline - clock.now()
            if left <= 0:
                return self._give_up(process, pending, "timeout", "its deadline passed")
            clock.wait(pending.done, min(POLL, left) if cancelled is not None else left)
        return self._finished(process, pending, "done")

    def _give_up(
        self, process: _Process, pending: Pending, status: ReplyStatus, why: str
    ) -> HostReply:
        with contextlib.suppress(ChannelError):
            process.connection.notify({"op": "cancel", "target": pending.id})
        if pending.done.wait(self.grace):
            return self._finished(process, pending, status)
        reason = f"a call did not return within {self.grace:g}s after {why}"
        with self._lock:
            current = self._process is process
            if current:
                self._process = None
        if current:
            _LOG.warning("killing the JVM host (pid %d): %s", process.popen.pid, reason)
            self._stop(process, kill=True, reason=reason)
        return HostReply(status, message=f"the JVM host was killed: {reason}")

    def _finished(self, process: _Process, pending: Pending, status: ReplyStatus) -> HostReply:
        if pending.failure is None:
            return HostReply(status, pending.reply)
        if status != "done":
            return HostReply(status, message=pending.failure)
        self._forget(process, pending.failure)
        return HostReply("died", message=self._death(process, pending.failure))

    def _death(self, process: _Process, failure: str) -> str:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(1.0)
        return f"{failure} (pid {process.popen.pid}, {describe_exit(process.popen.poll())})"

    def _forget(self, process: _Process, reason: str) -> None:
        with self._lock:
            current = self._process is process
            if current:
                self._process = None
        if current:
            _LOG.warning("the JVM host (pid %d) is gone: %s", process.popen.pid, reason)
            self._stop(process, kill=True, reason=reason)

    # ------------------------------------------------------------ starting and stopping

    def _ensure(self, run_dir: Path | None, deadline: float, clock: Clock) -> _Process:
        with self._lock:
            process = self._process
            if process is not None and _usable(process):
                return process
            if process is not None:
                self._process = None
                why = process.connection.closed or describe_exit(process.popen.poll())
                _LOG.warning("the JVM host (pid %d) is gone: %s", process.popen.pid, why)
                self._stop(process, kill=True, reason=why)
            process = self._spawn(run_dir, deadline, clock)
            self._process = process
            generation = process.generation
        if generation > 1:
            _LOG.warning(
                "JVM host restarted (generation %d, pid %d)", generation, process.popen.pid
            )
            for listener in list(self._listeners):
                try:
                    listener(generation)
                except Exception:  # a listener's bug must not fail the call that restarted
                    _LOG.exception("JVM host restart listener failed")
        return process

    def _spawn(self, run_dir: Path | None, deadline: float, clock: Clock) -> _Process:
        try:
            spi, jars = self._jars()
        except PyhaError as exc:  # the SPI did not build: no host can run
            raise HostUnavailable(f"cannot build the JVM host's jars: {exc}") from None
        directory, private = self._socket_dir(run_dir)
        sock_path = directory / f"host-{os.getpid()}.sock"
        token = secrets.token_hex(32)
        token_r, token_w = os.pipe()
        ready_r, ready_w = os.pipe()
        argv = [
            self.python,
            "-m",
            "pyha.jvm.host",
            "--java-home",
            str(self.java_home),
            "--spi",
            str(spi),
            "--socket",
            str(sock_path),
            "--token-fd",
            str(token_r),
            "--ready-fd",
            str(ready_w),
            *[arg for jar in jars for arg in ("--jar", str(jar))],
            *[arg for option in self.jvm_options for arg in ("--jvm-option", option)],
        ]
        try:
            popen = subprocess.Popen(
                argv,
                pass_fds=(token_r, ready_w),
                stdin=subprocess.DEVNULL,
                env=host_environment(),
                start_new_session=True,
            )
        except OSError as exc:
            for fd in (token_r, token_w, ready_r, ready_w):
                os.close(fd)
            raise HostUnavailable(f"cannot run the JVM host: {exc}") from None
        os.close(token_r)
        os.close(ready_w)
        os.write(token_w, (token + "\n").encode())
        try:
            self._await_ready(
                popen, ready_r, min(deadline, clock.now() + self.start_timeout), clock
            )
            connection = _connect(sock_path, token, self._directory())
        except HostUnavailable:
            os.close(token_w)
            _reap(popen, kill=True)
            if private:
                shutil.rmtree(directory, ignore_errors=True)
            raise
        self.generation += 1
        _LOG.info("JVM host started (pid %d, %d jar(s))", popen.pid, len(jars))
        connection.on_stray_log = self.on_stray_log
        return _Process(popen, connection, token_w, self.generation, directory, private, sock_path)

    def _directory(self) -> Message | None:
        if self.directory is None:
            return None
        try:
            return self.directory()
        except Exception as exc:  # plugins then get no directory; the host still runs
            _LOG.warning("the JVM host's plugins get no directory: %s", exc)
            return None

    def _socket_dir(self, run_dir: Path | None) -> tuple[Path, bool]:
        wanted = self.run_dir or run_dir
        if wanted is not None:
            directory = wanted / "jvm"
            if len(str(directory / f"host-{os.getpid()}.sock")) <= _SUN_PATH_MAX:
                directory.mkdir(parents=True, exist_ok=True)
                directory.chmod(0o700)
                return directory, False
            _LOG.debug("state dir %s is too deep for a Unix socket; using a temp dir", wanted)
        return Path(tempfile.mkdtemp(prefix="pyha-jvm-")), True

    def _await_ready(
        self, popen: subprocess.Popen[bytes], ready_r: int, deadline: float, clock: Clock
    ) -> None:
        try:
            line = _read_line(ready_r, lambda: deadline - clock.now())
        finally:
            os.close(ready_r)
        if line is None:
            if popen.poll() is None:
                raise HostUnavailable("the JVM host did not start in time", timed_out=True)
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(1.0)
            raise HostUnavailable(f"the JVM host exited at start ({describe_exit(popen.poll())})")
        status = json.loads(line)
        if not status.get("ok"):
            raise HostUnavailable(f"the JVM host failed to start: {status.get('error')}")

    def _stop(self, process: _Process, *, kill: bool, reason: str) -> None:
        if kill and process.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.popen.kill()
        with contextlib.suppress(OSError):
            os.close(process.lifeline)  # a host not killed exits when it sees this close
        process.connection.close(f"the JVM host was stopped: {reason}")
        _reap(process.popen, kill=kill)
        if process.private_dir:
            shutil.rmtree(process.run_dir, ignore_errors=True)
        else:
            process.socket.unlink(missing_ok=True)


def _usable(process: _Process) -> bool:
    """True if the host runs and its channel is open (a dead host is noticed here)."""
    return process.popen.poll() is None and process.connection.closed is None


def _read_line(fd: int, remaining: Callable[[], float]) -> str | None:
    """One line from `fd`, or None at EOF or when `remaining()` runs out."""
    data = b""
    while not data.endswith(b"\n"):
        left = remaining()
        if left <= 0:
            return None
        readable, _, _ = select.select([fd], [], [], min(left, 0.5))
        if not readable:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return None
        data += chunk
    return data.decode(errors="replace")


def _connect(path: Path, token: str, directory: Message | None = None) -> Connection:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    hello: Message = {"id": 0, "op": "hello", "token": token}
    if directory is not None:
        hello["directory"] = directory  # secrets travel on this private socket only
    try:
        sock.settimeout(10.0)
        sock.connect(str(path))
        write_frame(sock, hello)
        reply = read_frame(sock)
        sock.settimeout(None)
    except (OSError, ChannelError) as exc:
        sock.close()
        raise HostUnavailable(f"cannot reach the JVM host at {path}: {exc}") from None
    if not reply or not reply.get("ok"):
        sock.close()
        raise HostUnavailable(f"the JVM host refused the connection: {reply}")
    if directory is not None:
        _LOG.info("Java plugins read %s", reply.get("directory", "no directory"))
    return Connection(sock)


def _reap(popen: subprocess.Popen[Any], *, kill: bool, wait: float = 5.0) -> None:
    """Wait for the host to exit (it does once its lifeline closes); kill it if asked or late."""
    if kill and popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            popen.kill()
    try:
        popen.wait(wait)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            popen.kill()
        popen.wait()
