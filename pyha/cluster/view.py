"""The coordinator's view of the whole cluster, built from the nodes' reports. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict

from pyha.model.config import ClusterConfig
from pyha.model.status import FailRecord, NodeStatus, ResourceStatus, Role, View

UNHEARD = "never heard from this node since this coordinator took over: it may run it"


class NodeReport(BaseModel):
    """What one node says of itself: its incarnation, resources here, and failures here."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    node: str
    incarnation: int
    leaving: bool = False
    """The node is shutting down cleanly and wants its groups moved away."""
    resources: tuple[ResourceStatus, ...] = ()
    failures: tuple[FailRecord, ...] = ()
    epoch: int = 0
    """The configuration epoch the node runs."""
    digest: str = ""
    """The fingerprint of that configuration: the coordinator sends its own to a node
    whose fingerprint differs."""


def build_view(config: ClusterConfig, reports: Mapping[str, NodeReport],
               online: frozenset[str], fenced: frozenset[str], quorate: bool, *,
               uncertain: Mapping[str, frozenset[str]] | None = None) -> View:
    """The scheduler's input from the latest report of every node.

    Invariant (safety): a node that is not online keeps every resource its last report
    showed active — and, when no report of it is known, every resource counts as
    possibly active there — until a fence device confirmed it off (`fenced`). So a
    lost node's groups can only start elsewhere after a fence action. A resource in
    `uncertain` (node -> resources whose start was sent but never confirmed) counts as
    failed there, so it is stopped, or its node fenced, before it starts elsewhere.
    """
    nodes: list[NodeStatus] = []
    resources: list[ResourceStatus] = []
    failures: list[FailRecord] = []
    for node in config.nodes:
        report = reports.get(node.name)
        nodes.append(NodeStatus(name=node.name, online=node.name in online,
                                standby=node.standby or bool(report and report.leaving),
                                maintenance=node.maintenance))
        if node.name in fenced and node.name not in online:
            continue
        if report is not None:
            known = _known(report, node.name in online)
            doubtful = _unconfirmed(node.name, known, (uncertain or {}).get(node.name))
            replaced = {s.resource for s in doubtful}
            resources.extend(s for s in known if s.resource not in replaced)
            resources.extend(doubtful)
            failures.extend(report.failures)
        elif node.name not in online:
            resources.extend(ResourceStatus(resource=r.name, node=node.name, role=Role.STARTED,
                                            message=UNHEARD)
                             for _, r in config.resources())
    return View(nodes=tuple(nodes), resources=tuple(resources), failures=tuple(failures),
                quorum=quorate)


def _unconfirmed(node: str, known: list[ResourceStatus],
                 names: frozenset[str] | None) -> list[ResourceStatus]:
    active = {s.resource for s in known if s.role not in (Role.STOPPED, Role.UNKNOWN)}
    return [ResourceStatus(resource=name, node=node, role=Role.FAILED,
                           failed_operation="start",
                           message="its start was sent, but no answer came back")
            for name in sorted(names or ()) if name not in active]


def _known(report: NodeReport, online: bool) -> list[ResourceStatus]:
    if online:
        return list(report.resources)
    return [r for r in report.resources if r.role not in (Role.STOPPED, Role.UNKNOWN)]
