"""The postgresql plugin: a PostgreSQL server run by pg_ctl as its OS user, checked by a query."""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyha.executor.command import CommandResult, run_command
from pyha.resources.spi import (
    MetaData,
    OcfCode,
    OperationContext,
    OperationSpec,
    ParameterSpec,
    Plugin,
)

from .server import PidFile, ServerState, inspect, is_postgres, kill_all, parse_probe
from .settings import (
    Settings,
    check_bin_dir,
    check_data_directory,
    check_database,
    check_log_file,
    check_options,
    check_params,
    check_port,
    check_socket_dir,
    check_user,
    is_root_user,
)

__all__ = ["PROBE_SQL", "PostgresqlPlugin"]

PROBE_SQL = "SELECT 1, pg_is_in_recovery()"
"""The monitor query: '1' proves a working session; the second column tells the role."""
POLL = 0.2
"""Seconds between monitor queries while a starting server gets ready."""
KILL_POLL = 0.05
"""Seconds between checks that killed server processes are gone."""
LOG_TAIL_LINES = 15
LOG_TAIL_BYTES = 4096

_META = MetaData(
    name="postgresql",
    description=(
        "A PostgreSQL server for one data directory: started and stopped with pg_ctl as "
        "its OS user (never root), healthy when a query over the Unix socket answers. "
        "The monitor reports whether it is a primary or a standby in recovery. Stop runs "
        "pg_ctl stop -m fast, then -m immediate, then kills what is left, all within "
        "the stop timeout."
    ),
    parameters=(
        ParameterSpec(
            name="data_directory",
            required=True,
            unique=True,
            description="The data directory (absolute, made by initdb, owned by user).",
        ),
        ParameterSpec(
            name="bin_dir",
            description="Where pg_ctl, postgres and psql are; default the newest "
            "/usr/lib/postgresql/<version>/bin.",
        ),
        ParameterSpec(name="port", type="integer", default=5432, description="Server port."),
        ParameterSpec(
            name="socket_dir",
            default="/var/run/postgresql",
            description="Directory of the Unix socket (absolute); created for user if missing.",
        ),
        ParameterSpec(
            name="user",
            default="postgres",
            description="OS user the server runs as; must exist and must not be root. "
            "The monitor connects as the database role of the same name.",
        ),
        ParameterSpec(
            name="database",
            default="postgres",
            description="Database the monitor query connects to.",
        ),
        ParameterSpec(
            name="options",
            type="list",
            default=[],
            description="Extra server command-line options, e.g. "
            "['-c', 'listen_addresses=127.0.0.1']; not port, socket or data directory.",
        ),
        ParameterSpec(
            name="log_file",
            description="Server log written by pg_ctl -l (absolute, appended); "
            "default <state_dir>/postgresql/<resource>.log.",
        ),
    ),
    operations=(
        OperationSpec(name="start", timeout=120.0),
        OperationSpec(name="stop", timeout=120.0),
        OperationSpec(name="monitor", timeout=30.0, interval=15.0),
    ),
)


class PostgresqlPlugin(Plugin):
    """Starts, stops and monitors a PostgreSQL server.

    Invariant: the plugin keeps no state between calls; what runs is read each time
    from the data directory's postmaster.pid and from /proc, so a restarted cluster
    server finds a running database as it left it.
    """

    def meta_data(self) -> MetaData:
        """Parameters and default timeouts."""
        return _META

    def validate(self, params: Mapping[str, Any]) -> list[str]:
        """Data directory, binaries, port, user, socket dir and options, each checked."""
        return check_params(params)

    def start(self, ctx: OperationContext) -> int:
        """pg_ctl start unless it runs; 0 once the monitor query answers."""
        settings = _settings(ctx)
        code = _preflight(ctx, settings)
        if code != OcfCode.SUCCESS:
            return code
        state = inspect(settings.data_directory)
        if state.postmaster is not None:
            return _already_running(ctx, settings, state)
        if state.leftovers and not _clear_leftovers(ctx, settings, state):
            return OcfCode.ERR_GENERIC
        problem = _remove_stale_pid_file(ctx, settings) or _prepare(settings)
        if problem is not None:
            ctx.log.error("start %s: %s", ctx.resource, problem)
            return OcfCode.ERR_INSTALLED
        return _pg_ctl_start(ctx, settings)

    def stop(self, ctx: OperationContext) -> int:
        """pg_ctl stop -m fast, then -m immediate, then SIGKILL; 0 once nothing runs."""
        settings = _settings(ctx)
        state = inspect(settings.data_directory)
        if state.stopped:
            return OcfCode.SUCCESS
        if state.postmaster is not None:
            for mode in ("fast", "immediate"):
                if _pg_ctl_stop(ctx, settings, mode):
                    return OcfCode.SUCCESS
        return _kill_the_rest(ctx, settings)

    def monitor(self, ctx: OperationContext) -> int:
        """7 when no server runs, 1 when it runs but the query fails, else 0."""
        settings = _settings(ctx)
        state = inspect(settings.data_directory)
        if state.postmaster is None:
            return _not_running(ctx, settings, state)
        in_recovery, error = _probe(ctx, settings)
        if in_recovery is None:
            status = state.pid_file.status if state.pid_file is not None else ""
            ctx.log.error(
                "monitor %s: postmaster %d (%s) runs but the monitor query failed: %s",
                ctx.resource,
                state.postmaster,
                status or "status unknown",
                error,
            )
            return OcfCode.ERR_GENERIC
        ctx.log.info(
            "monitor %s: postmaster %d answers queries as %s",
            ctx.resource,
            state.postmaster,
            _role(in_recovery),
        )
        return OcfCode.SUCCESS


