"""The weblogic plugin (java:pyha:weblogic) against the labelled WebLogic emulator.

The emulator (tests/emulators/weblogic/, JDK-only Java) is NOT WebLogic: it serves WebLogic's
documented `com.bea:Name=<server>,Type=ServerRuntime` MBean over the JDK's JMX RMI connector
on 127.0.0.1, behind a domain's start scripts, with faults switched by a flag file.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pyha.executor.runner import Executor
from pyha.jvm.build import java_home
from pyha.ports import free_port
from pyha.resources.java import JavaAgent
from pyha.resources.registry import Registry
from pyha.resources.spi import OcfCode
from pyha.testing.waiting import eventually
from tests.integration.test_jvm_host import needs_jdk
from tests.procs import live_pids

pytestmark = needs_jdk
EMULATOR = Path(__file__).resolve().parents[1] / "emulators" / "weblogic"
USER = "weblogic"
PASSWORD = "w3lc0me-not-logged"
SERVER = "AdminServer"
MANAGED = "ms1"


@dataclass(frozen=True)
class Domain:
    """An emulated WebLogic domain with one server, its JMX port and a credentials file."""

    home: Path
    port: int
    managed_port: int
    credentials: Path

    def params(self, **extra: Any) -> dict[str, Any]:
        port = self.managed_port if extra.get("server_name") == MANAGED else self.port
        url = f"service:jmx:rmi:///jndi/rmi://127.0.0.1:{port}/jmxrmi"
        return {
            "domain_home": str(self.home),
            "jmx_service_url": url,
            "credentials_file": str(self.credentials),
            **extra,
        }

    def fault(self, *words: str) -> None:
        """Switch the running emulator's faults (an empty call clears them)."""
        (self.home / "servers" / SERVER / "emulator.faults").write_text(
            "".join(f"{w}\n" for w in words)
        )

    def out(self) -> str:
        path = self.home / "servers" / SERVER / "logs" / f"{SERVER}.out"
        return path.read_text() if path.exists() else ""


def _domain_pids(home: Path) -> list[int]:
    """Live processes of `home`: the emulator JVMs (cwd the domain) and their start scripts."""

    def of_home(entry: Path, args: list[bytes]) -> bool:
        if any(str(home / "bin").encode() in a for a in args):
            return True  # a start script
        return (any(a.startswith(b"-Dweblogic.Name=") for a in args)
                and os.readlink(entry / "cwd") == str(home))

    return live_pids(of_home)


def _server_pids(home: Path, name: str = SERVER) -> list[int]:
    """Only the emulator JVMs of `home` running `name` (what the plugin counts as the server)."""
    wanted = f"-Dweblogic.Name={name}".encode()
    return [
        pid
        for pid in _domain_pids(home)
        if wanted in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    ]


def _wait_until(check: Callable[[], bool], limit: float = 15.0) -> bool:
    return eventually(check, limit, step=0.05)


@pytest.fixture(scope="session")
def emulator_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The emulator compiled with the JDK's javac (no build tool)."""
    out = tmp_path_factory.mktemp("weblogic-emulator")
    sources = sorted(str(p) for p in (EMULATOR / "src").rglob("*.java"))
    javac = java_home() / "bin" / "javac"
    subprocess.run([str(javac), "--release", "17", "-d", str(out), *sources], check=True)
    return out


@pytest.fixture
def domain(tmp_path: Path, emulator_classes: Path) -> Iterator[Domain]:
    """A domain made for the emulator; every process it started is killed afterwards."""
    home = tmp_path / "domain"
    (home / "bin").mkdir(parents=True)
    for script in ("startWebLogic.sh", "startManagedWebLogic.sh"):
        shutil.copy2(EMULATOR / "bin" / script, home / "bin" / script)
    (home / "bin" / "setDomainEnv.sh").write_text(
        f"JAVA_HOME='{java_home()}'\nEMULATOR_CLASSPATH='{emulator_classes}'\n"
    )
    port, managed_port = free_port(), free_port()
    while managed_port == port:
        managed_port = free_port()
    (home / "config").mkdir()
    (home / "config" / "emulator.properties").write_text(
        f"server.{SERVER}.jmx_port={port}\nserver.{MANAGED}.jmx_port={managed_port}\n"
        "start_delay_ms=200\nstep_ms=50\n"
    )
    for name in (SERVER, MANAGED):
        security = home / "servers" / name / "security"
        security.mkdir(parents=True)
        (security / "boot.properties").write_text(f"username={USER}\npassword={PASSWORD}\n")
    credentials = tmp_path / "weblogic.credentials"
    credentials.write_text(f"# for pyha\nusername={USER}\npassword={PASSWORD}\n")
    credentials.chmod(0o600)
    yield Domain(home, port, managed_port, credentials)
    for pid in _domain_pids(home):
        os.kill(pid, signal.SIGKILL)
    assert _wait_until(lambda: not _domain_pids(home), 10)


