"""The executor on the real clock with plugins in worker threads: abandon, wait, cancel."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from pyha.clock import MonotonicClock
from pyha.executor.runner import Executor
from pyha.resources.agent import Agent, Origin
from pyha.resources.spi import (
    CallStatus,
    MetaData,
    OperationContext,
    OperationResult,
    OperationSpec,
    Outcome,
    TypeName,
)

LONG = 5.0
"""How long a stubborn plugin blocks at most, so a failing test still ends."""
JOIN = 3.0


class ThreadedAgent(Agent):
    """An in-process agent whose operations run the given functions in the executor's
    worker threads; it remembers the threads so the test can join them."""

    def __init__(self, behaviours: Mapping[str, Callable[[OperationContext], int]]) -> None:
        meta = MetaData(
            name="threaded",
            operations=tuple(OperationSpec(name=op) for op in ("start", "stop", "monitor")),
        )
        super().__init__(TypeName.parse("python:test:threaded"), Origin("bundled", "tests"), meta)
        self.behaviours = dict(behaviours)
        self.threads: list[threading.Thread] = []
        self.entered = threading.Event()
        self.events: list[str] = []

    def invoke(self, ctx: OperationContext) -> Outcome:
        self.threads.append(threading.current_thread())
        self.events.append(f"{ctx.operation} begins")
        self.entered.set()
        code = self.behaviours.get(ctx.operation, lambda _: 0)(ctx)
        self.events.append(f"{ctx.operation} ends")
        return Outcome(code)


class Harness:
    """An executor on the real clock, plus the events and threads a test must clean up."""

    def __init__(self, state_dir: Path) -> None:
        self.executor = Executor(
            node="n1", clock=MonotonicClock(), state_dir=state_dir, abandon_grace=0.2
        )
        self.release = threading.Event()
        self.agents: list[ThreadedAgent] = []
        self.callers: list[threading.Thread] = []

    def agent(self, **behaviours: Callable[[OperationContext], int]) -> ThreadedAgent:
        agent = ThreadedAgent(behaviours)
        self.agents.append(agent)
        return agent

    def stubborn(self, ctx: OperationContext) -> int:
        """Ignores its deadline and the cancel flag until the test releases it."""
        self.release.wait(LONG)
        return 0

    def in_background(self, call: Callable[[], OperationResult]) -> list[OperationResult]:
        """Run `call` in a thread of its own; its result lands in the returned list."""
        results: list[OperationResult] = []
        thread = threading.Thread(target=lambda: results.append(call()), daemon=True)
        self.callers.append(thread)
        thread.start()
        return results

    def close(self) -> None:
        self.release.set()
        self.executor.cancel_all()
        for thread in self.callers + [t for a in self.agents for t in a.threads]:
            if thread is not threading.current_thread():
                thread.join(JOIN)


def cooperative(ctx: OperationContext) -> int:
    """Waits on the cancel flag, as a well-behaved plugin does."""
    return 1 if ctx.cancelled.wait(LONG) else 0


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.close()


def test_a_plain_call_runs_in_a_worker_thread(harness: Harness) -> None:
    agent = harness.agent()
    result = harness.executor.run(agent, "web1", "start", {}, timeout=2.0)
    assert (result.status, result.code) == (CallStatus.DONE, 0)
    assert agent.threads[0] is not threading.current_thread()
    assert agent.threads[0].daemon


def test_an_exception_in_the_worker_is_an_error(harness: Harness) -> None:
    def crash(ctx: OperationContext) -> int:
        raise ValueError("bad address")

    result = harness.executor.run(harness.agent(start=crash), "web1", "start", {}, timeout=2.0)
    assert result.status is CallStatus.ERROR
    assert result.message == "ValueError: bad address"


def test_a_plugin_that_ignores_its_deadline_is_abandoned(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    agent = harness.agent(start=harness.stubborn)
    with caplog.at_level(logging.WARNING, logger="pyha.executor"):
        result = harness.executor.run(agent, "web1", "start", {}, timeout=0.3)
    assert result.status is CallStatus.TIMEOUT
    assert result.message == "timed out after 300ms; cancelled, abandoned after 200ms grace"
    assert any(
        r.levelno == logging.WARNING
        and "python:test:threaded start web1: timed out after 300ms" in r.getMessage()
        and "abandoned" in r.getMessage()
        for r in caplog.records
    )
    assert agent.events == ["start begins"]
    # The plugin may still act on the resource: it stays busy until the call returns.
    assert harness.executor.busy("web1")
    harness.release.set()
    agent.threads[0].join(JOIN)
    assert not harness.executor.busy("web1")


def test_a_plugin_that_heeds_the_cancel_flag_times_out_without_being_abandoned(
    harness: Harness,
) -> None:
    agent = harness.agent(monitor=cooperative)
    result = harness.executor.run(agent, "web1", "monitor", {}, timeout=0.3)
    assert result.status is CallStatus.TIMEOUT
    assert "returned within the grace period" in result.message
    assert agent.events == ["monitor begins", "monitor ends"]
    assert not harness.executor.busy("web1")


def test_a_second_operation_on_the_same_resource_waits_for_the_first(
    harness: Harness,
) -> None:
    gate = threading.Event()

    def start(ctx: OperationContext) -> int:
        return 0 if gate.wait(ctx.remaining()) else 1

    agent = harness.agent(start=start)
    first = harness.in_background(
        lambda: harness.executor.run(agent, "web1", "start", {}, timeout=3.0)
    )
    assert agent.entered.wait(JOIN)
    second = harness.in_background(
        lambda: harness.executor.run(agent, "web1", "monitor", {}, timeout=3.0)
    )
    for _ in range(300):  # bounded: at most ~3 s
        if harness.executor.queued("web1"):
            break
        threading.Event().wait(0.01)
    assert harness.executor.queued("web1") == 1
    assert agent.events == ["start begins"]
    gate.set()
    for thread in harness.callers:
        thread.join(JOIN)
    assert agent.events == ["start begins", "start ends", "monitor begins", "monitor ends"]
    assert first[0].ok and second[0].ok


def test_cancel_all_makes_a_running_call_return_cancelled(harness: Harness) -> None:
    agent = harness.agent(stop=cooperative)
    results = harness.in_background(
        lambda: harness.executor.run(agent, "web1", "stop", {}, timeout=LONG)
    )
    assert agent.entered.wait(JOIN)
    assert harness.executor.cancel_all() == 1
    harness.callers[0].join(JOIN)
    [result] = results
    assert result.status is CallStatus.CANCELLED
    assert result.message == "cancelled while running"
    assert agent.events == ["stop begins", "stop ends"]


def test_cancel_all_abandons_a_call_that_ignores_it(harness: Harness) -> None:
    agent = harness.agent(stop=harness.stubborn)
    results = harness.in_background(
        lambda: harness.executor.run(agent, "web1", "stop", {}, timeout=LONG)
    )
    assert agent.entered.wait(JOIN)
    harness.executor.cancel_all()
    harness.callers[0].join(JOIN)
    [result] = results
    assert result.status is CallStatus.CANCELLED
    assert result.message == "cancelled, abandoned after 200ms grace"
