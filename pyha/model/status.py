"""The observed state of a cluster (the view): what runs where, and what failed."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from pyha.model.config import OnFail


class Observed(BaseModel):
    """Base of the view models: immutable snapshots."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Role(StrEnum):
    """What the last operation or monitor said about a resource on a node."""

    STOPPED = "stopped"
    STARTED = "started"
    PROMOTED = "promoted"
    FAILED = "failed"
    """The resource failed here; it may still be partly active and needs a stop."""
    BLOCKED = "blocked"
    """A stop failed, or on-fail=block: the cluster will not touch it until cleanup."""
    UNKNOWN = "unknown"
    """Never probed on that node."""


class NodeStatus(Observed):
    """One node as the cluster sees it right now."""

    name: str
    online: bool = True
    standby: bool = False
    maintenance: bool = False


class ResourceStatus(Observed):
    """The state of one resource on one node."""

    resource: str
    node: str
    role: Role
    since: float = 0.0
    """Wall-clock seconds of the change to this role."""
    message: str = ""
    failed_operation: str = ""
    """For FAILED/BLOCKED: the operation that failed (start, stop, monitor...)."""


class FailRecord(Observed):
    """Failures of one resource on one node, for migration threshold and failure timeout."""

    resource: str
    node: str
    count: int = Field(ge=0)
    last_failure: float
    """Wall-clock seconds of the most recent failure."""
    fatal: bool = False
    """A hard error (not installed, misconfigured) that bans the node whatever the count."""
    on_fail: OnFail | None = None
    """The on-fail policy applied to the last failure, when known; `stop` keeps the
    resource's group stopped everywhere until cleanup."""


class View(Observed):
    """The scheduler's input besides the config: nodes, resource states, failures."""

    nodes: tuple[NodeStatus, ...]
    resources: tuple[ResourceStatus, ...] = ()
    failures: tuple[FailRecord, ...] = ()
    quorum: bool = True

    def role(self, resource: str, node: str) -> Role:
        """The role of `resource` on `node`, STOPPED when nothing was recorded."""
        for status in self.resources:
            if status.resource == resource and status.node == node:
                return status.role
        return Role.STOPPED

    def active_nodes(self, resource: str) -> tuple[str, ...]:
        """Nodes where `resource` is, or may be, active (started, promoted, failed, blocked)."""
        inactive = (Role.STOPPED, Role.UNKNOWN)
        return tuple(
            s.node for s in self.resources if s.resource == resource and s.role not in inactive
        )

    def node_status(self, name: str) -> NodeStatus | None:
        """The status of node `name`, if the view knows it."""
        return next((n for n in self.nodes if n.name == name), None)

    def failure(self, resource: str, node: str) -> FailRecord | None:
        """The failure record of `resource` on `node`, if any."""
        return next(
            (f for f in self.failures if f.resource == resource and f.node == node), None
        )
