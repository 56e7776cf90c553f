"""What the admin calls answer, as typed models both ends share, and the pure code that
builds them from a snapshot of a cluster server (no I/O, no clock reads)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pyha.membership.detector import silent_after
from pyha.model.config import ClusterConfig, Group, TargetRole
from pyha.model.status import Role, View
from pyha.resources.spi import OcfCode, OperationResult
from pyha.scheduler import Plan
from pyha.scheduler.explain import explain as explain_text

_ACTIVE = (Role.STARTED, Role.PROMOTED)
LEAN_ABOVE = 200
"""A status lists every resource up to this many; above, unless asked in full, only the
resources that are not as they should be (so that 10,000 resources stay readable and fast)."""


class Report(BaseModel):
    """Base of the answers: immutable, and strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Timing(Report):
    """The effective timing settings and what they give (docs/cluster.md)."""

    heartbeat_interval: float
    dead_after: float
    lease: float
    cycle_interval: float
    detection_worst: float
    """Seconds from a node's death to the others knowing: dead_after + heartbeat_interval."""
    server_loss_detection: float | None = None
    """Seconds from a node's cluster server dying on a live host to the others knowing:
    silent_after + heartbeat_interval (None: probe_departures is off)."""
    failover_formula: str


class NodeRow(Report):
    """One node: reachable, standby, maintenance, and whether it coordinates."""

    name: str
    online: bool
    standby: bool
    maintenance: bool
    coordinator: bool
    votes: int


class GroupRow(Report):
    """One group: where its members are active, its state in a word, and why."""

    name: str
    node: str | None
    """The node it runs on, when every member runs there."""
    active_on: tuple[str, ...]
    state: str
    """running, stopped, starting, failed, or active on several nodes."""
    target: str | None
    """Where the scheduler wants it now (None: stopped)."""
    why: str
    failover_worst: float
    """detection_worst + the members' start timeouts: the worst case to run elsewhere
    after its node dies, fencing time not counted."""


class ResourceRow(Report):
    """One resource: where it is active, its role, fail counts per node, last operation."""

    name: str
    group: str
    type: str
    node: str | None
    role: str
    active_on: tuple[str, ...]
    fail_counts: dict[str, int]
    message: str
    last_operation: str


class StatusReport(Report):
    """The whole cluster as the answering node sees it (what `pyha status` shows)."""

    cluster: str
    answered_by: str
    mode: Literal["single", "cluster"]
    epoch: int
    coordinator: str | None
    term: int
    quorum: bool
    members: tuple[str, ...]
    maintenance: bool
    decision: str
    view_from: str
    """Where the resource states come from: the coordinator's last cycle, or reports."""
    at: float
    timing: Timing
    nodes: tuple[NodeRow, ...]
    groups: tuple[GroupRow, ...]
    resources: tuple[ResourceRow, ...]
    omitted: int = 0
    """How many resources `resources` leaves out because they are as they should be
    (a status of more than LEAN_ABOVE resources not asked in full); 0: all are listed."""
    roles: dict[str, int] = Field(default_factory=dict)
    """How many resources have each role (listed or not): started, stopped, failed..."""


class PlacementRow(Report):
    """Where the scheduler puts one group and why."""

    node: str | None
    why: str
    managed: bool


class Explanation(Report):
    """Why each group is where it is: the decision, placements, and the readable text."""

    decision: str
    placements: dict[str, PlacementRow]
    actions: tuple[str, ...]
    text: str


class OperationRecord(Report):
    """One operation a node ran on a resource."""

    resource: str
    operation: str
    node: str
    status: str
    code: int
    outcome: str
    ok: bool
    message: str
    started: float
    duration: float
    interval: float


class AuditEntry(Report):
    """One admin call or refused connection: who, what, when, with what result."""

    when: float
    who: str
    role: str
    node: str
    method: str
    arguments: dict[str, Any]
    result: Literal["ok", "refused", "error"]
    detail: str = ""


