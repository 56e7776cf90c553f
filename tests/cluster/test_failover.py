"""Three real cluster servers: a lost node's service moves, but only after it is fenced."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.harness import LocalCluster, cgroups_usable, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(cgroups_usable()),
                                                   reason=cgroups_usable() or "usable")]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path)
    try:
        for node in c.nodes:
            c.start(node)
        yield c
    finally:
        c.close()


def test_the_group_starts_once_and_moves_after_its_node_is_fenced(
        cluster: LocalCluster) -> None:
    wait_for(lambda: len(cluster.running_on()) == 1, 40, "the service starts somewhere")
    (first,) = cluster.running_on()

    cluster.kill_server(first)  # the server dies; the service it started keeps running
    wait_for(lambda: any(n != first for n in cluster.running_on()), 40,
             "the service runs on another node")
    (second,) = cluster.running_on()
    assert second != first
    logs = "".join(cluster.log(n) for n in cluster.nodes if n != first)
    assert f"fencing {first}" in logs
    assert f"fence {first}: cgroup" in logs
    assert cluster.violations() == []
