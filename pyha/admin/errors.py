"""The admin errors: each an AdminError, so a client catches one type for every refusal."""

from __future__ import annotations

from pyha.errors import AdminError


class PermissionDenied(AdminError):
    """The caller's role does not allow the method; `needed` is the least role that does."""

    def __init__(self, method: str, role: str, needed: str) -> None:
        self.method = method
        self.role = role
        self.needed = needed
        super().__init__(f"{method}: needs the {needed} role; your certificate carries {role}")


class InvalidArgument(AdminError):
    """An argument of an admin call is wrong; `argument` names it, `reason` says why."""

    def __init__(self, method: str, argument: str, reason: str) -> None:
        self.method = method
        self.argument = argument
        self.reason = reason
        super().__init__(f"{method}: {argument}: {reason}")


class NotFound(InvalidArgument):
    """An argument names something the cluster does not have (a resource, a node)."""


class AdminUnreachable(AdminError):
    """No admin endpoint answered at `address` (down, wrong address, a network fault, or
    the connection was lost mid-call)."""

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"cannot reach the admin endpoint at {address}: {reason}")


class ConnectionRefused(AdminError):
    """The admin endpoint at `address` refused this client before any method ran (its
    certificate is missing, from another CA, expired, or carries no role)."""

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"the admin endpoint at {address} refused the connection: {reason}")


class CertificateError(AdminError):
    """A certificate or key could not be made, read or used."""