class CleanupResult(Report):
    """What a cleanup forgot: the failure records per node, and the nodes asked."""

    resource: str
    nodes: tuple[str, ...]
    cleared: int


class FlagsResult(Report):
    """Runtime flags set by standby, online or maintenance, and the nodes that took them."""

    standby: dict[str, bool]
    maintenance: bool | None
    applied_on: tuple[str, ...]
    note: str


class ChangeResult(Report):
    """A configuration change made: its new epoch, the coordinator that made it, and the
    nodes that wrote it to disk before the answer (a majority of votes at least)."""

    change: str
    epoch: int
    coordinator: str
    acked: tuple[str, ...]


class Whoami(Report):
    """The caller as the answering node sees it."""

    node: str
    name: str
    role: str


@dataclass(frozen=True)
class Snapshot:
    """What a cluster server knows at one moment, gathered for one admin call."""

    config: ClusterConfig
    node: str
    mode: Literal["single", "cluster"]
    view: View
    now: float
    coordinator: str | None
    term: int
    members: frozenset[str]
    decision: str
    view_from: str
    types: Mapping[str, str] = field(default_factory=dict)
    """Resource -> its resolved type (class:provider:type)."""
    start_timeouts: Mapping[str, float] = field(default_factory=dict)
    """Resource -> seconds its start may take."""
    last_operations: Mapping[str, str] = field(default_factory=dict)
    """Resource -> its most recent operation, in words."""


@dataclass
class _Seen:
    """The view indexed by resource, built in one pass (configs hold 10,000 resources)."""

    roles: dict[str, dict[str, Role]] = field(default_factory=dict)
    messages: dict[str, list[str]] = field(default_factory=dict)
    failures: dict[str, dict[str, int]] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)
    """Resources some node has probed (a role other than unknown)."""

    @classmethod
    def of(cls, view: View) -> _Seen:
        seen = cls()
        for s in view.resources:
            if s.role is not Role.UNKNOWN:
                seen.known.add(s.resource)
            if s.role in (Role.STOPPED, Role.UNKNOWN):
                continue
            seen.roles.setdefault(s.resource, {})[s.node] = s.role
            if s.message:
                seen.messages.setdefault(s.resource, []).append(s.message)
        for f in view.failures:
            seen.failures.setdefault(f.resource, {})[f.node] = f.count
        return seen


