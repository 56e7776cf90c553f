"""The admin status of a large cluster (only the resources not as they should be, unless
asked in full), the plan and report kept while nothing they follow from changed, and the
client's decoding of answers: pure, on views made by the scheduler harness."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from Pyro5 import serializers

from pyha.admin import service as service_module
from pyha.admin import wire
from pyha.admin.auth import AdminRole, Identity
from pyha.admin.errors import InvalidArgument, NotFound
from pyha.admin.report import LEAN_ABOVE, Snapshot, StatusReport
from pyha.admin.service import AdminService
from pyha.model.config import ClusterConfig
from pyha.model.status import View
from pyha.scheduler import plan
from pyha.testing.harness import make_config, make_view


@dataclass
class FakeTarget:
    """A target whose snapshot is whatever the test set last."""

    config: ClusterConfig
    view: View
    now: float = 0.0
    node: str = "n1"
    last: dict[str, str] = field(default_factory=dict)

    def snapshot(self) -> Snapshot:
        return Snapshot(config=self.config, node=self.node, mode="cluster", view=self.view,
                        now=self.now, coordinator="n1", term=1, members=frozenset({"n1", "n2"}),
                        decision="idle", view_from="the test", last_operations=self.last)


def service(target: FakeTarget) -> AdminService:
    viewer = Identity("alice", AdminRole.VIEWER)
    return AdminService(target, identity=lambda: viewer,  # type: ignore[arg-type]
                        clock=lambda: target.now)


def status(admin: AdminService, **kwargs: Any) -> StatusReport:
    return StatusReport.model_validate(admin.status(**kwargs))


GROUPS = 25
"""Groups of ten: 250 resources, more than LEAN_ABOVE."""


def large() -> tuple[ClusterConfig, View]:
    """250 resources on n1, each as it should be except: g1r0 failed, g2 not running,
    g3r0 with a failure counted, g4r0 active on both nodes; g5 (target role stopped) and
    g6r9 (its own target role stopped) are stopped, as they should be."""
    groups: dict[str, Any] = {f"g{g}": [f"g{g}r{r}" for r in range(10)] for g in range(GROUPS)}
    groups["g5"] = {"meta": {"target_role": "stopped"},
                    "resources": [{"name": f"g5r{r}", "type": "dummy"} for r in range(10)]}
    groups["g6"] = {"resources": [{"name": f"g6r{r}", "type": "dummy"} for r in range(9)]
                    + [{"name": "g6r9", "type": "dummy", "meta": {"target_role": "stopped"}}]}
    config = make_config("n1 n2", groups)
    roles = {"g1r0@n1": "failed:monitor", "g4r0@n2": "started", "g6r9@n1": "stopped",
             **{f"g5r{r}@n1": "stopped" for r in range(10)},
             **{f"g6r{r}@n1": "started" for r in range(9)}}
    view = make_view(config, running={f"g{g}": "n1" for g in range(GROUPS) if g not in (2, 5, 6)},
                     roles=roles, failures={"g3r0@n1": 1})
    return config, view


def test_a_large_cluster_lists_only_the_resources_not_as_they_should_be() -> None:
    config, view = large()
    target = FakeTarget(config, view, last={"g1r0": "monitor g1r0 on n1: not running (7)"})
    report = status(service(target))
    troubled = {"g1r0", "g3r0", "g4r0", *(f"g2r{r}" for r in range(10))}
    assert {r.name for r in report.resources} == troubled
    assert report.omitted == GROUPS * 10 - len(troubled)
    assert sum(report.roles.values()) == GROUPS * 10
    assert report.roles["failed"] == 1 and report.roles["active on several nodes"] == 1
    failed = next(r for r in report.resources if r.name == "g1r0")
    assert failed.last_operation == "monitor g1r0 on n1: not running (7)"
    assert len(report.groups) == GROUPS and len(report.nodes) == 2


def test_asked_in_full_or_small_a_status_lists_every_resource() -> None:
    config, view = large()
    admin = service(FakeTarget(config, view))
    everything = status(admin, full=True)
    assert [r.name for r in everything.resources] == [r.name for _, r in config.resources()]
    assert everything.omitted == 0
    small = make_config("n1 n2", {f"g{g}": [f"g{g}r{r}" for r in range(10)] for g in range(2)})
    assert LEAN_ABOVE >= 20
    healthy = status(service(FakeTarget(small, make_view(small, running={"g0": "n1",
                                                                         "g1": "n2"}))))
    assert len(healthy.resources) == 20 and healthy.omitted == 0


def test_the_lean_and_the_full_status_agree_on_each_listed_row() -> None:
    config, view = large()
    admin = service(FakeTarget(config, view))
    rows = {r.name: r for r in status(admin, full=True).resources}
    for row in status(admin).resources:
        assert rows[row.name] == row


@pytest.mark.parametrize("full", ["yes", 1, None, [True]])
def test_full_must_be_true_or_false(full: Any) -> None:
    config, view = large()
    with pytest.raises(InvalidArgument) as caught:
        service(FakeTarget(config, view)).status(full=full)
    assert caught.value.argument == "full"


# -- what is kept between calls --------------------------------------------------------------

@pytest.fixture
def plans(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The `now` of each plan the admin service makes."""
    made: list[float] = []

    def counted(config: ClusterConfig, view: View, now: float) -> Any:
        made.append(now)
        return plan(config, view, now)

    monkeypatch.setattr(service_module, "plan", counted)
    return made


