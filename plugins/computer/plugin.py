"""The computer plugin: a whole computer as a resource, powered by commands, watched over the net.

Fencing: the cluster fences a lost node through a computer resource whose host is that
node, by calling `ComputerPlugin.fence(ctx)` with the resource's parameters. Only the
power commands count there: a node that stopped answering may still be running (a
partition), so unreachability is never taken as proof that it is off.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyha.executor.command import run_command
from pyha.resources.spi import (
    MetaData,
    OcfCode,
    OperationContext,
    OperationSpec,
    ParameterSpec,
    Plugin,
)

from .probes import (
    COMMAND_GRACE,
    PowerState,
    command_failure,
    host_problem,
    icmp_probe,
    read_power_state,
    run_probe_command,
    tcp_probe,
)

__all__ = ["ComputerPlugin", "Settings"]

POLL = 0.5
"""Seconds between probes while start or stop waits for the computer."""
STATUS_TIMEOUT = 10.0
"""Seconds power_status may take (a BMC can be slow to answer)."""

_META = MetaData(
    name="computer",
    description=(
        "A whole computer: started and stopped by power commands (IPMI, a PDU, a "
        "hypervisor), running while it answers on the network (ping or a TCP port) and, "
        "optionally, a health command exits 0. Also a fence device: power_off is how the "
        "cluster makes sure a lost node is off."
    ),
    parameters=(
        ParameterSpec(
            name="host", required=True, unique=True, description="Its address or host name."
        ),
        ParameterSpec(
            name="check",
            type="select",
            options=("icmp", "tcp"),
            default="icmp",
            description="How to tell it answers: icmp (one ping, Debian iputils-ping) or tcp "
            "(a connection to port; a refused connection counts, the host answered).",
        ),
        ParameterSpec(name="port", type="integer", description="The TCP port for check=tcp."),
        ParameterSpec(
            name="check_timeout",
            type="duration",
            default="2s",
            description="How long one ping or TCP connection may wait for an answer.",
        ),
        ParameterSpec(
            name="health_command",
            type="list",
            description="Run while it answers; it is healthy when this exits 0 "
            "(ssh host systemctl is-system-running, ...).",
        ),
        ParameterSpec(
            name="health_timeout",
            type="duration",
            default="10s",
            description="How long the health command may run.",
        ),
        ParameterSpec(
            name="power_on",
            type="list",
            required=True,
            description='Command that powers it on, e.g. ["ipmitool", "-H", "bmc1", "chassis", '
            '"power", "on"]; never run through a shell.',
        ),
        ParameterSpec(
            name="power_off",
            type="list",
            required=True,
            description="Command that powers it off, hard (also used to fence it).",
        ),
        ParameterSpec(
            name="power_status",
            type="list",
            description="Optional command telling the power state: exit 2 or an output with "
            'the word "off" means off, exit 0 on; with it, a computer that is on but does not '
            "answer is a failure, not stopped.",
        ),
    ),
    operations=(
        OperationSpec(name="start", timeout=300.0),
        OperationSpec(name="stop", timeout=120.0),
        OperationSpec(name="monitor", timeout=30.0, interval=30.0),
    ),
)


@dataclass(frozen=True)
class Settings:
    """A computer resource's parameters, typed and defaulted."""

    host: str
    check: str
    port: int | None
    check_timeout: float
    health_command: list[str] | None
    health_timeout: float
    power_on: list[str]
    power_off: list[str]
    power_status: list[str] | None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Settings:
        """The settings of parameters already checked by the agent."""
        return cls(
            host=params["host"],
            check=params.get("check") or "icmp",
            port=params.get("port"),
            check_timeout=float(params.get("check_timeout", 2.0)),
            health_command=params.get("health_command"),
            health_timeout=float(params.get("health_timeout", 10.0)),
            power_on=list(params["power_on"]),
            power_off=list(params["power_off"]),
            power_status=params.get("power_status"),
        )