@dataclass(frozen=True)
class StatusBody:
    """The part of a status that follows from the configuration, the view and the plan
    alone, in JSON's types: built once and reused while none of them changes. Its rows
    are plain mappings with StatusReport's field names (the answers are checked against
    the model by the tests and by every client), built without validation: their
    inputs are pyha's own checked models.

    Invariant: `resources` holds one row per configured resource, in configuration
    order, each without its last operation; `troubled` names the rows that are not as
    the plan wants them (listed even in a lean status).
    """

    timing: dict[str, Any]
    groups: tuple[dict[str, Any], ...]
    resources: tuple[dict[str, Any], ...]
    troubled: frozenset[str]
    roles: dict[str, int]

    @classmethod
    def of(cls, snap: Snapshot, plan: Plan | None) -> StatusBody:
        """The body for `snap` explained by `plan` (every row counts as troubled when
        there is no plan to say what should be)."""
        options = snap.config.cluster
        timing = Timing(
            heartbeat_interval=options.heartbeat_interval, dead_after=options.dead_after,
            lease=options.dead_after, cycle_interval=options.cycle_interval,
            detection_worst=options.dead_after + options.heartbeat_interval,
            server_loss_detection=(
                silent_after(options.heartbeat_interval, options.dead_after)
                + options.heartbeat_interval if options.probe_departures else None),
            failover_formula="failover = detection (dead_after + heartbeat_interval; a lost "
                             "server alone: silent_after + heartbeat_interval) + fencing + "
                             "the group's start times")
        seen = _Seen.of(snap.view)
        notes: dict[str, list[str]] = {}
        for note in plan.transition.notes if plan else ():
            notes.setdefault(note.subject, []).append(note.text)
        groups = tuple(_group_row(snap, seen, plan, notes, g, detection=timing.detection_worst)
                       for g in snap.config.groups)
        rows: list[dict[str, Any]] = []
        troubled: set[str] = set()
        roles: dict[str, int] = {}
        for g in snap.config.groups:
            wanted = _wanted(plan, g)
            for r in g.resources:
                row = _resource_row(snap, seen, g.name, r.name)
                rows.append(row)
                roles[row["role"]] = roles.get(row["role"], 0) + 1
                if wanted is None or not _as_it_should_be(row, seen, r.meta.target_role,
                                                          wanted):
                    troubled.add(r.name)
        return cls(timing=timing.model_dump(mode="json"), groups=groups, resources=tuple(rows),
                   troubled=frozenset(troubled), roles=roles)

    def report(self, snap: Snapshot, *, full: bool = True) -> StatusReport:
        """The status answer as a model (see `plain`)."""
        return StatusReport.model_validate(self.plain(snap, full=full))

    def plain(self, snap: Snapshot, *, full: bool = True) -> dict[str, Any]:
        """The status answer as JSON's types: this body with the snapshot's moment,
        membership and last operations; every resource when `full` or when there are at
        most LEAN_ABOVE, else only the troubled ones. Each answer gets its own copies of
        the body's mappings."""
        config = snap.config
        rows: Iterable[dict[str, Any]] = self.resources
        if not full and len(self.resources) > LEAN_ABOVE:
            rows = [r for r in self.resources if r["name"] in self.troubled]
        last = snap.last_operations
        resources = [{**r, "active_on": list(r["active_on"]),
                      "fail_counts": dict(r["fail_counts"]),
                      "last_operation": last.get(r["name"], "")} for r in rows]
        return {
            "cluster": config.cluster.name, "answered_by": snap.node, "mode": snap.mode,
            "epoch": config.epoch, "coordinator": snap.coordinator, "term": snap.term,
            "quorum": snap.view.quorum, "members": sorted(snap.members),
            "maintenance": config.cluster.maintenance, "decision": snap.decision,
            "view_from": snap.view_from, "at": snap.now, "timing": dict(self.timing),
            "nodes": [_node_row(snap, n.name, n.votes) for n in config.nodes],
            "groups": [{**g, "active_on": list(g["active_on"])} for g in self.groups],
            "resources": resources, "omitted": len(self.resources) - len(resources),
            "roles": dict(self.roles)}


def build_status(snap: Snapshot, plan: Plan | None, *, full: bool = True) -> StatusReport:
    """The status answer from a snapshot and, when available, the plan that explains it
    (every resource when `full`, else see StatusBody.plain)."""
    return StatusBody.of(snap, plan).report(snap, full=full)


def next_change(config: ClusterConfig, view: View, now: float) -> float:
    """The first moment after `now` at which the plan for `config` and `view` may change
    with the time alone: a move (or other constraint) expiring, or a failure no longer
    counting after its resource's failure timeout (inf when none is ahead)."""
    times = [expires for c in config.constraints
             if (expires := getattr(c, "expires", None)) is not None and expires > now]
    timeouts = {r.name: r.meta.failure_timeout for _, r in config.resources()} \
        if view.failures else {}
    for f in view.failures:
        timeout = timeouts.get(f.resource)
        # 1 ms early: the scheduler compares `now - last_failure`, rounded differently
        if not f.fatal and timeout and f.last_failure + timeout > now:
            times.append(f.last_failure + timeout - 0.001)
    return min(times, default=math.inf)


def _wanted(plan: Plan | None, group: Group) -> str | bool | None:
    """Where the plan wants `group`'s members: a node, False (stopped), None (no plan)."""
    if plan is None:
        return None
    placement = plan.placements.get(group.name)
    if placement is None or group.meta.target_role is TargetRole.STOPPED:
        return False
    return placement.node or False


