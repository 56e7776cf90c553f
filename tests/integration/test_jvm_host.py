"""The JVM host as a real process: builds, listing, calls, deadlines, kills and restarts."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pyha.errors import PluginError
from pyha.jvm.build import JavaDescriptor, java_home, plugin_jar, spi_jar
from pyha.jvm.channel import read_frame, write_frame
from pyha.jvm.supervisor import JvmHost
from pyha.resources.java import JavaRuntime
from pyha.testing.waiting import eventually

JDK = java_home()
needs_jdk = pytest.mark.skipif(
    not (JDK / "bin" / "javac").is_file(), reason=f"no javac in {JDK} (openjdk-17-jdk-headless)"
)
pytestmark = needs_jdk

PROBE = """
package testplugins;

import io.pyha.spi.*;
import java.util.*;

/** A plugin whose behaviour the parameter "mode" picks. */
public class Probe implements ResourcePlugin {
    public MetaData metaData() {
        return MetaData.builder("probe").provider("test").description("a plugin for tests")
            .parameter(new Parameter("mode", ParameterType.SELECT, false, "code", "what to do",
                false, List.of("code", "sleep", "hang", "throw", "context", "cancel")))
            .parameter(Parameter.optional("code", ParameterType.INTEGER, "0", "the code"))
            .parameter(Parameter.optional("millis", ParameterType.INTEGER, "0", "sleep time"))
            .parameter(
                Parameter.optional("secret", ParameterType.STRING, "s3cr3t", "a password")
                    .asSecret())
            .operation("start", 5000).operation("stop", 5000).operation("monitor", 5000, 10000)
            .operation("promote", 5000).promotable(true)
            .build();
    }

    public List<String> validate(Map<String, String> p) {
        return "99".equals(p.get("code")) ? List.of("code: 99 is refused") : List.of();
    }

    public int start(PluginContext c) { return behave(c); }
    public int stop(PluginContext c) { return behave(c); }
    public int monitor(PluginContext c) { return behave(c); }

    private int behave(PluginContext c) {
        int code = Integer.parseInt(c.parameter("code", "0"));
        String mode = c.parameter("mode", "code");
        c.log().info(c.operation() + " " + c.resourceName() + " mode=" + mode);
        switch (mode) {
            case "sleep":
                try {
                    Thread.sleep(Long.parseLong(c.parameter("millis", "0")));
                } catch (InterruptedException e) {
                    c.log().warning("interrupted");
                    return 1;
                }
                return code;
            case "hang":
                while (true) {
                    try {
                        Thread.sleep(60_000);
                    } catch (InterruptedException e) {
                        c.log().warning("interrupted; hanging on");
                    }
                }
            case "throw":
                throw new IllegalStateException("boom from " + c.resourceName());
            case "context":
                c.log().info("remaining=" + c.remainingMillis()
                    + " until_deadline=" + (c.deadlineMillis() - System.currentTimeMillis())
                    + " interval=" + c.intervalMillis() + " node=" + c.node()
                    + " state=" + c.stateDir()
                    + " directory=" + c.directory() + " cancelled=" + c.isCancelled()
                    + " params=" + new TreeMap<>(c.parameters()));
                return code;
            case "cancel":
                while (!c.isCancelled()) {
                    try {
                        Thread.sleep(10);
                    } catch (InterruptedException e) {
                        c.log().info("interrupted");
                    }
                }
                c.log().warning("cancelled");
                return code;
            default:
                return code;
        }
    }
}
"""

BROKEN = """
package testplugins;

import io.pyha.spi.*;