def _validated(registry: Registry, params: dict[str, Any]) -> dict[str, Any]:
    checked, problems = registry.validate("java:pyha:weblogic", params)
    assert problems == ()
    return dict(checked)


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_the_meta_data_declares_every_parameter(registry: Registry) -> None:
    meta = registry.resolve("java:pyha:weblogic").meta
    params = {p.name: p for p in meta.parameters}
    assert list(params) == [
        "domain_home",
        "server_name",
        "admin_url",
        "start_script",
        "jmx_service_url",
        "credentials_file",
        "client_jars",
        "protocol_provider_packages",
        "ignore_sessions",
    ]
    assert params["server_name"].default == "AdminServer"
    assert params["protocol_provider_packages"].default == "weblogic.management.remote"
    assert all(params[n].required for n in ("domain_home", "jmx_service_url", "credentials_file"))
    assert (params["client_jars"].type, params["ignore_sessions"].type) == ("list", "boolean")
    assert all(p.description for p in meta.parameters)
    assert (meta.timeout("start"), meta.timeout("stop")) == (300.0, 120.0)
    assert meta.operation("monitor").interval == 30.0  # type: ignore[union-attr]


def test_validate_names_each_bad_parameter(registry: Registry, tmp_path: Path) -> None:
    shared = tmp_path / "shared.credentials"
    shared.write_text("username=weblogic\npassword={AES}c2VjcmV0\n")
    shared.chmod(0o644)
    _, problems = registry.validate(
        "java:pyha:weblogic",
        {
            "domain_home": str(tmp_path / "no-domain"),
            "server_name": "bad/name",
            "admin_url": "ftp://admin",
            "start_script": "bin/start.sh",
            "jmx_service_url": "service:jmx:rmi://[broken",
            "credentials_file": str(shared),
            "client_jars": ["relative.jar", "/no/such.jar"],
        },
    )
    # A missing domain is no problem here: it may be on storage the group mounts later.
    assert problems[0].startswith("server_name: bad/name is not a server name")
    assert problems[1].startswith("admin_url: must be PROTOCOL://HOST:PORT")
    assert problems[2] == "start_script: must be an absolute path, got bin/start.sh"
    assert problems[3:5] == (
        "client_jars: must be absolute paths, got relative.jar",
        "client_jars: cannot read /no/such.jar",
    )
    assert problems[5] == (
        f"credentials_file: {shared} is readable or writable by group or others; chmod 600 it"
    )
    assert problems[6].startswith(f"credentials_file: the password in {shared} is encrypted")
    assert problems[7].startswith("jmx_service_url: not a JMX service URL")
    assert len(problems) == 8
    assert "c2VjcmV0" not in " ".join(problems)


def test_validate_refuses_unsupported_protocols_and_leaves_missing_files_to_start(
    registry: Registry, executor: Executor, tmp_path: Path
) -> None:
    params = {
        "domain_home": str(tmp_path / "on-shared-storage"),
        "jmx_service_url": "service:jmx:t3://127.0.0.1:7001/jndi/"
        "weblogic.management.mbeanservers.runtime",
        "credentials_file": str(tmp_path / "none"),
    }
    _, problems = registry.validate("java:pyha:weblogic", params)
    assert len(problems) == 1 and problems[0].startswith(
        "jmx_service_url: no JMX connector for the protocol t3; put WebLogic's client jar"
    )
    params["jmx_service_url"] = "service:jmx:rmi:///jndi/rmi://127.0.0.1:1/jmxrmi"
    checked, problems = registry.validate("java:pyha:weblogic", params)
    assert problems == ()  # the domain and the credentials may be mounted by the group
    result = executor.run(registry.resolve("java:pyha:weblogic"), "wls", "start", checked)
    assert result.code == OcfCode.ERR_INSTALLED
    assert result.message == f"domain_home: no such directory: {tmp_path / 'on-shared-storage'}"