def _as_it_should_be(row: dict[str, Any], seen: _Seen, target: TargetRole,
                     wanted: str | bool) -> bool:
    """True when `row` runs where (and as) the plan wants it, unfailed, or is known to be
    stopped where the plan wants it stopped."""
    if row["fail_counts"]:
        return False
    if not isinstance(wanted, str) or target is TargetRole.STOPPED:
        return row["role"] == Role.STOPPED.value and row["name"] in seen.known
    role = Role.PROMOTED if target is TargetRole.PROMOTED else Role.STARTED
    return bool(row["node"] == wanted and row["role"] == role.value)


def _node_row(snap: Snapshot, name: str, votes: int) -> dict[str, Any]:
    """A NodeRow in JSON's types."""
    seen = snap.view.node_status(name)
    configured = snap.config.node(name)
    return {"name": name, "online": seen.online if seen else name in snap.members,
            "standby": seen.standby if seen else configured.standby,
            "maintenance": seen.maintenance if seen else configured.maintenance,
            "coordinator": name == snap.coordinator, "votes": votes}


def _group_row(snap: Snapshot, seen: _Seen, plan: Plan | None, notes: dict[str, list[str]],
               group: Group, *, detection: float) -> dict[str, Any]:
    """A GroupRow in JSON's types."""
    name = group.name
    members = [r.name for r in group.resources]
    roles = [seen.roles.get(r, {}) for r in members]
    active = sorted({node for found in roles for node in found})
    failed = any(role in (Role.FAILED, Role.BLOCKED) for found in roles for role in found.values())
    node = active[0] if len(active) == 1 and all(
        found.get(active[0]) in _ACTIVE for found in roles) else None
    if node:
        state = "running"
    elif failed:
        state = "failed"
    elif len(active) > 1:
        state = "active on several nodes"
    else:
        state = "starting" if active else "stopped"
    placement = plan.placements.get(name) if plan else None
    said = [text for subject in (name, *members) for text in notes.get(subject, ())]
    return {"name": name, "node": node, "active_on": active, "state": state,
            "target": placement.node if placement else None,
            "why": "; ".join([placement.why, *said] if placement else said),
            "failover_worst": detection + sum(snap.start_timeouts.get(r, 0.0)
                                              for r in members)}


def _resource_row(snap: Snapshot, seen: _Seen, group: str, name: str) -> dict[str, Any]:
    """A ResourceRow in JSON's types, without its last operation."""
    found = seen.roles.get(name, {})
    active = sorted(found)
    if len(active) == 1:
        node: str | None = active[0]
        role = found[active[0]].value
    else:
        node = None
        role = "stopped" if not active else "active on several nodes"
    return {"name": name, "group": group, "type": snap.types.get(name, ""), "node": node,
            "role": role, "active_on": active, "fail_counts": dict(seen.failures.get(name, {})),
            "message": "; ".join(seen.messages.get(name, ()))}


def build_explanation(plan: Plan, group: str | None) -> Explanation:
    """The explain answer: decision, placements (of `group` only, when given), text."""
    names = [group] if group else list(plan.placements)
    placements = {n: PlacementRow(node=plan.placements[n].node, why=plan.placements[n].why,
                                  managed=plan.placements[n].managed) for n in names}
    return Explanation(decision=plan.transition.summary, placements=placements,
                       actions=tuple(a.describe() for a in plan.transition.actions),
                       text=explain_text(plan, group))


def operation_record(result: OperationResult) -> OperationRecord:
    """One history entry from an executor result."""
    return OperationRecord(
        resource=result.resource, operation=result.operation, node=result.node,
        status=result.status.value, code=result.code, outcome=OcfCode.label(result.code),
        ok=result.ok, message=result.message, started=result.started,
        duration=result.duration, interval=result.interval)


def plain(model: BaseModel) -> dict[str, Any]:
    """`model` as JSON's types, for the wire."""
    return model.model_dump(mode="json")


def plain_all(models: Iterable[BaseModel]) -> list[dict[str, Any]]:
    """Each of `models` as JSON's types, for the wire."""
    return [m.model_dump(mode="json") for m in models]
