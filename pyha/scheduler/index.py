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

    Invariant: built once from one frozen config and view and never changed, except
    `fenced`, which the recovery phase fills before placement reads it; a resource on
    a fenced node counts as stopped there, because the fence stops everything on it.
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

    @classmethod
    def build(cls, config: ClusterConfig, view: View, now: float) -> Index:
        """Index `config` and `view`; failure counts are taken as they stand at `now`."""
        ix = cls(config, view, now)
        for pos, group in enumerate(config.groups):
            ix.groups[group.name] = group
            ix.group_pos[group.name] = pos
            for resource in group.resources:
                ix.group_of[resource.name] = group
                ix.resources[resource.name] = resource
        ix.nodes = {n.name: n for n in config.nodes}
        ix.node_status = {n.name: n for n in view.nodes}
        for status in view.resources:
            ix.states.setdefault(status.resource, {})[status.node] = status
        ix._index_constraints()
        ix._count_failures(view.failures)
        return ix

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
        status = self.node_status.get(node)
        return status is not None and status.online

    def standby(self, node: str) -> bool:
        """Standby in the config or in the view."""
        status, configured = self.node_status.get(node), self.nodes.get(node)
        return bool((status and status.standby) or (configured and configured.standby))

    def maintenance(self, node: str) -> bool:
        """Maintenance in the config or in the view."""
        status, configured = self.node_status.get(node), self.nodes.get(node)
        return bool((status and status.maintenance) or (configured and configured.maintenance))

    def usable(self, node: str) -> bool:
        """Online and not being fenced: actions can run there."""
        return self.online(node) and node not in self.fenced

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

    def active(self, resource: str) -> list[tuple[str, Role]]:
        """(node, role) wherever `resource` is or may be active, fenced nodes left out."""
        return [(node, s.role) for node, s in self.states.get(resource, {}).items()
                if s.role not in INACTIVE and node not in self.fenced]

    def active_raw(self, resource: str) -> list[tuple[str, Role]]:
        """(node, role) wherever the view says `resource` is or may be active."""
        return [(node, s.role) for node, s in self.states.get(resource, {}).items()
                if s.role not in INACTIVE]

    def failure_count(self, resource: str, node: str) -> int:
        """Failures of `resource` on `node` that still count (INFINITY when fatal)."""
        return self.failures.get((resource, node), 0)

    def target_role(self, resource: Resource) -> TargetRole:
        """A resource's target role; a group whose target role is stopped stops them all."""
        group = self.group_of[resource.name]
        if group.meta.target_role is TargetRole.STOPPED:
            return TargetRole.STOPPED
        return resource.meta.target_role
