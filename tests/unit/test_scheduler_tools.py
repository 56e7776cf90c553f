"""The scheduler's tools: moves as visible preferences, explanations, saved inputs, the
harness, and the graph helpers behind constraint cycles."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import pytest

from pyha.errors import ConfigError
from pyha.model.actions import ActionKind
from pyha.model.config import LocationConstraint
from pyha.model.status import Role
from pyha.model.types import INFINITY
from pyha.scheduler import move, plan, schedule, unmove
from pyha.scheduler.explain import explain, format_plan, plan_json, span, summary_line
from pyha.scheduler.graph import cycle_path, cycles, topological
from pyha.scheduler.inputs import SchedulerInput, input_name, input_number
from pyha.server import save_input
from pyha.testing.harness import apply, converge, fail, make_config, make_view, node_down, where

NOW = 1_767_225_600.0


def test_move_is_a_visible_location_constraint_that_expires() -> None:
    config = make_config("n1 n2 n3")
    moved = move(config, "web", "n3", 600, NOW)
    (c,) = moved.constraints
    assert isinstance(c, LocationConstraint)
    assert (c.id, c.group, c.node, c.score, c.expires) == ("move-web", "web", "n3", INFINITY,
                                                          NOW + 600)
    running = make_view(moved, running={"web": "n1"})
    assert [a.describe() for a in schedule(moved, running, NOW).actions][-2:] == \
        ["start ip on n3", "start app on n3"]
    text = explain(plan(moved, running, NOW + 60), "web")
    assert "move: move-web prefers n3 (+INFINITY), until 2026-01-01 00:10:00 UTC (in 9m)" \
        in text
    later = explain(plan(moved, running, NOW + 601), "web")
    assert "expired at 2026-01-01 00:10:00 UTC, no longer applies; unmove removes it" in later


def test_a_second_move_replaces_the_first_and_unmove_removes_it() -> None:
    config = move(move(make_config("n1 n2 n3", constraints=["web prefers n1 10"]),
                       "web", "n2", None, NOW), "web", "n3", None, NOW)
    assert [(c.id, getattr(c, "node", None)) for c in config.constraints] == \
        [("loc-web-n1", "n1"), ("move-web", "n3")]
    assert [c.id for c in unmove(config, "web").constraints] == ["loc-web-n1"]
    assert unmove(unmove(config, "web"), "web").constraints == unmove(config, "web").constraints


def test_move_and_unmove_name_what_is_wrong() -> None:
    config = make_config("n1 n2")
    with pytest.raises(ConfigError, match="no group named 'db'"):
        move(config, "db", "n1", None, NOW)
    with pytest.raises(ConfigError, match="no node named 'n9'"):
        move(config, "web", "n9", None, NOW)
    with pytest.raises(ConfigError, match="lifetime must be greater than 0"):
        move(config, "web", "n1", 0, NOW)
    with pytest.raises(ConfigError, match="no group named 'db'"):
        unmove(config, "db")


def test_a_move_to_a_node_that_cannot_take_the_group_is_noted() -> None:
    config = move(make_config("n1 n2"), "web", "n2", None, NOW)
    t = schedule(config, make_view(config, running={"web": "n1"}, standby="n2"), NOW)
    assert t.is_empty()
    assert [n.text for n in t.notes] == ["move move-web to n2 not followed: n2 is in standby"]


def test_explain_shows_failure_bans_with_their_expiry() -> None:
    config = make_config("n1 n2", {"web": {"resources": [
        {"name": "ip", "type": "dummy"},
        {"name": "app", "type": "dummy", "meta": {"migration_threshold": 2,
                                                  "failure_timeout": "5m"}}]}})
    view = make_view(config, running={"web": "n2"},
                     failures={"app@n1": 2, "app@n2": 1, "ip@n2": "fatal"}, now=NOW - 60)
    text = explain(plan(config, view, NOW))
    assert "failures: app on n1: 2 of 2 failures: banned there until 2026-01-01 00:04:00 " \
           "UTC (in 4m)" in text
    assert "failures: app on n2: 1 of 2 failures until" in text
    assert "failures: ip on n2: a fatal failure: banned there until a cleanup" in text
    assert "web: stops" in text


def test_explain_names_the_fence_and_the_reason_of_each_group() -> None:
    config = make_config("n1 n2", {"db": "fs", "web": "ip"}, ["web with db"])
    result = plan(config, make_view(config, running={"db": "n1", "web": "n1"}, down="n1"), NOW)
    text = explain(result)
    assert text.startswith("fence n1: n1 is down while fs, ip may still be active there\n")
    assert "db: goes to n2 from n1\n  why: n2 scores 0 (no preference)" in text
    assert "web: goes to n2 from n1\n  why: n2 scores INFINITY" in text
    assert "constraint: colocation col-web-db: web with db (+INFINITY)" in text
    data = plan_json(result)
    assert data["placements"]["web"] == {"node": "n2", "why": result.placements["web"].why,
                                         "managed": True}
    assert data["scores"]["web"]["n1"]["score"] == -INFINITY
    assert data["transition"]["actions"][0]["kind"] == "fence"


def test_format_plan_lists_actions_in_order_with_dependencies_and_reasons() -> None:
    config = make_config("n1 n2", constraints=["web prefers n2 50"])
    text = format_plan(plan(config, make_view(config), NOW))
    assert text.splitlines()[1:6] == [
        "actions (2):",
        "  1. start ip on n2",
        "       because web starts on n2: n2 scores 50 (+50 location loc-web-n2)",
        "  2. start app on n2  [after 1]",
        "       because app follows ip on n2 (members of web start in order)",
    ]


def test_the_decision_line_is_capped_for_large_transitions() -> None:
    groups = {f"g{i}": f"r{i}" for i in range(20)}
    config = make_config("n1", groups)
    line = schedule(config, make_view(config), NOW).summary
    assert line.startswith("start r0 on n1, r1 on n1,")
    assert "and 12 more (g0 starts on n1" in line
    idle = summary_line((), {g: "n1" for g in groups}, [])
    assert idle.endswith("g7 on n1 and 12 more")


def test_span_reads_as_people_write_durations() -> None:
    assert [span(s) for s in (0, 45, 250, 3600, 3900)] == ["0s", "45s", "4m10s", "1h", "1h5m"]


def test_saved_inputs_are_numbered_bounded_and_replay_the_same_transition(
        tmp_path: Path) -> None:
    config = make_config("n1 n2")
    data = SchedulerInput(now=NOW, config=config, view=make_view(config, down="n2"))
    for _ in range(5):
        path = save_input(tmp_path, data, keep=3)
    assert path.name == "input-5.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == \
        ["input-3.json", "input-4.json", "input-5.json"]
    loaded = SchedulerInput.model_validate(json.loads(path.read_text()))
    assert loaded == data
    assert schedule(loaded.config, loaded.view, loaded.now) == \
        schedule(config, data.view, NOW)
    assert (input_name(7), input_number("input-7.json"), input_number("input-x.json")) == \
        ("input-7.json", 7, None)


def test_the_harness_applies_a_transition_as_if_every_action_succeeded() -> None:
    config = make_config("n1 n2 n3", {"db": "fs", "web": "ip app"}, ["web with db"])
    view = node_down(make_view(config, running={"db": "n1", "web": "n1"}), "n1")
    after = apply(view, schedule(config, view, NOW))
    assert [n.online for n in after.nodes] == [False, True, True]
    assert where(after, "fs") == where(after, "ip") == where(after, "app") == ["n2"]
    final, steps = converge(config, view, NOW)
    assert len(steps) == 1 and final == after


def test_the_harness_fails_a_resource_as_the_server_would() -> None:
    config = make_config("n1 n2", {"web": {"resources": [
        {"name": "ip", "type": "dummy"},
        {"name": "app", "type": "dummy",
         "operations": [{"name": "monitor", "interval": "5s", "on_fail": "stop"}]}]}})
    view = fail(config, make_view(config, running={"web": "n1"}), "app", "monitor", NOW)
    (record,) = view.failures
    assert (record.count, record.fatal, record.on_fail) == (1, True, "stop")
    assert [s.role for s in view.resources if s.resource == "app"] == [Role.FAILED]
    t = schedule(config, view, NOW)
    assert [a.kind for a in t.actions] == [ActionKind.STOP, ActionKind.STOP]
    assert t.placement == {"web": None}
    blocked = fail(config, make_view(config, running={"web": "n1"}), "ip", "stop", NOW)
    assert [s.role for s in blocked.resources if s.resource == "ip"] == [Role.BLOCKED]
    with pytest.raises(ConfigError, match="not running anywhere"):
        fail(config, make_view(config), "ip", "monitor", NOW)


def test_graph_helpers_order_stably_and_name_cycles() -> None:
    nodes = ["a", "b", "c", "d"]
    assert topological(nodes, {"c": ["a"], "d": ["b"]}) == ["c", "a", "d", "b"]
    edges = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["d2"]}
    assert cycles([*nodes, "d2"], edges) == [["a", "b", "c"]]
    assert cycle_path(["a", "b", "c"], edges) == ["a", "b", "c", "a"]
    chain = [f"g{i}" for i in range(5000)]  # deep chains must not hit the recursion limit
    assert cycles(chain, {a: [b] for a, b in pairwise(chain)}) == []
