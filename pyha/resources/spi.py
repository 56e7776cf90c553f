"""The resource interface: what every plugin answers, and what an operation result says."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pyha.clock import Clock, MonotonicClock
from pyha.errors import Severity
from pyha.model.types import parse_duration

__all__ = [
    "CallStatus",
    "MetaData",
    "OcfCode",
    "OperationContext",
    "OperationResult",
    "OperationSpec",
    "Outcome",
    "ParameterSpec",
    "Plugin",
    "ResourcePlugin",
    "Severity",
    "TypeName",
    "classify",
]

REQUIRED_OPERATIONS = ("start", "stop", "monitor")
OPTIONAL_OPERATIONS = ("promote", "demote", "migrate_to", "migrate_from", "reload")
DEFAULT_TIMEOUT = 20.0
"""Seconds an operation may take when neither the resource nor the plugin says otherwise."""


class OcfCode(IntEnum):
    """Result codes, numbered as OCF numbers them so OCF agents map one to one."""

    SUCCESS = 0
    ERR_GENERIC = 1
    ERR_ARGS = 2
    ERR_UNIMPLEMENTED = 3
    ERR_PERM = 4
    ERR_INSTALLED = 5
    ERR_CONFIGURED = 6
    NOT_RUNNING = 7
    RUNNING_PROMOTED = 8
    FAILED_PROMOTED = 9
    DEGRADED = 190
    DEGRADED_PROMOTED = 191

    @classmethod
    def label(cls, code: int) -> str:
        """'not running (7)' for known codes, 'code 42' for others."""
        try:
            return f"{cls(code).name.lower().replace('_', ' ')} ({code})"
        except ValueError:
            return f"code {code}"


class CallStatus(StrEnum):
    """What happened to the call itself, apart from what the plugin answered."""

    DONE = "done"
    """The plugin answered; its code says how it went."""
    TIMEOUT = "timeout"
    """The deadline passed; the call was abandoned (a command was terminated, then killed)."""
    CANCELLED = "cancelled"
    """The server cancelled it (shutdown, or the resource was removed)."""
    NOT_INSTALLED = "not-installed"
    """The plugin or its program could not be run at all."""
    ERROR = "error"
    """The plugin broke the interface: raised an exception or returned a non-code."""


_HARD = {OcfCode.ERR_ARGS, OcfCode.ERR_UNIMPLEMENTED, OcfCode.ERR_PERM, OcfCode.ERR_INSTALLED}


def classify(operation: str, status: CallStatus, code: int, interval: float = 0.0) -> Severity:
    """The severity of a result, as Pacemaker classes OCF codes (soft, hard, fatal).

    A probe (a one-shot monitor) answering "not running" is no failure, but a recurring
    monitor only runs on a started resource, so there "not running" is a soft failure.
    A failed stop bans the node (the resource may still be active there).
    """
    if status is CallStatus.DONE and _is_expected(operation, code, interval):
        return Severity.NONE
    if status is CallStatus.NOT_INSTALLED:
        return Severity.BAN_NODE
    if status is CallStatus.CANCELLED:
        return Severity.NONE
    if operation == "stop":
        return Severity.BAN_NODE
    if status is CallStatus.DONE and code == OcfCode.ERR_CONFIGURED:
        return Severity.BAN_EVERYWHERE
    if status is CallStatus.DONE and code in _HARD:
        return Severity.BAN_NODE
    return Severity.RETRY_HERE


def _is_expected(operation: str, code: int, interval: float) -> bool:
    if code in (OcfCode.SUCCESS, OcfCode.DEGRADED):
        return True
    if operation == "monitor":
        if code == OcfCode.NOT_RUNNING:
            return not interval
        return code in (OcfCode.RUNNING_PROMOTED, OcfCode.DEGRADED_PROMOTED)
    return False


@dataclass(frozen=True)
class TypeName:
    """A resource type's full name, `class:provider:type` (python:pyha:dummy)."""

    klass: str
    provider: str
    type: str

    @classmethod
    def parse(cls, text: str) -> TypeName:
        """Parse 'class:provider:type'; ValueError names what is missing."""
        parts = text.split(":")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"{text!r} is not class:provider:type (e.g. ocf:heartbeat:Dummy)")
        return cls(*parts)

    def __str__(self) -> str:
        return f"{self.klass}:{self.provider}:{self.type}"


