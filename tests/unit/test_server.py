"""The single-node server's cycle with a fake clock and the dummy plugin: no real waiting."""

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
from pyha.testing.dummy import DummyPlugin, default_state_path, set_knobs


def registry() -> Registry:
    reg = Registry()
    reg.register(PythonAgent(DummyPlugin(), TypeName.parse("python:pyha:dummy"),
                             Origin("bundled", "test")))
    return reg


def cluster(**meta: Any) -> ClusterConfig:
    monitor = {"name": "monitor", "interval": "5s", **meta.pop("monitor", {})}
    return ClusterConfig.from_mapping({
        "cluster": {"name": "t"},
        "nodes": [{"name": "n1"}],
        "groups": [{"name": "web", "resources": [
            {"name": "ip", "type": "dummy", "operations": [monitor],
             "meta": {"migration_threshold": 2, "failure_timeout": "60s", **meta}},
            {"name": "app", "type": "dummy", "operations": [{"name": "monitor",
                                                             "interval": "5s"}]},
        ]}],
    })


class Harness:
    """A server on a fake clock whose operations run inline."""

    def __init__(self, tmp_path: Path, config: ClusterConfig) -> None:
        self.clock = FakeClock()
        self.tmp_path = tmp_path
        executor = Executor(node="n1", clock=self.clock, state_dir=tmp_path, inline=True)
        self.server = ClusterServer(config, registry(), clock=self.clock, state_dir=tmp_path,
                                    executor=executor)

    def state(self, resource: str) -> Path:
        return default_state_path(self.tmp_path, resource)

    def roles(self) -> dict[str, Role]:
        return {r.name: r.role for r in self.server.status().resources}

    def ops(self) -> list[str]:
        return [f"{r.operation} {r.resource}" for r in self.server.history.all()
                if r.operation != "monitor"]

    def tick(self, seconds: float = 5.0) -> str:
        self.clock.advance(seconds)
        return self.server.cycle()


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    harness = Harness(tmp_path, cluster())
    harness.server.probe()
    return harness


def test_probe_finds_nothing_and_the_first_cycle_starts_the_group_in_order(h: Harness) -> None:
    assert set(h.roles().values()) == {Role.STOPPED}
    line = h.server.cycle()
    assert line.startswith("cycle 1: start ip on n1, app on n1")
    assert h.ops() == ["start ip", "start app"]
    assert h.roles() == {"ip": Role.STARTED, "app": Role.STARTED}
    assert h.state("ip").exists() and h.state("app").exists()
    assert h.server.status().groups == {"web": "running on n1"}


def test_a_running_resource_is_found_by_the_probe_and_left_alone(tmp_path: Path) -> None:
    first = Harness(tmp_path, cluster())
    first.server.probe()
    first.server.cycle()
    again = Harness(tmp_path, cluster())
    again.server.probe()
    assert again.roles() == {"ip": Role.STARTED, "app": Role.STARTED}
    assert "nothing to do" in again.server.cycle()
    assert again.ops() == []


def test_a_monitor_failure_restarts_in_place_with_later_members(h: Harness) -> None:
    h.server.cycle()
    h.state("ip").unlink()  # the resource died behind the cluster's back
    line = h.tick()
    assert "recover ip: monitor failed on n1 (monitor found it not running), failure 1 of 2" \
        in line
    assert h.ops()[2:] == ["stop app", "stop ip", "start ip", "start app"]
    assert h.roles() == {"ip": Role.STARTED, "app": Role.STARTED}
    assert h.server.fail_counts.get("ip", "n1").count == 1  # type: ignore[union-attr]


def test_at_the_migration_threshold_the_group_stops_and_is_reported_failed(h: Harness) -> None:
    h.server.cycle()
    set_knobs(h.state("ip"), fail_on=["monitor"])
    h.tick()  # failure 1: restart in place
    line = h.tick()  # failure 2: threshold reached
    assert "stop app on n1, ip on n1" in line
    assert "cannot run anywhere: ip had 2 failures there (migration threshold 2)" in line
    assert h.roles() == {"ip": Role.STOPPED, "app": Role.STOPPED}
    assert h.server.status().groups["web"].startswith("failed: cannot run anywhere")
    assert "nothing to do: web stopped" in h.tick()


