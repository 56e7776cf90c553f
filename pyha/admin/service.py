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
from pyha.admin.changes import KINDS, Change, apply_change
from pyha.admin.errors import InvalidArgument, NotFound, PermissionDenied
from pyha.admin.report import (
    AuditEntry,
    FlagsResult,
    Snapshot,
    StatusBody,
    Whoami,
    build_explanation,
    next_change,
    plain,
    plain_all,
)
from pyha.admin.target import Target
from pyha.errors import AdminError, PyhaError
from pyha.model.types import parse_duration
from pyha.scheduler import Plan, plan
from pyha.scheduler.explain import format_plan, plan_json
from pyha.testing import harness

HISTORY_LIMIT = 1000
"""The most operations one history call returns."""
NAME_LENGTH = 253

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
        self._plan: tuple[Snapshot, float, Plan] | None = None
        """The last plan made, the snapshot it was made for, and when it may change."""
        self._body: tuple[Snapshot, Plan, StatusBody] | None = None
        """The last status body, with the snapshot and plan it was built from."""

    # -- read -----------------------------------------------------------------------------

    @remote(AdminRole.VIEWER)
    def whoami(self) -> dict[str, Any]:
        """The caller's name and role as this node sees them."""
        who = self._caller()
        return plain(Whoami(node=self.target.node, name=who.name, role=who.role.value))

    @remote(AdminRole.VIEWER)
    def status(self, full: bool = False) -> dict[str, Any]:
        """Nodes, coordinator, term, quorum, groups, timing settings, and resources: all
        of them when `full` or when there are at most LEAN_ABOVE, else only those that
        are not as they should be (`omitted` counts the others)."""
        if not isinstance(full, bool):
            raise InvalidArgument("status", "full", f"must be true or false, got "
                                                    f"{type(full).__name__}")
        snap = self.target.snapshot()
        return self._body_of(snap).plain(snap, full=full)

    @remote(AdminRole.VIEWER)
    def explain(self, group: str | None = None) -> dict[str, Any]:
        """Why each group (or `group`) is where it is."""
        if group is not None:
            self._known("explain", "group", group, {g.name for g in self.target.config.groups})
        snap = self.target.snapshot()
        made = self._plan_of(snap, within=snap.config.cluster.cycle_interval)
        return plain(build_explanation(made, group))

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
        return self._flags(Change("standby", {"node": node, "on": True}), {node: True})

    @remote(AdminRole.OPERATOR)
    def online(self, node: str) -> dict[str, Any]:
        """Take `node` out of standby."""
        self._known("online", "node", node, {n.name for n in self.target.config.nodes})
        return self._flags(Change("standby", {"node": node, "on": False}), {node: False})

    @remote(AdminRole.OPERATOR)
    def maintenance(self, on: bool) -> dict[str, Any]:
        """Cluster maintenance on (the cluster leaves every resource as it is) or off."""
        if not isinstance(on, bool):
            raise InvalidArgument("maintenance", "on", f"must be true or false, got "
                                                       f"{type(on).__name__}")
        return self._flags(Change("maintenance", {"on": on}), {}, maintenance=on)

    def _flags(self, change: Change, standby: dict[str, bool],
               maintenance: bool | None = None) -> dict[str, Any]:
        done = self.target.commit(change)
        return plain(FlagsResult(standby=standby, maintenance=maintenance,
                                 applied_on=done.acked,
                                 note=f"configuration epoch {done.epoch}"))

    @remote(AdminRole.OPERATOR)
    def move(self, group: str, node: str, lifetime: float | str | None = None) -> dict[str, Any]:
        """Move `group` to `node`: a visible location preference (`move-<group>`), for
        `lifetime` (seconds or a duration such as "30m") or until `unmove`."""
        config = self.target.config
        self._known("move", "group", group, {g.name for g in config.groups})
        self._known("move", "node", node, {n.name for n in config.nodes})
        expires = None if lifetime is None else self.clock() + _duration("move", lifetime)
        return self._change("move", group=group, node=node, expires=expires)

    @remote(AdminRole.OPERATOR)
    def unmove(self, group: str) -> dict[str, Any]:
        """Remove the move of `group`: the scheduler places it by its other rules again."""
        self._known("unmove", "group", group, {g.name for g in self.target.config.groups})
        return self._change("unmove", group=group)

    @remote(AdminRole.VIEWER)
    def simulate(self, node_down: list[str] | None = None, standby: list[str] | None = None,
                 fail: list[str] | None = None,
                 change: dict[str, Any] | None = None) -> dict[str, Any]:
        """What the scheduler would do now if nodes went down or into standby, resources
        failed ("resource:operation"), or a change were made; nothing is changed."""
        snap = self.target.snapshot()
        config, view = snap.config, snap.view
        if change is not None:
            asked = Change.from_json(change, "simulate")
            if asked.kind not in KINDS:
                raise InvalidArgument("simulate", "change", f"unknown change {asked.kind!r}")
            try:
                config = apply_change(config, asked)
            except InvalidArgument as exc:
                raise InvalidArgument("simulate", "change", str(exc)) from None
        nodes = {n.name for n in config.nodes}
        for name in _names("simulate", "node_down", node_down):
            self._known("simulate", "node_down", name, nodes)
            view = harness.node_down(view, name)
        for name in _names("simulate", "standby", standby):
            self._known("simulate", "standby", name, nodes)
            view = harness.standby(view, name)
        for spec in _names("simulate", "fail", fail):
            resource, _, operation = spec.partition(":")
            self._known("simulate", "fail", resource, {r.name for _, r in config.resources()})
            view = harness.fail(config, view, resource, operation or "monitor", snap.now)
        made = plan(config, view, snap.now)
        return {"text": format_plan(made), "plan": plan_json(made)}

    # -- configuration: resources, groups, constraints, resource types, nodes ----------------

    @remote(AdminRole.VIEWER)
    def resource_list(self) -> list[dict[str, Any]]:
        """Every resource with its group and position in it."""
        return [{"group": g.name, "position": i, **r.model_dump(mode="json")}
                for g in self.target.config.groups for i, r in enumerate(g.resources)]

    @remote(AdminRole.VIEWER)
    def resource_show(self, name: str) -> dict[str, Any]:
        """One resource's definition, with its group."""
        config = self.target.config
        self._known("resource_show", "name", name, {r.name for _, r in config.resources()},
                    "resource")
        group = config.group_of(name)
        return {"group": group.name, **config.resource(name).model_dump(mode="json")}

    @remote(AdminRole.ADMIN)
    def resource_add(self, group: str, resource: dict[str, Any],
                     position: int | None = None) -> dict[str, Any]:
        """Add a resource to `group` (last, or at `position` in its start order)."""
        return self._change("resource_add", group=group, resource=resource, position=position)

    @remote(AdminRole.ADMIN)
    def resource_update(self, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Change some fields of a resource (params, operations, meta, type, description)."""
        return self._change("resource_update", name=name, fields=fields)

    @remote(AdminRole.ADMIN)
    def resource_remove(self, name: str) -> dict[str, Any]:
        """Remove a resource (it is stopped first where it runs)."""
        return self._change("resource_remove", name=name)

    @remote(AdminRole.VIEWER)
    def group_list(self) -> list[dict[str, Any]]:
        """Every group with its resources, in order."""
        return [g.model_dump(mode="json") for g in self.target.config.groups]

    @remote(AdminRole.VIEWER)
    def group_show(self, name: str) -> dict[str, Any]:
        """One group's definition."""
        groups = {g.name: g for g in self.target.config.groups}
        self._known("group_show", "name", name, set(groups), "group")
        return groups[name].model_dump(mode="json")

    @remote(AdminRole.ADMIN)
    def group_add(self, group: dict[str, Any], position: int | None = None) -> dict[str, Any]:
        """Add a group with its resources."""
        return self._change("group_add", group=group, position=position)

    @remote(AdminRole.ADMIN)
    def group_update(self, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Change some fields of a group (meta, description, resources)."""
        return self._change("group_update", name=name, fields=fields)

    @remote(AdminRole.ADMIN)
    def group_remove(self, name: str) -> dict[str, Any]:
        """Remove a group and its resources (refused while a constraint names it)."""
        return self._change("group_remove", name=name)

    @remote(AdminRole.VIEWER)
    def constraint_list(self) -> list[dict[str, Any]]:
        """Every constraint (moves included)."""
        return [c.model_dump(mode="json") for c in self.target.config.constraints]

    @remote(AdminRole.VIEWER)
    def constraint_show(self, id: str) -> dict[str, Any]:
        """One constraint's definition."""
        found = {c.id: c for c in self.target.config.constraints}
        self._known("constraint_show", "id", id, set(found), "constraint")
        return found[id].model_dump(mode="json")

    @remote(AdminRole.ADMIN)
    def constraint_add(self, constraint: dict[str, Any]) -> dict[str, Any]:
        """Add a location, colocation or order constraint (its `kind` says which)."""
        return self._change("constraint_add", constraint=constraint)

    @remote(AdminRole.ADMIN)
    def constraint_update(self, id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Change some fields of a constraint."""
        return self._change("constraint_update", id=id, fields=fields)

    @remote(AdminRole.ADMIN)
    def constraint_remove(self, id: str) -> dict[str, Any]:
        """Remove a constraint."""
        return self._change("constraint_remove", id=id)

    @remote(AdminRole.VIEWER)
    def resource_type_list(self) -> list[dict[str, Any]]:
        """The resource types the configuration declares."""
        return [t.model_dump(mode="json") for t in self.target.config.resource_types]

    @remote(AdminRole.ADMIN)
    def resource_type_add(self, resource_type: dict[str, Any]) -> dict[str, Any]:
        """Declare a resource type (a name for a plugin)."""
        return self._change("resource_type_add", resource_type=resource_type)

    @remote(AdminRole.ADMIN)
    def resource_type_remove(self, name: str) -> dict[str, Any]:
        """Remove a declared resource type (refused while a resource uses it)."""
        return self._change("resource_type_remove", name=name)

    @remote(AdminRole.ADMIN)
    def node_add(self, node: dict[str, Any]) -> dict[str, Any]:
        """Add a computer to the cluster (then start its cluster server)."""
        return self._change("node_add", node=node)

    @remote(AdminRole.ADMIN)
    def node_update(self, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Change some fields of a node (addresses, votes, attributes, fence)."""
        return self._change("node_update", name=name, fields=fields)

    @remote(AdminRole.ADMIN)
    def node_remove(self, name: str) -> dict[str, Any]:
        """Remove a node from the cluster (stop its cluster server first)."""
        return self._change("node_remove", name=name)

    @remote(AdminRole.ADMIN)
    def options_update(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Change cluster options (timing, policies, tiebreaker)."""
        return self._change("options_update", fields=fields)

    def _change(self, kind: str, **args: Any) -> dict[str, Any]:
        return plain(self.target.commit(Change(kind, args)))

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

    def _plan_of(self, snap: Snapshot, *, within: float | None = None) -> Plan:
        """The plan for a snapshot, reused while the configuration is the same object,
        the view is equal, and no expiry (a move's, a failure's) has passed since it was
        made: the plan depends on the time only through those, so it is the same plan.
        `within` (seconds) also bounds the age of a reused plan (explain's texts say
        "in 30s")."""
        cached = self._plan
        if cached is not None:
            old, changes, old_plan = cached
            if (snap.config is old.config and old.now <= snap.now < changes
                    and (within is None or snap.now - old.now < within)
                    and snap.view == old.view):
                return old_plan
        made = plan(snap.config, snap.view, snap.now)
        self._plan = (snap, next_change(snap.config, snap.view, snap.now), made)
        return made

    def _body_of(self, snap: Snapshot) -> StatusBody:
        """The status body for a snapshot, reused while its plan is (the plan is reused
        only for the same configuration and an equal view) and its types and start
        timeouts are the same objects."""
        made = self._plan_of(snap)
        cached = self._body
        if cached is not None:
            old, old_plan, body = cached
            if (old_plan is made and snap.config is old.config
                    and snap.types is old.types and snap.start_timeouts is old.start_timeouts):
                return body
        body = StatusBody.of(snap, made)
        self._body = (snap, made, body)
        return body

    @staticmethod
    def _known(method: str, argument: str, value: Any, names: set[str],
               what: str | None = None) -> None:
        if not isinstance(value, str):
            raise InvalidArgument(method, argument, f"must be a name (text), got "
                                                    f"{type(value).__name__}")
        if not value or len(value) > NAME_LENGTH:
            raise InvalidArgument(method, argument, f"must be 1 to {NAME_LENGTH} characters")
        if value not in names:
            raise NotFound(method, argument, f"no {what or argument} named {value!r}")


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


def _duration(method: str, value: Any) -> float:
    """A lifetime in seconds from a number or a duration text ("90s", "30m")."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidArgument(method, "lifetime", "must be seconds or a duration like 30m")
    try:
        seconds = float(parse_duration(value))
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(method, "lifetime", str(exc)) from None
    if not 0 < seconds < 10 * 365 * 86400:
        raise InvalidArgument(method, "lifetime", "must be more than 0 and under 10 years")
    return seconds


def _names(method: str, argument: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(method, argument, "must be a list of names")
    if len(value) > 1000:
        raise InvalidArgument(method, argument, "at most 1000 names")
    return [str(v) for v in value]
