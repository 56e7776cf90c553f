"""Operation history and fail counts: what is kept, what counts, what expires."""

from __future__ import annotations

import threading

import pytest

from pyha.executor.history import FailCounts, OperationHistory
from pyha.resources.spi import CallStatus, OcfCode, OperationResult


def result(
    operation: str = "monitor",
    code: int = OcfCode.SUCCESS,
    *,
    resource: str = "web1",
    node: str = "n1",
    status: CallStatus = CallStatus.DONE,
    started: float = 0.0,
) -> OperationResult:
    return OperationResult(resource, operation, node, status, int(code), started=started)


# --- history -------------------------------------------------------------------------------


def test_history_keeps_results_per_resource_oldest_first() -> None:
    history = OperationHistory()
    first, second = result("start", started=1.0), result("monitor", started=2.0)
    history.record(first)
    history.record(result(resource="db", started=1.5))
    history.record(second)
    assert history.for_resource("web1") == [first, second]
    assert history.for_resource("nothing") == []


def test_history_drops_the_oldest_beyond_the_limit() -> None:
    history = OperationHistory(limit_per_resource=3)
    for i in range(5):
        history.record(result(started=float(i)))
    assert [r.started for r in history.for_resource("web1")] == [2.0, 3.0, 4.0]


def test_last_by_operation() -> None:
    history = OperationHistory()
    start = result("start", started=1.0)
    history.record(start)
    history.record(result("monitor", started=2.0))
    history.record(result("monitor", OcfCode.NOT_RUNNING, started=3.0))
    last = history.last("web1")
    assert last is not None
    assert last.code == OcfCode.NOT_RUNNING
    assert history.last("web1", "start") == start
    assert history.last("web1", "stop") is None
    assert history.last("db") is None


def test_all_is_sorted_by_start_time() -> None:
    history = OperationHistory()
    history.record(result(resource="web1", started=3.0))
    history.record(result(resource="db", started=1.0))
    history.record(result(resource="web1", started=5.0))
    history.record(result(resource="db", started=4.0))
    assert [r.started for r in history.all()] == [1.0, 3.0, 4.0, 5.0]


def test_forget_drops_a_resource() -> None:
    history = OperationHistory()
    history.record(result())
    history.forget("web1")
    assert history.for_resource("web1") == []