class ComputerPlugin(Plugin):
    """Powers computers on and off by command and watches whether they answer.

    Invariant: a computer counts as running exactly when it answers the configured
    check (and its health command, if any, exits 0); every command runs as an argument
    list under the operation's deadline, and a failing command's stderr reaches the log.
    """

    def meta_data(self) -> MetaData:
        """Parameters with types and defaults; start, stop and monitor with timeouts."""
        return _META

    def validate(self, params: Mapping[str, Any]) -> list[str]:
        """Types first, then host, check and port, timeouts and every command's program."""
        coerced, problems = _META.check(params)
        if problems:
            return list(problems)
        return [
            *_check_host(coerced["host"]),
            *_check_probe(coerced),
            *_check_commands(coerced),
        ]

    def start(self, ctx: OperationContext) -> int:
        """Power on unless it answers, then wait until it answers and is healthy."""
        settings = Settings.from_params(ctx.params)
        if _reach(ctx, settings) is not None:
            code = _power(ctx, settings, "power_on")
            if code != OcfCode.SUCCESS:
                return code
        why = _await(ctx, lambda: _running_problem(ctx, settings))
        if why is None:
            return OcfCode.SUCCESS
        ctx.log.error("start %s: %s is still not up: %s", ctx.resource, settings.host, why)
        return OcfCode.ERR_GENERIC

    def stop(self, ctx: OperationContext) -> int:
        """Power off unless the status says off, then wait until it no longer answers."""
        settings = Settings.from_params(ctx.params)
        if settings.power_status and _power_state(ctx, settings) is PowerState.OFF:
            return OcfCode.SUCCESS
        code = _power(ctx, settings, "power_off")
        if code != OcfCode.SUCCESS:
            return code
        why = _await(ctx, lambda: _stopped_problem(ctx, settings))
        if why is None:
            return OcfCode.SUCCESS
        ctx.log.error(
            "stop %s: %s is still up after power_off: %s", ctx.resource, settings.host, why
        )
        return OcfCode.ERR_GENERIC

    def monitor(self, ctx: OperationContext) -> int:
        """0 answering and healthy; 7 silent; 1 unhealthy, or silent while powered on."""
        settings = Settings.from_params(ctx.params)
        why = _reach(ctx, settings)
        if why is None:
            unhealthy = _health(ctx, settings)
            if unhealthy is None:
                return OcfCode.SUCCESS
            ctx.log.error(
                "monitor %s: %s answers but is unhealthy: %s",
                ctx.resource,
                settings.host,
                unhealthy,
            )
            return OcfCode.ERR_GENERIC
        if settings.power_status and _power_state(ctx, settings) is PowerState.ON:
            ctx.log.error(
                "monitor %s: %s is powered on but does not answer: %s",
                ctx.resource,
                settings.host,
                why,
            )
            return OcfCode.ERR_GENERIC
        ctx.log.info("monitor %s: %s does not answer: %s", ctx.resource, settings.host, why)
        return OcfCode.NOT_RUNNING

    def fence(self, ctx: OperationContext) -> int:
        """Power the computer off and confirm it: 0 only when it is surely off.

        For the coordinator fencing a lost node: power_off must exit 0, and when
        power_status is configured it must then report off before the deadline.
        Whether the computer answers on the network is not looked at.
        """
        settings = Settings.from_params(ctx.params)
        code = _power(ctx, settings, "power_off")
        if code != OcfCode.SUCCESS or not settings.power_status:
            return code
        state = _await(ctx, lambda: _off_problem(ctx, settings))
        if state is None:
            return OcfCode.SUCCESS
        ctx.log.error("fence %s: %s is not confirmed off: %s", ctx.resource, settings.host, state)
        return OcfCode.ERR_GENERIC


# --- probes and commands ------------------------------------------------------------


def _reach(ctx: OperationContext, settings: Settings) -> str | None:
    """None when the computer answers its check, else why not."""
    if settings.check == "tcp" and settings.port is not None:
        timeout = max(0.01, min(settings.check_timeout, ctx.remaining()))
        return tcp_probe(settings.host, settings.port, timeout)
    return icmp_probe(
        settings.host, settings.check_timeout, deadline=ctx.deadline, clock=ctx.clock, log=ctx.log
    )


def _health(ctx: OperationContext, settings: Settings) -> str | None:
    if not settings.health_command:
        return None
    result = run_probe_command(
        settings.health_command,
        settings.health_timeout,
        deadline=ctx.deadline,
        clock=ctx.clock,
        log=ctx.log,
        label=f"health_command of {ctx.resource}",
    )
    return None if result.ok else f"health_command: {command_failure(result)}"


