"""The Java adapter without a JVM: parameters, meta data, outcomes, discovery of folders."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyha.errors import PluginError
from pyha.executor.runner import Executor
from pyha.jvm.supervisor import HostReply, HostUnavailable
from pyha.resources.agent import Origin
from pyha.resources.java import (
    JavaAgent,
    JavaRuntime,
    JavaSource,
    discover_java,
    java_parameters,
    java_runtime,
    meta_from_listing,
)
from pyha.resources.registry import Registry
from pyha.resources.spi import CallStatus, MetaData, OcfCode, OperationContext, TypeName
from pyha.testing import FakeClock

META = {
    "name": "probe",
    "description": "a test plugin",
    "parameters": [
        {"name": "code", "type": "integer", "default": "0", "description": "", "options": []},
        {"name": "flag", "type": "boolean", "default": None, "required": False},
        {"name": "words", "type": "list"},
    ],
    "operations": [
        {"name": "start", "timeout": 5.0, "interval": 0.0},
        {"name": "stop", "timeout": 5.0, "interval": 0.0},
        {"name": "monitor", "timeout": 3.0, "interval": 10.0},
    ],
}


class FakeHost:
    """Stands in for JvmHost: records requests and answers with a scripted HostReply."""

    def __init__(self, answer: Callable[[dict[str, Any]], HostReply] | HostReply) -> None:
        self.answer = answer
        self.calls: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []

    def call(self, request: dict[str, Any], **kwargs: Any) -> HostReply:
        self.calls.append({"request": request, **kwargs})
        on_log = kwargs.get("on_log")
        for line in self.logs:
            assert on_log is not None
            on_log(line)
        if isinstance(self.answer, HostReply):
            return self.answer
        return self.answer(request)

    def close(self) -> None:
        """Nothing runs."""


def _agent(host: FakeHost, tmp_path: Path) -> JavaAgent:
    runtime = JavaRuntime(cache=tmp_path / "cache")
    runtime.host = host  # type: ignore[assignment]
    source = JavaSource(Origin("jar", "/x/probe.jar"), path=Path("/x/probe.jar"))
    meta = meta_from_listing("java:test:probe", META)
    return JavaAgent(TypeName.parse("java:test:probe"), source.origin, runtime, source, meta=meta)


def _ctx(operation: str, clock: FakeClock, **params: Any) -> OperationContext:
    return OperationContext(
        resource="r1",
        operation=operation,
        params=params,
        deadline=clock.now() + 5,
        node="n1",
        interval=10.0 if operation == "monitor" else 0.0,
        state_dir=Path("/srv/state"),
        log=logging.getLogger("pyha.resource.r1"),
        clock=clock,
    )


def _done(**body: Any) -> HostReply:
    return HostReply("done", {"id": 1, **body})


# ---------------------------------------------------------------- values


def test_parameters_reach_java_as_text() -> None:
    params = {
        "b": True,
        "f": False,
        "i": 8080,
        "x": 0.5,
        "w": ["-Xmx1g", "a b"],
        "s": "t",
        "n": None,
    }
    assert java_parameters(params) == {
        "b": "true",
        "f": "false",
        "i": "8080",
        "x": "0.5",
        "w": "-Xmx1g 'a b'",
        "s": "t",
    }


def test_listed_meta_data_becomes_pyha_meta_data() -> None:
    meta = meta_from_listing("java:test:probe", META)
    assert isinstance(meta, MetaData)
    assert meta.timeout("start") == 5.0
    assert meta.operation("monitor") is not None
    assert meta.operation("monitor").interval == 10.0  # type: ignore[union-attr]
    coerced, problems = meta.check({"flag": "yes"})
    assert problems == ()
    assert coerced == {"code": 0, "flag": True}


def test_bad_listed_meta_data_names_the_plugin_and_the_field() -> None:
    bad = {**META, "parameters": [{"name": "p", "type": "blob"}]}
    with pytest.raises(PluginError) as caught:
        meta_from_listing("java:test:probe", bad)
    assert caught.value.plugin == "java:test:probe"
    assert "parameters.0.type" in caught.value.reason


def test_an_operation_java_cannot_run_is_refused() -> None:
    bad = {**META, "operations": [{"name": "migrate_to", "timeout": 5.0}]}
    with pytest.raises(PluginError, match="unknown operation 'migrate_to'"):
        meta_from_listing("java:test:probe", bad)


# ---------------------------------------------------------------- invoke


def test_invoke_sends_the_operation_and_returns_the_code(tmp_path: Path) -> None:
    host = FakeHost(_done(ok=True, code=7))
    clock = FakeClock()
    ctx = _ctx("monitor", clock, code=3, flag=True)
    outcome = _agent(host, tmp_path).invoke(ctx)
    assert (outcome.code, outcome.status) == (7, CallStatus.DONE)
    (call,) = host.calls
    assert call["request"] == {
        "op": "invoke",
        "plugin": "java:test:probe",
        "operation": "monitor",
        "resource": "r1",
        "node": "n1",
        "params": {"code": "3", "flag": "true"},
        "interval_ms": 10000,
        "state_dir": "/srv/state",
    }
    assert call["deadline"] == ctx.deadline
    assert call["clock"] is clock
    assert call["cancelled"] is ctx.cancelled
    assert call["run_dir"] == Path("/srv/state")


def test_java_log_lines_go_to_the_resource_logger(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    host = FakeHost(_done(ok=True, code=0))
    host.logs = [
        {"level": "info", "message": "launched", "resource": "r1"},
        {"level": "warning", "message": "slow", "resource": "r1"},
    ]
    with caplog.at_level(logging.DEBUG, logger="pyha.resource.r1"):
        _agent(host, tmp_path).invoke(_ctx("start", FakeClock()))
    lines = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert ("pyha.resource.r1", logging.INFO, "launched") in lines
    assert ("pyha.resource.r1", logging.WARNING, "slow") in lines


@pytest.mark.parametrize(
    ("reply", "code", "status", "message"),
    [
        (
            _done(ok=False, kind="exception", error="java.lang.X: boom"),
            1,
            "error",
            "java.lang.X: boom",
        ),
        (_done(ok=False, kind="no-plugin", error="no plugin"), 5, "not-installed", "no plugin"),
        (_done(ok=True, code=True), 1, "error", "the JVM host gave no result"),
        (HostReply("died", message="pipe"), 1, "error", "the JVM host died during start: pipe"),
        (
            HostReply("timeout", message="the JVM host was killed: hung"),
            1,
            "timeout",
            "timed out after 5s; the JVM host was killed: hung",
        ),
        (
            HostReply("timeout", {"id": 1, "ok": True, "code": 0}),
            1,
            "timeout",
            "timed out after 5s; cancelled, returned within the grace period",
        ),
        (HostReply("cancelled", message="killed"), 1, "cancelled", "cancelled; killed"),
    ],
)
def test_how_each_reply_becomes_an_outcome(
    tmp_path: Path, reply: HostReply, code: int, status: str, message: str
) -> None:
    outcome = _agent(FakeHost(reply), tmp_path).invoke(_ctx("start", FakeClock()))
    assert (outcome.code, outcome.status.value, outcome.message) == (code, status, message)


@pytest.mark.parametrize(("timed_out", "status"), [(True, "timeout"), (False, "not-installed")])
def test_a_host_that_cannot_start(tmp_path: Path, timed_out: bool, status: str) -> None:
    def refuse(request: dict[str, Any]) -> HostReply:
        raise HostUnavailable("no JVM", timed_out=timed_out)

    outcome = _agent(FakeHost(refuse), tmp_path).invoke(_ctx("start", FakeClock()))
    assert (outcome.status.value, outcome.message) == (status, "no JVM")


def test_an_operation_not_in_the_meta_data_never_reaches_the_host(tmp_path: Path) -> None:
    host = FakeHost(_done(ok=True, code=0))
    outcome = _agent(host, tmp_path).invoke(_ctx("promote", FakeClock()))
    assert outcome.code == OcfCode.ERR_UNIMPLEMENTED
    assert host.calls == []


def test_validate_asks_the_plugin_after_the_type_checks(tmp_path: Path) -> None:
    host = FakeHost(_done(ok=True, problems=["code: 99 is refused"]))
    agent = _agent(host, tmp_path)
    assert agent.validate({"code": "x"})[1] == ("code: must be an integer, got 'x'",)
    assert host.calls == []
    assert agent.validate({"code": 99})[1] == ("code: 99 is refused",)
    assert host.calls[0]["request"] == {
        "op": "validate",
        "plugin": "java:test:probe",
        "params": {"code": "99"},
    }
    outcome = agent.invoke(_ctx("validate", FakeClock(), code=99))
    assert (outcome.code, outcome.message) == (OcfCode.ERR_CONFIGURED, "code: 99 is refused")


def test_a_failed_validate_call_is_a_problem(tmp_path: Path) -> None:
    agent = _agent(FakeHost(HostReply("timeout", message="the JVM host was killed")), tmp_path)
    assert agent.validate({})[1] == ("java:test:probe.validate failed: the JVM host was killed",)


def test_the_executor_keeps_a_java_warning_as_the_message(tmp_path: Path) -> None:
    host = FakeHost(_done(ok=True, code=1))
    host.logs = [{"level": "warning", "message": "JMX refused", "resource": "web"}]
    executor = Executor(node="n1", clock=FakeClock(), state_dir=tmp_path)
    result = executor.run(_agent(host, tmp_path), "web", "monitor", {}, interval=10.0)
    assert (result.code, result.message) == (1, "JMX refused")
    assert host.calls[0]["deadline"] == pytest.approx(1000.0 + 3.0)  # the plugin's default


def test_the_executor_lets_a_java_agent_keep_its_own_deadline(tmp_path: Path) -> None:
    calling = threading.current_thread()
    threads: list[threading.Thread] = []

    def answer(request: dict[str, Any]) -> HostReply:
        threads.append(threading.current_thread())
        return HostReply("timeout", message="the JVM host was killed: hung")

    executor = Executor(node="n1", clock=FakeClock(), state_dir=tmp_path)
    result = executor.run(_agent(FakeHost(answer), tmp_path), "web", "start", {})
    assert threads == [calling]
    assert result.status is CallStatus.TIMEOUT
    assert result.message == "timed out after 5s; the JVM host was killed: hung"


# ---------------------------------------------------------------- discovery


def _java_folder(root: Path, name: str, toml: str | None = None) -> Path:
    folder = root / name
    (folder / "src" / "t").mkdir(parents=True)
    (folder / "src" / "t" / "X.java").write_text("package t; public class X {}\n")
    if toml is None:
        toml = f'name = "{name}"\nlanguage = "java"\nclass = "t.X"\ndescription = "d {name}"\n'
    (folder / "plugin.toml").write_text(toml)
    return folder


def test_java_folders_register_without_building(tmp_path: Path) -> None:
    bundled = tmp_path / "plugins"
    _java_folder(bundled, "alpha")
    (bundled / "py").mkdir()
    (bundled / "py" / "plugin.toml").write_text('name = "py"\nclass = "P"\n')
    runtime = JavaRuntime(cache=tmp_path / "cache")
    agents, rejected = discover_java(bundled, [], runtime=runtime)
    assert rejected == []
    (agent,) = agents
    assert str(agent.name) == "java:pyha:alpha"
    assert agent.origin == Origin("jar", str(bundled / "alpha"))
    assert agent.description == "d alpha"
    assert agent.enforces_deadline
    assert java_runtime(agents) is runtime
    assert not (tmp_path / "cache").exists()


def test_bad_java_folders_and_paths_are_rejected_with_reasons(tmp_path: Path) -> None:
    path = tmp_path / "java"
    _java_folder(path, "typo", 'name = "typo"\nlanguage = "java"\nclas = "t.X"\n')
    _java_folder(path, "noclass", 'name = "noclass"\nlanguage = "java"\nclass = "1bad"\n')
    agents, rejected = discover_java(None, [path, tmp_path / "missing.jar"])
    assert agents == []
    reasons = {name: reason for name, _, reason in rejected}
    assert reasons["java:local:typo"] == "plugin.toml: unknown key(s) clas"
    assert "class '1bad' is not a valid class" in reasons["java:local:noclass"]
    assert reasons[str(tmp_path / "missing.jar")] == "not a jar nor a folder"


def test_the_registry_finds_java_folders_on_the_java_plugin_path(tmp_path: Path) -> None:
    folder = _java_folder(tmp_path, "widget")
    registry = Registry.discover(
        entry_points=False,
        bundled=False,
        ocf_root=tmp_path / "no-ocf",
        java_plugin_path=[folder],
    )
    assert registry.errors == []
    assert registry.resolve("widget").origin.kind == "jar"
    assert str(registry.resolve("widget").name) == "java:local:widget"


def test_the_java_plugin_path_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _java_folder(tmp_path / "java", "gadget")
    monkeypatch.setenv("PYHA_JAVA_PLUGIN_PATH", str(tmp_path / "java"))
    registry = Registry.discover(entry_points=False, bundled=False, ocf_root=tmp_path / "none")
    assert "java:local:gadget" in registry


def test_the_bundled_tomcat_plugin_is_a_java_type() -> None:
    registry = Registry.discover(entry_points=False, ocf_root="/nonexistent/pyha-test-ocf")
    agent = registry.resolve("java:pyha:tomcat")
    assert isinstance(agent, JavaAgent)
    assert agent.origin.kind == "jar"
    assert "Tomcat" in agent.description