def test_a_domain_without_its_script_is_not_installed(
    registry: Registry, executor: Executor, domain: Domain
) -> None:
    agent = registry.resolve("java:pyha:weblogic")
    params = _validated(registry, domain.params(admin_url="t3://127.0.0.1:7001"))
    (domain.home / "bin" / "startManagedWebLogic.sh").unlink()
    assert executor.run(agent, "wls", "monitor", params).code == OcfCode.NOT_RUNNING
    result = executor.run(agent, "wls", "start", params)
    assert result.code == OcfCode.ERR_INSTALLED
    script = domain.home / "bin" / "startManagedWebLogic.sh"
    assert result.message == f"start_script: {script} is not an executable file"


@pytest.mark.slow
def test_start_monitor_stop_through_the_jvm_host(
    registry: Registry, executor: Executor, domain: Domain, caplog: pytest.LogCaptureFixture
) -> None:
    agent = registry.resolve("java:pyha:weblogic")
    assert isinstance(agent, JavaAgent)
    params = _validated(registry, domain.params())
    assert executor.run(agent, "wls", "monitor", params).code == OcfCode.NOT_RUNNING

    with caplog.at_level(logging.DEBUG, logger="pyha"):
        assert executor.run(agent, "wls", "start", params, timeout=60).ok
        (pid,) = _server_pids(domain.home)
        assert "BEA-000365 Server state changed to RUNNING." in domain.out()
        assert executor.run(agent, "wls", "monitor", params, interval=30).ok
        assert executor.run(agent, "wls", "start", params).ok  # already RUNNING: nothing to do
        assert _server_pids(domain.home) == [pid]

        wrong = domain.credentials.with_name("wrong.credentials")
        wrong.write_text(f"username={USER}\npassword=not-{PASSWORD}\n")
        wrong.chmod(0o600)
        refused = executor.run(agent, "wls", "monitor", {**params, "credentials_file": str(wrong)})
        assert refused.code == OcfCode.ERR_GENERIC
        assert "refused the credentials of credentials_file" in refused.message

        assert executor.run(agent, "wls", "stop", params, timeout=30).ok
    assert _server_pids(domain.home) == []
    assert "received a graceful shutdown request (timeout" in domain.out()
    assert "BEA-000365 Server state changed to SHUTDOWN." in domain.out()
    text = "\n".join(_messages(caplog))
    assert "is not RUNNING yet" not in text
    assert f"{domain.home} already runs (pid {pid})" in text
    assert f"(pid {pid}) shut down" in text
    assert PASSWORD not in text
    assert executor.run(agent, "wls", "monitor", params).code == OcfCode.NOT_RUNNING
    assert executor.run(agent, "wls", "stop", params).ok  # stopping a stopped one succeeds
    assert agent.runtime.host_restarted == 0


@pytest.mark.slow
def test_a_hung_server_fails_its_monitor_in_time_and_is_killed_by_stop(
    registry: Registry, executor: Executor, domain: Domain, caplog: pytest.LogCaptureFixture
) -> None:
    agent = registry.resolve("java:pyha:weblogic")
    assert isinstance(agent, JavaAgent)
    params = _validated(registry, domain.params())
    assert executor.run(agent, "wls", "start", params, timeout=60).ok
    (pid,) = _server_pids(domain.home)

    os.kill(pid, signal.SIGSTOP)  # a paused JVM: connections open, nothing answers
    try:
        paused = executor.run(agent, "wls", "monitor", params, timeout=3)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert paused.code == OcfCode.ERR_GENERIC
    assert "did not answer within" in paused.message
    assert executor.run(agent, "wls", "monitor", params).ok

    domain.fault("hang")
    result = executor.run(agent, "wls", "monitor", params, timeout=3)
    assert result.code == OcfCode.ERR_GENERIC  # the plugin's answer, not a timeout of the call
    assert "did not answer within" in result.message
    assert agent.runtime.host_restarted == 0  # the host was never killed for a stuck call

    with caplog.at_level(logging.INFO, logger="pyha.resource.wls"):
        assert executor.run(agent, "wls", "stop", params, timeout=10).ok
    text = "\n".join(_messages(caplog))
    assert "graceful shutdown of WebLogic server AdminServer" in text
    assert f"sending SIGTERM to pid {pid}" in text
    assert f"(pid {pid}) did not stop in time; killing it" in text
    assert _server_pids(domain.home) == []
    assert executor.run(agent, "wls", "monitor", params).code == OcfCode.NOT_RUNNING


