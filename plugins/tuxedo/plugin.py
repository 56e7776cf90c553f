"""The tuxedo plugin: a Tuxedo domain booted with tmboot, watched through tmadmin's psr."""

from __future__ import annotations

import os
import pwd
import re
from collections.abc import Mapping
from dataclasses import dataclass
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

from .envfile import parse_env_file
from .psr import ADMIN_SERVER, Health, assess, parse_psr

__all__ = ["PSR_COMMANDS", "Settings", "TuxedoPlugin"]

PROGRAMS = ("tmboot", "tmshutdown", "tmadmin")
PSR_COMMANDS = b"psr\nquit\n"
"""What the monitor feeds tmadmin -r (read-only: it joins as a client, not as admin)."""
POLL = 0.5
"""Seconds between looks while booted servers come up."""
OUTPUT_TAIL = 20
"""Lines of a command's output quoted in a message."""
_PINNED = ("TUXDIR", "TUXCONFIG", "APPDIR")
_SERVER_NAME = re.compile(r"^[^\s/]+$")

_META = MetaData(
    name="tuxedo",
    description=(
        "An Oracle Tuxedo domain on this machine: booted with tmboot -y, healthy while "
        "tmadmin -r's psr lists the BBL and every required server. Stop runs "
        "tmshutdown -y, then -y -c (shut down even with clients attached), then "
        "-y -c -w <seconds> (kill servers that have not stopped after that wait), "
        "all within the stop timeout."
    ),
    parameters=(
        ParameterSpec(name="tuxdir", required=True, description="TUXDIR: the Tuxedo installation."),
        ParameterSpec(
            name="tuxconfig",
            required=True,
            unique=True,
            description="TUXCONFIG: the domain's binary configuration file (absolute).",
        ),
        ParameterSpec(
            name="appdir", required=True, description="APPDIR: the application directory."
        ),
        ParameterSpec(
            name="env_file",
            description="A file of NAME=value lines (ENVFILE style, ${NAME} expanded, "
            "no shell) added to the commands' environment.",
        ),
        ParameterSpec(
            name="required_servers",
            type="list",
            default=[ADMIN_SERVER],
            description="Server names that must run for the domain to be healthy; "
            "the BBL always must.",
        ),
        ParameterSpec(
            name="user", description="Run the Tuxedo commands as this OS user (needs root)."
        ),
    ),
    operations=(
        OperationSpec(name="start", timeout=180.0),
        OperationSpec(name="stop", timeout=180.0),
        OperationSpec(name="monitor", timeout=30.0, interval=30.0),
    ),
)


@dataclass(frozen=True)
class Settings:
    """A resource's parameters, typed; the environment the Tuxedo commands get."""

    tuxdir: Path
    tuxconfig: Path
    appdir: Path
    env_file: Path | None
    required: tuple[str, ...]
    user: str | None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Settings:
        """Settings from parameters that passed the declared types."""
        env_file = params.get("env_file")
        return cls(
            tuxdir=Path(params["tuxdir"]),
            tuxconfig=Path(params["tuxconfig"]),
            appdir=Path(params["appdir"]),
            env_file=Path(env_file) if env_file else None,
            required=tuple(params.get("required_servers") or (ADMIN_SERVER,)),
            user=params.get("user") or None,
        )

    def program(self, name: str) -> Path:
        """$TUXDIR/bin/<name>."""
        return self.tuxdir / "bin" / name

    def base_environment(self) -> dict[str, str]:
        """TUXDIR, TUXCONFIG, APPDIR, a PATH and library path into TUXDIR, the user's HOME."""
        env = {
            "PATH": f"{self.tuxdir}/bin:{self.appdir}:/usr/local/bin:/usr/bin:/bin",
            "LD_LIBRARY_PATH": f"{self.tuxdir}/lib",
            "TUXDIR": str(self.tuxdir),
            "TUXCONFIG": str(self.tuxconfig),
            "APPDIR": str(self.appdir),
        }
        if self.user:
            try:
                entry = pwd.getpwnam(self.user)
            except KeyError:
                return env
            env.update(HOME=entry.pw_dir, USER=self.user, LOGNAME=self.user)
        return env

    def environment(self) -> tuple[dict[str, str], list[str], list[str]]:
        """(environment, problems, warnings): the base, the env file, the parameters pinned."""
        env = self.base_environment()
        if self.env_file is None:
            return env, [], []
        try:
            text = self.env_file.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return env, [f"env_file: cannot read {self.env_file}: {exc.strerror}"], []
        parsed = parse_env_file(text, env)
        problems = [f"env_file: {problem}" for problem in parsed.problems]
        for name in _PINNED:
            value = parsed.variables.get(name)
            if value is not None and value != env[name]:
                problems.append(
                    f"env_file: sets {name}={value!r}, but the {name.lower()} parameter "
                    f"is {env[name]!r}"
                )
        pinned = {name: env[name] for name in _PINNED}
        warnings = [f"env_file: {unset}" for unset in parsed.unset]
        return {**env, **parsed.variables, **pinned}, problems, warnings


