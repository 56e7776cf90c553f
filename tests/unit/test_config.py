"""The configuration models: valid files load, bad input names the field and the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pyha.cluster.fence import fence_devices
from pyha.errors import ConfigError
from pyha.fencing import NamespaceFence, NamespaceNode
from pyha.model.config import ClusterConfig, OnFail, TargetRole
from pyha.model.types import INFINITY, format_duration, parse_duration, parse_score


def minimal(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "cluster": {"name": "c1"},
        "nodes": [{"name": "n1"}, {"name": "n2"}],
        "groups": [{"name": "web", "resources": [
            {"name": "ip", "type": "dummy"},
            {"name": "app", "type": "process", "params": {"command": ["sleep", "100"]},
             "operations": [{"name": "monitor", "interval": "10s", "timeout": "5s"},
                            {"name": "stop", "timeout": "1m", "on_fail": "block"}],
             "meta": {"migration_threshold": 2, "failure_timeout": "30s"}},
        ]}],
    }
    data.update(extra)
    return data


def problems_of(data: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        ClusterConfig.from_mapping(data)
    return info.value.problems


def test_valid_config_loads_with_parsed_durations_and_defaults() -> None:
    config = ClusterConfig.from_mapping(minimal())
    app = config.resource("app")
    assert app.monitors()[0].interval == 10.0
    assert app.operation("stop") is not None
    assert app.operation("stop").timeout == 60.0  # type: ignore[union-attr]
    assert app.operation("stop").effective_on_fail() is OnFail.BLOCK  # type: ignore[union-attr]
    assert app.meta.failure_timeout == 30.0
    assert config.resource("ip").meta.target_role is TargetRole.STARTED
    assert config.resource("ip").meta.failure_timeout == 600.0  # failures expire by default
    assert config.group_of("app").name == "web"
    assert [r.name for r in config.group("web").resources] == ["ip", "app"]


def test_models_are_frozen() -> None:
    config = ClusterConfig.from_mapping(minimal())
    with pytest.raises(ValueError, match="frozen"):
        config.cluster.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["groups"][0]["resources"][1]["operations"][0].update(interval="soon"),
         "groups[0].resources[1].operations[0].interval: 'soon' is not a duration"),
        (lambda d: d["groups"][0]["resources"][1]["operations"].append(
            {"name": "start", "interval": "5s"}),
         "groups[0].resources[1].operations[2].interval: only monitor recurs"),
        (lambda d: d["groups"][0]["resources"][0].update(colour="red"),
         "groups[0].resources[0].colour: unknown field"),
        (lambda d: d["groups"][0]["resources"][0].update(name="9lives"),
         "groups[0].resources[0].name: '9lives' is not a valid name"),
        (lambda d: d["groups"][0]["resources"][1]["meta"].update(migration_threshold=0),
         "groups[0].resources[1].meta.migration_threshold: Input should be greater than"),
        (lambda d: d["groups"][0].update(resources=[]),
         "groups[0].resources: a group needs at least one resource"),
        (lambda d: d["nodes"].append({"name": "n1"}), "nodes: n1 defined more than once"),
        (lambda d: d["groups"].append({"name": "db", "resources": [{"name": "ip", "type": "x"}]}),
         "resources: ip defined more than once"),
        (lambda d: d["cluster"].pop("name"), "cluster.name: required field is missing"),
    ],
)
def test_bad_input_names_the_field_and_the_reason(mutate: Any, expected: str) -> None:
    data = minimal()
    mutate(data)
    problems = problems_of(data)
    assert any(p.startswith(expected) for p in problems), problems


def test_constraints_are_checked_against_groups_and_nodes() -> None:
    data = minimal(constraints=[
        {"kind": "location", "id": "l1", "group": "web", "node": "n9", "score": 100},
        {"kind": "colocation", "id": "c1", "group": "web", "with_group": "db"},
        {"kind": "order", "id": "o1", "first": "web", "then": "web"},
        {"kind": "near", "id": "x1"},
    ])
    problems = problems_of(data)
    assert "constraints[3].kind: must be location, colocation or order, got 'near'" in problems


def test_constraint_references_are_reported_each() -> None:
    data = minimal(constraints=[
        {"kind": "location", "id": "l1", "group": "web", "node": "n9", "score": "INFINITY"},
        {"kind": "colocation", "id": "c1", "group": "web", "with_group": "db", "score": -50},
    ])
    problems = problems_of(data)
    assert "constraints[0].node: no node named 'n9'" in problems
    assert "constraints[1].with_group: no group named 'db'" in problems


def test_constraint_scores_parse_infinity() -> None:
    data = minimal(constraints=[
        {"kind": "location", "id": "prefer", "group": "web", "node": "n1", "score": "-INFINITY"},
    ])
    config = ClusterConfig.from_mapping(data)
    assert config.constraints[0].score == -INFINITY  # type: ignore[union-attr]


def test_from_toml_reports_the_file_and_syntax(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[cluster\nname='x'")
    with pytest.raises(ConfigError, match=r"c\.toml: not valid TOML"):
        ClusterConfig.from_toml(path)
    with pytest.raises(ConfigError, match="cannot read"):
        ClusterConfig.from_toml(tmp_path / "missing.toml")


def test_from_toml_loads_a_cluster_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[cluster]\nname = "c1"\n[[nodes]]\nname = "n1"\n'
        '[[groups]]\nname = "g"\n[[groups.resources]]\nname = "a"\ntype = "dummy"\n'
        'operations = [{ name = "monitor", interval = "500ms" }]\n'
    )
    config = ClusterConfig.from_toml(path)
    assert config.resource("a").monitors()[0].interval == 0.5


@pytest.mark.parametrize(("text", "seconds"), [
    ("500ms", 0.5), ("10s", 10), ("2m", 120), ("1h", 3600), (3, 3), ("1.5", 1.5), ("1d", 86400),
])
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["-1s", "ten", True, [1], "5 parsecs"])
def test_bad_durations(bad: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_duration_format_round_trips() -> None:
    for seconds in (0.5, 10, 120, 3600, 90):
        assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(("text", "score"), [
    ("INFINITY", INFINITY), ("-inf", -INFINITY), ("never", -INFINITY), ("must", INFINITY),
    (50, 50), ("-20", -20), (10**9, INFINITY),
])
def test_scores(text: Any, score: int) -> None:
    assert parse_score(text) == score


def test_node_endpoints_and_fence_settings_are_checked() -> None:
    data = minimal()
    data["nodes"] = [
        {"name": "n1", "addresses": ["127.0.0.1:7001", "[::1]:7001"], "rpc": "127.0.0.1:7101",
         "fence": {"kind": "command", "off": ["ipmitool", "power", "off"]}},
        {"name": "n2", "addresses": ["127.0.0.1"], "rpc": "127.0.0.1:99999",
         "fence": {"kind": "namespace"}},
    ]
    problems = problems_of(data)
    assert "nodes[1].addresses[0]: '127.0.0.1' is not host:port" in problems
    assert "nodes[1].rpc: '127.0.0.1:99999': the port must be a number from 1 to 65535" \
        in problems
    assert "nodes[1].fence.namespace: a namespace fence needs the namespace's name" in problems
    assert not any(p.startswith("nodes[0]") for p in problems)


def test_a_namespace_fence_may_pull_the_nodes_cable_and_checks_the_port() -> None:
    data = minimal()
    data["nodes"] = [
        {"name": "n1", "fence": {"kind": "namespace", "namespace": "lab-n1",
                                 "bridge_port": "p-n1", "bridge_namespace": "lab-br"}},
        {"name": "n2", "fence": {"kind": "namespace", "namespace": "lab-n2",
                                 "bridge_port": "eth0/../x"}},
        {"name": "n3", "fence": {"kind": "namespace", "namespace": "lab-n3",
                                 "bridge_namespace": "lab-br"}},
        {"name": "n4", "fence": {"kind": "cgroup", "bridge_port": "p-n4"}},
    ]
    problems = problems_of(data)
    assert "nodes[1].fence.bridge_port: 'eth0/../x' is not an interface name (at most 15 " \
        "characters, no '/', ':' or white space)" in problems
    assert "nodes[2].fence.bridge_namespace: set only with bridge_port, the port it holds" \
        in problems
    assert "nodes[3].fence.bridge_port: only a namespace fence has a cable to pull, not a " \
        "cgroup fence" in problems
    assert not any(p.startswith("nodes[0]") for p in problems)

    data["nodes"] = data["nodes"][:1]
    device = fence_devices(ClusterConfig.from_mapping(data))["n1"]
    assert isinstance(device, NamespaceFence)
    assert device.nodes["n1"] == NamespaceNode("lab-n1", "p-n1", "lab-br")


def test_a_cluster_needs_a_node() -> None:
    assert problems_of(minimal(nodes=[])) == ("nodes: a cluster needs at least one node",)