# --- start --------------------------------------------------------------------------


def _settings(ctx: OperationContext) -> Settings:
    return Settings.from_params(ctx.params, Path(ctx.state_dir), ctx.resource)


def _preflight(ctx: OperationContext, settings: Settings) -> int:
    """0 when this node can run the server; 6 for a bad configuration, 5 for a missing piece."""
    if is_root_user(settings.user):
        ctx.log.error(
            "start %s: user %r is root; PostgreSQL must not run as root",
            ctx.resource,
            settings.user,
        )
        return OcfCode.ERR_CONFIGURED
    configured = [
        *check_port(settings.port),
        *check_options(settings.options),
        *check_database(settings.database),
        *check_log_file(str(settings.log_file)),
    ]
    local = [
        *check_user(settings.user),
        *check_bin_dir(settings.bin_dir, explicit=True),
        *check_data_directory(settings.data_directory, settings.user),
        *check_socket_dir(settings.socket_dir, settings.port),
    ]
    for problem in configured + local:
        ctx.log.error("start %s: %s", ctx.resource, problem)
    if configured:
        return OcfCode.ERR_CONFIGURED
    return OcfCode.ERR_INSTALLED if local else OcfCode.SUCCESS


def _already_running(ctx: OperationContext, settings: Settings, state: ServerState) -> int:
    """A running server counts as started once it answers on the configured port."""
    pid_file = state.pid_file
    if pid_file is not None and pid_file.port not in (None, settings.port):
        ctx.log.error(
            "start %s: postmaster %s of %s already runs on port %d, not on port %d",
            ctx.resource,
            state.postmaster,
            settings.data_directory,
            pid_file.port,
            settings.port,
        )
        return OcfCode.ERR_GENERIC
    ctx.log.info("start %s: postmaster %s already runs", ctx.resource, state.postmaster)
    return _await_answer(ctx, settings, offset=None)


def _clear_leftovers(ctx: OperationContext, settings: Settings, state: ServerState) -> bool:
    """Kill what a killed postmaster left: its children hold the shared memory."""
    ctx.log.warning(
        "start %s: the postmaster is gone but server processes %s of %s remain; killing them",
        ctx.resource,
        _pid_list(state.leftovers),
        settings.data_directory,
    )
    if _kill_and_wait(ctx, settings, ctx.deadline):
        return True
    ctx.log.error("start %s: leftover server processes survived SIGKILL", ctx.resource)
    return False


def _remove_stale_pid_file(ctx: OperationContext, settings: Settings) -> str | None:
    """Remove a postmaster.pid once nothing of the data directory runs; a problem or None.

    PostgreSQL refuses to start while the pid in the file exists, and that pid may be
    an unreaped zombie of the killed postmaster or, after a reboot, another program.
    """
    state = inspect(settings.data_directory)
    if state.pid_file is None or not state.stopped:
        return None
    ctx.log.warning(
        "start %s: removing the stale postmaster.pid (process %d is not a server of %s)",
        ctx.resource,
        state.pid_file.pid,
        settings.data_directory,
    )
    try:
        settings.pid_file.unlink(missing_ok=True)
    except OSError as exc:
        return f"cannot remove the stale {settings.pid_file}: {exc.strerror}"
    return _remove_stale_socket_lock(ctx, settings)