ParamType = Literal["string", "integer", "float", "boolean", "duration", "select", "list"]


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ParameterSpec(_Spec):
    """One parameter a resource type takes."""

    name: str = Field(min_length=1)
    type: ParamType = "string"
    required: bool = False
    default: Any = None
    description: str = ""
    options: tuple[str, ...] = ()
    """Allowed values of a select."""
    unique: bool = False
    """No two resources of this type may share the value (a port, a state file)."""
    secret: bool = False
    """Never logged or shown (passwords)."""

    def coerce(self, value: Any) -> Any:
        """The value converted to this parameter's type; ValueError says why not."""
        return _COERCE[self.type](self, value)


def _as_string(spec: ParameterSpec, value: Any) -> str:
    if isinstance(value, list | dict):
        raise ValueError(f"must be a string, got {type(value).__name__}")
    return str(value).lower() if isinstance(value, bool) else str(value)


def _as_integer(spec: ParameterSpec, value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"must be an integer, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"must be an integer, got {value!r}") from None


def _as_float(spec: ParameterSpec, value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"must be a number, got {value!r}") from None


_TRUE = {"true", "yes", "on", "1", "y"}
_FALSE = {"false", "no", "off", "0", "n"}


def _as_boolean(spec: ParameterSpec, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"must be true or false, got {value!r}")


def _as_duration(spec: ParameterSpec, value: Any) -> float:
    return parse_duration(value)


def _as_select(spec: ParameterSpec, value: Any) -> str:
    text = _as_string(spec, value)
    if text not in spec.options:
        raise ValueError(f"must be one of {', '.join(spec.options)}; got {text!r}")
    return text


def _as_list(spec: ParameterSpec, value: Any) -> list[str]:
    if isinstance(value, str):
        import shlex

        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot split {value!r} into words: {exc}") from None
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(f"must be a list of strings or a string of words, got {value!r}")


_COERCE = {
    "string": _as_string,
    "integer": _as_integer,
    "float": _as_float,
    "boolean": _as_boolean,
    "duration": _as_duration,
    "select": _as_select,
    "list": _as_list,
}


class OperationSpec(_Spec):
    """An operation a plugin supports, with its default timeout (and interval for monitor)."""

    name: str
    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0)
    interval: float = Field(default=0.0, ge=0)
    """Suggested interval for a recurring monitor; a hint, the resource's config wins."""