class TuxedoPlugin(Plugin):
    """Boots, shuts down and monitors one Tuxedo domain.

    Invariant: the plugin keeps no state between calls; what runs is what tmadmin's
    psr reports each time, so a restarted cluster server sees the domain as it is.
    """

    def meta_data(self) -> MetaData:
        """Parameters and default timeouts."""
        return _META

    def validate(self, params: Mapping[str, Any]) -> list[str]:
        """Directories, the TUXCONFIG file, the Tuxedo programs, env file, servers, user."""
        settings = Settings.from_params(params)
        return [
            *_check_tuxdir(settings.tuxdir),
            *_check_file("tuxconfig", settings.tuxconfig),
            *_check_dir("appdir", settings.appdir),
            *_check_env_file(settings),
            *_check_servers(settings.required),
            *_check_user(settings.user),
        ]

    def start(self, ctx: OperationContext) -> int:
        """tmboot -y unless the domain runs; 0 once psr lists every required server."""
        settings = Settings.from_params(ctx.params)
        code = _preflight(ctx, settings, PROGRAMS)
        if code != OcfCode.SUCCESS:
            return code
        domain = _domain(ctx, settings)
        if domain is None:
            return OcfCode.ERR_CONFIGURED
        health = _check(ctx, domain)
        if health.code == OcfCode.SUCCESS:
            ctx.log.info("start %s: the domain already runs (%s)", ctx.resource, health.message)
            return OcfCode.SUCCESS
        reserve = min(5.0, 0.1 * ctx.remaining())
        booted = domain.run(ctx, "tmboot", ["-y"], until=ctx.deadline - reserve)
        if booted.returncode is None or booted.timed_out:
            ctx.log.error("start %s: tmboot -y %s", ctx.resource, _describe(booted))
            return OcfCode.ERR_GENERIC
        return _await_servers(ctx, domain, booted)

    def stop(self, ctx: OperationContext) -> int:
        """tmshutdown, escalating to -c and then -w; 0 once no bulletin board is left."""
        settings = Settings.from_params(ctx.params)
        if not _installed(settings, ("tmshutdown", "tmadmin")):
            ctx.log.warning(
                "stop %s: %s/bin has no tmshutdown or tmadmin; Tuxedo is not installed "
                "here, so no domain of it runs here",
                ctx.resource,
                settings.tuxdir,
            )
            return OcfCode.SUCCESS
        domain = _domain(ctx, settings)
        if domain is None:
            return OcfCode.ERR_CONFIGURED
        health = _check(ctx, domain)
        if health.code == OcfCode.NOT_RUNNING:
            return OcfCode.SUCCESS
        return _shut_down(ctx, domain)

    def monitor(self, ctx: OperationContext) -> int:
        """0 all required servers run, 7 no bulletin board, 1 some missing (named)."""
        settings = Settings.from_params(ctx.params)
        if not _installed(settings, ("tmadmin",)) or not settings.tuxconfig.is_file():
            return _monitor_not_installed(ctx, settings)
        domain = _domain(ctx, settings)
        if domain is None:
            return OcfCode.ERR_CONFIGURED
        health = _check(ctx, domain)
        if health.code == OcfCode.SUCCESS:
            ctx.log.info("monitor %s: %s", ctx.resource, health.message)
        elif health.code == OcfCode.NOT_RUNNING:
            ctx.log.info("monitor %s: not running: %s", ctx.resource, health.message)
        else:
            ctx.log.error("monitor %s: %s", ctx.resource, health.message)
        return health.code