public class Broken implements ResourcePlugin {
    public Broken() { throw new IllegalStateException("cannot construct"); }
    public MetaData metaData() { return null; }
    public int start(PluginContext c) { return 0; }
    public int stop(PluginContext c) { return 0; }
    public int monitor(PluginContext c) { return 7; }
}
"""

SERVICES = "testplugins.Probe\ntestplugins.Broken\ntestplugins.Missing\n"


@dataclass(frozen=True)
class Jars:
    """The test plugin jar, built once per session into a cache shared by the JVM tests."""

    cache: Path
    spi: Path
    probe: Path
    folder: Path


def write_probe_folder(folder: Path, name: str = "probe", provider: str = "test") -> Path:
    """A Java plugin folder with the Probe and Broken plugins; its path."""
    sources = folder / "src" / "testplugins"
    sources.mkdir(parents=True)
    (sources / "Probe.java").write_text(PROBE)
    (sources / "Broken.java").write_text(BROKEN)
    services = folder / "resources" / "META-INF" / "services"
    services.mkdir(parents=True)
    (services / "io.pyha.spi.ResourcePlugin").write_text(SERVICES)
    (folder / "plugin.toml").write_text(
        f'name = "{name}"\nprovider = "{provider}"\nlanguage = "java"\n'
        'description = "test plugins"\n'
    )
    return folder


def build_probe(tmp_path_factory: pytest.TempPathFactory) -> Jars:
    """Build the SPI and the probe folder into the session's shared Java cache."""
    cache = tmp_path_factory.getbasetemp() / "pyha-java-cache"
    cache.mkdir(exist_ok=True)
    folder = tmp_path_factory.getbasetemp() / "pyha-java-probe"
    if not folder.exists():
        write_probe_folder(folder)
    descriptor = JavaDescriptor.read(folder)
    assert descriptor is not None
    return Jars(cache, spi_jar(cache=cache), plugin_jar(descriptor, cache=cache), folder)


@pytest.fixture(scope="session")
def jars(tmp_path_factory: pytest.TempPathFactory) -> Jars:
    return build_probe(tmp_path_factory)


def _host(jars: Jars, run_dir: Path, grace: float = 0.5) -> JvmHost:
    return JvmHost(lambda: (jars.spi, [jars.probe]), java_home=JDK, run_dir=run_dir, grace=grace)


@pytest.fixture
def host(jars: Jars, tmp_path: Path) -> Iterator[JvmHost]:
    """A host of its own, for tests that kill or hang it."""
    started = _host(jars, tmp_path / "state")
    yield started
    started.close()


@pytest.fixture(scope="module")
def shared(jars: Jars, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JvmHost]:
    """One host for the tests that leave it healthy."""
    started = _host(jars, tmp_path_factory.mktemp("shared-state"))
    yield started
    started.close()


def _invoke(
    host: JvmHost,
    *,
    timeout: float = 5.0,
    logs: list[dict[str, Any]] | None = None,
    cancelled: threading.Event | None = None,
    operation: str = "start",
    plugin: str = "java:test:probe",
    **params: str,
) -> Any:
    request = {
        "op": "invoke",
        "plugin": plugin,
        "operation": operation,
        "resource": "r1",
        "node": "n1",
        "params": params,
        "interval_ms": 0,
        "state_dir": "/srv/pyha",
    }
    sink = logs.append if logs is not None else None
    return host.call(request, deadline=time.monotonic() + timeout, on_log=sink, cancelled=cancelled)


def _gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie counts: nothing runs any more)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return text[text.rindex(")") + 2] in "ZX"


def _wait_until(check: Callable[[], bool], limit: float = 10.0) -> bool:
    return eventually(check, limit, step=0.05)


def _wait_gone(pid: int, limit: float = 10.0) -> bool:
    return _wait_until(lambda: _gone(pid), limit)


# ---------------------------------------------------------------- building and listing


def test_a_jar_is_rebuilt_only_when_its_sources_change(tmp_path: Path, jars: Jars) -> None:
    folder = tmp_path / "tiny"
    (folder / "src" / "t").mkdir(parents=True)
    source = folder / "src" / "t" / "Tiny.java"
    source.write_text("package t; public class Tiny {}\n")
    (folder / "plugin.toml").write_text('name = "tiny"\nlanguage = "java"\nclass = "t.Tiny"\n')
    descriptor = JavaDescriptor.read(folder)
    assert descriptor is not None
    first = plugin_jar(descriptor, cache=jars.cache)
    built = first.stat().st_mtime_ns
    assert plugin_jar(descriptor, cache=jars.cache) == first
    assert first.stat().st_mtime_ns == built
    source.write_text("package t; public class Tiny { int broken }\n")
    with pytest.raises(PluginError) as caught:
        plugin_jar(descriptor, cache=jars.cache)
    assert caught.value.operation == "build"
    assert "javac failed" in caught.value.reason
    assert "Tiny.java:1" in caught.value.reason
    source.write_text("package t; public class Tiny { int fixed; }\n")
    second = plugin_jar(descriptor, cache=jars.cache)
    assert second != first
    assert first.is_file()  # a running host may still read the older jar


