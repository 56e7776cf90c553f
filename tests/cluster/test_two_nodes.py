"""Two-node clusters: refused without a tiebreaker; with a fence race, the survivor of a
lost or paused peer fences it first and then runs its groups; never both at once."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.harness import LocalCluster, wait_for

pytestmark = pytest.mark.slow

RACE = ('tiebreaker = "fence-race"', 'fence_race_delay = "1s"')


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[LocalCluster]:
    yield from LocalCluster(tmp_path, size=2, fence="process-tree", options=RACE).serving()


def started(c: LocalCluster) -> str:
    wait_for(lambda: len(c.running_on()) == 1, 40, "the service starts on one node", c)
    return c.running_on()[0]


def test_two_nodes_without_a_tiebreaker_are_refused(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, size=2, fence="process-tree")
    try:
        cluster.start("n1")
        assert cluster.procs["n1"].wait(timeout=60) != 0
    finally:
        cluster.close()
    assert "a two-node cluster needs a tiebreaker" in cluster.log("n1")
    assert cluster.starts() == 0


def test_the_survivor_wins_the_fence_race_and_takes_over(pair: LocalCluster) -> None:
    first = started(pair)
    other = next(n for n in pair.nodes if n != first)
    pair.kill_server(first)  # its service keeps running until the fence
    wait_for(lambda: pair.running_on() == [other], 40, f"the service runs on {other}", pair)
    wait_for(lambda: pair.starts() == 2, 10, "the new copy records its start", pair)
    # Elected by winning the race ("won the fence race"), or, already coordinator, it
    # renews its lease through the tiebreaker now that it fenced the other node.
    wait_for(lambda: "tiebreak (fence-race): " in pair.log(other), 10,
             "the survivor holds the lease through the fence race", pair)


def test_a_paused_node_is_fenced_before_its_group_moves(pair: LocalCluster) -> None:
    first = started(pair)
    other = next(n for n in pair.nodes if n != first)
    wait_for(lambda: pair.coordinator() is not None, 20, "a coordinator is elected", pair)
    pair.signal(first, signal.SIGSTOP)  # paused: it stops nothing, its service runs on
    try:
        wait_for(lambda: pair.running_on() == [other], 40, f"the service runs on {other}",
                 pair)
    finally:
        if pair.procs[first].poll() is None:
            with contextlib.suppress(ProcessLookupError, IndexError, FileNotFoundError):
                pair.signal(first, signal.SIGCONT)
    assert f"fence {first}" in pair.log(other)
