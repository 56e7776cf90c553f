"""The process plugin: keep an application running as a resource, with a health check."""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyha.resources.spi import (
    MetaData,
    OcfCode,
    OperationContext,
    OperationSpec,
    ParameterSpec,
    Plugin,
)

from .health import (
    describe_exit,
    parse_http_url,
    probe_command,
    probe_http,
    probe_tcp,
    split_host_port,
)
from .procfs import PidRecord, boot_id, group_members, read_proc, signal_group, signal_process

__all__ = ["ProcessPlugin"]

SETTLE = 0.2
"""Seconds a just-started process without a health check must stay alive before it
counts as started (with one, a passing check is the proof, and it is tried at once)."""
POLL = 0.2
"""Seconds between checks while starting without a health check."""
PROBE_POLL = 0.005
"""Seconds between tcp/http health probes while starting: a failover waits on the first
pass (a refused TCP connect or HTTP GET on loopback costs well under a millisecond)."""
COMMAND_POLL = 0.02
"""Seconds between health commands while starting (each one is a new process)."""
STOP_POLL = 0.05
"""Seconds between checks that a stopping process group is gone."""
LOG_TAIL_LINES = 20
LOG_TAIL_BYTES = 4096

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEALTH_PARAM = {"tcp": "health_tcp", "http": "health_http", "command": "health_command"}

_META = MetaData(
    name="process",
    description=(
        "An application: a command run in the foreground in its own process group, its "
        "output in a log file, its health checked by a TCP connect, an HTTP GET or a command. "
        "The command must not daemonize (fork into the background and exit)."
    ),
    parameters=(
        ParameterSpec(
            name="command",
            type="list",
            required=True,
            description="The program and its arguments (a list, or words split as a shell "
            "would; never run through a shell).",
        ),
        ParameterSpec(
            name="cwd", description="Working directory (absolute); default the server's."
        ),
        ParameterSpec(
            name="env",
            type="list",
            default=[],
            description="Environment as NAME=value items, added to PATH (kept from the server).",
        ),
        ParameterSpec(
            name="user", description="Run as this OS user (needs root); default: as pyha."
        ),
        ParameterSpec(
            name="health",
            type="select",
            options=("none", "tcp", "http", "command"),
            default="none",
            description="How to tell the application is healthy; none means alive is healthy.",
        ),
        ParameterSpec(
            name="health_tcp",
            description="host:port that accepts a TCP connection when healthy ([::1]:80 for IPv6).",
        ),
        ParameterSpec(
            name="health_http",
            description="http(s) URL that answers a GET with 2xx or 3xx when healthy.",
        ),
        ParameterSpec(
            name="health_command",
            type="list",
            description="Command that exits 0 when healthy (run with the app's user, cwd, env).",
        ),
        ParameterSpec(
            name="health_timeout",
            type="duration",
            default="2s",
            description="How long one health probe may take.",
        ),
        ParameterSpec(
            name="stop_grace",
            type="duration",
            default="10s",
            description="How long stop waits after SIGTERM before SIGKILL.",
        ),
        ParameterSpec(
            name="pid_file",
            unique=True,
            description="Where the pid is kept (absolute); "
            "default <state_dir>/process/<resource>.pid.",
        ),
        ParameterSpec(
            name="log_file",
            description="Where stdout and stderr go (absolute, appended); "
            "default <state_dir>/process/<resource>.log.",
        ),
    ),
    operations=(
        OperationSpec(name="start", timeout=30.0),
        OperationSpec(name="stop", timeout=30.0),
        OperationSpec(name="monitor", timeout=10.0, interval=10.0),
    ),
)