def test_listing_a_jar_names_its_plugins_and_its_broken_providers(jars: Jars) -> None:
    listing = JavaRuntime(cache=jars.cache).listing(jars.probe)
    (plugin,) = listing["plugins"]
    assert plugin["type"] == "java:test:probe"
    assert plugin["class"] == "testplugins.Probe"
    assert plugin["meta"]["operations"][0] == {"name": "start", "timeout": 5.0, "interval": 0.0}
    reasons = " | ".join(e["reason"] for e in listing["errors"])
    assert "cannot construct" in reasons
    assert "testplugins.Missing not found" in reasons


def test_a_cached_listing_needs_no_jvm(jars: Jars) -> None:
    JavaRuntime(cache=jars.cache).listing(jars.probe)
    offline = JavaRuntime(cache=jars.cache, python="/nonexistent/python")
    assert offline.listing(jars.probe)["plugins"][0]["type"] == "java:test:probe"


# ---------------------------------------------------------------- calls


def test_the_socket_is_private_to_our_user(shared: JvmHost) -> None:
    assert shared.call({"op": "ping"}, deadline=time.monotonic() + 5).status == "done"
    assert shared.run_dir is not None
    sockets = list((shared.run_dir / "jvm").glob("host-*.sock"))
    assert len(sockets) == 1
    assert stat.S_IMODE(sockets[0].stat().st_mode) == 0o600
    assert stat.S_IMODE((shared.run_dir / "jvm").stat().st_mode) == 0o700


def test_an_invoke_returns_the_plugins_code_and_log_lines(shared: JvmHost) -> None:
    logs: list[dict[str, Any]] = []
    reply = _invoke(shared, logs=logs, code="3")
    assert reply.status == "done"
    assert reply.body["code"] == 3
    assert logs == [{"level": "info", "message": "start r1 mode=code", "resource": "r1"}]


def test_the_plugin_sees_its_context(shared: JvmHost) -> None:
    logs: list[dict[str, Any]] = []
    reply = _invoke(shared, timeout=4.0, logs=logs, mode="context", code="0", secret="pw")
    assert reply.body["code"] == 0
    line = logs[-1]["message"]
    remaining = int(line.split("remaining=")[1].split()[0])
    until = int(line.split("until_deadline=")[1].split()[0])
    assert 0 < remaining <= 4000
    assert 0 < until <= 4000
    assert "interval=0 node=n1 state=/srv/pyha directory=null cancelled=false" in line
    assert "params={code=0, mode=context, secret=pw}" in line


def test_a_java_exception_is_the_calls_error_with_its_trace_logged(shared: JvmHost) -> None:
    logs: list[dict[str, Any]] = []
    reply = _invoke(shared, logs=logs, mode="throw")
    assert reply.body["ok"] is False
    assert reply.body["kind"] == "exception"
    assert reply.body["error"] == "java.lang.IllegalStateException: boom from r1"
    trace = logs[-1]
    assert trace["level"] == "debug"
    assert "testplugins.Probe.behave(Probe.java:" in trace["message"]


def test_promote_left_to_the_default_answers_unimplemented(shared: JvmHost) -> None:
    assert _invoke(shared, operation="promote").body["code"] == 3


def test_validate_returns_the_plugins_problems(shared: JvmHost) -> None:
    reply = shared.call(
        {"op": "validate", "plugin": "java:test:probe", "params": {"code": "99"}},
        deadline=time.monotonic() + 5,
    )
    assert reply.body["problems"] == ["code: 99 is refused"]


def test_an_unknown_plugin_or_request(shared: JvmHost) -> None:
    assert _invoke(shared, plugin="java:test:nope").body["kind"] == "no-plugin"
    reply = shared.call({"op": "invoke", "plugin": 3}, deadline=time.monotonic() + 5)
    assert reply.body == {
        "id": reply.body["id"],
        "ok": False,
        "kind": "bad-request",
        "error": "'plugin' must be a str",
    }
    reply = shared.call({"op": "fly"}, deadline=time.monotonic() + 5)
    assert reply.body["error"] == "unknown op 'fly'"


