"""The dummy plugin: a resource that is a state file, with knobs to make it fail or hang."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyha.errors import ConfigError
from pyha.resources.spi import (
    MetaData,
    OcfCode,
    OperationContext,
    OperationSpec,
    ParameterSpec,
    Plugin,
)

__all__ = ["DummyPlugin", "clear_knobs", "default_state_path", "knob_path", "set_knobs"]

OPERATIONS = ("start", "stop", "monitor", "promote", "demote", "reload")
KNOBS = ("fail_on", "fail_code", "hang_on", "delay")

_KNOB_SPECS = (
    ParameterSpec(
        name="fail_on",
        type="list",
        default=[],
        description="Operations that fail, returning fail_code instead of doing anything.",
    ),
    ParameterSpec(
        name="fail_code",
        type="integer",
        default=1,
        description="The OCF code a failing operation returns (7 makes a monitor say stopped).",
    ),
    ParameterSpec(
        name="hang_on",
        type="list",
        default=[],
        description="Operations that hang until their deadline or cancellation, then return 1.",
    ),
    ParameterSpec(
        name="delay",
        type="duration",
        default=0.0,
        description="How long every operation takes before it does its work.",
    ),
)

_META = MetaData(
    name="dummy",
    description=(
        "A resource that is only a state file: start writes it, stop removes it. Its knobs "
        "make operations fail, hang or take time, as parameters or at runtime through the "
        "knob file <state>.knobs (see pyha.testing.dummy.set_knobs)."
    ),
    parameters=(
        ParameterSpec(
            name="state",
            type="string",
            unique=True,
            description="State file, an absolute path; default <state_dir>/dummy/<resource>.state.",
        ),
        *_KNOB_SPECS,
    ),
    operations=tuple(
        OperationSpec(name=op, timeout=20.0, interval=10.0 if op == "monitor" else 0.0)
        for op in OPERATIONS
    ),
    promotable=True,
)


def default_state_path(state_dir: Path, resource: str) -> Path:
    """Where a dummy resource keeps its state when its `state` parameter is unset."""
    return Path(state_dir) / "dummy" / f"{resource}.state"


def knob_path(state_path: Path | str) -> Path:
    """The runtime knob file that goes with a state file."""
    return Path(f"{state_path}.knobs")


def set_knobs(state_path: Path | str, **knobs: Any) -> None:
    """Change knobs of a (possibly running) dummy resource; a knob set to None is removed.

    Knobs merge with those already set; they override the resource's parameters from
    its next operation on. Raises ConfigError for an unknown knob or a bad value.
    """
    path = knob_path(state_path)
    current = _read_json(path) or {}
    for name, value in knobs.items():
        if value is None:
            current.pop(name, None)
        else:
            current[name] = _coerce_knob(name, value)
    _write_json(path, current)


def clear_knobs(state_path: Path | str) -> None:
    """Remove every runtime knob: the resource behaves as its parameters say again."""
    knob_path(state_path).unlink(missing_ok=True)


def _coerce_knob(name: str, value: Any) -> Any:
    spec = next((s for s in _KNOB_SPECS if s.name == name), None)
    if spec is None:
        raise ConfigError(f"{name}: unknown knob (known: {', '.join(KNOBS)})")
    try:
        return spec.coerce(value)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


@dataclass(frozen=True)
class Knobs:
    """The knobs in force for one operation: parameters overlaid with the knob file."""

    fail_on: tuple[str, ...] = ()
    fail_code: int = 1
    hang_on: tuple[str, ...] = ()
    delay: float = 0.0

    @classmethod
    def merge(cls, params: Mapping[str, Any], runtime: Mapping[str, Any]) -> Knobs:
        """Knobs from `params`, each overridden by `runtime` where it sets one.

        Raises ConfigError for an unknown knob or a value of the wrong type.
        """
        unknown = sorted(set(runtime) - set(KNOBS))
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown knob (known: {', '.join(KNOBS)})")
        values: dict[str, Any] = {}
        for spec in _KNOB_SPECS:
            value = runtime.get(spec.name, params.get(spec.name))
            values[spec.name] = _coerce_knob(spec.name, spec.default if value is None else value)
        return cls(
            fail_on=tuple(values["fail_on"]),
            fail_code=values["fail_code"],
            hang_on=tuple(values["hang_on"]),
            delay=values["delay"],
        )


class DummyPlugin(Plugin):
    """A resource type whose resources are state files.

    Invariant: the resource is running exactly when its state file exists, and promoted
    exactly when that file says so; knobs change what operations answer, never that.
    """

    def meta_data(self) -> MetaData:
        """Parameters (state and the knobs) and every operation with a 20s timeout."""
        return _META

    def validate(self, params: Mapping[str, Any]) -> list[str]:
        """Types first, then: known operation names in fail_on/hang_on, a code in 0-255."""
        coerced, problems = _META.check(params)
        if problems:
            return list(problems)
        found = [
            f"{name}: {op!r} is not an operation (known: {', '.join(OPERATIONS)})"
            for name in ("fail_on", "hang_on")
            for op in coerced.get(name, ())
            if op not in OPERATIONS
        ]
        if not 0 <= coerced.get("fail_code", 1) <= 255:
            found.append(f"fail_code: must be between 0 and 255, got {coerced['fail_code']}")
        state = coerced.get("state")
        if state is not None and not Path(state).is_absolute():
            found.append(f"state: must be an absolute path, got {state!r}")
        return found

    def start(self, ctx: OperationContext) -> int:
        """Write the state file (unpromoted); already running is success."""
        return self._run(ctx, "start", _start)

    def stop(self, ctx: OperationContext) -> int:
        """Remove the state file; already stopped is success."""
        return self._run(ctx, "stop", _stop)

    def monitor(self, ctx: OperationContext) -> int:
        """0 running, 8 running promoted, 7 not running."""
        return self._run(ctx, "monitor", _monitor)

    def promote(self, ctx: OperationContext) -> int:
        """Mark the running resource promoted; a stopped one cannot be promoted (1)."""
        return self._run(ctx, "promote", _promote)

    def demote(self, ctx: OperationContext) -> int:
        """Mark the running resource unpromoted; a stopped one cannot be demoted (1)."""
        return self._run(ctx, "demote", _demote)

    def reload(self, ctx: OperationContext) -> int:
        """Count a reload in the state file of a running resource; 7 when stopped."""
        return self._run(ctx, "reload", _reload)

    def _run(self, ctx: OperationContext, op: str, action: Callable[[Path], int]) -> int:
        state = _state_path(ctx)
        try:
            knobs = Knobs.merge(ctx.params, _read_json(knob_path(state)) or {})
        except (ConfigError, ValueError) as exc:
            ctx.log.error("%s %s: bad knobs for %s: %s", op, ctx.resource, state, exc)
            return OcfCode.ERR_CONFIGURED
        if knobs.delay and not ctx.sleep(knobs.delay):
            ctx.log.warning("%s %s: cancelled during its delay", op, ctx.resource)
            return OcfCode.ERR_GENERIC
        if op in knobs.hang_on:
            return _hang(ctx, op)
        if op in knobs.fail_on:
            ctx.log.error("%s %s: failing on purpose (fail_on)", op, ctx.resource)
            return knobs.fail_code
        return action(state)


def _state_path(ctx: OperationContext) -> Path:
    given = ctx.params.get("state")
    return Path(given) if given else default_state_path(ctx.state_dir, ctx.resource)


def _hang(ctx: OperationContext, op: str) -> int:
    # Each wait ends at the deadline or on cancellation, so this loop ends too; the
    # bound on rounds only guards against a clock that never advances.
    for _ in range(1000):
        if ctx.expired() or not ctx.sleep(ctx.remaining()):
            break
    ctx.log.error("%s %s: hung until its deadline on purpose (hang_on)", op, ctx.resource)
    return OcfCode.ERR_GENERIC


def _start(state: Path) -> int:
    if not state.exists():
        _write_json(state, {"promoted": False, "reloads": 0})
    return OcfCode.SUCCESS


def _stop(state: Path) -> int:
    state.unlink(missing_ok=True)
    return OcfCode.SUCCESS


def _monitor(state: Path) -> int:
    record = _read_state(state)
    if record is None:
        return OcfCode.NOT_RUNNING
    return OcfCode.RUNNING_PROMOTED if record.get("promoted") else OcfCode.SUCCESS


def _promote(state: Path) -> int:
    return _update(state, promoted=True)


def _demote(state: Path) -> int:
    return _update(state, promoted=False)


def _reload(state: Path) -> int:
    record = _read_state(state)
    if record is None:
        return OcfCode.NOT_RUNNING
    record["reloads"] = int(record.get("reloads", 0)) + 1
    _write_json(state, record)
    return OcfCode.SUCCESS


def _update(state: Path, **changes: Any) -> int:
    record = _read_state(state)
    if record is None:
        return OcfCode.ERR_GENERIC
    _write_json(state, {**record, **changes})
    return OcfCode.SUCCESS


def _read_state(state: Path) -> dict[str, Any] | None:
    """The state record, or None when stopped; a file that is not JSON still means running."""
    try:
        return _read_json(state)
    except ValueError:
        return {} if state.exists() else None


def _read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, None if there is no such file; ValueError if it is not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds {type(data).__name__}, not a JSON object")
    return data


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    # Write then rename, so a concurrent reader sees the old file or the new one, whole.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)