# --- settings -----------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """A resource's parameters, resolved: default paths filled in, health target parsed."""

    command: list[str]
    cwd: str | None
    env: dict[str, str]
    user: str | None
    health: str
    health_tcp: str | None
    health_http: str | None
    health_command: list[str] | None
    health_timeout: float
    stop_grace: float
    pid_file: Path
    log_file: Path

    @classmethod
    def from_ctx(cls, ctx: OperationContext) -> Settings:
        """The settings of `ctx.resource`; parameters are already typed and defaulted."""
        p = ctx.params
        base = Path(ctx.state_dir) / "process"
        return cls(
            command=list(p["command"]),
            cwd=p.get("cwd"),
            env=_environment(p.get("env") or [], p.get("user")),
            user=p.get("user"),
            health=p.get("health") or "none",
            health_tcp=p.get("health_tcp"),
            health_http=p.get("health_http"),
            health_command=p.get("health_command"),
            health_timeout=float(p.get("health_timeout", 2.0)),
            stop_grace=float(p.get("stop_grace", 10.0)),
            pid_file=Path(p.get("pid_file") or base / f"{ctx.resource}.pid"),
            log_file=Path(p.get("log_file") or base / f"{ctx.resource}.log"),
        )


def _environment(items: list[str], user: str | None) -> dict[str, str]:
    """PATH from the server, the user's identity variables, then the given NAME=value items."""
    env = {"PATH": os.environ.get("PATH", os.defpath)}
    if user:
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            pass  # reported by validate, and by start when it cannot switch to the user
        else:
            env.update(HOME=entry.pw_dir, USER=user, LOGNAME=user)
    for item in items:
        name, _, value = item.partition("=")
        env[name] = value
    return env


def _identity(user: str | None) -> dict[str, Any]:
    """Popen arguments that switch to `user`, or none when no switch is needed."""
    if not user:
        return {}
    entry = pwd.getpwnam(user)
    if entry.pw_uid == os.geteuid():
        return {}
    return {
        "user": entry.pw_uid,
        "group": entry.pw_gid,
        "extra_groups": os.getgrouplist(user, entry.pw_gid),
    }


# --- validation ---------------------------------------------------------------------


def _check_command(name: str, argv: list[str], cwd: str | None, path: str) -> list[str]:
    if not argv or not argv[0]:
        return [f"{name}: must name a program"]
    program = argv[0]
    if "/" not in program:
        found = shutil.which(program, path=path)
        return [] if found else [f"{name}: program {program!r} not found on PATH ({path})"]
    full = Path(cwd or os.getcwd()) / program
    if not full.is_file():
        return [f"{name}: {program!r} does not exist or is not a file"]
    if not os.access(full, os.X_OK):
        return [f"{name}: {program!r} is not executable"]
    return []


def _check_cwd(cwd: str | None) -> list[str]:
    if cwd is None:
        return []
    if not os.path.isabs(cwd):
        return [f"cwd: must be an absolute path, got {cwd!r}"]
    if not os.path.isdir(cwd):
        what = "is not a directory" if os.path.exists(cwd) else "does not exist"
        return [f"cwd: {cwd!r} {what}"]
    return []


def _check_env(items: list[str]) -> list[str]:
    problems = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            problems.append(f"env: {item!r} is not NAME=value")
        elif not _ENV_NAME.match(name):
            problems.append(
                f"env: {name!r} is not a variable name (letters, digits and _, "
                "not starting with a digit)"
            )
        elif "\0" in value:
            problems.append(f"env: the value of {name} holds a NUL character")
    return problems


def _check_user(user: str | None) -> list[str]:
    if user is None:
        return []
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return [f"user: no such user {user!r}"]
    if os.geteuid() != 0 and entry.pw_uid != os.geteuid():
        return [f"user: running as {user!r} needs root (pyha runs as uid {os.geteuid()})"]
    return []


def _check_health(params: Mapping[str, Any]) -> list[str]:
    health = params.get("health", "none")
    problems = [
        f"{name}: is set, but health is {health}; set health={kind} to use it"
        for kind, name in _HEALTH_PARAM.items()
        if kind != health and params.get(name) is not None
    ]
    if health == "none":
        return problems
    name = _HEALTH_PARAM[health]
    value = params.get(name)
    if not value:
        return [*problems, f"{name}: required when health={health}"]
    try:
        if health == "tcp":
            split_host_port(value)
        elif health == "http":
            parse_http_url(value)
    except ValueError as exc:
        problems.append(f"{name}: {exc}")
    if health == "command":
        path = _environment(params.get("env") or [], None)["PATH"]
        problems += _check_command(name, value, params.get("cwd"), path)
    return problems


