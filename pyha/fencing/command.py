"""CommandFence: power a node off with a command (ipmitool, a fence agent), confirm with another."""

from __future__ import annotations

import logging
import re
import shlex
from collections.abc import Collection, Mapping, Sequence

from pyha.clock import Clock, MonotonicClock
from pyha.errors import ConfigError
from pyha.executor.command import CommandResult, run_command
from pyha.fencing.device import FenceResult, NodeState

__all__ = ["DEFAULT_OFF_PATTERN", "CommandFence", "mask_argv"]

_LOG = logging.getLogger("pyha.fencing")

DEFAULT_OFF_PATTERN = r"(?i)\boff\b"
"""Matches "Chassis Power is off" (ipmitool) and "Status: OFF" (fence agents)."""
DEFAULT_STATUS_CODES = (0, 2)
"""ipmitool exits 0; the fence agents' status action exits 2 when the node is off."""
MASK = "******"
_SECRET_WORDS = re.compile(r"(?i)pass|secret|token|key|credential")
_SHORT_SECRETS = frozenset({"-P"})
"""ipmitool's -P takes the password on the command line."""


def mask_argv(argv: Sequence[str], extra: Collection[str] = ()) -> list[str]:
    """`argv` with the value of every secret-looking option replaced by a mask.

    An option is secret when it is `-P`, is named in `extra`, or is a long option whose
    name mentions a password, secret, token, key or credential; its value is the next
    word, or the part after `=` (`--password=x`).
    """
    masked: list[str] = []
    hide_next = False
    for word in argv:
        if hide_next:
            masked.append(MASK)
            hide_next = False
            continue
        name, eq, _ = word.partition("=")
        if _is_secret_option(name, extra):
            if eq:
                masked.append(f"{name}={MASK}")
            else:
                masked.append(word)
                hide_next = True
            continue
        masked.append(word)
    return masked


def _is_secret_option(name: str, extra: Collection[str]) -> bool:
    if name in _SHORT_SECRETS or name in extra:
        return True
    return name.startswith("--") and bool(_SECRET_WORDS.search(name))


class CommandFence:
    """Fences nodes with a power-off command per node, confirmed by a status command.

    Invariant: fence is ok only when the node's off command exited 0 within the
    deadline and, when the node has a status command, a later run of it exited with
    one of `status_codes` and printed something matching `off_pattern`. Command lines
    are logged with secrets masked (see mask_argv); `env` is never logged.
    """

    method = "command"

    def __init__(self, off: Mapping[str, Sequence[str]],
                 status: Mapping[str, Sequence[str]] | None = None, *,
                 off_pattern: str = DEFAULT_OFF_PATTERN,
                 status_codes: Collection[int] = DEFAULT_STATUS_CODES,
                 poll_interval: float = 1.0, grace: float = 1.0,
                 env: Mapping[str, str] | None = None, secret_options: Collection[str] = (),
                 clock: Clock | None = None, log: logging.Logger | None = None) -> None:
        self._off = {node: _argv(node, "off", argv) for node, argv in off.items()}
        self._status = {node: _argv(node, "status", argv)
                        for node, argv in (status or {}).items()}
        try:
            self._pattern = re.compile(off_pattern)
        except re.error as exc:
            raise ConfigError(f"fence status off_pattern {off_pattern!r}: {exc}") from None
        self._codes = frozenset(status_codes)
        self._poll = poll_interval
        self._grace = grace
        self._env = dict(env) if env is not None else None
        self._secret_options = frozenset(secret_options)
        self._clock = clock or MonotonicClock()
        self._log = log or _LOG

    def fence(self, node: str, deadline: float) -> FenceResult:
        """Run the node's off command, then wait for its status to say off."""
        started = self._clock.now()
        argv = self._off.get(node)
        if argv is None:
            return self._result(False, f"fence {node}: no off command is configured", started)
        shown = self._shown(argv)
        self._log.warning("fence %s: running %s", node, shown)
        ran = self._run(argv, deadline, f"fence {node}: {shown}")
        if not ran.ok:
            return self._result(False, f"fence {node}: {shown}: {_failure(ran)}", started)
        if node not in self._status:
            return self._result(True, f"fence {node}: {shown} exited 0 (no status command "
                                      "to confirm)", started)
        return self._confirm(node, deadline, started)

    def status(self, node: str, deadline: float) -> NodeState:
        """The node's power state by its status command; UNKNOWN without one."""
        state, _ = self._ask(node, deadline)
        return state

    def _confirm(self, node: str, deadline: float, started: float) -> FenceResult:
        """Poll the status command until it says off, or the deadline passes."""
        shown = self._shown(self._status[node])
        said_on = ""  # the last clear "on": more telling than a run cut off by the deadline
        while True:
            state, said = self._ask(node, deadline)
            if state is NodeState.OFF:
                return self._result(True, f"fence {node}: off, confirmed by {shown}: {said}",
                                    started)
            said_on = said if state is NodeState.ON else said_on
            if deadline - self._clock.now() <= self._poll:
                return self._result(False, f"fence {node}: not confirmed off by {shown} "
                                           f"before the deadline; it said {said_on or said}",
                                    started)
            self._clock.sleep(self._poll)

    def _ask(self, node: str, deadline: float) -> tuple[NodeState, str]:
        """Run the status command once: the state it shows and what it said, in words."""
        argv = self._status.get(node)
        if argv is None:
            return NodeState.UNKNOWN, "no status command"
        ran = self._run(argv, deadline, f"fence status {node}: {self._shown(argv)}")
        if ran.timed_out or ran.returncode not in self._codes:
            return NodeState.UNKNOWN, _failure(ran)
        said = _last_line(ran.stdout) or f"exit {ran.returncode}, no output"
        return (NodeState.OFF if self._pattern.search(ran.stdout) else NodeState.ON), said

    def _run(self, argv: list[str], deadline: float, label: str) -> CommandResult:
        return run_command(argv, deadline=deadline, clock=self._clock, env=self._env,
                           grace=self._grace, log=self._log, label=label)

    def _shown(self, argv: Sequence[str]) -> str:
        return shlex.join(mask_argv(argv, self._secret_options))

    def _result(self, ok: bool, message: str, started: float) -> FenceResult:
        (self._log.warning if ok else self._log.error)("%s", message)
        return FenceResult(ok, self.method, message, self._clock.now() - started)


def _argv(node: str, what: str, argv: Sequence[str]) -> list[str]:
    if isinstance(argv, str) or not argv or not all(isinstance(w, str) for w in argv):
        raise ConfigError(f"node {node}: the fence {what} command must be a non-empty "
                          "list of words (argv), not a shell string")
    return list(argv)


def _failure(ran: CommandResult) -> str:
    """'exit 1: <stderr>', 'timed out ...' or why it did not run."""
    if ran.timed_out:
        if ran.returncode is None and not ran.killed:
            return "not started: the deadline had passed"
        return "timed out at the deadline, " + ("killed" if ran.killed else "ended on SIGTERM")
    stderr = " | ".join(ran.stderr.strip().splitlines()[-3:])[-500:]
    if ran.returncode is None:
        return stderr or ran.warning or "did not run"
    return f"exit {ran.returncode}: {stderr}" if stderr else f"exit {ran.returncode}"


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1][-200:] if lines else ""
