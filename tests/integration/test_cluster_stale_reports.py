"""The coordinator never decides on a node's report that may be stale.

It keeps each node's last report. A report taken before a start it sent there, or one
gathered while it coordinated an earlier term (others coordinated since), may say a
resource is stopped where it runs; if that node is lost before it reports again, the
group must not start elsewhere until the node is fenced.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pyha.cluster.node import ClusterNode
from pyha.cluster.view import NodeReport
from pyha.fencing import FenceResult, NodeState
from pyha.membership import election as el
from pyha.membership.keys import generate_key, load_key
from pyha.membership.rpc import RpcServer
from pyha.model.config import ClusterConfig
from pyha.model.status import ResourceStatus, Role
from pyha.ports import free_port
from pyha.resources.registry import Registry
from pyha.testing.clock import FakeClock

ROOT = Path(__file__).resolve().parents[2]


class RecordingFence:
    """A fence device that always confirms, and remembers whom it fenced."""

    method = "test"

    def __init__(self) -> None:
        self.fenced: list[str] = []

    def fence(self, node: str, deadline: float) -> FenceResult:
        self.fenced.append(node)
        return FenceResult(True, self.method, f"fence {node}: done", 0.0)

    def status(self, node: str, deadline: float) -> NodeState:
        return NodeState.OFF if node in self.fenced else NodeState.ON


class Peer:
    """Another node's call server: it reports `started` and does what it is told."""

    def __init__(self, key: bytes, node: str, port: int) -> None:
        self.node = node
        self.acted: list[dict[str, Any]] = []
        self.started: set[str] = set()
        self.server = RpcServer(key, node, ("127.0.0.1", port),
                                {"report": self._report, "act": self._act})
        self.server.start()

    def _report(self, params: dict[str, Any], caller: str) -> dict[str, Any]:
        return NodeReport(node=self.node, incarnation=1, resources=tuple(
            ResourceStatus(resource=r, node=self.node, role=Role.STARTED)
            for r in sorted(self.started))).model_dump(mode="json")

    def _act(self, params: dict[str, Any], caller: str) -> dict[str, Any]:
        self.acted.append(params["action"])
        return {"ok": True}


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[tuple[ClusterNode, dict[str, Peer],
                                                  RecordingFence, FakeClock]]:
    generate_key(tmp_path / "key")
    key = load_key(tmp_path / "key")
    rpc = {n: free_port() for n in ("n1", "n2", "n3")}
    config = ClusterConfig.from_mapping({
        "cluster": {"name": "lost", "state_dir": str(tmp_path / "state")},
        "nodes": [{"name": n, "addresses": [f"127.0.0.1:{free_port()}"],
                   "rpc": f"127.0.0.1:{rpc[n]}"} for n in ("n1", "n2", "n3")],
        "groups": [{"name": "g", "resources": [{"name": "d", "type": "dummy"}]}],
        "constraints": [{"kind": "location", "id": "g-on-n2", "group": "g", "node": "n2",
                         "score": 100}],
    })
    registry = Registry()
    registry.load_folder(ROOT / "plugins" / "dummy", "bundled", default_provider="pyha")
    clock = FakeClock()
    fence = RecordingFence()
    node = ClusterNode(config, registry, node="n1", key=key, state_dir=tmp_path / "n1",
                       clock=clock, fences={n: fence for n in ("n1", "n2", "n3")})
    peers = {n: Peer(key, n, rpc[n]) for n in ("n2", "n3")}
    try:
        yield node, peers, fence, clock
    finally:
        for peer in peers.values():
            peer.server.close()
        node.endpoint.close()
        node.rpc.close()
        for client in node.peers.values():
            client.close()
        node.local.shutdown()


Setup = tuple[ClusterNode, dict[str, Peer], RecordingFence, FakeClock]


def coordinate_term(node: ClusterNode, clock: FakeClock, term: int, heard: list[str]) -> str:
    """Make `node` coordinator of `term` hearing only `heard`, and run one cycle."""
    for peer in heard:
        node.detector.heard(peer, 0, clock.now(), 1)
    node.election = replace(node.election, term=term, voted_for="n1",
                            role=el.Role.COORDINATOR, coordinator="n1",
                            lease_until=clock.now() + 3600)
    return node.coordinate()


def lose(peer: Peer, node: ClusterNode, clock: FakeClock) -> None:
    """`peer` stops answering and is declared down; every other node is heard again."""
    peer.server.close()
    clock.advance(2 * node.options.dead_after)


def test_a_node_lost_before_it_reported_its_start_is_fenced_before_the_group_moves(
        coordinator: Setup) -> None:
    node, peers, fence, clock = coordinator
    first = coordinate_term(node, clock, 1, ["n2", "n3"])
    assert "start d on n2" in first
    assert [a["kind"] for a in peers["n2"].acted] == ["start"]
    # n2 is lost before any later cycle heard from it; n3 is still heard.
    lose(peers["n2"], node, clock)
    node.detector.heard("n3", 0, clock.now(), 1)
    second = node.coordinate()
    assert fence.fenced == ["n2"], second
    assert "fence n2" in second


def test_reports_from_an_earlier_term_do_not_count(coordinator: Setup) -> None:
    node, peers, fence, clock = coordinator
    peers["n3"].started.add("d")  # d runs on n3, away from its preferred n2
    first = coordinate_term(node, clock, 1, ["n2", "n3"])
    assert "nothing to do" in first, first
    # Another coordinator (term 2) moved d to n2. Then n2 is lost, and n1 is elected
    # again (term 3): its term-1 report of n2, with nothing running, is stale.
    peers["n3"].started.clear()
    peers["n2"].started.add("d")
    lose(peers["n2"], node, clock)
    third = coordinate_term(node, clock, 3, ["n3"])
    assert fence.fenced == ["n2"], third
    assert "fence n2" in third
