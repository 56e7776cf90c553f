"""The adapter for Python plugins: checked when they register, called in process."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from pyha.errors import PluginError
from pyha.resources.agent import Agent, Origin
from pyha.resources.spi import (
    OPTIONAL_OPERATIONS,
    REQUIRED_OPERATIONS,
    CallStatus,
    MetaData,
    OcfCode,
    OperationContext,
    Outcome,
    TypeName,
    validation_detail,
)

__all__ = ["PythonAgent"]

_KNOWN_OPERATIONS = (*REQUIRED_OPERATIONS, *OPTIONAL_OPERATIONS, "validate", "meta_data")
_MAX_SHOWN = 200
"""Characters of a plugin's odd return value quoted in a message."""


class PythonAgent(Agent):
    """A Python plugin instance behind the Agent interface.

    Invariant: the plugin passed the registration checks: meta_data() returned valid
    meta data without raising, start, stop, monitor and every optional operation its
    meta data lists are methods taking one argument (ctx), and validate is callable.
    """

    def __init__(
        self, plugin: object, name: TypeName, origin: Origin, description: str = ""
    ) -> None:
        meta = _checked_meta(plugin, str(name))
        _check_operations(plugin, str(name), meta)
        super().__init__(name, origin, meta)
        self.plugin = plugin
        self.description = description or meta.description

    def invoke(self, ctx: OperationContext) -> Outcome:
        """Call the plugin's method for `ctx.operation`; its faults become outcomes."""
        operation = ctx.operation
        if operation == "validate":
            return self._validate_outcome(ctx.params)
        if operation == "meta_data":
            return Outcome(code=OcfCode.SUCCESS)
        if not self.supports(operation):
            return Outcome(
                code=OcfCode.ERR_UNIMPLEMENTED,
                message=f"{self.name} does not implement {operation}",
            )
        try:
            returned = getattr(self.plugin, operation)(ctx)
        except Exception as exc:  # a plugin's bug must not take the server down
            ctx.log.warning("%s %s %s raised", self.name, operation, ctx.resource, exc_info=True)
            return Outcome(
                code=OcfCode.ERR_GENERIC,
                status=CallStatus.ERROR,
                message=f"{type(exc).__name__}: {exc}",
            )
        return self._outcome(operation, returned)

    def _outcome(self, operation: str, returned: object) -> Outcome:
        if isinstance(returned, int) and not isinstance(returned, bool):
            return Outcome(code=returned)
        shown = repr(returned)[:_MAX_SHOWN]
        return Outcome(
            code=OcfCode.ERR_GENERIC,
            status=CallStatus.ERROR,
            message=f"{self.name}.{operation} returned {shown} ({type(returned).__name__}), "
            "not an OCF result code (int)",
        )

    def _validate_outcome(self, params: Mapping[str, Any]) -> Outcome:
        _, problems = self.validate(params)
        if problems:
            return Outcome(code=OcfCode.ERR_CONFIGURED, message="; ".join(problems))
        return Outcome(code=OcfCode.SUCCESS)

    def plugin_validate(self, params: Mapping[str, Any]) -> list[str]:
        """The plugin's own validate(); what it raises or wrongly returns is a problem."""
        validate = getattr(self.plugin, "validate")  # noqa: B009 - checked at registration
        try:
            problems = validate(params)
        except Exception as exc:
            return [f"{self.name}.validate raised {type(exc).__name__}: {exc}"]
        if problems is None:
            return []
        if isinstance(problems, str | bytes) or not isinstance(problems, list | tuple):
            shown = repr(problems)[:_MAX_SHOWN]
            return [f"{self.name}.validate returned {shown}, not a list of problems"]
        return [str(problem) for problem in problems]


def _checked_meta(plugin: object, name: str) -> MetaData:
    """The plugin's meta data, or a PluginError saying why there is none."""
    meta_data = getattr(plugin, "meta_data", None)
    if not callable(meta_data):
        raise PluginError(name, "has no meta_data() method", "meta_data")
    try:
        returned = meta_data()
    except Exception as exc:
        raise PluginError(name, f"raised {type(exc).__name__}: {exc}", "meta_data") from exc
    if isinstance(returned, MetaData):
        return returned
    try:
        return MetaData.model_validate(returned)
    except ValidationError as exc:
        detail = validation_detail(exc)
        raise PluginError(
            name, f"returned {type(returned).__name__}, not MetaData ({detail})", "meta_data"
        ) from None


def _check_operations(plugin: object, name: str, meta: MetaData) -> None:
    """Every operation the plugin must or says it can do is a method taking ctx."""
    for spec in meta.operations:
        if spec.name not in _KNOWN_OPERATIONS:
            raise PluginError(
                name,
                f"meta_data lists unknown operation {spec.name!r} "
                f"(known: {', '.join(_KNOWN_OPERATIONS)})",
                spec.name,
            )
    listed = {spec.name for spec in meta.operations}
    for operation in (*REQUIRED_OPERATIONS, *[o for o in OPTIONAL_OPERATIONS if o in listed]):
        _check_method(plugin, name, operation, "ctx")
    _check_method(plugin, name, "validate", "params")


def _check_method(plugin: object, name: str, operation: str, argument: str) -> None:
    method = getattr(plugin, operation, None)
    if method is None:
        why = "is listed in meta_data but" if operation in OPTIONAL_OPERATIONS else "is required;"
        raise PluginError(name, f"{why} the plugin has no such method", operation)
    if not callable(method):
        raise PluginError(name, f"is not callable (it is a {type(method).__name__})", operation)
    try:
        signature = inspect.signature(method)
    except (TypeError, ValueError):
        return  # builtins and some C callables hide their signature; trust them
    try:
        signature.bind(object())
    except TypeError:
        raise PluginError(
            name, f"must take one argument ({argument}); its signature is {signature}", operation
        ) from None
