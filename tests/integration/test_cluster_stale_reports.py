"""A node lost right after the coordinator started something there is fenced first.

The coordinator keeps each node's last report. A report taken before a start it sent
there says the resource is stopped; if the node is lost before it reports again, that
old report must not let the group start elsewhere without fencing the node.
"""

from __future__ import annotations

import socket
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
from pyha.resources.registry import Registry
from pyha.testing.clock import FakeClock

ROOT = Path(__file__).resolve().parents[2]


def _port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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
    """Another node's call server: it reports nothing running and does what it is told."""

    def __init__(self, key: bytes, node: str, port: int) -> None:
        self.node = node
        self.acted: list[dict[str, Any]] = []
        self.server = RpcServer(key, node, ("127.0.0.1", port),
                                {"report": self._report, "act": self._act})
        self.server.start()

    def _report(self, params: dict[str, Any], caller: str) -> dict[str, Any]:
        return NodeReport(node=self.node, incarnation=1).model_dump(mode="json")

    def _act(self, params: dict[str, Any], caller: str) -> dict[str, Any]:
        self.acted.append(params["action"])
        return {"ok": True}


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[tuple[ClusterNode, dict[str, Peer],
                                                  RecordingFence, FakeClock]]:
    generate_key(tmp_path / "key")
    key = load_key(tmp_path / "key")
    rpc = {n: _port(socket.SOCK_STREAM) for n in ("n1", "n2", "n3")}
    config = ClusterConfig.from_mapping({
        "cluster": {"name": "lost", "state_dir": str(tmp_path / "state")},
        "nodes": [{"name": n, "addresses": [f"127.0.0.1:{_port(socket.SOCK_DGRAM)}"],
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


def test_a_node_lost_before_it_reported_its_start_is_fenced_before_the_group_moves(
        coordinator: tuple[ClusterNode, dict[str, Peer], RecordingFence, FakeClock]) -> None:
    node, peers, fence, clock = coordinator
    for peer in ("n2", "n3"):
        node.detector.heard(peer, 0, clock.now(), 1)
    node.election = replace(node.election, term=1, voted_for="n1", role=el.Role.COORDINATOR,
                            coordinator="n1", lease_until=clock.now() + 3600)
    first = node.coordinate()
    assert "start d on n2" in first
    assert [a["kind"] for a in peers["n2"].acted] == ["start"]
    # n2 is lost before any later cycle heard from it; n3 is still heard.
    peers["n2"].server.close()
    clock.advance(2 * node.options.dead_after)
    node.detector.heard("n3", 0, clock.now(), 1)
    second = node.coordinate()
    assert fence.fenced == ["n2"], second
    assert "fence n2" in second