def test_the_plan_is_kept_while_the_config_is_the_same_and_the_view_equal(
        plans: list[float]) -> None:
    config, view = large()
    target = FakeTarget(config, view)
    admin = service(target)
    first = admin.status()
    target.now, target.view = 30.0, View.model_validate(view.model_dump())  # equal, new
    again = admin.status()
    assert plans == [0.0]
    assert again["groups"] == first["groups"] and again["at"] == 30.0
    target.view = make_view(config, running={"g0": "n1"})
    assert status(admin).groups[1].state == "stopped"
    target.config = config.model_copy(update={"epoch": config.epoch + 1})
    admin.status()
    assert plans == [0.0, 30.0, 30.0]


def test_a_move_that_expires_makes_a_new_plan(plans: list[float]) -> None:
    config = make_config("n1 n2", {"web": "ip app"}, constraints=[
        {"kind": "location", "id": "move-web", "group": "web", "node": "n2",
         "score": "INFINITY", "expires": 30.0}])
    target = FakeTarget(config, make_view(config, running={"web": "n1"}))
    admin = service(target)
    assert status(admin).groups[0].target == "n2"
    target.now = 29.0
    assert status(admin).groups[0].target == "n2"
    target.now = 30.0
    assert status(admin).groups[0].target == "n1"  # expired: it stays where it runs
    assert plans == [0.0, 30.0]


def test_a_failure_that_expires_makes_a_new_plan(plans: list[float]) -> None:
    config = make_config("n1 n2", {"web": {"resources": [
        {"name": "ip", "type": "dummy",
         "meta": {"migration_threshold": 1, "failure_timeout": "60s"}}]}},
                         constraints=["web prefers n1 50"])
    target = FakeTarget(config, make_view(config, failures={"ip@n1": 1}, now=0.0))
    admin = service(target)
    assert status(admin).groups[0].target == "n2"
    target.now = 50.0
    assert status(admin).groups[0].target == "n2"
    target.now = 61.0
    assert status(admin).groups[0].target == "n1"
    assert plans == [0.0, 61.0]


def test_a_clock_that_went_back_makes_a_new_plan(plans: list[float]) -> None:
    config, view = large()
    target = FakeTarget(config, view, now=100.0)
    admin = service(target)
    admin.status()
    target.now = 50.0
    admin.status()
    assert plans == [100.0, 50.0]


def test_explain_reuses_a_plan_only_within_a_cycle(plans: list[float]) -> None:
    config, view = large()
    target = FakeTarget(config, view)
    admin = service(target)
    admin.explain("g0")
    target.now = config.cluster.cycle_interval / 2
    admin.explain("g0")
    target.now = config.cluster.cycle_interval * 2
    admin.explain("g0")
    admin.status()
    assert plans == [0.0, config.cluster.cycle_interval * 2]


# -- decoding answers ------------------------------------------------------------------------

ANSWERS: list[Any] = [
    {"groups": [{"name": "g", "active_on": ["n1"], "why": "runs"}], "n": 1, "x": None},
    [1, 2.5, "three", {"a": [{"b": True}]}],
    {"text": "a \u00e9 and a \u2603 as they are", "esc": "tab\there, quote \" and \\ back"},
    {"looks": "like \\u005f_class__ but is not"},
    {"__class__": "Pyro5.core.URI", "state": ["PYRO", "obj", None, "127.0.0.1", 1]},
]


@pytest.mark.parametrize("answer", ANSWERS)
def test_an_answer_decodes_as_pyro5_decodes_it(answer: Any) -> None:
    wire.register()
    ours = serializers.serializers["json"]
    assert isinstance(ours, wire.PlainCallJson)
    data = ours.dumps(answer)
    expected = serializers.JsonSerializer().loads(data)
    got = ours.loads(data)
    assert type(got) is type(expected) and str(got) == str(expected)
    assert str(ours.loads(bytearray(data))) == str(got)


def test_an_error_answer_still_arrives_as_its_pyha_type() -> None:
    wire.register()
    ours = serializers.serializers["json"]
    data = ours.dumps(NotFound("status", "group", "no group named 'x'"))
    got = ours.loads(data)
    assert isinstance(got, NotFound) and got.argument == "group"
    escaped = data.replace(b'"__class__"', b'"\\u005f_class__"')
    assert json.loads(escaped)["__class__"] == json.loads(data)["__class__"]
    assert isinstance(ours.loads(escaped), NotFound)


def test_pyha_status_says_how_many_resources_it_left_out() -> None:
    from rich.console import Console

    from pyha.cli.admin import render_status

    config, view = large()
    console = Console(width=200, record=True)
    console.print(render_status(status(service(FakeTarget(config, view)))))
    text = console.export_text()
    assert "Resources not as they should be" in text
    assert "237 of 250 resources are not listed" in text and "pyha status --all" in text


@pytest.mark.parametrize("full", [False, True])
def test_the_answer_is_exactly_the_models_json(full: bool) -> None:
    config, view = large()
    answer = service(FakeTarget(config, view, last={"g1r0": "stop"})).status(full=full)
    assert StatusReport.model_validate(answer).model_dump(mode="json") == answer
    assert json.loads(json.dumps(answer)) == answer
