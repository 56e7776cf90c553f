"""A cluster node refuses unsafe or incomplete setups before it opens any socket."""

from __future__ import annotations

from typing import Any

import pytest

from pyha.cluster.node import ClusterNode
from pyha.errors import ConfigError
from pyha.model.config import ClusterConfig
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
