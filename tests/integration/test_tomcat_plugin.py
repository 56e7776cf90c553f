"""The tomcat plugin (java:pyha:tomcat) against Debian's tomcat10-user, on loopback ports."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pyha.executor.runner import Executor
from pyha.ports import free_ports
from pyha.resources.java import JavaAgent
from pyha.resources.registry import Registry
from pyha.resources.spi import OcfCode
from pyha.testing.waiting import eventually
from tests.integration.test_jvm_host import needs_jdk
from tests.procs import live_pids

INSTANCE_CREATE = shutil.which("tomcat10-instance-create")
CATALINA_HOME = Path("/usr/share/tomcat10")
pytestmark = [
    needs_jdk,
    pytest.mark.skipif(
        INSTANCE_CREATE is None or not (CATALINA_HOME / "bin" / "bootstrap.jar").is_file(),
        reason="needs Debian's tomcat10-user (tomcat10-instance-create)",
    ),
]
PAGE = "pyha tomcat test page\n"


@dataclass(frozen=True)
class Instance:
    """A private CATALINA_BASE with its loopback ports."""

    base: Path
    http: int
    shutdown: int
    jmx: int

    def params(self, **extra: Any) -> dict[str, Any]:
        return {"catalina_base": str(self.base), "jmx_port": self.jmx, **extra}

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.http}{path}"


def _tomcat_pids(base: Path) -> list[int]:
    """Live Tomcat JVMs running `base`, from their command lines."""
    wanted = f"-Dcatalina.base={base}".encode()
    return live_pids(lambda _, args: wanted in args)


def _wait_until(check: Callable[[], bool], limit: float = 15.0) -> bool:
    return eventually(check, limit, step=0.05)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - loopback test URL
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[Instance]:
    """A Tomcat instance made by tomcat10-instance-create; any Tomcat left running is killed."""
    http, shutdown, jmx = free_ports(3)
    base = tmp_path / "tomcat"
    assert INSTANCE_CREATE is not None
    subprocess.run(
        [INSTANCE_CREATE, "-p", str(http), "-c", str(shutdown), str(base)],
        check=True,
        capture_output=True,
    )
    server_xml = base / "conf" / "server.xml"
    text = server_xml.read_text().replace(
        f'<Connector port="{http}"', f'<Connector port="{http}" address="127.0.0.1"'
    )
    # Debian's libtcnative is too old for Tomcat 10.1 and would log a SEVERE line.
    text = text.replace(
        '<Listener className="org.apache.catalina.core.AprLifecycleListener" />', ""
    )
    server_xml.write_text(text)
    with (base / "conf" / "catalina.properties").open("a") as props:
        props.write("\ntomcat.util.scan.StandardJarScanFilter.jarsToSkip=*.jar\n")
    (base / "webapps" / "ROOT").mkdir(parents=True)
    (base / "webapps" / "ROOT" / "index.html").write_text(PAGE)
    yield Instance(base, http, shutdown, jmx)
    for pid in _tomcat_pids(base):
        os.kill(pid, signal.SIGKILL)


def test_the_meta_data_declares_every_parameter(registry: Registry) -> None:
    meta = registry.resolve("tomcat").meta
    params = {p.name: p for p in meta.parameters}
    assert list(params) == [
        "catalina_home",
        "catalina_base",
        "java_home",
        "jvm_options",
        "jmx_port",
        "shutdown_port",
        "http_probe_url",
        "user",
    ]
    assert params["catalina_home"].default == "/usr/share/tomcat10"
    assert params["catalina_base"].required and params["jmx_port"].required
    assert (params["jmx_port"].type, params["shutdown_port"].type) == ("integer", "integer")
    assert meta.timeout("start") == 120.0
    assert meta.operation("monitor").interval == 10.0  # type: ignore[union-attr]


def test_validate_names_each_bad_parameter(registry: Registry) -> None:
    _, problems = registry.validate(
        "tomcat",
        {
            "catalina_base": "relative/base",
            "jmx_port": 70000,
            "http_probe_url": "ftp://x/",
            "jvm_options": "-Dx='unbalanced",
            "user": "no body",
        },
    )
    assert problems == (
        "catalina_base: must be an absolute path, got relative/base",
        "jmx_port: must be a port from 1 to 65535, got 70000",
        "http_probe_url: must be an http:// or https:// URL with a host, got ftp://x/",
        "user: no body is not a user name",
        "jvm_options: unbalanced ' quote in: -Dx='unbalanced",
    )


def test_a_missing_instance_is_not_installed_here(
    registry: Registry, executor: Executor, tmp_path: Path
) -> None:
    params, problems = registry.validate(
        "tomcat", {"catalina_base": str(tmp_path / "none"), "jmx_port": free_ports(1)[0]}
    )
    assert problems == ()
    agent = registry.resolve("tomcat")
    assert executor.run(agent, "web", "monitor", params).code == OcfCode.NOT_RUNNING
    result = executor.run(agent, "web", "start", params)
    assert result.code == OcfCode.ERR_INSTALLED
    assert result.message == f"catalina_base: no conf/server.xml in {tmp_path / 'none'}"


@pytest.mark.slow
def test_start_monitor_kill_restart_and_stop(
    registry: Registry,
    executor: Executor,
    instance: Instance,
    caplog: pytest.LogCaptureFixture,
) -> None:
    agent = registry.resolve("tomcat")
    assert isinstance(agent, JavaAgent)
    params, problems = registry.validate("tomcat", instance.params())
    assert problems == ()
    assert executor.run(agent, "web", "monitor", params).code == OcfCode.NOT_RUNNING

    with caplog.at_level(logging.INFO, logger="pyha.resource.web"):
        assert executor.run(agent, "web", "start", params).ok
    assert _get(instance.url()) == (200, PAGE)
    (pid,) = _tomcat_pids(instance.base)
    assert f"launched Tomcat {instance.base} (pid {pid}, JMX on 127.0.0.1:{instance.jmx})" in [
        r.getMessage() for r in caplog.records
    ]
    assert executor.run(agent, "web", "monitor", params, interval=10).ok
    assert executor.run(agent, "web", "start", params).ok  # already running: nothing to do
    assert _tomcat_pids(instance.base) == [pid]

    probed = {**params, "http_probe_url": instance.url("/missing")}
    failed = executor.run(agent, "web", "monitor", probed, interval=10)
    assert failed.code == OcfCode.ERR_GENERIC
    assert failed.message.endswith(f"HTTP probe {instance.url('/missing')} answered 404")

    os.kill(pid, signal.SIGKILL)
    assert _wait_until(lambda: not _tomcat_pids(instance.base))
    assert executor.run(agent, "web", "monitor", params).code == OcfCode.NOT_RUNNING

    assert executor.run(agent, "web", "start", params).ok
    assert _get(instance.url()) == (200, PAGE)
    (second,) = _tomcat_pids(instance.base)

    # Tomcat runs in its own session: a JVM host killed under it leaves it running.
    restarts: list[int] = []
    agent.runtime.on_host_restarted(restarts.append)
    host = agent.runtime.host.pid
    assert host is not None
    os.kill(host, signal.SIGKILL)
    assert _wait_until(lambda: agent.runtime.host.pid is None)  # the host fully exited
    assert executor.run(agent, "web", "monitor", params).ok
    assert restarts == [2]
    assert agent.runtime.host_restarted == 1
    assert _tomcat_pids(instance.base) == [second]

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pyha.resource.web"):
        assert executor.run(agent, "web", "stop", params).ok
    assert f"sent the shutdown command to 127.0.0.1:{instance.shutdown}" in [
        r.getMessage() for r in caplog.records
    ]
    assert _tomcat_pids(instance.base) == []
    assert executor.run(agent, "web", "monitor", params).code == OcfCode.NOT_RUNNING
    assert executor.run(agent, "web", "stop", params).ok  # stopping a stopped one succeeds
