"""Three real cluster servers: a lost node's service moves, but only after it is fenced."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyha.membership.election import election_line
from tests.cluster.harness import LocalCluster, fence_skip, wait_for

pytestmark = pytest.mark.slow
FENCES = [pytest.param(kind, marks=pytest.mark.skipif(bool(fence_skip(kind)),
                                                      reason=fence_skip(kind) or "usable"))
          for kind in ("cgroup", "process-tree")]


def started(c: LocalCluster) -> str:
    wait_for(lambda: len(c.running_on()) == 1, 40, "the service starts somewhere", c)
    wait_for(lambda: c.coordinator() is not None, 10, "a coordinator is elected", c)
    return c.running_on()[0]


@pytest.fixture(params=FENCES)
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    yield from LocalCluster(tmp_path, fence=request.param).serving()


LAST_IN_LINE = election_line(frozenset({"n1", "n2", "n3"}), 0)[-1]
"""The node last in line to stand in the first election."""


@pytest.fixture(params=FENCES)
def service_apart(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    """The service prefers the node last in line for coordinator: the two are apart,
    unless the first nodes in line start late (then the test skips)."""
    yield from LocalCluster(tmp_path, fence=request.param, prefer=LAST_IN_LINE).serving()


def test_the_group_starts_once_and_moves_after_its_node_is_fenced(
        cluster: LocalCluster) -> None:
    first = started(cluster)
    cluster.kill_server(first)  # the server dies; the service it started keeps running
    wait_for(lambda: any(n != first for n in cluster.running_on()), 40,
             "the service runs on another node", cluster)
    (second,) = cluster.running_on()
    assert second != first
    wait_for(lambda: cluster.starts() == 2, 10, "the new copy records its start", cluster)
    logs = "".join(cluster.log(n) for n in cluster.nodes if n != first)
    assert f"fencing {first}" in logs
    assert f"fence {first}: " in logs
    assert cluster.starts() == 2


def test_losing_the_coordinator_elsewhere_leaves_the_service_alone(
        service_apart: LocalCluster) -> None:
    cluster = service_apart
    wait_for(lambda: cluster.running_on() == [LAST_IN_LINE], 40,
             f"the service starts on {LAST_IN_LINE}", cluster)
    where = started(cluster)
    coordinator = cluster.coordinator()
    assert coordinator is not None
    if coordinator == where:
        pytest.skip("the coordinator runs the service this time; the other test covers it")
    cluster.kill_server(coordinator)
    wait_for(lambda: cluster.coordinator() not in (None, coordinator), 30,
             "a new coordinator is elected", cluster)
    new = cluster.coordinator()
    wait_for(lambda: f"fence {coordinator}: " in cluster.log(new or ""), 30,
             "the lost coordinator is fenced", cluster)
    assert cluster.running_on() == [where]
    assert cluster.starts() == 1


def test_a_paused_server_is_fenced_before_its_service_starts_elsewhere(
        cluster: LocalCluster) -> None:
    first = started(cluster)
    cluster.signal(first, signal.SIGSTOP)  # paused: it stops nothing, its service runs on
    wait_for(lambda: any(n != first for n in cluster.running_on()), 40,
             "the service runs on another node", cluster)
    assert len(cluster.running_on()) == 1
    wait_for(lambda: cluster.starts() == 2, 10, "the new copy records its start", cluster)


def test_a_clean_shutdown_moves_the_group_away_first(cluster: LocalCluster) -> None:
    first = started(cluster)
    cluster.signal(first, signal.SIGTERM)
    assert cluster.procs[first].wait(timeout=60) == 0
    wait_for(lambda: len(cluster.running_on()) == 1, 30, "the service runs elsewhere", cluster)
    assert cluster.running_on() != [first]
    wait_for(lambda: cluster.starts() == 2, 10, "the new copy records its start", cluster)
    logs = "".join(cluster.log(n) for n in cluster.nodes)
    assert f"fencing {first}" not in logs


def test_without_a_fence_device_a_lost_node_is_not_recovered(tmp_path: Path) -> None:
    c = LocalCluster(tmp_path, fence="none")
    try:
        for node in c.nodes:
            c.start(node)
        first = started(c)
        c.kill_server(first)
        others = [n for n in c.nodes if n != first]
        wait_for(lambda: any("it has no fence device, so its groups wait" in c.log(n)
                             for n in others), 30, "the coordinator says why it waits", c)
        assert c.running_on() == [first]  # still where it was: never on two nodes
        assert c.starts() == 1
    finally:
        c.close()