def _running_problem(ctx: OperationContext, settings: Settings) -> str | None:
    return _reach(ctx, settings) or _health(ctx, settings)


def _stopped_problem(ctx: OperationContext, settings: Settings) -> str | None:
    if _reach(ctx, settings) is None:
        return "it still answers"
    if settings.power_status and _power_state(ctx, settings) is PowerState.ON:
        return "power_status still says on"
    return None


def _off_problem(ctx: OperationContext, settings: Settings) -> str | None:
    state = _power_state(ctx, settings)
    return None if state is PowerState.OFF else f"power_status says {state.value}"


def _power(ctx: OperationContext, settings: Settings, which: str) -> int:
    """Run power_on or power_off; 1 with its stderr logged when it fails."""
    argv: list[str] = getattr(settings, which)
    # Keep a little of the budget to report a hung command before the deadline.
    deadline = ctx.deadline - min(1.0, 0.1 * ctx.remaining())
    result = run_command(
        argv,
        deadline=deadline,
        clock=ctx.clock,
        grace=COMMAND_GRACE,
        log=ctx.log,
        label=f"{which} of {ctx.resource}",  # its arguments may hold a password
    )
    if result.ok:
        return OcfCode.SUCCESS
    ctx.log.error(
        "%s %s: %s failed: %s", ctx.operation, ctx.resource, which, command_failure(result)
    )
    if result.returncode is None and not result.timed_out:
        return OcfCode.ERR_INSTALLED
    return OcfCode.ERR_GENERIC


def _power_state(ctx: OperationContext, settings: Settings) -> PowerState:
    assert settings.power_status is not None
    result = run_probe_command(
        settings.power_status,
        STATUS_TIMEOUT,
        deadline=ctx.deadline,
        clock=ctx.clock,
        log=ctx.log,
        label=f"power_status of {ctx.resource}",
    )
    state = read_power_state(result)
    if state is PowerState.UNKNOWN:
        ctx.log.warning(
            "%s %s: power_status failed: %s", ctx.operation, ctx.resource, command_failure(result)
        )
    return state


def _await(ctx: OperationContext, problem: Callable[[], str | None]) -> str | None:
    """Call `problem()` every POLL seconds until it returns None or the deadline passes."""
    while True:
        why = problem()
        if why is None:
            return None
        if ctx.remaining() <= POLL or not ctx.sleep(POLL):
            return why


# --- validation ---------------------------------------------------------------------


def _check_host(host: str) -> list[str]:
    problem = host_problem(host)
    return [f"host: {problem}"] if problem else []


def _check_probe(params: Mapping[str, Any]) -> list[str]:
    check, port = params["check"], params.get("port")
    problems = []
    if check == "tcp" and port is None:
        problems.append("port: required when check=tcp")
    if check == "icmp" and port is not None:
        problems.append("port: is set, but check is icmp; set check=tcp to use it")
    if port is not None and not 1 <= port <= 65535:
        problems.append(f"port: must be between 1 and 65535, got {port}")
    if check == "icmp" and shutil.which("ping") is None:
        problems.append(
            "check: icmp needs the ping program (Debian package iputils-ping), which is not "
            "installed; install it or use check=tcp with a port"
        )
    for name in ("check_timeout", "health_timeout"):
        if params[name] <= 0:
            problems.append(f"{name}: must be more than 0")
    return problems


def _check_commands(params: Mapping[str, Any]) -> list[str]:
    problems = []
    for name in ("power_on", "power_off", "power_status", "health_command"):
        argv = params.get(name)
        if argv is not None:
            problems += _check_program(name, argv)
    return problems


def _check_program(name: str, argv: list[str]) -> list[str]:
    if not argv or not argv[0]:
        return [f"{name}: must name a program"]
    program = argv[0]
    if "/" not in program:
        path = os.environ.get("PATH", os.defpath)
        found = shutil.which(program, path=path)
        return [] if found else [f"{name}: program {program!r} not found on PATH ({path})"]
    if not Path(program).is_absolute():
        return [f"{name}: {program!r} must be a name on PATH or an absolute path"]
    if not Path(program).is_file():
        return [f"{name}: {program!r} does not exist or is not a file"]
    if not os.access(program, os.X_OK):
        return [f"{name}: {program!r} is not executable"]
    return []