def validation_detail(exc: ValidationError) -> str:
    """Pydantic's errors in one line, each as `field.path: reason`."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}" for err in exc.errors()
    )


class MetaData(_Spec):
    """What a plugin says of itself: parameters, operations, default timeouts."""

    name: str
    version: str = "1.0"
    description: str = ""
    parameters: tuple[ParameterSpec, ...] = ()
    operations: tuple[OperationSpec, ...] = ()
    promotable: bool = False

    def operation(self, name: str) -> OperationSpec | None:
        """The spec of operation `name`, if the plugin supports it."""
        return next((o for o in self.operations if o.name == name), None)

    def timeout(self, name: str) -> float:
        """The plugin's default timeout for `name`, else the global default."""
        spec = self.operation(name)
        return spec.timeout if spec else DEFAULT_TIMEOUT

    def check(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
        """Coerce `params` to their declared types and fill defaults.

        Returns the coerced parameters and the problems, each naming the parameter.
        """
        known = {p.name: p for p in self.parameters}
        problems = [
            f"{name}: unknown parameter (known: {', '.join(sorted(known)) or 'none'})"
            for name in params
            if name not in known
        ]
        coerced: dict[str, Any] = {}
        for spec in self.parameters:
            if spec.name not in params:
                if spec.required:
                    problems.append(f"{spec.name}: required parameter is missing")
                elif spec.default is not None:
                    coerced[spec.name] = spec.coerce(spec.default)
                continue
            try:
                coerced[spec.name] = spec.coerce(params[spec.name])
            except ValueError as exc:
                problems.append(f"{spec.name}: {exc}")
        return coerced, tuple(problems)


@dataclass
class OperationContext:
    """Everything one operation gets: parameters, deadline, a logger, a cancel flag."""

    resource: str
    operation: str
    params: Mapping[str, Any]
    deadline: float
    """Monotonic time (of `clock`) by which the operation must return."""
    node: str = "local"
    interval: float = 0.0
    """The monitor interval; 0 for one-shot calls (a monitor with 0 is a probe)."""
    state_dir: Path = field(default_factory=lambda: Path("/run/pyha"))
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("pyha.plugin"))
    cancelled: threading.Event = field(default_factory=threading.Event)
    clock: Clock = field(default_factory=MonotonicClock)
    meta: Mapping[str, Any] = field(default_factory=dict)

    def remaining(self) -> float:
        """Seconds left before the deadline (never negative)."""
        return max(0.0, self.deadline - self.clock.now())

    def sleep(self, seconds: float) -> bool:
        """Wait up to `seconds`, no later than the deadline; False if cancelled meanwhile."""
        return not self.clock.wait(self.cancelled, min(seconds, self.remaining()))

    def expired(self) -> bool:
        """True once the deadline passed or the operation was cancelled."""
        return self.cancelled.is_set() or self.clock.now() >= self.deadline


@dataclass(frozen=True)
class Outcome:
    """What an adapter got back from one call: status, code and a message."""

    code: int
    status: CallStatus = CallStatus.DONE
    message: str = ""


@dataclass(frozen=True)
class OperationResult:
    """One finished operation: the call's status x the plugin's code, and its severity."""

    resource: str
    operation: str
    node: str
    status: CallStatus
    code: int
    message: str = ""
    started: float = 0.0
    """Wall-clock seconds when the call began."""
    duration: float = 0.0
    interval: float = 0.0

    @property
    def severity(self) -> Severity:
        """What the scheduler should do about it (NONE when it went as expected)."""
        return classify(self.operation, self.status, self.code, self.interval)

    @property
    def ok(self) -> bool:
        """True when the operation did what was asked (a monitor answered a known state)."""
        return self.severity is Severity.NONE

    @property
    def running(self) -> bool | None:
        """For monitors: True running, False cleanly stopped, None failed."""
        if self.status is CallStatus.DONE and self.code == OcfCode.NOT_RUNNING:
            return False
        return True if self.ok else None

    def describe(self) -> str:
        """'monitor web1 on n1: not running (7)' or '... timed out after 20s'."""
        head = f"{self.operation} {self.resource} on {self.node}"
        if self.status is CallStatus.DONE:
            text = f"{head}: {OcfCode.label(self.code)}"
        else:
            text = f"{head}: {self.status.value}"
        return f"{text} ({self.message})" if self.message else text


@runtime_checkable
class ResourcePlugin(Protocol):
    """What a Python plugin implements. Operations return an OCF code (an int).

    Optional operations (promote, demote, migrate_to, migrate_from, reload) are plain
    methods of the same shape; a plugin that has them lists them in its meta_data.
    Every operation must return by `ctx.deadline` and be idempotent.
    """

    def meta_data(self) -> MetaData: ...

    def validate(self, params: Mapping[str, Any]) -> list[str]: ...

    def start(self, ctx: OperationContext) -> int: ...

    def stop(self, ctx: OperationContext) -> int: ...

    def monitor(self, ctx: OperationContext) -> int: ...


class Plugin:
    """A convenient base for Python plugins: no extra validation by default."""

    def validate(self, params: Mapping[str, Any]) -> list[str]:
        """Checks beyond the declared types; a list of problems, each naming its parameter."""
        return []
