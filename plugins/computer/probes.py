"""Is a computer there, is it healthy, is it powered: each probe answers None or why not."""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Sequence
from enum import StrEnum

from pyha.clock import Clock
from pyha.executor.command import CommandResult, run_command

__all__ = [
    "PowerState",
    "command_failure",
    "host_problem",
    "icmp_probe",
    "read_power_state",
    "run_probe_command",
    "tcp_probe",
]

COMMAND_GRACE = 1.0
"""Seconds a probe or power command that outlived its deadline gets before SIGKILL."""
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_WORD = re.compile(r"[a-z]+")


class PowerState(StrEnum):
    """What a power status command said."""

    ON = "on"
    OFF = "off"
    UNKNOWN = "unknown"


def host_problem(host: str) -> str | None:
    """Why `host` is neither an IP address nor a DNS name, or None."""
    if not host:
        return "must not be empty"
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    if len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        return f"{host!r} is not an IP address or a host name"
    return None


def tcp_probe(host: str, port: int, timeout: float) -> str | None:
    """None when `host` answers a TCP connection to `port`, accepted or refused.

    A refusal comes from the host's own kernel, so it proves the computer is up as
    surely as an accepted connection; a timeout or an unreachable host does not.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except ConnectionRefusedError:
        return None
    except TimeoutError:
        return f"no answer on TCP port {port} within {timeout:g}s"
    except socket.gaierror as exc:
        return f"cannot resolve {host}: {exc.strerror}"
    except OSError as exc:
        return f"TCP port {port}: {exc.strerror or exc}"


def icmp_probe(
    host: str, timeout: float, *, deadline: float, clock: Clock, log: logging.Logger
) -> str | None:
    """None when `host` answers one ping (iputils ping) within `timeout` seconds."""
    argv = ["ping", "-c", "1", "-n", "-W", f"{max(timeout, 0.1):g}", "--", host]
    result = run_probe_command(argv, timeout + 1.0, deadline=deadline, clock=clock, log=log)
    if result.ok:
        return None
    if result.returncode == 1:
        return f"no answer to ping within {timeout:g}s"
    return f"ping: {command_failure(result)}"


def run_probe_command(
    argv: Sequence[str],
    timeout: float,
    *,
    deadline: float,
    clock: Clock,
    log: logging.Logger,
    label: str | None = None,
) -> CommandResult:
    """Run `argv` for at most `timeout` seconds and never past `deadline`.

    `label` names the command in warnings instead of its arguments, which may hold a
    password (ipmitool -P).
    """
    return run_command(
        argv,
        deadline=min(deadline, clock.now() + timeout),
        clock=clock,
        grace=COMMAND_GRACE,
        log=log,
        label=label,
    )


def command_failure(result: CommandResult) -> str:
    """'exit 1: <last line of stderr>', 'timed out after 5s' or why it did not run."""
    lines = result.stderr.strip().splitlines()
    detail = lines[-1] if lines else ""
    if result.timed_out:
        return result.warning or "timed out"
    if result.returncode is None:
        return detail or result.warning or "did not run"
    return f"exit {result.returncode}: {detail}" if detail else f"exit {result.returncode}"


def read_power_state(result: CommandResult) -> PowerState:
    """The state a power status command reported.

    Exit 2 means off (the fence-agents convention). Exit 0 means on, unless the
    output has the word "off" (ipmitool prints "Chassis Power is off" and exits 0).
    Anything else is unknown.
    """
    if result.timed_out or result.returncode not in (0, 2):
        return PowerState.UNKNOWN
    if result.returncode == 2 or "off" in _WORD.findall(result.stdout.lower()):
        return PowerState.OFF
    return PowerState.ON
