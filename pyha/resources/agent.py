"""Agent: a resource type as the server sees it, whatever language its plugin is written in."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pyha.resources.spi import (
    OPTIONAL_OPERATIONS,
    REQUIRED_OPERATIONS,
    MetaData,
    OperationContext,
    Outcome,
    TypeName,
)

OriginKind = Literal["bundled", "plugin-path", "distribution", "ocf", "jar"]


@dataclass(frozen=True)
class Origin:
    """Where a plugin came from, shown by `pyha resource-type list`."""

    kind: OriginKind
    location: str
    """A folder, a distribution name and version, an OCF directory or a jar path."""

    def __str__(self) -> str:
        return f"{self.kind} {self.location}"


class Agent(ABC):
    """One resource type, ready to run operations; adapters subclass it per plugin class.

    Invariant: an Agent exists only for a plugin that passed registration checks, so its
    meta data is well formed and it implements start, stop and monitor.
    """

    def __init__(self, name: TypeName, origin: Origin, meta: MetaData) -> None:
        self.name = name
        self.origin = origin
        self.meta = meta

    @property
    def short_name(self) -> str:
        """The type part of the name (`dummy` for python:pyha:dummy)."""
        return self.name.type

    def supports(self, operation: str) -> bool:
        """True if the plugin implements `operation`."""
        if operation in REQUIRED_OPERATIONS:
            return True
        return operation in OPTIONAL_OPERATIONS and self.meta.operation(operation) is not None

    def validate(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
        """Coerce `params` to the declared types, then ask the plugin; (params, problems)."""
        coerced, problems = self.meta.check(params)
        if problems:
            return coerced, problems
        return coerced, tuple(self.plugin_validate(coerced))

    def plugin_validate(self, params: Mapping[str, Any]) -> list[str]:
        """The plugin's own checks on already-typed parameters; none by default."""
        return []

    @abstractmethod
    def invoke(self, ctx: OperationContext) -> Outcome:
        """Run `ctx.operation` and return what happened.

        Blocking. Adapters that run commands enforce `ctx.deadline` themselves; for
        in-process plugins the executor abandons the call at the deadline.
        """

    @property
    def enforces_deadline(self) -> bool:
        """True when invoke itself returns by the deadline (commands it can kill)."""
        return False
