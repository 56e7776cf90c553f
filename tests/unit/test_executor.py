"""The executor with a fake clock, in the calling thread: results, severities, deadlines."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from pyha.errors import Severity
from pyha.executor.history import OperationHistory
from pyha.executor.runner import Executor
from pyha.resources.agent import Agent, Origin
from pyha.resources.spi import (
    CallStatus,
    MetaData,
    OcfCode,
    OperationContext,
    OperationSpec,
    Outcome,
    ParameterSpec,
    TypeName,
)
from pyha.testing import FakeClock

Behaviour = Callable[[OperationContext], object]


class ScriptedAgent(Agent):
    """Runs a function per operation; an int answer becomes a DONE outcome, anything else
    is handed to the executor unchanged so its checks of the interface are exercised."""

    def __init__(
        self,
        behaviours: Mapping[str, Behaviour] | None = None,
        *,
        timeouts: Mapping[str, float] | None = None,
        enforces_deadline: bool = False,
    ) -> None:
        timeouts = timeouts or {}
        operations = tuple(
            OperationSpec(name=op, timeout=timeouts.get(op, 20.0))
            for op in ("start", "stop", "monitor")
        )
        meta = MetaData(
            name="scripted",
            parameters=(ParameterSpec(name="password", secret=True),),
            operations=operations,
        )
        super().__init__(TypeName.parse("python:test:scripted"), Origin("bundled", "tests"), meta)
        self.behaviours = dict(behaviours or {})
        self.calls: list[OperationContext] = []
        self.threads: list[threading.Thread] = []
        self._enforces = enforces_deadline

    @property
    def enforces_deadline(self) -> bool:
        return self._enforces

    def invoke(self, ctx: OperationContext) -> Outcome:
        self.calls.append(ctx)
        self.threads.append(threading.current_thread())
        answer = self.behaviours.get(ctx.operation, lambda _: 0)(ctx)
        if isinstance(answer, int) and not isinstance(answer, bool):
            return Outcome(answer)
        return answer  # type: ignore[return-value]


def answer(code: object) -> Behaviour:
    return lambda _ctx: code


def hang(ctx: OperationContext) -> int:
    # On a fake clock, sleeping jumps to the deadline: the call overran.
    ctx.sleep(3600)
    return 0


def crash(ctx: OperationContext) -> int:
    raise RuntimeError("boom")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def executor(clock: FakeClock, tmp_path: Path) -> Executor:
    return Executor(node="n1", clock=clock, state_dir=tmp_path, inline=True)


def test_success_fills_the_result_and_the_context(
    executor: Executor, clock: FakeClock, tmp_path: Path
) -> None:
    agent = ScriptedAgent()
    started = clock.wall()
    result = executor.run(
        agent, "web1", "start", {"port": 80}, timeout=30.0, meta={"group": "g"}
    )
    assert (result.resource, result.operation, result.node) == ("web1", "start", "n1")
    assert (result.status, result.code, result.ok) == (CallStatus.DONE, 0, True)
    assert result.started == started
    [ctx] = agent.calls
    assert ctx.deadline == clock.now() + 30.0
    assert (ctx.node, ctx.state_dir, ctx.params) == ("n1", tmp_path, {"port": 80})
    assert ctx.log.name == "pyha.resource.web1"
    assert ctx.meta == {"group": "g"}
    assert ctx.clock is clock


def test_duration_follows_the_clock(executor: Executor) -> None:
    def slow(ctx: OperationContext) -> int:
        ctx.sleep(2.5)
        return 0

    result = executor.run(ScriptedAgent({"start": slow}), "web1", "start", {}, timeout=10.0)
    assert result.status is CallStatus.DONE
    assert result.duration == pytest.approx(2.5)


def test_interval_reaches_the_plugin_and_the_result(executor: Executor) -> None:
    agent = ScriptedAgent()
    result = executor.run(agent, "web1", "monitor", {}, interval=10.0)
    assert agent.calls[0].interval == 10.0
    assert result.interval == 10.0


@pytest.mark.parametrize(
    ("operation", "code", "severity"),
    [
        ("start", OcfCode.ERR_GENERIC, Severity.RETRY_HERE),  # soft
        ("monitor", OcfCode.ERR_GENERIC, Severity.RETRY_HERE),
        ("start", OcfCode.ERR_INSTALLED, Severity.BAN_NODE),  # hard
        ("start", OcfCode.ERR_ARGS, Severity.BAN_NODE),
        ("start", OcfCode.ERR_CONFIGURED, Severity.BAN_EVERYWHERE),  # fatal
        ("stop", OcfCode.ERR_GENERIC, Severity.BAN_NODE),
        ("monitor", OcfCode.NOT_RUNNING, Severity.NONE),
        ("monitor", OcfCode.RUNNING_PROMOTED, Severity.NONE),
    ],
)
def test_codes_and_their_severities(
    executor: Executor, operation: str, code: int, severity: Severity
) -> None:
    agent = ScriptedAgent({operation: answer(int(code))})
    result = executor.run(agent, "web1", operation, {})
    assert (result.status, result.code) == (CallStatus.DONE, code)
    assert result.severity is severity


def test_monitor_not_running_is_a_known_state(executor: Executor) -> None:
    agent = ScriptedAgent({"monitor": answer(int(OcfCode.NOT_RUNNING))})
    result = executor.run(agent, "web1", "monitor", {})
    assert result.ok
    assert result.running is False


def test_an_exception_is_an_error_with_its_message(
    executor: Executor, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="pyha.executor"):
        result = executor.run(ScriptedAgent({"start": crash}), "web1", "start", {})
    assert result.status is CallStatus.ERROR
    assert result.message == "RuntimeError: boom"
    assert result.severity is Severity.RETRY_HERE
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "python:test:scripted start web1: RuntimeError: boom" in record.getMessage()
    assert record.exc_info is not None


@pytest.mark.parametrize("bad", ["0", None, 1.5, True, Outcome("0")])  # type: ignore[arg-type]
def test_an_answer_that_is_not_a_code_is_an_error(executor: Executor, bad: object) -> None:
    result = executor.run(ScriptedAgent({"start": answer(bad)}), "web1", "start", {})
    assert result.status is CallStatus.ERROR
    assert "returned" in result.message
    assert not result.ok


def test_a_hang_that_overruns_is_a_timeout(
    executor: Executor, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="pyha.executor"):
        result = executor.run(ScriptedAgent({"start": hang}), "web1", "start", {}, timeout=5.0)
    assert result.status is CallStatus.TIMEOUT
    assert result.message == "timed out after 5s"
    assert result.severity is Severity.RETRY_HERE
    assert result.duration == pytest.approx(5.0)
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "python:test:scripted start web1: timed out after 5s" in caplog.records[0].getMessage()


def test_a_stop_that_times_out_bans_the_node(executor: Executor) -> None:
    result = executor.run(ScriptedAgent({"stop": hang}), "web1", "stop", {}, timeout=5.0)
    assert result.status is CallStatus.TIMEOUT
    assert result.severity is Severity.BAN_NODE


def test_the_plugin_default_timeout_applies_when_none_is_passed(
    executor: Executor, clock: FakeClock
) -> None:
    agent = ScriptedAgent({"start": hang}, timeouts={"start": 7.0})
    began = clock.now()
    result = executor.run(agent, "web1", "start", {})
    assert agent.calls[0].deadline == began + 7.0
    assert result.message == "timed out after 7s"


def test_a_configured_timeout_wins_over_the_plugin_default(
    executor: Executor, clock: FakeClock
) -> None:
    agent = ScriptedAgent(timeouts={"start": 7.0})
    began = clock.now()
    executor.run(agent, "web1", "start", {}, timeout=60.0)
    assert agent.calls[0].deadline == began + 60.0


def test_an_unsupported_operation_is_not_called(executor: Executor) -> None:
    agent = ScriptedAgent()
    result = executor.run(agent, "web1", "promote", {})
    assert agent.calls == []
    assert (result.status, result.code) == (CallStatus.DONE, OcfCode.ERR_UNIMPLEMENTED)
    assert "does not implement promote" in result.message
    assert executor.history.last("web1") == result


def test_every_result_goes_to_the_history(clock: FakeClock, tmp_path: Path) -> None:
    history = OperationHistory()
    executor = Executor(node="n1", clock=clock, state_dir=tmp_path, inline=True, history=history)
    agent = ScriptedAgent({"monitor": answer(7), "stop": crash})
    results = [
        executor.run(agent, "web1", "start", {}),
        executor.run(agent, "web1", "monitor", {}, interval=10.0),
        executor.run(agent, "web1", "stop", {}),
        executor.run(agent, "db", "start", {}),
    ]
    assert executor.history is history
    assert history.for_resource("web1") == results[:3]
    assert history.all() == results


def test_cancel_all_cancels_the_running_call(executor: Executor) -> None:
    def cancelled_meanwhile(ctx: OperationContext) -> int:
        assert executor.cancel_all() == 1
        return 0 if ctx.cancelled.is_set() else 1

    result = executor.run(ScriptedAgent({"stop": cancelled_meanwhile}), "web1", "stop", {})
    assert result.status is CallStatus.CANCELLED
    assert result.ok  # a cancelled call says nothing about the resource
    assert executor.cancel_all() == 0


def test_a_second_operation_on_the_same_resource_waits_within_its_deadline(
    executor: Executor,
) -> None:
    agent = ScriptedAgent()
    inner = []

    def start(ctx: OperationContext) -> int:
        assert executor.busy("web1")
        inner.append(executor.run(agent, "web1", "monitor", {}, timeout=3.0))
        inner.append(executor.run(agent, "db", "monitor", {}, timeout=3.0))
        return 0

    agent.behaviours["start"] = start
    executor.run(agent, "web1", "start", {}, timeout=60.0)
    assert inner[0].status is CallStatus.TIMEOUT
    assert inner[0].message == "timed out after 3s: another operation on web1 was still running"
    assert [c.resource for c in agent.calls] == ["web1", "db"]  # the waiter never ran
    assert inner[1].ok  # another resource does not wait
    assert not executor.busy("web1")


def test_inline_mode_runs_in_the_calling_thread(executor: Executor) -> None:
    agent = ScriptedAgent()
    executor.run(agent, "web1", "start", {})
    assert agent.threads == [threading.current_thread()]


def test_agents_that_enforce_their_deadline_run_in_the_calling_thread(
    clock: FakeClock, tmp_path: Path
) -> None:
    executor = Executor(node="n1", clock=clock, state_dir=tmp_path)
    timed_out = Outcome(1, CallStatus.TIMEOUT, "timed out after 5s; terminated")
    agent = ScriptedAgent({"start": answer(timed_out)}, enforces_deadline=True)
    result = executor.run(agent, "web1", "start", {})
    assert agent.threads == [threading.current_thread()]
    assert (result.status, result.message) == (CallStatus.TIMEOUT, timed_out.message)


def test_parameters_are_never_logged(
    executor: Executor, caplog: pytest.LogCaptureFixture
) -> None:
    agent = ScriptedAgent({"start": crash, "stop": hang})
    with caplog.at_level(logging.DEBUG):
        executor.run(agent, "web1", "start", {"password": "hunter2-secret"})
        executor.run(agent, "web1", "stop", {"password": "hunter2-secret"})
        executor.run(agent, "web1", "monitor", {"password": "hunter2-secret"})
    assert len(caplog.records) >= 3
    assert "hunter2-secret" not in caplog.text


def test_finished_operations_are_logged_with_their_duration(
    executor: Executor, caplog: pytest.LogCaptureFixture
) -> None:
    def slow(ctx: OperationContext) -> int:
        ctx.sleep(1.5)
        return 0

    with caplog.at_level(logging.DEBUG, logger="pyha.executor"):
        executor.run(ScriptedAgent({"start": slow}), "web1", "start", {})
        executor.run(ScriptedAgent(), "web1", "monitor", {}, interval=10.0)
    start, monitor = caplog.records
    assert start.levelno == logging.INFO
    assert start.getMessage() == "python:test:scripted start web1: success (0) in 1.5s"
    # Recurring monitors that find the resource healthy stay out of the INFO log.
    assert monitor.levelno == logging.DEBUG


def test_a_bare_failure_code_is_explained_by_what_the_plugin_logged(executor: Executor) -> None:
    def complain(ctx: OperationContext) -> int:
        ctx.log.info("trying port 80")
        ctx.log.error("port 80 is taken by another program")
        return 1

    result = executor.run(ScriptedAgent({"start": complain}), "web1", "start", {})
    assert result.message == "port 80 is taken by another program"
    quiet = executor.run(ScriptedAgent({"start": answer(0)}), "web1", "start", {})
    assert quiet.message == ""


def test_a_message_the_plugin_returns_wins_over_its_log(executor: Executor) -> None:
    def explain(ctx: OperationContext) -> Outcome:
        ctx.log.warning("something on the side")
        return Outcome(1, message="the real reason")

    result = executor.run(ScriptedAgent({"start": explain}), "web1", "start", {})
    assert result.message == "the real reason"
