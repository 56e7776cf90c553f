"""The one error tree of pyha: every error it raises on purpose derives from PyhaError."""

from __future__ import annotations

from enum import StrEnum


class PyhaError(Exception):
    """Root of every error pyha raises on purpose."""


class ConfigError(PyhaError):
    """The configuration is invalid; `problems` lists each field with its reason."""

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        self.problems = problems or (message,)
        super().__init__(message)

    def __str__(self) -> str:
        head = str(self.args[0])
        if len(self.problems) == 1 and self.problems[0] == head:
            return str(head)
        return head + "".join(f"\n  - {p}" for p in self.problems)


class DirectoryError(PyhaError):
    """The configuration directory could not be read or written."""


class PluginError(PyhaError):
    """A plugin is broken: it could not be loaded or breaks the resource interface."""

    def __init__(self, plugin: str, reason: str, operation: str | None = None) -> None:
        self.plugin = plugin
        self.reason = reason
        self.operation = operation
        where = f"{plugin}.{operation}" if operation else plugin
        super().__init__(f"plugin {where}: {reason}")


class UnknownResourceType(PyhaError):
    """A resource names a type that no registered plugin provides."""


class ValidationFailed(PyhaError):
    """A resource's parameters were rejected by its type; `problems` lists them."""

    def __init__(self, resource: str, problems: tuple[str, ...]) -> None:
        self.resource = resource
        self.problems = problems
        super().__init__(f"resource {resource}: " + "; ".join(problems))


class Severity(StrEnum):
    """What a failure asks the scheduler to do (Pacemaker's soft, hard and fatal)."""

    NONE = "none"
    RETRY_HERE = "retry-here"
    BAN_NODE = "ban-node"
    BAN_EVERYWHERE = "ban-everywhere"


class OperationError(PyhaError):
    """An operation on a resource failed, with the severity the scheduler acts on."""

    def __init__(self, message: str, severity: Severity = Severity.RETRY_HERE) -> None:
        self.severity = severity
        super().__init__(message)


class QuorumError(PyhaError):
    """The partition has no quorum, or the quorum setup is unsafe."""


class AdminError(PyhaError):
    """An admin request was refused or failed."""