@pytest.mark.slow
def test_a_failed_server_fails_monitor_and_start(
    registry: Registry, executor: Executor, domain: Domain
) -> None:
    agent = registry.resolve("java:pyha:weblogic")
    params = _validated(registry, domain.params())
    assert executor.run(agent, "wls", "start", params, timeout=60).ok
    (pid,) = _server_pids(domain.home)

    domain.fault("failed")
    result = executor.run(agent, "wls", "monitor", params)
    assert result.code == OcfCode.ERR_GENERIC
    assert "State is FAILED, not RUNNING" in result.message
    assert "HEALTH_FAILED" in result.message
    again = executor.run(agent, "wls", "start", params)  # no second server is launched
    assert again.code == OcfCode.ERR_GENERIC
    assert "failed to start: State is FAILED" in again.message
    assert _server_pids(domain.home) == [pid]
    assert executor.run(agent, "wls", "stop", params, timeout=30).ok
    assert _server_pids(domain.home) == []

    # A server that boots into FAILED fails its start.
    failed = executor.run(agent, "wls", "start", params, timeout=60)
    assert failed.code == OcfCode.ERR_GENERIC
    assert "failed to start: State is FAILED" in failed.message
    assert executor.run(agent, "wls", "stop", params, timeout=30).ok


@pytest.mark.slow
def test_stop_escalates_to_force_shutdown(
    registry: Registry, executor: Executor, domain: Domain, caplog: pytest.LogCaptureFixture
) -> None:
    agent = registry.resolve("java:pyha:weblogic")
    params = _validated(registry, domain.params(ignore_sessions=True))
    assert executor.run(agent, "wls", "start", params, timeout=60).ok
    (pid,) = _server_pids(domain.home)
    domain.fault("ignore-shutdown")
    with caplog.at_level(logging.INFO, logger="pyha.resource.wls"):
        assert executor.run(agent, "wls", "stop", params, timeout=8).ok
    text = "\n".join(_messages(caplog))
    assert "invoked shutdown(" in text and ", true) on com.bea:Name=AdminServer" in text
    assert "invoked forceShutdown() on com.bea:Name=AdminServer,Type=ServerRuntime" in text
    assert f"(pid {pid}) force shut down" in text
    assert "ignoring the graceful shutdown (emulator fault: ignore-shutdown)" in domain.out()
    assert "BEA-000365 Server state changed to FORCE_SHUTTING_DOWN." in domain.out()
    assert _server_pids(domain.home) == []


@pytest.mark.slow
def test_a_managed_server_starts_through_start_managed_weblogic(
    registry: Registry, executor: Executor, domain: Domain, caplog: pytest.LogCaptureFixture
) -> None:
    agent = registry.resolve("java:pyha:weblogic")
    params = _validated(
        registry, domain.params(server_name=MANAGED, admin_url="t3://127.0.0.1:7001")
    )
    with caplog.at_level(logging.INFO, logger="pyha.resource.wls"):
        assert executor.run(agent, "wls", "start", params, timeout=60).ok
    script = domain.home / "bin" / "startManagedWebLogic.sh"
    assert any(
        m.startswith(f"launched {script} for WebLogic server {MANAGED}") for m in _messages(caplog)
    )
    assert len(_server_pids(domain.home, MANAGED)) == 1
    assert _server_pids(domain.home) == []  # the Administration Server was not started
    out = (domain.home / "servers" / MANAGED / "logs" / f"{MANAGED}.out").read_text()
    assert f"Starting the WebLogic EMULATOR: server {MANAGED}" in out
    assert executor.run(agent, "wls", "monitor", params).ok
    assert executor.run(agent, "wls", "stop", params, timeout=30).ok
    assert _server_pids(domain.home, MANAGED) == []