# --- operations' parts --------------------------------------------------------------


def _installed(settings: Settings, programs: tuple[str, ...]) -> bool:
    return all(_executable(settings.program(name)) for name in programs)


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _preflight(ctx: OperationContext, settings: Settings, programs: tuple[str, ...]) -> int:
    """0 when this node has the programs, the files and the user; else 5, saying what lacks."""
    missing = [name for name in programs if not _executable(settings.program(name))]
    problems = []
    if missing:
        problems.append(
            f"{', '.join(missing)} not found in {settings.tuxdir}/bin (TUXDIR); "
            "is Tuxedo installed on this node?"
        )
    if not settings.tuxconfig.is_file():
        problems.append(f"TUXCONFIG {settings.tuxconfig} does not exist on this node")
    if not settings.appdir.is_dir():
        problems.append(f"APPDIR {settings.appdir} is not a directory on this node")
    problems += _check_user(settings.user)
    for problem in problems:
        ctx.log.error("%s %s: %s", ctx.operation, ctx.resource, problem)
    return OcfCode.ERR_INSTALLED if problems else OcfCode.SUCCESS


def _domain(ctx: OperationContext, settings: Settings) -> _Domain | None:
    """The domain with its commands' environment; None (after logging why) if that is bad."""
    env, problems, warnings = settings.environment()
    for warning in warnings:
        ctx.log.warning("%s %s: %s", ctx.operation, ctx.resource, warning)
    for problem in problems:
        ctx.log.error("%s %s: %s", ctx.operation, ctx.resource, problem)
    return None if problems else _Domain(settings, env)


def _monitor_not_installed(ctx: OperationContext, settings: Settings) -> int:
    """A probe finds nothing running where Tuxedo is absent; a recurring monitor fails hard."""
    what = (
        f"{settings.tuxdir}/bin has no tmadmin"
        if not _installed(settings, ("tmadmin",))
        else f"TUXCONFIG {settings.tuxconfig} does not exist"
    )
    if ctx.interval == 0:
        ctx.log.info("monitor %s: %s; the domain cannot run here", ctx.resource, what)
        return OcfCode.NOT_RUNNING
    ctx.log.error("monitor %s: %s", ctx.resource, what)
    return OcfCode.ERR_INSTALLED


@dataclass(frozen=True)
class _Domain:
    """The domain as its commands see it: the settings and the environment they run in."""

    settings: Settings
    env: dict[str, str]

    def run(
        self,
        ctx: OperationContext,
        program: str,
        args: list[str],
        *,
        until: float,
        stdin: bytes | None = None,
    ) -> CommandResult:
        """Run $TUXDIR/bin/<program> in APPDIR, as the user, done by `until`."""
        return run_command(
            [str(self.settings.program(program)), *args],
            deadline=until,
            clock=ctx.clock,
            env=self.env,
            cwd=str(self.settings.appdir),
            user=self.settings.user,
            stdin_data=stdin,
            log=ctx.log,
            label=f"{program} {' '.join(args)} ({ctx.resource})",
        )


def _check(ctx: OperationContext, domain: _Domain) -> Health:
    """Run tmadmin -r's psr and judge the domain by it."""
    result = domain.run(ctx, "tmadmin", ["-r"], until=ctx.deadline, stdin=PSR_COMMANDS)
    if result.returncode is None or result.timed_out:
        return Health(OcfCode.ERR_GENERIC, f"tmadmin -r {_describe(result)}")
    report = parse_psr(result.stdout + "\n" + result.stderr)
    health = assess(report, domain.settings.required)
    if not report.table and not report.messages:
        tail = _tail(result)
        return Health(health.code, f"{health.message} (exit {result.returncode}): {tail}")
    return health


def _await_servers(ctx: OperationContext, domain: _Domain, booted: CommandResult) -> int:
    """After tmboot: 0 once every required server runs, 1 when tmboot failed or time is up."""
    while True:
        health = _check(ctx, domain)
        if health.code == OcfCode.SUCCESS:
            if booted.returncode != 0:
                ctx.log.warning(
                    "start %s: tmboot -y %s, but every required server runs:\n%s",
                    ctx.resource,
                    _describe(booted),
                    _tail(booted),
                )
            ctx.log.info("start %s: %s", ctx.resource, health.message)
            return OcfCode.SUCCESS
        if booted.returncode != 0 or not ctx.sleep(POLL) or ctx.expired():
            break
    ctx.log.error(
        "start %s: %s; tmboot -y %s:\n%s",
        ctx.resource,
        health.message,
        _describe(booted),
        _tail(booted),
    )
    return OcfCode.ERR_GENERIC


