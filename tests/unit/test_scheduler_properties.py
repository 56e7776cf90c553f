"""Scheduler properties over random configs and views: one node per resource, never on a
banned node, groups together, and a transition once applied leaves nothing more to do."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyha.model.actions import ActionKind, Transition
from pyha.model.config import ClusterConfig, NoQuorumPolicy
from pyha.model.status import FailRecord, NodeStatus, ResourceStatus, Role, View
from pyha.model.types import INFINITY
from pyha.scheduler import schedule
from pyha.testing.harness import apply, where

NOW = 1_767_225_600.0
SCORES = [-INFINITY, -100, -10, 0, 10, 50, 200, INFINITY]
# Drawing a case costs more than scheduling it; these counts keep the module near 3 s.
# PYHA_SCHEDULER_EXAMPLES=5000 runs a deeper search by hand.
EXAMPLES = int(os.environ.get("PYHA_SCHEDULER_EXAMPLES", "60"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
FEWER = settings(SETTINGS, max_examples=max(1, EXAMPLES * 2 // 3))


@st.composite
def configs(draw: st.DrawFn) -> ClusterConfig:
    """A cluster of 1-4 nodes and 1-4 groups of 1-3 dummies, with random constraints."""
    nodes = [f"n{i}" for i in range(1, draw(st.integers(1, 4)) + 1)]
    groups = [_group(draw, f"g{i}") for i in range(draw(st.integers(1, 4)))]
    names = [g["name"] for g in groups]
    constraints: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 4))):
        expires = draw(st.sampled_from([None, None, NOW - 10, NOW + 10]))
        constraints.append({"kind": "location", "id": f"loc{i}",
                            "group": draw(st.sampled_from(names)),
                            "node": draw(st.sampled_from(nodes)),
                            "score": draw(st.sampled_from(SCORES)), "expires": expires})
    pairs = [(a, b) for a in names for b in names if a != b]
    if pairs:
        for i in range(draw(st.integers(0, 3))):
            a, b = draw(st.sampled_from(pairs))
            constraints.append({"kind": "colocation", "id": f"col{i}", "group": a, "with_group": b,
                                "score": draw(st.sampled_from([-INFINITY, -50, 50, INFINITY]))})
        for i in range(draw(st.integers(0, 3))):
            a, b = draw(st.sampled_from(pairs))
            constraints.append({"kind": "order", "id": f"ord{i}", "first": a, "then": b,
                                "mandatory": draw(st.booleans()),
                                "symmetrical": draw(st.booleans())})
    return ClusterConfig.from_mapping({
        "cluster": {"name": "prop", "stickiness": draw(st.sampled_from([50, 100, 300])),
                    "no_quorum_policy": draw(st.sampled_from(list(NoQuorumPolicy)))},
        "nodes": [{"name": n} for n in nodes], "groups": groups, "constraints": constraints,
    })


def _group(draw: st.DrawFn, name: str) -> dict[str, Any]:
    members = []
    for j in range(draw(st.integers(1, 3))):
        role = draw(st.sampled_from(["started"] * 6 + ["stopped", "promoted"]))
        members.append({"name": f"{name}r{j}", "type": "dummy", "meta": {
            "target_role": role, "migration_threshold": draw(st.integers(1, 3)),
            "failure_timeout": draw(st.sampled_from([0, 60, 600]))}})
    target = draw(st.sampled_from(["started"] * 8 + ["stopped"]))
    return {"name": name, "resources": members, "meta": {"target_role": target}}


@st.composite
def situations(draw: st.DrawFn, quorum: bool | None = True) -> tuple[ClusterConfig, View]:
    """A config and a view: nodes up, down or in standby, resources where they may be
    (even on two nodes, or failed), and failure records old and new."""
    config = draw(configs())
    nodes = tuple(NodeStatus(name=n.name, online=draw(st.booleans()) or draw(st.booleans()),
                             standby=draw(st.sampled_from([False] * 5 + [True])))
                  for n in config.nodes)
    roles = [Role.STARTED] * 4 + [Role.FAILED, Role.PROMOTED, Role.UNKNOWN]
    states, records = [], []
    for _, resource in config.resources():
        for node in config.nodes:
            if draw(st.integers(0, 3)) == 0:
                role = draw(st.sampled_from(roles))
                failed = draw(st.sampled_from(["monitor", "start"])) if role is Role.FAILED else ""
                states.append(ResourceStatus(resource=resource.name, node=node.name, role=role,
                                             failed_operation=failed))
            if draw(st.integers(0, 5)) == 0:
                records.append(FailRecord(
                    resource=resource.name, node=node.name, count=draw(st.integers(1, 4)),
                    last_failure=NOW - draw(st.sampled_from([0, 30, 61, 700])),
                    fatal=draw(st.sampled_from([False] * 5 + [True]))))
    has_quorum = draw(st.booleans()) if quorum is None else quorum
    return config, View(nodes=nodes, resources=tuple(states), failures=tuple(records),
                        quorum=has_quorum)


def _banned(config: ClusterConfig, view: View, group: str, resource: str, node: str) -> bool:
    """What the scheduler must never start a resource on."""
    status = next(n for n in view.nodes if n.name == node)
    if not status.online or status.standby:
        return True
    for c in config.constraints:
        if c.kind == "location" and c.group == group and c.node == node \
                and c.score <= -INFINITY and (c.expires is None or c.expires > NOW):
            return True
    meta = config.resource(resource).meta
    for f in view.failures:
        if f.resource == resource and f.node == node:
            expired = not f.fatal and meta.failure_timeout and \
                NOW - f.last_failure >= meta.failure_timeout
            if not expired and (f.fatal or f.count >= meta.migration_threshold):
                return True
    return False


def _after(config: ClusterConfig, view: View) -> tuple[Transition, View]:
    transition = schedule(config, view, NOW)
    return transition, apply(view, transition)


@SETTINGS
@given(situations())
def test_a_resource_is_never_active_on_two_nodes(case: tuple[ClusterConfig, View]) -> None:
    config, view = case
    _, after = _after(config, view)
    for _, resource in config.resources():
        assert len(where(after, resource.name)) <= 1, (resource.name, where(after, resource.name))


@SETTINGS
@given(situations())
def test_nothing_runs_where_it_is_banned_down_or_in_standby(
        case: tuple[ClusterConfig, View]) -> None:
    config, view = case
    transition, after = _after(config, view)
    for action in transition.actions:
        if action.kind is ActionKind.START:
            group = config.group_of(action.resource or "").name
            assert not _banned(config, view, group, action.resource or "", action.node), \
                action.describe()
    for group, resource in config.resources():
        for node in where(after, resource.name):
            assert not _banned(config, view, group.name, resource.name, node), \
                (resource.name, node)


@SETTINGS
@given(situations())
def test_the_members_of_a_group_share_a_node(case: tuple[ClusterConfig, View]) -> None:
    config, view = case
    _, after = _after(config, view)
    for group in config.groups:
        nodes = {n for r in group.resources for n in where(after, r.name)}
        assert len(nodes) <= 1, (group.name, nodes)


@SETTINGS
@given(situations())
def test_once_applied_a_transition_leaves_nothing_to_move(
        case: tuple[ClusterConfig, View]) -> None:
    """Scheduling again after a transition stops, demotes or fences nothing: it may only
    start what a mandatory order held back on a tie. (A transition that probes is only
    half a decision: the one after the probes is the one that counts.) Then nothing is
    left to do."""
    config, view = case
    first, view = _after(config, view)
    if any(a.kind is ActionKind.MONITOR for a in first.actions):
        first, view = _after(config, view)
    again, view = _after(config, view)
    disturbing = [a.describe() for a in again.actions
                  if a.kind in (ActionKind.STOP, ActionKind.DEMOTE, ActionKind.FENCE)]
    assert not disturbing, f"first: {first.summary}\nagain: {again.summary}"
    assert schedule(config, view, NOW).is_empty()


@FEWER
@given(situations(quorum=None))
def test_dependencies_are_acyclic_and_point_backwards(case: tuple[ClusterConfig, View]) -> None:
    config, view = case
    transition = schedule(config, view, NOW)
    for action in transition.actions:
        assert all(dep < action.id for dep in action.after), action
        assert action.reason
    assert transition.placement.keys() == {g.name for g in config.groups}


@FEWER
@given(situations(quorum=False))
def test_without_quorum_nothing_starts_and_nothing_is_fenced(
        case: tuple[ClusterConfig, View]) -> None:
    config, view = case
    transition = schedule(config, view, NOW)
    kinds = {a.kind for a in transition.actions}
    if config.cluster.no_quorum_policy is NoQuorumPolicy.IGNORE:
        return
    assert ActionKind.FENCE not in kinds
    assert ActionKind.START not in kinds
    if config.cluster.no_quorum_policy is NoQuorumPolicy.FREEZE:
        assert not transition.actions
