"""Facts of one schedule call, indexed by name once so every later lookup is O(1)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pyha.model.config import (
    ClusterConfig,
    ColocationConstraint,
    Group,
    LocationConstraint,
    Node,
    OrderConstraint,
    Resource,
    TargetRole,
)
from pyha.model.status import FailRecord, NodeStatus, ResourceStatus, Role, View
from pyha.model.types import INFINITY

INACTIVE = (Role.STOPPED, Role.UNKNOWN)
RUNNING = (Role.STARTED, Role.PROMOTED)


@dataclass
class Index:
    """The config and the view of one schedule call, indexed by name.

    Invariant: built once from one frozen config and view and never changed, except by
    `fence`, which the recovery phase calls before placement reads anything; a resource
    on a fenced node counts as stopped there, because the fence stops everything on it.
    """

    config: ClusterConfig
    view: View
    now: float
    groups: dict[str, Group] = field(default_factory=dict)
    group_pos: dict[str, int] = field(default_factory=dict)
    group_of: dict[str, Group] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    node_status: dict[str, NodeStatus] = field(default_factory=dict)
    states: dict[str, dict[str, ResourceStatus]] = field(default_factory=dict)
    records: dict[tuple[str, str], FailRecord] = field(default_factory=dict)
    failures: dict[tuple[str, str], int] = field(default_factory=dict)
    failed_on: dict[str, list[str]] = field(default_factory=dict)
    """Resource -> nodes where its failures still count."""
    locations: dict[str, list[LocationConstraint]] = field(default_factory=dict)
    colocations: list[ColocationConstraint] = field(default_factory=list)
    orders: list[OrderConstraint] = field(default_factory=list)
    fenced: dict[str, str] = field(default_factory=dict)
    """Node -> why it is fenced in this transition."""
    targets: dict[str, TargetRole] = field(default_factory=dict)
    troubled: dict[str, list[ResourceStatus]] = field(default_factory=dict)
    """Resource -> its FAILED and BLOCKED statuses (most resources have none)."""
    failing: set[str] = field(default_factory=set)
    """Groups with a member failed or blocked somewhere, or with failures that count."""
    promoted: bool = False
    """True when any resource is promoted or should be (else promotion is skipped)."""
    _active: dict[str, tuple[tuple[str, Role], ...]] = field(default_factory=dict)
    _live: dict[str, tuple[tuple[str, Role], ...]] = field(default_factory=dict)
    _online: set[str] = field(default_factory=set)
    _standby: set[str] = field(default_factory=set)
    _maintenance: set[str] = field(default_factory=set)

    @classmethod
    def build(cls, config: ClusterConfig, view: View, now: float) -> Index:
        """Index `config` and `view`; failure counts are taken as they stand at `now`."""
        ix = cls(config, view, now)
        for pos, group in enumerate(config.groups):
            ix.groups[group.name] = group
            ix.group_pos[group.name] = pos
            stopped = group.meta.target_role is TargetRole.STOPPED
            for resource in group.resources:
                ix.group_of[resource.name] = group
                ix.resources[resource.name] = resource
                ix.targets[resource.name] = TargetRole.STOPPED if stopped \
                    else resource.meta.target_role
        ix._index_nodes()
        ix._index_states()
        ix._index_constraints()
        ix._count_failures(view.failures)
        ix.failing = {ix.group_of[r].name for r in (*ix.troubled, *ix.failed_on)
                      if r in ix.group_of}
        return ix

    def _index_nodes(self) -> None:
        self.nodes = {n.name: n for n in self.config.nodes}
        self.node_status = {n.name: n for n in self.view.nodes}
        self._online = {n.name for n in self.view.nodes if n.online}
        for source in (self.config.nodes, self.view.nodes):
            self._standby.update(n.name for n in source if n.standby)
            self._maintenance.update(n.name for n in source if n.maintenance)

    def _index_states(self) -> None:
        trouble = (Role.FAILED, Role.BLOCKED)
        for status in self.view.resources:
            self.states.setdefault(status.resource, {})[status.node] = status
            if status.role in trouble:
                self.troubled.setdefault(status.resource, []).append(status)
        for name, states in self.states.items():
            active = tuple((n, s.role) for n, s in states.items() if s.role not in INACTIVE)
            if active:
                self._active[name] = active
        self._live = self._active
        self.promoted = any(t is TargetRole.PROMOTED for t in self.targets.values()) or \
            any(s.role is Role.PROMOTED for s in self.view.resources)

    def _index_constraints(self) -> None:
        for c in self.config.constraints:
            if isinstance(c, LocationConstraint):
                self.locations.setdefault(c.group, []).append(c)
            elif isinstance(c, ColocationConstraint):
                self.colocations.append(c)
            else:
                self.orders.append(c)

    def _count_failures(self, records: Iterable[FailRecord]) -> None:
        """Failures that still count at `now`: an expired one is gone, a fatal one is INFINITY."""
        for record in records:
            resource = self.resources.get(record.resource)
            if resource is None:
                continue
            key = (record.resource, record.node)
            self.records[key] = record
            timeout = resource.meta.failure_timeout
            if not record.fatal and timeout and self.now - record.last_failure >= timeout:
                continue
            self.failures[key] = INFINITY if record.fatal else record.count
            self.failed_on.setdefault(record.resource, []).append(record.node)

    # -- nodes -------------------------------------------------------------------------

    def online(self, node: str) -> bool:
        """True when the view says `node` is up (a node the view does not know is down)."""
        return node in self._online

    def standby(self, node: str) -> bool:
        """Standby in the config or in the view."""
        return node in self._standby

    def maintenance(self, node: str) -> bool:
        """Maintenance in the config or in the view."""
        return node in self._maintenance

    def any_maintenance(self) -> bool:
        """True when some node is in maintenance."""
        return bool(self._maintenance)

    def usable(self, node: str) -> bool:
        """Online and not being fenced: actions can run there."""
        return node in self._online and node not in self.fenced

    # -- resources ---------------------------------------------------------------------

    def role(self, resource: str, node: str) -> Role:
        """The role of `resource` on `node`; STOPPED when unrecorded or the node is fenced."""
        if node in self.fenced:
            return Role.STOPPED
        status = self.states.get(resource, {}).get(node)
        return status.role if status else Role.STOPPED

    def status(self, resource: str, node: str) -> ResourceStatus | None:
        """The recorded status of `resource` on `node`, if any."""
        return self.states.get(resource, {}).get(node)

    def fence(self, nodes: dict[str, str]) -> None:
        """Record the nodes fenced in this transition (node -> why): from now on nothing
        counts as active on them."""
        self.fenced = nodes
        self._live = dict(self._active)
        for name, found in self._active.items():
            if any(node in nodes for node, _ in found):
                self._live[name] = tuple((n, r) for n, r in found if n not in nodes)

    def active(self, resource: str) -> tuple[tuple[str, Role], ...]:
        """(node, role) wherever `resource` is or may be active, fenced nodes left out."""
        return self._live.get(resource, ())

    def active_raw(self, resource: str) -> tuple[tuple[str, Role], ...]:
        """(node, role) wherever the view says `resource` is or may be active."""
        return self._active.get(resource, ())

    def failure_count(self, resource: str, node: str) -> int:
        """Failures of `resource` on `node` that still count (INFINITY when fatal)."""
        return self.failures.get((resource, node), 0)

    def target_role(self, resource: Resource) -> TargetRole:
        """A resource's target role; a group whose target role is stopped stops them all."""
        return self.targets[resource.name]