def _check_files(params: Mapping[str, Any]) -> list[str]:
    problems = []
    for name in ("pid_file", "log_file"):
        value = params.get(name)
        if value is None:
            continue
        if not os.path.isabs(value):
            problems.append(f"{name}: must be an absolute path, got {value!r}")
        elif os.path.isdir(value):
            problems.append(f"{name}: {value!r} is a directory")
    pid_file, log_file = params.get("pid_file"), params.get("log_file")
    if pid_file is not None and pid_file == log_file:
        problems.append("log_file: must differ from pid_file")
    return problems


# --- health probes ------------------------------------------------------------------


def probe(settings: Settings, timeout: float) -> str | None:
    """None when the application is healthy, else why not."""
    if settings.health == "tcp" and settings.health_tcp:
        return probe_tcp(settings.health_tcp, timeout)
    if settings.health == "http" and settings.health_http:
        return probe_http(settings.health_http, timeout)
    if settings.health == "command" and settings.health_command:
        identity = _identity(settings.user)
        return probe_command(settings.health_command, timeout, settings.cwd, settings.env, identity)
    return None


def log_tail(path: Path, offset: int) -> str:
    """The last lines written to `path` after `offset`, for a message."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(offset, size - LOG_TAIL_BYTES))
            text = f.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc.strerror})"
    lines = text.splitlines()[-LOG_TAIL_LINES:]
    return "\n".join(lines) if lines else "(no output)"


# --- the plugin ---------------------------------------------------------------------


class ProcessPlugin(Plugin):
    """Runs each resource's command as a child of the server, in its own session.

    Invariant: a resource is running exactly when its pid file names a process that
    still runs (a zombie does not), and has the start time and boot recorded with the pid;
    signals go to a process group only when it is provably the one this plugin started.
    Every child is kept until reaped, so a killed application is seen as gone.
    """

    def __init__(self) -> None:
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def meta_data(self) -> MetaData:
        """Parameters with types and defaults; start, stop and monitor with timeouts."""
        return _META

    def validate(self, params: Mapping[str, Any]) -> list[str]:
        """Types first, then each parameter's meaning; every problem names its parameter."""
        coerced, problems = _META.check(params)
        if problems:
            return list(problems)
        path = _environment(coerced.get("env") or [], None)["PATH"]
        return [
            *_check_cwd(coerced.get("cwd")),
            *_check_command("command", coerced["command"], coerced.get("cwd"), path),
            *_check_env(coerced.get("env") or []),
            *_check_user(coerced.get("user")),
            *_check_health(coerced),
            *([] if coerced["health_timeout"] > 0 else ["health_timeout: must be more than 0"]),
            *_check_files(coerced),
        ]

    def start(self, ctx: OperationContext) -> int:
        """Spawn the command unless it runs, then wait until it is healthy (0) or give up (1)."""
        self._reap_children()
        settings = Settings.from_ctx(ctx)
        record = PidRecord.read(settings.pid_file)
        if record is not None and self._alive(record):
            return OcfCode.SUCCESS
        reserve = min(1.0, 0.1 * ctx.remaining())
        if record is not None:
            # Whatever the dead instance left in its group would hold its ports.
            self._end_group(ctx, record, grace=0.0, until=ctx.deadline - reserve)
        offset = settings.log_file.stat().st_size if settings.log_file.exists() else 0
        try:
            proc = self._spawn(settings)
        except KeyError:
            ctx.log.error("start %s: no such user %r on this node", ctx.resource, settings.user)
            return OcfCode.ERR_INSTALLED
        except OSError as exc:
            ctx.log.error("start %s: cannot run %s: %s", ctx.resource, settings.command[0], exc)
            return _spawn_error_code(exc)
        return self._await_healthy(ctx, settings, proc, offset, reserve)

    def stop(self, ctx: OperationContext) -> int:
        """SIGTERM the group, SIGKILL after stop_grace, wait until it is gone; 1 if it stays."""
        self._reap_children()
        settings = Settings.from_ctx(ctx)
        record = PidRecord.read(settings.pid_file)
        if record is not None:
            grace = settings.stop_grace
            if not self._end_group(ctx, record, grace=grace, until=ctx.deadline):
                ctx.log.error(
                    "stop %s: process group %d is still there after SIGKILL",
                    ctx.resource,
                    record.pid,
                )
                return OcfCode.ERR_GENERIC
        settings.pid_file.unlink(missing_ok=True)
        return OcfCode.SUCCESS

    def monitor(self, ctx: OperationContext) -> int:
        """7 when the recorded process is gone, 1 when it fails its health check, else 0."""
        self._reap_children()
        settings = Settings.from_ctx(ctx)
        record = PidRecord.read(settings.pid_file)
        if record is None:
            return OcfCode.NOT_RUNNING
        if not self._alive(record):
            ctx.log.info("monitor %s: process %d is gone", ctx.resource, record.pid)
            return OcfCode.NOT_RUNNING
        problem = probe(settings, max(0.05, min(settings.health_timeout, ctx.remaining())))
        if problem is not None:
            ctx.log.error("monitor %s: unhealthy: %s", ctx.resource, problem)
            return OcfCode.ERR_GENERIC
        return OcfCode.SUCCESS

    # --- children -------------------------------------------------------------------

    def _spawn(self, settings: Settings) -> subprocess.Popen[bytes]:
        """Start the command in a new session, output to the log file; record its pid."""
        settings.log_file.parent.mkdir(parents=True, exist_ok=True)
        settings.pid_file.parent.mkdir(parents=True, exist_ok=True)
        identity = _identity(settings.user)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        log_fd = os.open(settings.log_file, flags, 0o640)
        try:
            proc = subprocess.Popen(
                settings.command,
                cwd=settings.cwd,
                env=settings.env,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **identity,
            )
        finally:
            os.close(log_fd)
        with self._lock:
            self._children[proc.pid] = proc
        info = read_proc(proc.pid)
        start_time = info.start_time if info is not None else 0
        try:
            PidRecord(proc.pid, start_time, boot_id()).write(settings.pid_file)
        except OSError:
            # Without a pid file nothing could ever stop it: do not leave it running.
            signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
            self._forget(proc)
            raise
        return proc

    def _await_healthy(
        self,
        ctx: OperationContext,
        settings: Settings,
        proc: subprocess.Popen[bytes],
        offset: int,
        reserve: float,
    ) -> int:
        """Poll until healthy after the settle time; on exit or deadline, clean up and fail."""
        checked = settings.health in ("tcp", "http", "command")
        settled_at = ctx.clock.now() + (0.0 if checked else SETTLE)
        problem: str | None = "the health check has not run yet"
        while True:
            if proc.poll() is not None:
                return self._exited_during_start(ctx, settings, proc, offset)
            if ctx.clock.now() >= settled_at:
                budget = max(0.05, min(settings.health_timeout, ctx.remaining() - reserve))
                problem = probe(settings, budget)
                if problem is None and proc.poll() is None:
                    return OcfCode.SUCCESS
            poll = COMMAND_POLL if settings.health == "command" else PROBE_POLL
            wait = min(poll if checked else POLL, ctx.remaining() - reserve)
            if wait <= 0 or not ctx.sleep(wait):
                break
        why = "was cancelled" if ctx.cancelled.is_set() else "timed out"
        ctx.log.error(
            "start %s: %s before the application was healthy (%s); killing it",
            ctx.resource,
            why,
            problem or "it exited",
        )
        self._fail_start(ctx, settings, proc)
        return OcfCode.ERR_GENERIC

    def _exited_during_start(
        self,
        ctx: OperationContext,
        settings: Settings,
        proc: subprocess.Popen[bytes],
        offset: int,
    ) -> int:
        ctx.log.error(
            "start %s: %s %s during start; its last output (%s):\n%s",
            ctx.resource,
            settings.command[0],
            describe_exit(proc.returncode),
            settings.log_file,
            log_tail(settings.log_file, offset),
        )
        self._fail_start(ctx, settings, proc)
        return OcfCode.ERR_GENERIC

    def _fail_start(
        self, ctx: OperationContext, settings: Settings, proc: subprocess.Popen[bytes]
    ) -> None:
        """Kill what a failed start left (its children included) and forget it."""
        record = PidRecord.read(settings.pid_file)
        if record is not None and record.pid == proc.pid:
            self._end_group(ctx, record, grace=0.0, until=ctx.deadline)
        elif signal_group(proc.pid, signal.SIGKILL):
            self._wait_gone(ctx, proc.pid, None, ctx.deadline)
        settings.pid_file.unlink(missing_ok=True)
        self._reap_children()

    def _alive(self, record: PidRecord) -> bool:
        """True when the recorded process runs (reaping it first if it became a zombie)."""
        self._reap(record)
        leader = record.leader()
        return leader is not None and leader.running()

    def _reap(self, record: PidRecord) -> None:
        with self._lock:
            proc = self._children.get(record.pid)
        if proc is not None:
            if proc.poll() is not None:
                self._forget(proc)
            return
        leader = record.leader()
        # waitpid only the very process recorded: a reused pid may be another Popen's child.
        if leader is not None and leader.zombie:
            # Not our child (the server restarted since): its own parent reaps it.
            with contextlib.suppress(ChildProcessError):
                os.waitpid(record.pid, os.WNOHANG)

    def _reap_children(self) -> None:
        with self._lock:
            children = list(self._children.values())
        for proc in children:
            if proc.poll() is not None:
                self._forget(proc)

    def _forget(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            if self._children.get(proc.pid) is proc:
                del self._children[proc.pid]

    # --- ending a process group -----------------------------------------------------

    def _end_group(
        self, ctx: OperationContext, record: PidRecord, grace: float, until: float
    ) -> bool:
        """SIGTERM (unless grace is 0), then SIGKILL what is left; True once all is gone.

        The group is signalled only when it is provably ours: its leader is the recorded
        process, or the leader is gone and every member started after it. A pid that now
        names another process means the kernel had no group of ours left to reuse it.
        """
        if not self._owned(record):
            return True
        leader_pid = record.pid
        if grace > 0:
            _signal_owned(record, signal.SIGTERM)
            now = ctx.clock.now()
            # Leave part of the time for SIGKILL to take effect: stop_grace is bounded.
            grace_end = min(now + grace, until - min(1.0, 0.1 * (until - now)))
            if self._wait_gone(ctx, leader_pid, record, grace_end):
                return True
            ctx.log.warning(
                "stop %s: process group %d did not end within %gs of SIGTERM; sending SIGKILL",
                ctx.resource,
                leader_pid,
                grace,
            )
        _signal_owned(record, signal.SIGKILL)
        return self._wait_gone(ctx, leader_pid, record, max(until, ctx.clock.now() + STOP_POLL))

    def _owned(self, record: PidRecord) -> bool:
        """True when something of the recorded group still runs and is provably ours."""
        self._reap(record)
        if record.boot != boot_id():
            return False
        leader = read_proc(record.pid)
        if leader is not None and leader.running():
            return leader.start_time == record.start_time
        if leader is not None and leader.start_time != record.start_time:
            return False
        members = group_members(record.pid)
        return bool(members) and all(m.start_time >= record.start_time for m in members)

    def _wait_gone(
        self, ctx: OperationContext, pgid: int, record: PidRecord | None, until: float
    ) -> bool:
        """Wait, reaping, until no live process of the group is left, or until `until`."""
        while True:
            if record is not None:
                self._reap(record)
            self._reap_children()
            leader = record.leader() if record is not None else None
            if not group_members(pgid) and (leader is None or not leader.running()):
                return True
            left = until - ctx.clock.now()
            if left <= 0:
                return False
            # Not cancellable on purpose: a stop that gives up halfway leaves a half-dead app.
            ctx.clock.sleep(min(STOP_POLL, left))


def _signal_owned(record: PidRecord, sig: signal.Signals) -> None:
    """Signal the recorded group, and its leader too in case it left the group."""
    signal_group(record.pid, sig)
    leader = record.leader()
    if leader is not None and leader.running():
        signal_process(record.pid, sig)


def _spawn_error_code(exc: OSError) -> int:
    """Not installed for a missing program or directory, no permission, or generic."""
    if isinstance(exc, FileNotFoundError):
        return OcfCode.ERR_INSTALLED
    if isinstance(exc, PermissionError):
        return OcfCode.ERR_PERM
    return OcfCode.ERR_GENERIC
