"""The dummy plugin: state file semantics, every knob, runtime knobs, promotion."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from pyha.errors import ConfigError
from pyha.resources.spi import OcfCode, OperationContext
from pyha.testing.clock import FakeClock
from pyha.testing.dummy import (
    DummyPlugin,
    clear_knobs,
    default_state_path,
    knob_path,
    set_knobs,
)

TIMEOUT = 20.0


class Harness:
    """Runs dummy operations on one resource with a fake clock and a temp state dir."""

    def __init__(self, tmp_path: Path, clock: FakeClock) -> None:
        self.plugin = DummyPlugin()
        self.clock = clock
        self.state_dir = tmp_path
        self.cancelled = threading.Event()

    def ctx(self, op: str, resource: str = "d1", **params: Any) -> OperationContext:
        coerced, problems = self.plugin.meta_data().check(params)
        assert problems == ()
        return OperationContext(
            resource=resource,
            operation=op,
            params=coerced,
            deadline=self.clock.now() + TIMEOUT,
            state_dir=self.state_dir,
            clock=self.clock,
            cancelled=self.cancelled,
        )

    def run(self, op: str, resource: str = "d1", **params: Any) -> int:
        return int(getattr(self.plugin, op)(self.ctx(op, resource, **params)))

    def state(self, resource: str = "d1") -> Path:
        return default_state_path(self.state_dir, resource)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def dummy(tmp_path: Path, clock: FakeClock) -> Harness:
    return Harness(tmp_path, clock)


def test_start_monitor_stop(dummy: Harness) -> None:
    assert dummy.run("monitor") == OcfCode.NOT_RUNNING
    assert dummy.run("start") == OcfCode.SUCCESS
    assert dummy.state().exists()
    assert dummy.run("monitor") == OcfCode.SUCCESS
    assert dummy.run("stop") == OcfCode.SUCCESS
    assert not dummy.state().exists()
    assert dummy.run("monitor") == OcfCode.NOT_RUNNING


def test_start_and_stop_are_idempotent(dummy: Harness) -> None:
    assert dummy.run("stop") == OcfCode.SUCCESS
    assert dummy.run("start") == OcfCode.SUCCESS
    assert dummy.run("promote") == OcfCode.SUCCESS
    # A second start keeps the running resource as it is, promoted included.
    assert dummy.run("start") == OcfCode.SUCCESS
    assert dummy.run("monitor") == OcfCode.RUNNING_PROMOTED
    assert dummy.run("stop") == OcfCode.SUCCESS
    assert dummy.run("stop") == OcfCode.SUCCESS
    assert dummy.run("monitor") == OcfCode.NOT_RUNNING


def test_resources_have_separate_state(dummy: Harness) -> None:
    dummy.run("start", resource="a")
    assert dummy.run("monitor", resource="a") == OcfCode.SUCCESS
    assert dummy.run("monitor", resource="b") == OcfCode.NOT_RUNNING


def test_state_parameter_names_the_file(dummy: Harness, tmp_path: Path) -> None:
    state = tmp_path / "elsewhere" / "x.state"
    assert dummy.run("start", state=str(state)) == OcfCode.SUCCESS
    assert state.exists()
    assert not dummy.state().exists()
    assert dummy.run("stop", state=str(state)) == OcfCode.SUCCESS
    assert not state.exists()


def test_fail_on_returns_fail_code_and_does_nothing(dummy: Harness) -> None:
    assert dummy.run("start", fail_on="start") == OcfCode.ERR_GENERIC
    assert not dummy.state().exists()
    dummy.run("start")
    assert dummy.run("monitor", fail_on=["monitor"], fail_code=9) == OcfCode.FAILED_PROMOTED
    assert dummy.run("stop", fail_on="stop start", fail_code=5) == 5
    assert dummy.state().exists()


def test_fail_on_other_operations_leaves_this_one_alone(dummy: Harness) -> None:
    assert dummy.run("start", fail_on="stop monitor") == OcfCode.SUCCESS


def test_hang_waits_until_the_deadline_without_sleeping(dummy: Harness, clock: FakeClock) -> None:
    ctx = dummy.ctx("start", hang_on=["start"])
    assert dummy.plugin.start(ctx) == OcfCode.ERR_GENERIC
    assert clock.now() >= ctx.deadline
    assert not dummy.state().exists()


def test_hang_ends_early_when_cancelled(dummy: Harness, clock: FakeClock) -> None:
    dummy.cancelled.set()
    ctx = dummy.ctx("stop", hang_on="stop")
    assert dummy.plugin.stop(ctx) == OcfCode.ERR_GENERIC
    assert clock.now() < ctx.deadline


def test_delay_takes_time_then_works(dummy: Harness, clock: FakeClock) -> None:
    before = clock.now()
    assert dummy.run("start", delay="3s") == OcfCode.SUCCESS
    assert clock.now() - before == pytest.approx(3.0)
    assert dummy.state().exists()


def test_delay_is_bounded_by_the_deadline(dummy: Harness, clock: FakeClock) -> None:
    ctx = dummy.ctx("monitor", delay="1h")
    dummy.plugin.monitor(ctx)
    assert clock.now() == pytest.approx(ctx.deadline)


def test_runtime_knobs_make_a_running_monitor_fail(dummy: Harness) -> None:
    dummy.run("start")
    set_knobs(dummy.state(), fail_on=["monitor"], fail_code=7)
    assert dummy.run("monitor") == OcfCode.NOT_RUNNING
    assert dummy.state().exists()
    clear_knobs(dummy.state())
    assert not knob_path(dummy.state()).exists()
    assert dummy.run("monitor") == OcfCode.SUCCESS


def test_runtime_knobs_merge_and_override_parameters(dummy: Harness) -> None:
    dummy.run("start")
    set_knobs(dummy.state(), fail_on="monitor")
    set_knobs(dummy.state(), fail_code="6")
    assert json.loads(knob_path(dummy.state()).read_text()) == {
        "fail_on": ["monitor"],
        "fail_code": 6,
    }
    assert dummy.run("monitor", fail_code=3) == OcfCode.ERR_CONFIGURED
    set_knobs(dummy.state(), fail_on=[])
    assert dummy.run("monitor", fail_on="monitor") == OcfCode.SUCCESS
    set_knobs(dummy.state(), fail_on=None)
    assert dummy.run("monitor", fail_on="monitor") == 6


def test_runtime_hang_and_delay(dummy: Harness, clock: FakeClock) -> None:
    dummy.run("start")
    set_knobs(dummy.state(), delay=2)
    before = clock.now()
    assert dummy.run("monitor") == OcfCode.SUCCESS
    assert clock.now() - before == pytest.approx(2.0)
    set_knobs(dummy.state(), delay=None, hang_on=["monitor"])
    ctx = dummy.ctx("monitor")
    assert dummy.plugin.monitor(ctx) == OcfCode.ERR_GENERIC
    assert clock.now() >= ctx.deadline


def test_set_knobs_rejects_unknown_knobs_and_bad_values(tmp_path: Path) -> None:
    state = tmp_path / "d.state"
    with pytest.raises(ConfigError, match="fail_om: unknown knob"):
        set_knobs(state, fail_om=["monitor"])
    with pytest.raises(ConfigError, match="fail_code: must be an integer"):
        set_knobs(state, fail_code="often")
    assert not knob_path(state).exists()


def test_a_broken_knob_file_is_a_configuration_error(
    dummy: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    dummy.run("start")
    knob_path(dummy.state()).write_text('{"fail_code": "x"}')
    with caplog.at_level(logging.ERROR):
        assert dummy.run("monitor") == OcfCode.ERR_CONFIGURED
    assert "fail_code" in caplog.text
    knob_path(dummy.state()).write_text("not json")
    assert dummy.run("monitor") == OcfCode.ERR_CONFIGURED


def test_promote_and_demote(dummy: Harness) -> None:
    assert dummy.run("promote") == OcfCode.ERR_GENERIC
    dummy.run("start")
    assert dummy.run("monitor") == OcfCode.SUCCESS
    assert dummy.run("promote") == OcfCode.SUCCESS
    assert dummy.run("monitor") == OcfCode.RUNNING_PROMOTED
    assert dummy.run("promote") == OcfCode.SUCCESS
    assert dummy.run("demote") == OcfCode.SUCCESS
    assert dummy.run("monitor") == OcfCode.SUCCESS
    dummy.run("promote")
    assert dummy.run("stop") == OcfCode.SUCCESS
    assert dummy.run("demote") == OcfCode.ERR_GENERIC
    # A fresh start is unpromoted.
    dummy.run("start")
    assert dummy.run("monitor") == OcfCode.SUCCESS


def test_promote_can_fail_on_purpose(dummy: Harness) -> None:
    dummy.run("start")
    assert dummy.run("promote", fail_on="promote") == OcfCode.ERR_GENERIC
    assert dummy.run("monitor") == OcfCode.SUCCESS


def test_reload_counts_on_a_running_resource(dummy: Harness) -> None:
    assert dummy.run("reload") == OcfCode.NOT_RUNNING
    dummy.run("start")
    assert dummy.run("reload") == OcfCode.SUCCESS
    assert dummy.run("reload") == OcfCode.SUCCESS
    assert json.loads(dummy.state().read_text())["reloads"] == 2
    assert dummy.run("monitor") == OcfCode.SUCCESS


def test_meta_data_lists_every_operation_and_parameter() -> None:
    meta = DummyPlugin().meta_data()
    names = {op.name: op for op in meta.operations}
    assert set(names) == {"start", "stop", "monitor", "promote", "demote", "reload"}
    assert all(op.timeout == 20.0 for op in meta.operations)
    assert names["monitor"].interval == 10.0
    assert {p.name for p in meta.parameters} == {
        "state",
        "fail_on",
        "fail_code",
        "hang_on",
        "delay",
    }
    assert all(p.description for p in meta.parameters)
    assert meta.promotable


def test_check_fills_knob_defaults() -> None:
    coerced, problems = DummyPlugin().meta_data().check({})
    assert problems == ()
    assert coerced == {"fail_on": [], "fail_code": 1, "hang_on": [], "delay": 0.0}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, []),
        ({"fail_on": "monitor stop", "fail_code": 7, "delay": "1s"}, []),
        ({"fail_on": "monitr"}, ["fail_on: 'monitr' is not an operation"]),
        ({"hang_on": ["start", "boot"]}, ["hang_on: 'boot' is not an operation"]),
        ({"fail_code": 300}, ["fail_code: must be between 0 and 255, got 300"]),
        ({"fail_code": "x"}, ["fail_code: must be an integer"]),
        ({"delay": "soon"}, ["delay: 'soon' is not a duration"]),
        ({"state": "rel/x.state"}, ["state: must be an absolute path"]),
        ({"colour": "red"}, ["colour: unknown parameter"]),
    ],
)
def test_validate(params: dict[str, Any], expected: list[str]) -> None:
    problems = DummyPlugin().validate(params)
    assert len(problems) == len(expected)
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start)
