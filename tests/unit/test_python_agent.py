"""PythonAgent: registration checks name the plugin and operation; faults become outcomes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from pyha.errors import PluginError
from pyha.resources.agent import Origin
from pyha.resources.python import PythonAgent
from pyha.resources.spi import (
    CallStatus,
    MetaData,
    OcfCode,
    OperationContext,
    OperationSpec,
    ParameterSpec,
    Plugin,
    TypeName,
)
from pyha.testing import FakeClock

NAME = TypeName("python", "test", "thing")
ORIGIN = Origin("plugin-path", "/plugins/thing")


class Good(Plugin):
    """A well-formed plugin that records the calls it gets."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def meta_data(self) -> MetaData:
        return MetaData(
            name="thing",
            description="a thing",
            parameters=(
                ParameterSpec(name="size", type="integer", required=True),
                ParameterSpec(name="mode", type="select", options=("a", "b"), default="a"),
            ),
            operations=(OperationSpec(name="start", timeout=30), OperationSpec(name="reload")),
        )

    def validate(self, params: Mapping[str, Any]) -> list[str]:
        return ["size: must be even"] if params["size"] % 2 else []

    def start(self, ctx: OperationContext) -> int:
        self.calls.append(f"start {ctx.resource}")
        return 0

    def stop(self, ctx: OperationContext) -> int:
        return 0

    def monitor(self, ctx: OperationContext) -> int:
        return 7

    def reload(self, ctx: OperationContext) -> int:
        return 0


def _ctx(operation: str, params: Mapping[str, Any] | None = None) -> OperationContext:
    clock = FakeClock()
    return OperationContext(
        resource="r1",
        operation=operation,
        params=params or {},
        deadline=clock.now() + 20,
        clock=clock,
    )


def _agent(plugin: object) -> PythonAgent:
    return PythonAgent(plugin, NAME, ORIGIN)


def test_good_plugin_registers_with_its_meta_data() -> None:
    agent = _agent(Good())
    assert agent.meta.timeout("start") == 30
    assert agent.description == "a thing"
    assert agent.supports("reload")
    assert not agent.supports("promote")
    assert agent.short_name == "thing"


def test_invoke_calls_the_method_and_returns_its_code() -> None:
    plugin = Good()
    agent = _agent(plugin)
    assert agent.invoke(_ctx("start")) == agent.invoke(_ctx("stop"))
    assert plugin.calls == ["start r1"]
    assert agent.invoke(_ctx("monitor")).code == OcfCode.NOT_RUNNING


def test_unsupported_operation_is_unimplemented() -> None:
    outcome = _agent(Good()).invoke(_ctx("promote"))
    assert outcome.code == OcfCode.ERR_UNIMPLEMENTED
    assert outcome.status is CallStatus.DONE
    assert "promote" in outcome.message


@pytest.mark.parametrize("returned", ["ok", None, True, 1.0])
def test_non_int_return_is_an_interface_error(returned: object) -> None:
    class Odd(Good):
        def start(self, ctx: OperationContext) -> Any:
            return returned

    outcome = _agent(Odd()).invoke(_ctx("start"))
    assert outcome.status is CallStatus.ERROR
    assert outcome.code == OcfCode.ERR_GENERIC
    assert "python:test:thing.start returned" in outcome.message
    assert repr(returned) in outcome.message


def test_exception_becomes_error_outcome_with_type_and_message() -> None:
    class Raises(Good):
        def monitor(self, ctx: OperationContext) -> int:
            raise RuntimeError("disk on fire")

    outcome = _agent(Raises()).invoke(_ctx("monitor"))
    assert outcome.status is CallStatus.ERROR
    assert outcome.code == OcfCode.ERR_GENERIC
    assert outcome.message == "RuntimeError: disk on fire"


def test_validate_coerces_then_asks_the_plugin() -> None:
    agent = _agent(Good())
    params, problems = agent.validate({"size": "4"})
    assert params == {"size": 4, "mode": "a"}
    assert problems == ()
    assert agent.validate({"size": 3})[1] == ("size: must be even",)
    assert agent.validate({"mode": "c"})[1] == (
        "size: required parameter is missing",
        "mode: must be one of a, b; got 'c'",
    )


