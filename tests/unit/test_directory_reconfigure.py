"""ClusterServer.reconfigure: a new configuration is checked first, then applied by a cycle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pyha.errors import ConfigError
from pyha.executor.runner import Executor
from pyha.model.config import ClusterConfig
from pyha.model.status import Role
from pyha.resources.agent import Origin
from pyha.resources.python import PythonAgent
from pyha.resources.registry import Registry
from pyha.resources.spi import TypeName
from pyha.server import ClusterServer
from pyha.testing import FakeClock
from pyha.testing.dummy import DummyPlugin


def registry() -> Registry:
    reg = Registry()
    reg.register(PythonAgent(DummyPlugin(), TypeName.parse("python:pyha:dummy"),
                             Origin("bundled", "test")))
    return reg


def config(resources: list[dict[str, Any]], epoch: int = 1) -> ClusterConfig:
    return ClusterConfig.from_mapping({
        "cluster": {"name": "t"}, "epoch": epoch, "nodes": [{"name": "n1"}],
        "groups": [{"name": "g", "resources": resources}],
    })


def res(name: str, **params: Any) -> dict[str, Any]:
    return {"name": name, "type": "dummy", "params": params,
            "operations": [{"name": "monitor", "interval": "5s"}]}


@pytest.fixture
def server(tmp_path: Path) -> ClusterServer:
    clock = FakeClock()
    executor = Executor(node="n1", clock=clock, state_dir=tmp_path, inline=True)
    srv = ClusterServer(config([res("a"), res("b")]), registry(), clock=clock,
                        state_dir=tmp_path, executor=executor)
    srv.probe()
    srv.cycle()
    return srv


def ops(srv: ClusterServer) -> list[str]:
    return [f"{r.operation} {r.resource}" for r in srv.history.all() if r.operation != "monitor"]


def roles(srv: ClusterServer) -> dict[str, Role]:
    return {r.name: r.role for r in srv.status().resources}


def test_a_bad_configuration_is_rejected_and_the_old_one_stays(
        server: ClusterServer, caplog: pytest.LogCaptureFixture) -> None:
    bad = config([res("a", fail_code="often"), res("b")], epoch=2)
    with pytest.raises(ConfigError, match=r"params\.fail_code"):
        server.reconfigure(bad)
    assert "configuration epoch 2 rejected; keeping epoch 1" in caplog.text
    server.cycle()
    assert server.config.epoch == 1
    assert roles(server) == {"a": Role.STARTED, "b": Role.STARTED}


def test_a_configuration_without_this_node_is_rejected(server: ClusterServer) -> None:
    other = ClusterConfig.from_mapping({"cluster": {"name": "t"}, "nodes": [{"name": "n9"}]})
    with pytest.raises(ConfigError, match="this node"):
        server.reconfigure(other)


def test_removed_resources_stop_changed_ones_restart_new_ones_start(
        server: ClusterServer) -> None:
    assert ops(server) == ["start a", "start b"]
    plan = server.reconfigure(config([res("a", delay="10ms"), res("c")], epoch=2))
    assert plan == "stop and remove b; restart a; add c"
    assert server.config.epoch == 1  # nothing happens before the next cycle
    server.cycle()
    assert server.config.epoch == 2
    assert ops(server)[2:4] == ["stop b", "stop a"]
    assert ops(server)[4:] == ["start a", "start c"]
    assert roles(server) == {"a": Role.STARTED, "c": Role.STARTED}
    assert "b" not in server.monitors


def test_a_target_role_change_is_acted_on_by_the_scheduler(server: ClusterServer) -> None:
    stopped = res("b")
    stopped["meta"] = {"target_role": "stopped"}
    assert server.reconfigure(config([res("a"), stopped], epoch=2)) == "no resource changes"
    server.cycle()
    assert roles(server) == {"a": Role.STARTED, "b": Role.STOPPED}


def test_changed_monitors_are_rescheduled(server: ClusterServer) -> None:
    slow = res("a")
    slow["operations"] = [{"name": "monitor", "interval": "60s"}]
    assert server.reconfigure(config([slow, res("b")], epoch=2)) == "new monitors for a"
    server.cycle()
    assert [m.interval for m in server.monitors.monitors() if m.resource == "a"] == [60.0]


def test_reconfigure_wakes_the_loop(server: ClusterServer) -> None:
    server._wake.clear()
    server.reconfigure(config([res("a"), res("b")], epoch=2))
    assert server._wake.is_set()
