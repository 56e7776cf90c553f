"""What every fence device answers: the FenceDevice protocol, FenceResult and NodeState."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from pyha.errors import PyhaError

__all__ = ["FenceDevice", "FenceError", "FenceResult", "NodeState", "processes"]


class FenceError(PyhaError):
    """A fence device could not be set up (no usable cgroup hierarchy, a bad name)."""


class NodeState(StrEnum):
    """What a fence device can tell about a node without fencing it."""

    OFF = "off"
    """Nothing of the node can run: powered off, or its cgroup or namespace is empty."""
    ON = "on"
    UNKNOWN = "unknown"
    """The device could not tell (no status command, it failed or timed out)."""


@dataclass(frozen=True)
class FenceResult:
    """The outcome of one fence attempt.

    Invariant: `ok` is True only when the device confirmed that nothing of the node
    can still run; a timeout, a failed command or an unconfirmed state is never ok.
    `method` names the device kind ("command", "cgroup", "namespace", "watchdog"),
    `message` says what happened in one line, `duration` is in seconds.
    """

    ok: bool
    method: str
    message: str
    duration: float


class FenceDevice(Protocol):
    """Makes sure a lost node runs nothing, so its groups may start elsewhere.

    `deadline` is in the device's clock (monotonic seconds by default): the device
    answers by then (plus a short kill grace for commands) with a result that is ok
    only when it confirmed the node off.
    """

    method: str

    def fence(self, node: str, deadline: float) -> FenceResult:
        """Fence `node` and confirm it; never raises for a node that merely resists."""
        ...

    def status(self, node: str, deadline: float) -> NodeState:
        """Whether `node` is off, on, or unknown, without changing it."""
        ...


def processes(count: int) -> str:
    """'1 process', '3 processes': for result messages."""
    return f"{count} process" if count == 1 else f"{count} processes"