def test_validate_operation_reports_problems_as_not_configured() -> None:
    agent = _agent(Good())
    assert agent.invoke(_ctx("validate", {"size": 2})).code == OcfCode.SUCCESS
    outcome = agent.invoke(_ctx("validate", {"size": 3}))
    assert outcome.code == OcfCode.ERR_CONFIGURED
    assert outcome.message == "size: must be even"


def test_plugin_validate_exception_is_a_problem_not_a_crash() -> None:
    class BadValidate(Good):
        def validate(self, params: Mapping[str, Any]) -> list[str]:
            raise KeyError("size")

    _, problems = _agent(BadValidate()).validate({"size": 2})
    assert problems == ("python:test:thing.validate raised KeyError: 'size'",)


def test_plugin_validate_wrong_return_is_a_problem() -> None:
    class StrValidate(Good):
        def validate(self, params: Mapping[str, Any]) -> Any:
            return "fine"

    _, problems = _agent(StrValidate()).validate({"size": 2})
    assert problems == ("python:test:thing.validate returned 'fine', not a list of problems",)


def test_meta_data_may_be_a_mapping() -> None:
    class DictMeta(Good):
        def meta_data(self) -> Any:
            return {"name": "thing", "parameters": [{"name": "x", "type": "boolean"}]}

    agent = _agent(DictMeta())
    assert agent.meta.parameters[0].type == "boolean"


def _registration_error(plugin: object) -> PluginError:
    with pytest.raises(PluginError) as info:
        _agent(plugin)
    assert info.value.plugin == "python:test:thing"
    return info.value


def test_meta_data_raising_fails_registration() -> None:
    class Raises(Good):
        def meta_data(self) -> MetaData:
            raise ValueError("no meta today")

    error = _registration_error(Raises())
    assert error.operation == "meta_data"
    assert error.reason == "raised ValueError: no meta today"


def test_meta_data_of_wrong_shape_fails_registration() -> None:
    class Wrong(Good):
        def meta_data(self) -> Any:
            return {"parameters": "none"}

    error = _registration_error(Wrong())
    assert error.operation == "meta_data"
    assert "returned dict, not MetaData" in error.reason
    assert "name: Field required" in error.reason


def test_missing_meta_data_fails_registration() -> None:
    class NoMeta:
        def start(self, ctx: OperationContext) -> int:
            return 0

    assert _registration_error(NoMeta()).operation == "meta_data"


def test_start_not_callable_fails_registration() -> None:
    class NotCallable(Good):
        start = 0  # type: ignore[assignment]

    error = _registration_error(NotCallable())
    assert error.operation == "start"
    assert error.reason == "is not callable (it is a int)"
    assert str(error) == "plugin python:test:thing.start: is not callable (it is a int)"


def test_monitor_with_wrong_arity_fails_registration() -> None:
    class TwoArgs(Good):
        def monitor(self, ctx: OperationContext, extra: int) -> int:  # type: ignore[override]
            return 0

    error = _registration_error(TwoArgs())
    assert error.operation == "monitor"
    assert "must take one argument (ctx)" in error.reason


def test_missing_stop_fails_registration() -> None:
    class NoStop:
        def meta_data(self) -> MetaData:
            return MetaData(name="thing")

        def validate(self, params: Mapping[str, Any]) -> list[str]:
            return []

        def start(self, ctx: OperationContext) -> int:
            return 0

        def monitor(self, ctx: OperationContext) -> int:
            return 0

    error = _registration_error(NoStop())
    assert error.operation == "stop"
    assert "required" in error.reason


def test_listed_optional_operation_must_exist() -> None:
    class ListsPromote(Good):
        def meta_data(self) -> MetaData:
            return MetaData(name="thing", operations=(OperationSpec(name="promote"),))

    error = _registration_error(ListsPromote())
    assert error.operation == "promote"
    assert error.reason == "is listed in meta_data but the plugin has no such method"


def test_unknown_operation_in_meta_data_fails_registration() -> None:
    class Typo(Good):
        def meta_data(self) -> MetaData:
            return MetaData(name="thing", operations=(OperationSpec(name="monitr"),))

    error = _registration_error(Typo())
    assert error.operation == "monitr"
    assert "unknown operation 'monitr'" in error.reason


def test_validate_must_be_callable() -> None:
    class BadValidate(Good):
        validate = None  # type: ignore[assignment]

    assert _registration_error(BadValidate()).operation == "validate"