ESCALATION = (("-y",), ("-y", "-c"), ("-y", "-c", "-w"))
"""tmshutdown's arguments, step by step: -c shuts the domain down even with clients
attached; -w <seconds> makes tmshutdown kill servers that have not stopped after that
wait. The last step keeps -c so attached clients cannot hold it up again."""
_STEP_SHARE = (0.4, 0.5, 1.0)
"""Share of the time left (less a reserve for the last look) each step may take."""
_WAIT_SHARE = 0.5
"""Share of the last step's time tmshutdown -w waits before it kills."""


def _shutdown_step(ctx: OperationContext, step: int, reserve: float) -> tuple[list[str], float]:
    """The arguments of escalation step `step` and the time by which it must end."""
    budget = max(0.0, ctx.remaining() - reserve)
    args = list(ESCALATION[step])
    if args[-1] == "-w":
        args.append(str(max(1, int(budget * _WAIT_SHARE))))
    return args, ctx.clock.now() + budget * _STEP_SHARE[step]


def _shut_down(ctx: OperationContext, domain: _Domain) -> int:
    reserve = min(5.0, 0.1 * ctx.remaining())
    health = Health(OcfCode.ERR_GENERIC, "not checked")
    for step in range(len(ESCALATION)):
        args, until = _shutdown_step(ctx, step, reserve)
        result = domain.run(ctx, "tmshutdown", args, until=until)
        health = _check(ctx, domain)
        if health.code == OcfCode.NOT_RUNNING:
            ctx.log.info("stop %s: shut down by tmshutdown %s", ctx.resource, " ".join(args))
            return OcfCode.SUCCESS
        ctx.log.warning(
            "stop %s: after tmshutdown %s (%s) the domain still runs (%s)",
            ctx.resource,
            " ".join(args),
            _describe(result),
            health.message,
        )
    ctx.log.error(
        "stop %s: the domain still runs after every step: %s", ctx.resource, health.message
    )
    return OcfCode.ERR_GENERIC


def _describe(result: CommandResult) -> str:
    if result.timed_out:
        return "timed out"
    if result.returncode is None:
        return f"did not run: {result.stderr.strip() or result.warning}"
    return f"exited {result.returncode}"


def _tail(result: CommandResult) -> str:
    lines = (result.stdout + "\n" + result.stderr).strip().splitlines()
    return "\n".join(lines[-OUTPUT_TAIL:]) or "(no output)"


# --- validation ---------------------------------------------------------------------


def _check_dir(name: str, path: Path) -> list[str]:
    if not path.is_absolute():
        return [f"{name}: must be an absolute path, got {str(path)!r}"]
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        return [f"{name}: {str(path)!r} {what}"]
    return []


def _check_file(name: str, path: Path) -> list[str]:
    if not path.is_absolute():
        return [f"{name}: must be an absolute path, got {str(path)!r}"]
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        return [f"{name}: {str(path)!r} {what}"]
    return []


def _check_tuxdir(path: Path) -> list[str]:
    problems = _check_dir("tuxdir", path)
    if problems:
        return problems
    return [
        f"tuxdir: {str(path / 'bin' / name)!r} is missing or not executable"
        for name in PROGRAMS
        if not _executable(path / "bin" / name)
    ]


def _check_env_file(settings: Settings) -> list[str]:
    if settings.env_file is None:
        return []
    problems = _check_file("env_file", settings.env_file)
    if problems:
        return problems
    return settings.environment()[1]


def _check_servers(names: tuple[str, ...]) -> list[str]:
    return [
        f"required_servers: {name!r} is not a server name (no spaces or slashes)"
        for name in names
        if not _SERVER_NAME.match(name)
    ]


def _check_user(user: str | None) -> list[str]:
    if user is None:
        return []
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return [f"user: no such OS user {user!r}"]
    if os.geteuid() != 0 and entry.pw_uid != os.geteuid():
        return [f"user: running as {user!r} needs root (pyha runs as uid {os.geteuid()})"]
    return []
