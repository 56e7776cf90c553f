"""A server with a Java resource probes it again after its JVM host was restarted."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyha.model.actions import Action, ActionKind
from pyha.model.config import ClusterConfig
from pyha.model.status import Role
from pyha.resources.java import JavaAgent
from pyha.resources.registry import Registry
from pyha.server import ClusterServer
from tests.integration.conftest import closing_runtime
from tests.integration.test_jvm_host import Jars, build_probe, needs_jdk

pytestmark = needs_jdk


@pytest.fixture(scope="session")
def jars(tmp_path_factory: pytest.TempPathFactory) -> Jars:
    return build_probe(tmp_path_factory)


@pytest.fixture
def registry(jars: Jars, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    monkeypatch.setenv("PYHA_JAVA_CACHE", str(jars.cache))
    monkeypatch.setenv("PYHA_JAVA_PLUGIN_PATH", str(jars.probe))
    yield from closing_runtime(Registry.discover(entry_points=False, bundled=False,
                                                 ocf_root=tmp_path / "none"))


def test_a_restarted_jvm_host_makes_the_server_probe_its_java_resources(
        registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = ClusterConfig.from_mapping({
        "cluster": {"name": "j"}, "nodes": [{"name": "n1"}],
        "groups": [{"name": "g", "resources": [
            {"name": "app", "type": "probe", "params": {"code": 0}}]}],
    })
    server = ClusterServer(config, registry, state_dir=tmp_path)
    server.probe()
    assert server.status().resources[0].role is Role.STARTED  # the probe answers 0
    agent = server.members["app"].agent
    assert isinstance(agent, JavaAgent)

    agent.runtime.host.kill("test: the JVM host dies")
    monitor = Action(id=1, kind=ActionKind.MONITOR, node="n1", resource="app", reason="test")
    with caplog.at_level(logging.WARNING, logger="pyha.server"):
        assert server.perform(monitor)  # the next call starts a new host
        server.monitor_tick()
    assert agent.runtime.host_restarted >= 1
    assert "probing app again: its plugin host restarted" in caplog.text
    assert server.status().resources[0].role is Role.STARTED
