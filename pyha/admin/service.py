"""The admin service: the one class pyha exposes through Pyro5. Each method checks the
caller's role, checks its arguments, runs, and is audited with its result."""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from Pyro5.server import current_context, expose

from pyha.admin.audit import KEEP, AuditLog
from pyha.admin.auth import AdminRole, Identity
from pyha.admin.errors import InvalidArgument, NotFound, PermissionDenied
from pyha.admin.report import (
    AuditEntry,
    FlagsResult,
    Snapshot,
    Whoami,
    build_explanation,
    build_status,
    plain,
    plain_all,
)
from pyha.admin.target import Flags, Target
from pyha.errors import AdminError, PyhaError
from pyha.scheduler import Plan, plan

HISTORY_LIMIT = 1000
"""The most operations one history call returns."""
NAME_LENGTH = 253
RUNTIME_NOTE = ("runtime state held by the cluster servers until the configuration store "
                "exists: lost when a server restarts or its configuration changes")

_log = logging.getLogger("pyha.admin")
F = TypeVar("F", bound=Callable[..., Any])


def remote(needed: AdminRole) -> Callable[[F], F]:
    """Expose a service method to callers whose role allows `needed`, audited."""
    def wrap(func: F) -> F:
        @functools.wraps(func)
        def call(self: AdminService, *args: Any, **kwargs: Any) -> Any:
            return self.invoke(func, needed, args, kwargs)

        return expose(call)  # type: ignore[no-any-return]
    return wrap


def pyro_identity() -> Identity | None:
    """The caller of the running Pyro5 call, as its certificate named it at connect."""
    return getattr(current_context.client, "identity", None)