def test_failures_expire_and_the_group_comes_back(h: Harness) -> None:
    h.server.cycle()
    set_knobs(h.state("ip"), fail_on=["monitor"])
    h.tick()
    h.tick()
    set_knobs(h.state("ip"))
    assert h.roles()["ip"] is Role.STOPPED
    line = h.tick(61)
    assert line.startswith(f"cycle {h.server.status().cycle}: start ip on n1, app on n1")
    assert h.server.fail_counts.get("ip", "n1") is None


def test_a_failed_start_is_retried_until_the_threshold(h: Harness) -> None:
    set_knobs(h.state("ip"), fail_on=["start"])
    assert "start ip on n1" in h.server.cycle()
    assert h.roles()["ip"] is Role.FAILED
    assert h.roles()["app"] is Role.STOPPED  # never started after a failed member
    h.tick()  # failure 1: stop and start again, which fails again
    h.tick()  # failure 2: the threshold; it stays stopped
    assert h.ops() == ["start ip", "stop ip", "start ip", "stop ip"]
    assert h.roles()["ip"] is Role.STOPPED
    assert h.server.status().groups["web"].startswith("failed")


def test_on_fail_block_leaves_the_group_alone(tmp_path: Path) -> None:
    h = Harness(tmp_path, cluster(monitor={"on_fail": "block"}))
    h.server.probe()
    h.server.cycle()
    set_knobs(h.state("ip"), fail_on=["monitor"])
    h.tick()
    assert h.roles()["ip"] is Role.BLOCKED
    assert h.ops() == ["start ip", "start app"]
    assert "blocked" in h.tick()


def test_on_fail_ignore_keeps_it_running(tmp_path: Path) -> None:
    h = Harness(tmp_path, cluster(monitor={"on_fail": "ignore"}))
    h.server.probe()
    h.server.cycle()
    set_knobs(h.state("ip"), fail_on=["monitor"])
    h.tick()
    assert h.roles()["ip"] is Role.STARTED
    assert h.server.fail_counts.get("ip", "n1") is None


def test_a_failed_stop_blocks_the_resource(h: Harness) -> None:
    h.server.cycle()
    set_knobs(h.state("ip"), fail_on=["monitor", "stop"])
    h.tick()
    assert h.roles()["ip"] is Role.BLOCKED
    assert "blocked on n1 after its stop failed" in h.tick()


def test_shutdown_stops_every_member_in_reverse_order(h: Harness) -> None:
    h.server.cycle()
    h.server.shutdown()
    assert h.ops() == ["start ip", "start app", "stop app", "stop ip"]
    assert not h.state("ip").exists() and not h.state("app").exists()


def test_monitors_run_at_their_interval(h: Harness) -> None:
    h.server.cycle()
    monitors_before = len([r for r in h.server.history.all() if r.operation == "monitor"])
    h.tick(4.0)
    assert len([r for r in h.server.history.all() if r.operation == "monitor"]) \
        == monitors_before
    h.tick(1.0)
    assert len([r for r in h.server.history.all() if r.operation == "monitor"]) \
        == monitors_before + 2


def test_bad_parameters_and_unknown_types_stop_the_server_before_anything_runs(
    tmp_path: Path,
) -> None:
    config = ClusterConfig.from_mapping({
        "cluster": {"name": "t"}, "nodes": [{"name": "n1"}],
        "groups": [{"name": "web", "resources": [
            {"name": "ip", "type": "dummy", "params": {"fail_code": "lots", "colour": "red"}},
            {"name": "db", "type": "nosuchtype"},
        ]}],
    })
    with pytest.raises(ConfigError) as info:
        Harness(tmp_path, config)
    text = str(info.value)
    assert "resource ip (group web): params.fail_code: must be an integer" in text
    assert "resource ip (group web): params.colour: unknown parameter" in text
    assert "resource db (group web): type:" in text
    assert not any(tmp_path.iterdir())
