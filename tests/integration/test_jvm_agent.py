"""Java plugins as the server sees them: registry, executor, CLI, and a server without JPype."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pyha.cli import resource_types
from pyha.errors import PluginError
from pyha.executor.runner import Executor
from pyha.resources.agent import Origin
from pyha.resources.java import JavaAgent, java_runtime
from pyha.resources.registry import Registry
from pyha.resources.spi import CallStatus
from tests.integration.conftest import closing_runtime
from tests.integration.test_jvm_host import Jars, build_probe, needs_jdk, write_probe_folder

pytestmark = needs_jdk


@pytest.fixture(scope="session")
def jars(tmp_path_factory: pytest.TempPathFactory) -> Jars:
    return build_probe(tmp_path_factory)


@pytest.fixture
def java_env(jars: Jars, monkeypatch: pytest.MonkeyPatch) -> Jars:
    """Builds and listings go to the session's cache; the probe jar is the Java plugin path."""
    monkeypatch.setenv("PYHA_JAVA_CACHE", str(jars.cache))
    monkeypatch.setenv("PYHA_JAVA_PLUGIN_PATH", str(jars.probe))
    return jars


def _discover(tmp_path: Path, java_plugin_path: list[Path] | None = None) -> Registry:
    return Registry.discover(
        entry_points=False,
        bundled=False,
        ocf_root=tmp_path / "no-ocf",
        java_plugin_path=java_plugin_path,
    )


@pytest.fixture
def registry(java_env: Jars, tmp_path: Path) -> Iterator[Registry]:
    yield from closing_runtime(_discover(tmp_path))


def test_jar_plugins_register_with_their_origin_and_broken_providers(
    registry: Registry, jars: Jars
) -> None:
    agent = registry.resolve("probe")
    assert isinstance(agent, JavaAgent)
    assert str(agent.name) == "java:test:probe"
    assert agent.origin == Origin("jar", str(jars.probe))
    assert agent.meta.promotable
    assert [p.name for p in agent.meta.parameters] == ["mode", "code", "millis", "secret"]
    assert agent.meta.timeout("start") == 5.0
    reasons = " | ".join(error.reason for error in registry.errors)
    assert "testplugins.Broken could not be instantiated" in reasons
    assert "cannot construct" in reasons
    assert "testplugins.Missing not found" in reasons
    assert {error.name_or_path for error in registry.errors} == {str(jars.probe)}
    assert {error.origin for error in registry.errors} == {Origin("jar", str(jars.probe))}


def test_operations_run_through_the_executor_and_log_under_the_resource(
    registry: Registry, executor: Executor, caplog: pytest.LogCaptureFixture
) -> None:
    agent = registry.resolve("probe")
    params, problems = registry.validate("probe", {"code": 0})
    assert problems == ()
    with caplog.at_level(logging.INFO, logger="pyha.resource.web"):
        started = executor.run(agent, "web", "start", params)
    assert (started.ok, started.status, started.code) == (True, CallStatus.DONE, 0)
    lines = [(r.name, r.getMessage()) for r in caplog.records]
    assert ("pyha.resource.web", "start web mode=code") in lines
    probe = executor.run(agent, "web", "monitor", {**params, "code": 7})
    assert (probe.ok, probe.running) == (True, False)
    promoted = executor.run(agent, "web", "promote", params)
    assert promoted.code == 3


def test_a_hung_start_times_out_and_the_host_comes_back(
    registry: Registry, executor: Executor
) -> None:
    agent = registry.resolve("probe")
    assert isinstance(agent, JavaAgent)
    agent.runtime.host.grace = 0.3
    agent.runtime.host.start()  # so its start-up does not eat the one-second deadline
    result = executor.run(agent, "web", "start", {"mode": "hang"}, timeout=1.0)
    assert result.status is CallStatus.TIMEOUT
    assert re.match(r"timed out after [\d.]+m?s; the JVM host was killed", result.message)
    assert executor.run(agent, "web", "monitor", {"code": 0}).ok
    assert agent.runtime.host.restarts == 1


def test_validate_runs_the_plugins_own_checks_after_the_types(registry: Registry) -> None:
    assert registry.validate("probe", {"code": 99})[1] == ("code: 99 is refused",)
    assert registry.validate("probe", {"mode": "fly"})[1] == (
        "mode: must be one of code, sleep, hang, throw, context, cancel; got 'fly'",
    )


def test_a_plugin_folder_on_the_java_path_is_built_on_first_use(
    java_env: Jars, tmp_path: Path, executor: Executor
) -> None:
    good = write_probe_folder(tmp_path / "good")
    wrong = write_probe_folder(tmp_path / "wrong", name="other")
    registry = _discover(tmp_path, [good, wrong])
    try:
        agent = registry.resolve("java:test:probe")
        assert isinstance(agent, JavaAgent)
        assert agent.origin == Origin("jar", str(good))
        assert agent.description == "test plugins"
        agent.runtime.host.start()  # a loaded machine must not make the start-up eat the op
        assert executor.run(agent, "web", "start", {"code": 0}).ok
        with pytest.raises(PluginError, match="it provides java:test:probe"):
            _ = registry.resolve("java:test:other").meta
    finally:
        runtime = java_runtime(registry.agents())
        assert runtime is not None
        runtime.close()


def test_resource_type_list_and_show_include_java_types(java_env: Jars) -> None:
    listed = CliRunner().invoke(resource_types.app, ["list", "--json"])
    assert listed.exit_code == 0, listed.output
    data = json.loads(listed.output)
    (probe,) = [t for t in data["types"] if t["type"] == "java:test:probe"]
    assert probe["origin"] == {"kind": "jar", "location": str(java_env.probe)}
    assert probe["description"] == "a plugin for tests"
    assert any("cannot construct" in e["reason"] for e in data["errors"])
    tomcat = [t for t in data["types"] if t["type"] == "java:pyha:tomcat"]
    assert tomcat and tomcat[0]["origin"]["kind"] == "jar"
    shown = CliRunner().invoke(resource_types.app, ["show", "probe", "--json"])
    assert shown.exit_code == 0, shown.output
    secret = next(p for p in json.loads(shown.output)["parameters"] if p["name"] == "secret")
    assert (secret["secret"], secret["default"]) == (True, "(hidden)")


SERVER = """
import json, sys
from pathlib import Path
from pyha.clock import MonotonicClock
from pyha.executor.runner import Executor
from pyha.resources.java import java_runtime
from pyha.resources.registry import Registry

registry = Registry.discover(entry_points=False, bundled=False, ocf_root="/nonexistent",
                             java_plugin_path=[Path(sys.argv[1])])
executor = Executor(node="n1", clock=MonotonicClock(), state_dir=Path(sys.argv[2]))
params, _ = registry.validate("probe", {"code": 0})
result = executor.run(registry.resolve("probe"), "web", "start", params)
runtime = java_runtime(registry.agents())
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("jpype", "_jpype"))
print(json.dumps({"code": result.code, "status": result.status.value,
                  "host": runtime.host.pid, "jpype": loaded}))
runtime.close()
"""


def test_the_server_process_never_loads_jpype(java_env: Jars, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SERVER), str(java_env.probe), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYHA_JAVA_CACHE": str(java_env.cache)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["code"], report["status"]) == (0, "done")
    assert isinstance(report["host"], int)
    assert report["jpype"] == []