def test_a_wrong_token_is_refused(shared: JvmHost) -> None:
    import socket

    assert shared.run_dir is not None
    (path,) = (shared.run_dir / "jvm").glob("host-*.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        write_frame(sock, {"id": 0, "op": "hello", "token": "guess"})
        assert read_frame(sock) == {"id": 0, "ok": False, "error": "not authenticated"}
        assert read_frame(sock) is None  # the host hung up
    assert _invoke(shared).status == "done"


# ---------------------------------------------------------------- deadlines and deaths


def test_a_hung_call_kills_the_host_and_the_next_call_restarts_it(host: JvmHost) -> None:
    restarted: list[int] = []
    host.on_restart(restarted.append)
    assert _invoke(host).status == "done"
    old = host.pid
    assert old is not None
    reply = _invoke(host, timeout=1.0, mode="hang")
    assert reply.status == "timeout"
    assert reply.message.startswith("the JVM host was killed: a call did not return within 0.5s")
    assert _gone(old)
    assert host.pid is None
    assert _invoke(host, code="7").body["code"] == 7
    assert host.pid not in (None, old)
    assert (host.restarts, restarted) == (1, [2])


def test_a_call_that_heeds_its_cancel_flag_keeps_the_host(host: JvmHost) -> None:
    logs: list[dict[str, Any]] = []
    assert _invoke(host).status == "done"
    pid = host.pid
    reply = _invoke(host, timeout=0.5, logs=logs, mode="cancel", code="4")
    assert reply.status == "timeout"
    assert reply.body["code"] == 4  # the late answer
    assert logs[-1]["message"] == "cancelled"
    assert host.pid == pid
    assert host.restarts == 0


def test_the_server_can_cancel_a_call(host: JvmHost) -> None:
    cancelled = threading.Event()
    logs: list[dict[str, Any]] = []

    def cancel_once_running(line: dict[str, Any]) -> None:
        logs.append(line)
        cancelled.set()

    request = {
        "op": "invoke",
        "plugin": "java:test:probe",
        "operation": "start",
        "resource": "r1",
        "params": {"mode": "sleep", "millis": "30000"},
    }
    reply = host.call(
        request, deadline=time.monotonic() + 20, cancelled=cancelled, on_log=cancel_once_running
    )
    assert reply.status == "cancelled"
    assert reply.body["code"] == 1  # the plugin saw the interrupt and returned
    assert [line["message"] for line in logs] == ["start r1 mode=sleep", "interrupted"]


def test_a_host_killed_mid_operation_is_restarted_on_the_next_call(host: JvmHost) -> None:
    running = threading.Event()
    replies: list[Any] = []
    assert _invoke(host).status == "done"
    pid = host.pid
    assert pid is not None

    def call() -> None:
        request = {
            "op": "invoke",
            "plugin": "java:test:probe",
            "operation": "start",
            "resource": "r1",
            "params": {"mode": "sleep", "millis": "30000"},
        }
        replies.append(
            host.call(request, deadline=time.monotonic() + 20, on_log=lambda line: running.set())
        )

    caller = threading.Thread(target=call)
    caller.start()
    assert running.wait(10)
    os.kill(pid, signal.SIGKILL)
    caller.join(10)
    assert not caller.is_alive()
    (reply,) = replies
    assert reply.status == "died"
    assert "killed by SIGKILL" in reply.message
    assert _invoke(host, code="5").body["code"] == 5
    assert host.restarts == 1


def test_a_host_that_died_while_idle_is_replaced_by_the_next_call(host: JvmHost) -> None:
    pid = host.start()
    os.kill(pid, signal.SIGKILL)
    # Not just the main thread gone: the whole process exited (the server could reap it).
    assert _wait_until(lambda: host.pid is None)
    reply = _invoke(host, code="6")
    assert reply.status == "done", reply
    assert reply.body["code"] == 6
    assert host.restarts == 1


def test_close_stops_the_host_and_removes_its_socket(host: JvmHost) -> None:
    pid = host.start()
    assert host.run_dir is not None
    assert list((host.run_dir / "jvm").glob("*.sock"))
    host.close()
    assert _wait_gone(pid)
    assert not list((host.run_dir / "jvm").glob("*.sock"))


SERVER = """
import sys, time
from pathlib import Path
from pyha.jvm.supervisor import JvmHost
host = JvmHost(lambda: (Path(sys.argv[1]), [Path(sys.argv[2])]), java_home=Path(sys.argv[3]),
               run_dir=Path(sys.argv[4]))
print(host.start(), flush=True)
time.sleep(60)
"""


def test_the_host_exits_when_its_server_dies(jars: Jars, tmp_path: Path) -> None:
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(SERVER),
            str(jars.spi),
            str(jars.probe),
            str(JDK),
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        host_pid = int(server.stdout.readline())
        assert not _gone(host_pid)
        server.kill()
        server.wait(10)
        assert _wait_gone(host_pid)
    finally:
        server.kill()
        server.wait(10)
        server.stdout.close()  # type: ignore[union-attr]
