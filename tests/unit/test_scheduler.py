"""The scheduler's first rules: placement by score, group order, recovery, thresholds."""

from __future__ import annotations

from typing import Any

from pyha.model.actions import ActionKind, Transition
from pyha.model.config import ClusterConfig
from pyha.model.status import FailRecord, NodeStatus, ResourceStatus, Role, View
from pyha.scheduler import schedule

NOW = 10_000.0


def config(**cluster: Any) -> ClusterConfig:
    return ClusterConfig.from_mapping({
        "cluster": {"name": "c", **cluster},
        "nodes": [{"name": "n1"}, {"name": "n2"}],
        "groups": [{"name": "web", "resources": [
            {"name": "ip", "type": "dummy"},
            {"name": "app", "type": "dummy",
             "meta": {"migration_threshold": 2, "failure_timeout": "60s"}},
        ]}],
        "constraints": [{"kind": "location", "id": "prefer-n2", "group": "web", "node": "n2",
                         "score": 50}],
    })


def view(*states: tuple[str, str, Role], failures: tuple[FailRecord, ...] = (),
         down: tuple[str, ...] = (), standby: tuple[str, ...] = (), quorum: bool = True) -> View:
    return View(
        nodes=tuple(NodeStatus(name=n, online=n not in down, standby=n in standby)
                    for n in ("n1", "n2")),
        resources=tuple(ResourceStatus(resource=r, node=n, role=role,
                                       failed_operation="monitor" if role is Role.FAILED else "")
                        for r, n, role in states),
        failures=failures, quorum=quorum,
    )


def steps(t: Transition) -> list[str]:
    return [a.describe() for a in t.actions]


def test_a_new_group_starts_in_order_on_the_preferred_node() -> None:
    t = schedule(config(), view(), NOW)
    assert steps(t) == ["start ip on n2", "start app on n2"]
    assert t.actions[1].after == (t.actions[0].id,)
    assert t.placement == {"web": "n2"}
    assert "location prefer-n2" in t.actions[0].reason


def test_stickiness_keeps_a_running_group_where_it_is() -> None:
    t = schedule(config(), view(("ip", "n1", Role.STARTED), ("app", "n1", Role.STARTED)), NOW)
    assert steps(t) == []
    assert t.summary == "nothing to do: web on n1"


def test_a_failed_member_restarts_in_place_with_the_members_after_it() -> None:
    failures = (FailRecord(resource="ip", node="n1", count=1, last_failure=NOW - 1),)
    t = schedule(config(), view(("ip", "n1", Role.FAILED), ("app", "n1", Role.STARTED),
                                failures=failures), NOW)
    assert steps(t) == ["stop app on n1", "stop ip on n1", "start ip on n1", "start app on n1"]
    stop_app, stop_ip, start_ip, start_app = t.actions
    assert stop_ip.after == (stop_app.id,)
    assert set(start_ip.after) == {stop_app.id, stop_ip.id}
    assert start_app.after == (start_ip.id,)
    assert "failure 1 of 3" in stop_ip.reason
    assert "recover ip" in t.summary


def test_reaching_the_migration_threshold_moves_the_group() -> None:
    failures = (FailRecord(resource="app", node="n1", count=2, last_failure=NOW - 1),)
    t = schedule(config(), view(("ip", "n1", Role.STARTED), ("app", "n1", Role.FAILED),
                                failures=failures), NOW)
    assert steps(t) == ["stop app on n1", "stop ip on n1", "start ip on n2", "start app on n2"]
    assert "web moves from n1 to n2: app had 2 failures there" in t.actions[0].reason


def test_failures_expire_after_the_failure_timeout() -> None:
    failures = (FailRecord(resource="app", node="n1", count=2, last_failure=NOW - 61),)
    t = schedule(config(), view(("ip", "n1", Role.STARTED), ("app", "n1", Role.FAILED),
                                failures=failures), NOW)
    assert steps(t) == ["stop app on n1", "start app on n1"]


def test_a_group_that_cannot_run_anywhere_stops_with_the_reason() -> None:
    failures = (FailRecord(resource="app", node="n1", count=2, last_failure=NOW - 1),)
    t = schedule(config(), view(("ip", "n1", Role.STARTED), ("app", "n1", Role.FAILED),
                                failures=failures, down=("n2",)), NOW)
    assert steps(t) == ["stop app on n1", "stop ip on n1"]
    assert t.placement == {"web": None}
    (note,) = t.notes
    assert "cannot run anywhere" in note.text
    assert "app had 2 failures there (migration threshold 2)" in note.text
    assert "n2 is down" in note.text


def test_a_fatal_failure_bans_the_node_at_once() -> None:
    failures = (FailRecord(resource="ip", node="n2", count=1, last_failure=NOW, fatal=True),)
    t = schedule(config(), view(failures=failures), NOW)
    assert steps(t) == ["start ip on n1", "start app on n1"]


def test_standby_drains_a_node() -> None:
    t = schedule(config(), view(("ip", "n2", Role.STARTED), ("app", "n2", Role.STARTED),
                                standby=("n2",)), NOW)
    assert steps(t) == ["stop app on n2", "stop ip on n2", "start ip on n1", "start app on n1"]


def test_maintenance_mode_changes_nothing() -> None:
    t = schedule(config(maintenance=True), view(("app", "n1", Role.FAILED)), NOW)
    assert steps(t) == []
    assert "maintenance" in t.summary


def test_no_quorum_stop_policy_stops_everything() -> None:
    t = schedule(config(), view(("ip", "n2", Role.STARTED), ("app", "n2", Role.STARTED),
                                quorum=False), NOW)
    assert steps(t) == ["stop app on n2", "stop ip on n2"]


def test_no_quorum_freeze_policy_leaves_everything() -> None:
    t = schedule(config(no_quorum_policy="freeze"),
                 view(("ip", "n2", Role.STARTED), quorum=False), NOW)
    assert steps(t) == []


def test_a_blocked_member_leaves_its_group_alone() -> None:
    t = schedule(config(), view(("ip", "n1", Role.BLOCKED), ("app", "n1", Role.STARTED)), NOW)
    assert steps(t) == []
    assert any("blocked" in n.text for n in t.notes)


def test_schedule_is_stable_once_applied() -> None:
    cfg = config()
    first = schedule(cfg, view(), NOW)
    started = tuple((a.resource or "", a.node, Role.STARTED) for a in first.actions
                    if a.kind is ActionKind.START)
    assert schedule(cfg, view(*started), NOW).actions == ()


def test_a_member_with_target_role_stopped_stops_the_members_after_it() -> None:
    cfg = ClusterConfig.from_mapping({
        "cluster": {"name": "c"}, "nodes": [{"name": "n1"}, {"name": "n2"}],
        "groups": [{"name": "web", "resources": [
            {"name": "ip", "type": "dummy", "meta": {"target_role": "stopped"}},
            {"name": "app", "type": "dummy"},
        ]}],
    })
    t = schedule(cfg, view(("ip", "n1", Role.STARTED), ("app", "n1", Role.STARTED)), NOW)
    assert steps(t) == ["stop app on n1", "stop ip on n1"]
    assert "ip before it in web stays stopped" in t.actions[0].reason