def _remove_stale_socket_lock(ctx: OperationContext, settings: Settings) -> str | None:
    """The socket's lock file names the killed postmaster too; PostgreSQL checks it alike."""
    lock = settings.socket_lock
    owner = PidFile.read(lock)
    if owner is None or is_postgres(owner.pid):
        return None  # a live server on this port and socket is a real conflict: keep it
    ctx.log.warning(
        "start %s: removing the stale %s (process %d is gone)", ctx.resource, lock, owner.pid
    )
    try:
        lock.unlink(missing_ok=True)
    except OSError as exc:
        return f"cannot remove the stale {lock}: {exc.strerror}"
    return None


def _prepare(settings: Settings) -> str | None:
    """Create the socket dir and the log file for the server's user; a problem or None."""
    entry = pwd.getpwnam(settings.user)
    try:
        if not settings.socket_dir.exists():
            settings.socket_dir.mkdir(parents=True, mode=0o2775)
            os.chown(settings.socket_dir, entry.pw_uid, entry.pw_gid)
        settings.log_file.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        if not settings.log_file.exists():
            fd = os.open(settings.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            os.close(fd)
            os.chown(settings.log_file, entry.pw_uid, entry.pw_gid)
    except OSError as exc:
        return f"cannot prepare {exc.filename}: {exc.strerror}"
    return None


def _pg_ctl_start(ctx: OperationContext, settings: Settings) -> int:
    """Run pg_ctl start -w with what is left of the time, then wait for an answer."""
    offset = _size(settings.log_file)
    reserve = min(5.0, 0.2 * ctx.remaining())
    seconds = int(ctx.remaining() - reserve)
    if seconds < 1:
        ctx.log.error("start %s: no time left to run pg_ctl start", ctx.resource)
        return OcfCode.ERR_GENERIC
    result = _pg_ctl(
        ctx,
        settings,
        [
            "start",
            "-D",
            str(settings.data_directory),
            "-w",
            "-t",
            str(seconds),
            "-l",
            str(settings.log_file),
            "-o",
            settings.server_options(),
        ],
        until=ctx.deadline,
    )
    if not result.ok:
        ctx.log.error(
            "start %s: pg_ctl start failed (%s): %s\nserver log %s:\n%s",
            ctx.resource,
            _exit(result),
            _output(result),
            settings.log_file,
            log_tail(settings.log_file, offset),
        )
        return OcfCode.ERR_GENERIC
    return _await_answer(ctx, settings, offset)


def _await_answer(ctx: OperationContext, settings: Settings, offset: int | None) -> int:
    """Query until the server answers (0), exits or the deadline passes (1)."""
    while True:
        in_recovery, error = _probe(ctx, settings)
        if in_recovery is not None:
            ctx.log.info("start %s: answering queries as %s", ctx.resource, _role(in_recovery))
            return OcfCode.SUCCESS
        if inspect(settings.data_directory).postmaster is None:
            tail = log_tail(settings.log_file, offset) if offset is not None else ""
            ctx.log.error("start %s: the server exited: %s\n%s", ctx.resource, error, tail)
            return OcfCode.ERR_GENERIC
        if not ctx.sleep(POLL) or ctx.expired():
            break
    ctx.log.error(
        "start %s: the server did not answer the monitor query in time: %s", ctx.resource, error
    )
    return OcfCode.ERR_GENERIC


# --- stop ---------------------------------------------------------------------------


def _pg_ctl_stop(ctx: OperationContext, settings: Settings, mode: str) -> bool:
    """pg_ctl stop -m `mode` with half the time left (some kept for SIGKILL); True if gone."""
    reserve = min(2.0, 0.1 * ctx.remaining())
    seconds = int((ctx.remaining() - reserve) * 0.5)
    if seconds >= 1:
        until = min(ctx.deadline - reserve, ctx.clock.now() + seconds + 2.0)
        args = ["stop", "-D", str(settings.data_directory), "-m", mode, "-w", "-t", str(seconds)]
        result = _pg_ctl(ctx, settings, args, until=until)
        if not result.ok:
            ctx.log.warning(
                "stop %s: pg_ctl stop -m %s failed (%s): %s",
                ctx.resource,
                mode,
                _exit(result),
                _output(result),
            )
    return inspect(settings.data_directory).stopped


def _kill_and_wait(ctx: OperationContext, settings: Settings, until: float) -> bool:
    """SIGKILL every server process of the data directory until none is left; True if none."""
    until = max(until, ctx.clock.now() + 10 * KILL_POLL)
    while True:
        pids = _pids(inspect(settings.data_directory))
        if not pids:
            return True
        kill_all(settings.data_directory, pids)
        if ctx.clock.now() >= until:
            return False
        # Not cancellable on purpose: a stop that gives up halfway leaves a half-dead server.
        ctx.clock.sleep(KILL_POLL)


def _kill_the_rest(ctx: OperationContext, settings: Settings) -> int:
    """The last step of stop: SIGKILL every server process left; 0 once none is."""
    pids = _pids(inspect(settings.data_directory))
    if not pids:
        return OcfCode.SUCCESS
    ctx.log.warning(
        "stop %s: server processes %s still run; sending SIGKILL", ctx.resource, _pid_list(pids)
    )
    if _kill_and_wait(ctx, settings, ctx.deadline):
        return OcfCode.SUCCESS
    left = _pids(inspect(settings.data_directory))
    ctx.log.error(
        "stop %s: server processes %s are still there after SIGKILL",
        ctx.resource,
        _pid_list(left),
    )
    return OcfCode.ERR_GENERIC


def _pids(state: ServerState) -> list[int]:
    head = [state.postmaster] if state.postmaster is not None else []
    return head + list(state.leftovers)


# --- monitor ------------------------------------------------------------------------


def _not_running(ctx: OperationContext, settings: Settings, state: ServerState) -> int:
    """7 when nothing runs; 1 when server processes run without a live postmaster."""
    if state.leftovers:
        ctx.log.error(
            "monitor %s: no postmaster, but server processes %s of %s still run",
            ctx.resource,
            _pid_list(state.leftovers),
            settings.data_directory,
        )
        return OcfCode.ERR_GENERIC
    if state.pid_file is not None:
        ctx.log.info(
            "monitor %s: postmaster.pid names process %d, which is not a server of %s",
            ctx.resource,
            state.pid_file.pid,
            settings.data_directory,
        )
    return OcfCode.NOT_RUNNING


def _probe(ctx: OperationContext, settings: Settings) -> tuple[bool | None, str]:
    """Run the monitor query: (in recovery, '') when it answered, (None, why) otherwise."""
    argv = [
        settings.psql, "-X", "-At",
        "-h", str(settings.socket_dir), "-p", str(settings.port),
        "-U", settings.user, "-d", settings.database, "-c", PROBE_SQL,
    ]  # fmt: skip
    budget = ctx.remaining()
    env = settings.environment()
    env.update(
        PGAPPNAME="pyha-monitor",
        PGCONNECT_TIMEOUT=str(max(2, int(budget))),  # libpq treats less than 2 as 2
        PGOPTIONS=f"-c statement_timeout={max(1, int(budget * 1000))}",
    )
    result = run_command(
        argv,
        deadline=ctx.deadline,
        clock=ctx.clock,
        env=env,
        cwd="/",
        user=settings.user,
        log=ctx.log,
        label=f"psql monitor query {ctx.resource}",
    )
    if not result.ok:
        return None, _output(result) or _exit(result)
    answer = parse_probe(result.stdout)
    if answer is None:
        return None, f"unexpected answer {result.stdout.strip()!r}"
    return answer, ""


def _role(in_recovery: bool) -> str:
    return "a standby in recovery (read-only)" if in_recovery else "a primary (read-write)"


# --- helpers ------------------------------------------------------------------------


def _pg_ctl(
    ctx: OperationContext, settings: Settings, args: list[str], until: float
) -> CommandResult:
    return run_command(
        [str(settings.pg_ctl), *args],
        deadline=until,
        clock=ctx.clock,
        env=settings.environment(),
        cwd="/",
        user=settings.user,
        log=ctx.log,
        label=f"pg_ctl {args[0]} {ctx.resource}",
    )


def _output(result: CommandResult) -> str:
    text = "\n".join(part.strip() for part in (result.stdout, result.stderr) if part.strip())
    return text or result.warning


def _exit(result: CommandResult) -> str:
    if result.timed_out:
        return "timed out"
    if result.returncode is None:
        return "not run"
    return f"exit {result.returncode}"


def _pid_list(pids: tuple[int, ...] | list[int]) -> str:
    return ", ".join(str(pid) for pid in pids) or "(none)"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def log_tail(path: Path, offset: int | None) -> str:
    """The last lines written to `path` after `offset`, for a message."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(offset or 0, size - LOG_TAIL_BYTES))
            text = f.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc.strerror})"
    lines = text.splitlines()[-LOG_TAIL_LINES:]
    return "\n".join(lines) if lines else "(nothing logged)"
