"""A cluster node refuses unsafe or incomplete setups before it opens any socket."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from pyha.cluster.node import ClusterNode
from pyha.errors import ConfigError
from pyha.membership.rpc import PeerUnreachable
from pyha.model.config import ClusterConfig
from pyha.ports import free_ports
from pyha.resources.registry import Registry


def config(*nodes: dict[str, Any], **cluster: Any) -> ClusterConfig:
    return ClusterConfig.from_mapping({"cluster": {"name": "c", **cluster},
                                       "nodes": list(nodes)})


def node(name: str, port: int, **extra: Any) -> dict[str, Any]:
    return {"name": name, "addresses": [f"127.0.0.1:{port}"], "rpc": f"127.0.0.1:{port}",
            **extra}


def problems(cfg: ClusterConfig, name: str) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        ClusterNode(cfg, Registry(), node=name, key=b"k" * 32)
    return info.value.problems


def test_two_nodes_need_a_tiebreaker() -> None:
    (problem,) = problems(config(node("a", 1), node("b", 2)), "a")
    assert problem.startswith("cluster.tiebreaker: a two-node cluster needs a tiebreaker")


def test_missing_endpoints_and_unknown_names_are_each_reported() -> None:
    found = problems(config(node("a", 1), {"name": "b"}, node("c", 3)), "z")
    assert "nodes[1].addresses: b needs a heartbeat address" in found
    assert "nodes[1].rpc: b needs an address for calls" in found
    assert "--node: 'z' is not a node of the cluster file (a, b, c)" in found


class Peer:
    """A peer that answers `report` after `delay` seconds, or refuses."""

    def __init__(self, name: str, delay: float = 0.0, refuse: bool = False) -> None:
        self.name, self.delay, self.refuse = name, delay, refuse
        self.asked: list[float] = []

    def call(self, method: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
        self.asked.append(time.monotonic())
        time.sleep(self.delay)
        if self.refuse:
            raise PeerUnreachable(self.name, "report: connection refused")
        return {"node": self.name, "incarnation": 1}


@pytest.fixture
def coordinator() -> Iterator[ClusterNode]:
    """Node a of three, its sockets bound (closed afterwards) but not running."""
    ports = free_ports(3)
    a = ClusterNode(config(*(node(n, p) for n, p in zip("abc", ports, strict=True))),
                    Registry(), node="a", key=b"k" * 32)
    try:
        yield a
    finally:
        a.endpoint.close()
        a.rpc.close()


def test_a_coordinator_asks_every_member_for_its_report_at_once(coordinator: ClusterNode) -> None:
    a = coordinator
    # Straight to the peers: no election or heartbeats run in this test.
    a._call_while_alive = lambda peer, method, params, timeout: a.peers[peer].call(  # type: ignore[method-assign]
        method, params, timeout)
    slow_b, slow_c = Peer("b", delay=0.3), Peer("c", delay=0.3)
    a.peers = {"b": slow_b, "c": slow_c}  # type: ignore[dict-item]
    begun = time.monotonic()
    reports = a._gather(frozenset({"a", "b", "c"}), probe=True)
    took = time.monotonic() - begun
    assert reports is not None and list(reports) == ["a", "b", "c"]
    assert reports["c"].incarnation == 1
    # Both were asked before either answered (the sum of the delays would be 0.6 s).
    assert abs(slow_b.asked[0] - slow_c.asked[0]) < 0.25
    assert took < 0.6

    # One member that does not answer: no decision on partial reports.
    a.peers = {"b": Peer("b"), "c": Peer("c", refuse=True)}  # type: ignore[dict-item]
    assert a._gather(frozenset({"a", "b", "c"}), probe=False) is None
