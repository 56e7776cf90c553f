"""The recurring monitor schedule: due times, rescheduling, no catch-up bursts."""

from __future__ import annotations

import pytest

from pyha.executor.monitors import Monitor, MonitorSchedule


def test_first_run_is_one_interval_after_adding() -> None:
    schedule = MonitorSchedule()
    schedule.add("web1", 10.0, 5.0, now=100.0)
    assert schedule.next_due() == 110.0
    assert schedule.due(109.9) == []
    assert schedule.due(110.0) == [Monitor("web1", 10.0, 5.0, 110.0)]


def test_due_reschedules_from_the_actual_run_time() -> None:
    schedule = MonitorSchedule()
    schedule.add("web1", 10.0, None, now=0.0)
    assert [m.due for m in schedule.due(13.0)] == [10.0]
    assert schedule.next_due() == 23.0
    assert schedule.due(22.0) == []
    assert len(schedule.due(23.0)) == 1


def test_a_long_gap_runs_each_monitor_once_not_a_burst() -> None:
    schedule = MonitorSchedule()
    schedule.add("web1", 1.0, None, now=0.0)
    schedule.add("db", 2.0, None, now=0.0)
    ran = schedule.due(100.0)
    assert [m.resource for m in ran] == ["web1", "db"]
    assert schedule.due(100.0) == []
    assert schedule.next_due() == 101.0
    assert [m.resource for m in schedule.due(101.0)] == ["web1"]


def test_due_lists_earliest_first() -> None:
    schedule = MonitorSchedule()
    schedule.add("slow", 30.0, None, now=0.0)
    schedule.add("fast", 5.0, None, now=0.0)
    schedule.add("mid", 10.0, None, now=0.0)
    assert [m.resource for m in schedule.due(40.0)] == ["fast", "mid", "slow"]
    assert [m.resource for m in schedule.monitors()] == ["fast", "mid", "slow"]


def test_adding_the_same_interval_again_replaces_it() -> None:
    schedule = MonitorSchedule()
    schedule.add("web1", 10.0, 5.0, now=0.0)
    schedule.add("web1", 10.0, 8.0, now=4.0)
    assert schedule.monitors() == [Monitor("web1", 10.0, 8.0, 14.0)]


def test_a_resource_may_have_several_intervals() -> None:
    schedule = MonitorSchedule()
    schedule.add("web1", 10.0, None, now=0.0)
    schedule.add("web1", 60.0, None, now=0.0)
    assert len(schedule) == 2
    assert [m.interval for m in schedule.due(60.0)] == [10.0, 60.0]


def test_remove_drops_every_monitor_of_the_resource() -> None:
    schedule = MonitorSchedule()
    schedule.add("web1", 10.0, None, now=0.0)
    schedule.add("web1", 60.0, None, now=0.0)
    schedule.add("db", 20.0, None, now=0.0)
    assert "web1" in schedule
    assert schedule.remove("web1") == 2
    assert "web1" not in schedule
    assert "db" in schedule
    assert schedule.remove("web1") == 0
    assert schedule.due(1000.0)[0].resource == "db"


def test_next_due_is_none_when_empty() -> None:
    schedule = MonitorSchedule()
    assert schedule.next_due() is None
    schedule.add("web1", 10.0, None, now=0.0)
    schedule.remove("web1")
    assert schedule.next_due() is None
    assert schedule.due(1e9) == []


@pytest.mark.parametrize("interval", [0.0, -1.0])
def test_interval_must_be_positive(interval: float) -> None:
    with pytest.raises(ValueError, match="web1"):
        MonitorSchedule().add("web1", interval, None, now=0.0)