class AdminService:
    """What an admin may ask one node: read the cluster, and act on it by role.

    Invariants: a method runs only for a caller whose certificate's role allows it, and
    only with arguments that passed its checks; a refused or failed call changes
    nothing; every call (and every refused connection) leaves one audit record, written
    before the answer leaves. Errors reach the caller as pyha's own types.
    """

    def __init__(self, target: Target, *, audit_path: Path | None = None,
                 identity: Callable[[], Identity | None] = pyro_identity,
                 clock: Callable[[], float] = time.time) -> None:
        self.target = target
        self.audit_log = AuditLog(audit_path)
        self.identity = identity
        self.clock = clock
        self.calls = 0
        """How many method bodies ran (tests prove refused callers never reach one)."""
        self._plan: tuple[int, Snapshot, Plan] | None = None

    # -- read -----------------------------------------------------------------------------

    @remote(AdminRole.VIEWER)
    def whoami(self) -> dict[str, Any]:
        """The caller's name and role as this node sees them."""
        who = self._caller()
        return plain(Whoami(node=self.target.node, name=who.name, role=who.role.value))

    @remote(AdminRole.VIEWER)
    def status(self) -> dict[str, Any]:
        """Nodes, coordinator, term, quorum, groups and resources, timing settings."""
        snap = self.target.snapshot()
        return plain(build_status(snap, self._plan_of(snap)))

    @remote(AdminRole.VIEWER)
    def explain(self, group: str | None = None) -> dict[str, Any]:
        """Why each group (or `group`) is where it is."""
        if group is not None:
            self._known("explain", "group", group, {g.name for g in self.target.config.groups})
        snap = self.target.snapshot()
        return plain(build_explanation(self._plan_of(snap), group))

    @remote(AdminRole.VIEWER)
    def history(self, resource: str | None = None, node: str | None = None,
                limit: int = 50) -> list[dict[str, Any]]:
        """The newest `limit` operations (of `resource`, on `node`), oldest first."""
        config = self.target.config
        if resource is not None:
            self._known("history", "resource", resource, {r.name for _, r in config.resources()})
        if node is not None:
            self._known("history", "node", node, {n.name for n in config.nodes})
        limit = _count("history", "limit", limit, HISTORY_LIMIT)
        return plain_all(self.target.history(resource, node, limit))

    @remote(AdminRole.VIEWER)
    def audit(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest `limit` audit records of this node, oldest first."""
        limit = _count("audit", "limit", limit, KEEP)
        return plain_all(self.audit_log.recent(limit))

    # -- act ------------------------------------------------------------------------------

    @remote(AdminRole.OPERATOR)
    def cleanup(self, resource: str, node: str | None = None) -> dict[str, Any]:
        """Forget the failures of `resource` (on `node`, or on every node) and probe it
        again, so the scheduler may place it where it failed before."""
        config = self.target.config
        self._known("cleanup", "resource", resource, {r.name for _, r in config.resources()})
        if node is not None:
            self._known("cleanup", "node", node, {n.name for n in config.nodes})
        return plain(self.target.cleanup(resource, node))

    @remote(AdminRole.OPERATOR)
    def standby(self, node: str) -> dict[str, Any]:
        """Put `node` in standby: its groups move away and nothing new starts there."""
        self._known("standby", "node", node, {n.name for n in self.target.config.nodes})
        return self._flags(Flags({node: True}))

    @remote(AdminRole.OPERATOR)
    def online(self, node: str) -> dict[str, Any]:
        """Take `node` out of standby."""
        self._known("online", "node", node, {n.name for n in self.target.config.nodes})
        return self._flags(Flags({node: False}))

    @remote(AdminRole.OPERATOR)
    def maintenance(self, on: bool) -> dict[str, Any]:
        """Cluster maintenance on (the cluster leaves every resource as it is) or off."""
        if not isinstance(on, bool):
            raise InvalidArgument("maintenance", "on", f"must be true or false, got "
                                                       f"{type(on).__name__}")
        return self._flags(Flags({}, maintenance=on))

    def _flags(self, flags: Flags) -> dict[str, Any]:
        took = self.target.set_flags(flags)
        return plain(FlagsResult(standby=flags.standby, maintenance=flags.maintenance,
                                 applied_on=tuple(took), note=RUNTIME_NOTE))

    # -- the machinery ----------------------------------------------------------------------

    def invoke(self, func: Callable[..., Any], needed: AdminRole, args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> Any:
        """Check the role and the argument list, run `func`, audit the outcome."""
        method, who = func.__name__, self.identity()
        arguments: dict[str, Any] = {}
        try:
            if who is None:
                raise PermissionDenied(method, "none", needed.value)
            if not who.role.allows(needed):
                raise PermissionDenied(method, who.role.value, needed.value)
            try:
                bound = _signature(func).bind(self, *args, **kwargs)
            except TypeError as exc:
                raise InvalidArgument(method, "arguments", str(exc)) from None
            arguments = {k: _shown(v) for k, v in list(bound.arguments.items())[1:]}
            self.calls += 1
            result = func(*bound.args, **bound.kwargs)
        except PermissionDenied as exc:
            self._audit(who, method, arguments or _raw(args, kwargs), "refused", str(exc))
            raise
        except PyhaError as exc:
            self._audit(who, method, arguments, "error", str(exc))
            raise
        except Exception as exc:
            _log.exception("admin %s failed", method)
            error = AdminError(f"{method}: internal error on {self.target.node}: "
                               f"{type(exc).__name__}: {exc}")
            self._audit(who, method, arguments, "error", str(error))
            raise error from None
        self._audit(who, method, arguments, "ok", "")
        return result

    def refused(self, peer: str, reason: str) -> None:
        """Record a connection refused before any method ran."""
        self.audit_log.record(AuditEntry(when=self.clock(), who=peer, role="", method="connect",
                                         node=self.target.node, arguments={},
                                         result="refused", detail=reason))

    def _audit(self, who: Identity | None, method: str, arguments: dict[str, Any],
               result: Literal["ok", "refused", "error"], detail: str) -> None:
        self.audit_log.record(AuditEntry(
            when=self.clock(), who=who.name if who else "?", role=who.role.value if who else "",
            node=self.target.node, method=method, arguments=arguments,
            result=result, detail=detail))

    def _caller(self) -> Identity:
        who = self.identity()
        assert who is not None  # invoke() refused anonymous callers
        return who

    def _plan_of(self, snap: Snapshot) -> Plan:
        """The plan for a snapshot, reused while the config and view are unchanged and
        less than a cycle old (status --watch on 10,000 resources must stay cheap)."""
        cached = self._plan
        if cached is not None:
            config_id, old, old_plan = cached
            fresh = snap.now - old.now < snap.config.cluster.cycle_interval
            if fresh and config_id == id(snap.config) and old.view == snap.view:
                return old_plan
        made = plan(snap.config, snap.view, snap.now)
        self._plan = (id(snap.config), snap, made)
        return made

    @staticmethod
    def _known(method: str, argument: str, value: Any, names: set[str]) -> None:
        if not isinstance(value, str):
            raise InvalidArgument(method, argument, f"must be a name (text), got "
                                                    f"{type(value).__name__}")
        if not value or len(value) > NAME_LENGTH:
            raise InvalidArgument(method, argument, f"must be 1 to {NAME_LENGTH} characters")
        if value not in names:
            raise NotFound(method, argument, f"no {argument} named {value!r}")


@functools.cache
def _signature(func: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(func)


def _count(method: str, argument: str, value: Any, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(method, argument, f"must be a whole number, got "
                                                f"{type(value).__name__}")
    if not 1 <= value <= most:
        raise InvalidArgument(method, argument, f"must be from 1 to {most}, got {value}")
    return value


def _shown(value: Any) -> Any:
    """An argument as the audit log keeps it: plain values as they are, others cut short."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _raw(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {f"#{i}": _shown(a) for i, a in enumerate(args)}
    shown.update({str(k)[:64]: _shown(v) for k, v in kwargs.items()})
    return shown