def test_history_is_safe_across_threads() -> None:
    history = OperationHistory(limit_per_resource=1000)

    def writer(name: str) -> None:
        for i in range(200):
            history.record(result(resource=name, started=float(i)))

    threads = [threading.Thread(target=writer, args=(f"r{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(history.all()) == 800


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        OperationHistory(limit_per_resource=0)


# --- fail counts ---------------------------------------------------------------------------


def test_successes_and_expected_answers_do_not_count() -> None:
    counts = FailCounts()
    assert counts.record(result("start"), at=10.0) is None
    assert counts.record(result("monitor", OcfCode.NOT_RUNNING), at=10.0) is None
    assert counts.records() == ()


def test_failures_increment_per_resource_and_node() -> None:
    counts = FailCounts()
    counts.record(result("monitor", OcfCode.ERR_GENERIC), at=10.0)
    record = counts.record(result("monitor", OcfCode.ERR_GENERIC), at=20.0)
    counts.record(result("monitor", OcfCode.ERR_GENERIC, node="n2"), at=15.0)
    assert record is not None
    assert (record.count, record.last_failure, record.fatal) == (2, 20.0, False)
    other = counts.get("web1", "n2")
    assert other is not None and other.count == 1
    assert counts.get("db", "n1") is None
    assert [(r.resource, r.node) for r in counts.records()] == [("web1", "n1"), ("web1", "n2")]


def test_timeouts_count_as_soft_failures() -> None:
    counts = FailCounts()
    record = counts.record(result("monitor", 1, status=CallStatus.TIMEOUT), at=1.0)
    assert record is not None
    assert (record.count, record.fatal) == (1, False)


@pytest.mark.parametrize(
    ("operation", "code", "status"),
    [
        ("start", OcfCode.ERR_INSTALLED, CallStatus.DONE),  # hard: ban this node
        ("start", OcfCode.ERR_CONFIGURED, CallStatus.DONE),  # fatal: ban everywhere
        ("stop", OcfCode.ERR_GENERIC, CallStatus.DONE),  # a failed stop bans the node
        ("monitor", OcfCode.ERR_GENERIC, CallStatus.NOT_INSTALLED),
    ],
)
def test_hard_and_fatal_failures_set_the_fatal_flag(
    operation: str, code: int, status: CallStatus
) -> None:
    counts = FailCounts()
    record = counts.record(result(operation, code, status=status), at=1.0)
    assert record is not None and record.fatal


def test_fatal_stays_set_after_later_soft_failures() -> None:
    counts = FailCounts()
    counts.record(result("start", OcfCode.ERR_INSTALLED), at=1.0)
    record = counts.record(result("monitor", OcfCode.ERR_GENERIC), at=2.0)
    assert record is not None
    assert (record.count, record.fatal) == (2, True)


def test_a_soft_failure_can_be_recorded_as_fatal_by_policy() -> None:
    counts = FailCounts()
    record = counts.record(result("monitor", OcfCode.ERR_GENERIC), at=1.0, fatal=True)
    assert record is not None
    assert (record.count, record.fatal) == (1, True)
    assert counts.record(result("monitor", OcfCode.SUCCESS), at=2.0, fatal=True) is None


def test_cancelled_operations_are_not_counted() -> None:
    counts = FailCounts()
    assert counts.record(result("start", 1, status=CallStatus.CANCELLED), at=1.0) is None
    assert counts.get("web1", "n1") is None


def _three_records() -> FailCounts:
    counts = FailCounts()
    for resource, node in (("web1", "n1"), ("web1", "n2"), ("db", "n1")):
        counts.record(result(code=1, resource=resource, node=node), at=1.0)
    return counts


def test_clear_by_resource() -> None:
    counts = _three_records()
    assert counts.clear(resource="web1") == 2
    assert [(r.resource, r.node) for r in counts.records()] == [("db", "n1")]


def test_clear_by_node() -> None:
    counts = _three_records()
    assert counts.clear(node="n1") == 2
    assert [(r.resource, r.node) for r in counts.records()] == [("web1", "n2")]


def test_clear_by_resource_and_node() -> None:
    counts = _three_records()
    assert counts.clear(resource="web1", node="n2") == 1
    assert len(counts.records()) == 2


def test_clear_everything() -> None:
    counts = _three_records()
    assert counts.clear() == 3
    assert counts.records() == ()
    assert counts.clear() == 0


def test_expire_drops_records_older_than_their_failure_timeout() -> None:
    counts = FailCounts()
    counts.record(result(code=1, resource="web1"), at=100.0)
    counts.record(result(code=1, resource="db"), at=100.0)
    timeouts = {"web1": 60.0, "db": 600.0}
    assert counts.expire(159.0, timeouts.__getitem__) == []
    dropped = counts.expire(160.0, timeouts.__getitem__)
    assert [r.resource for r in dropped] == ["web1"]
    assert [r.resource for r in counts.records()] == ["db"]


def test_a_new_failure_restarts_the_expiry_clock() -> None:
    counts = FailCounts()
    counts.record(result(code=1), at=100.0)
    counts.record(result(code=1), at=150.0)
    assert counts.expire(200.0, lambda _: 60.0) == []
    assert len(counts.expire(210.0, lambda _: 60.0)) == 1


def test_failure_timeout_zero_never_expires() -> None:
    counts = FailCounts()
    counts.record(result(code=1), at=0.0)
    assert counts.expire(1e12, lambda _: 0.0) == []
    assert counts.get("web1", "n1") is not None


def test_fatal_records_never_expire_by_time() -> None:
    counts = FailCounts()
    counts.record(result("start", OcfCode.ERR_INSTALLED), at=0.0)
    assert counts.expire(1e12, lambda _: 1.0) == []
    assert counts.clear(resource="web1") == 1
