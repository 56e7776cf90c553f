"""Cluster servers in network namespaces: partitions, a cut link, a killed coordinator.

Each node is a namespace host on a bridge (198.18.20.<i>/24), its `pyha server` runs
inside it, and the coordinator fences a lost node by killing every process of its
namespace. The group holds the guarded service, which writes VIOLATION if it ever runs
on two nodes at once. Every test checks, once the fault is over: the group runs on
exactly one node, never ran twice at once, and the minority side stopped its resources
or was fenced.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.netns_cluster import FLOATING, NetnsCluster, wait_for
from tests.netns import Lab, netns_lab

PREFIX = "pyhacl"
SKIP = ("needs root to create network namespaces" if os.geteuid() != 0
        else "needs the ip command (iproute2)" if shutil.which("ip") is None else "")
pytestmark = [pytest.mark.slow, pytest.mark.root,
              pytest.mark.skipif(bool(SKIP), reason=SKIP or "runs")]

SETTLE = 60.0
"""Seconds a cluster gets to start, or to recover after a fault."""
QUIET = 3.0
"""Seconds a fault that must change nothing is left in place (three times dead_after)."""


@pytest.fixture
def lab() -> Iterator[Lab]:
    with netns_lab(PREFIX) as lab:
        yield lab


def started(lab: Lab, root: Path, **options: Any) -> NetnsCluster:
    """A cluster whose servers all run, whose nodes all see each other, whose group runs."""
    cluster = NetnsCluster(lab, root, **options)
    cluster.start_all()
    cluster.heal(SETTLE)
    wait_for(lambda: len(cluster.running_on()) == 1, SETTLE, "the group starts on one node",
             cluster)
    cluster.steady(SETTLE)
    return cluster


def running_once(cluster: NetnsCluster, among: list[str]) -> str:
    """After recovery: the node where the group runs, once, among `among`; never twice."""
    wait_for(lambda: len(cluster.running_on()) == 1 and cluster.running_on()[0] in among,
             SETTLE, f"the group runs on one node of {among}", cluster)
    assert cluster.violations() == [], "the guarded service ran on two nodes at once"
    return cluster.running_on()[0]


def fenced(cluster: NetnsCluster, node: str) -> bool:
    """True when a fence emptied the node's namespace, as some node's log says."""
    said = f"fence {node}: namespace {cluster.hosts[node].name} is empty"
    return cluster.is_empty(node) and any(said in cluster.log(n) for n in cluster.nodes)


def same_members(cluster: NetnsCluster, node: str, expected: list[str]) -> bool:
    """True when `node` answers and counts exactly `expected` as members."""
    answer = cluster.status(node)
    return answer is not None and list(answer["members"]) == expected


def logged_since(cluster: NetnsCluster, node: str, mark: int) -> str:
    """What `node` logged after `mark` (a length of its log)."""
    return cluster.log(node)[mark:]


def test_an_isolated_node_is_fenced_and_its_floating_address_serves_from_the_majority(
        lab: Lab, tmp_path: Path) -> None:
    c = started(lab, tmp_path, web=True)
    first = c.running_on()[0]
    wait_for(lambda: c.served_by(c.http()) == first, 20, f"{FLOATING} answers from {first}", c)
    mark = len(c.log(first))
    c.unplug(first)  # a full partition: the node alone on one side, two on the other
    others = [n for n in c.nodes if n != first]
    second = running_once(c, others)
    wait_for(lambda: c.served_by(c.http()) == second, 20, f"{FLOATING} answers from {second}", c)
    assert fenced(c, first), "the majority fenced the isolated node"
    assert c.running_on("web") == [second]
    said = logged_since(c, first, mark)
    if "quorum lost" in said:  # it noticed before the fence killed it: it stopped too
        assert "no_quorum_policy=stop" in said
    c.reboot(first)  # a fenced node comes back only through a reboot
    c.heal(SETTLE)
    assert running_once(c, c.nodes) == second
    assert c.served_by(c.http()) == second
    assert c.address_on() == [second]


def test_a_split_of_five_into_three_and_two_keeps_the_group_with_the_three(
        lab: Lab, tmp_path: Path) -> None:
    c = started(lab, tmp_path, size=5)
    where = c.running_on()[0]
    coordinator = c.coordinator()
    idle = next(n for n in c.nodes if n not in (where, coordinator))
    minority = [where, idle]
    majority = [n for n in c.nodes if n not in minority]
    marks = {n: len(c.log(n)) for n in minority}
    for node in minority:
        c.unplug(node)
    running_once(c, majority)
    for node in majority:  # the three keep quorum and see each other only
        wait_for(partial(same_members, c, node, majority), 20, f"{node} counts the three", c)
        answer = c.status(node)
        assert answer is not None and answer["quorate"] is True
    for node in minority:  # the two lose it: they stop what they run, or are fenced
        said = logged_since(c, node, marks[node])
        # The count it logs depends on which peers it had declared down first.
        assert re.search(r"quorum lost: [12] of 5 votes", said) or fenced(c, node), node
    assert fenced(c, where) or "no_quorum_policy=stop" in \
        logged_since(c, where, marks[where])
    for node in minority:
        c.reboot(node)
    c.heal(SETTLE)
    running_once(c, majority)


def test_one_cut_link_of_two_moves_nothing(lab: Lab, tmp_path: Path) -> None:
    c = started(lab, tmp_path, links=2)
    where = c.running_on()[0]
    other = next(n for n in c.nodes if n != where)
    marks = {n: len(c.log(n)) for n in c.nodes}
    # Link 1 also carries the node-to-node calls; link 2 only heartbeats.
    for node, link in ((where, 1), (other, 2)):
        c.unplug(node, link)
        time.sleep(QUIET)
        c.plug(node, link)
    time.sleep(QUIET)
    said = "".join(logged_since(c, n, marks[n]) for n in c.nodes)
    assert " is down" not in said
    assert "fencing" not in said
    assert "quorum lost" not in said
    assert running_once(c, c.nodes) == where
    assert c.starts() == 1


def test_a_killed_coordinator_is_fenced_and_an_orphaned_service_with_it(
        lab: Lab, tmp_path: Path) -> None:
    c = started(lab, tmp_path)
    wait_for(lambda: c.coordinator() is not None, 20, "a coordinator is elected", c)
    old = c.coordinator()
    assert old is not None
    c.kill_server(old)
    survivors = [n for n in c.nodes if n != old]
    wait_for(lambda: c.coordinator() not in (None, old), SETTLE, "a new coordinator", c)
    wait_for(lambda: fenced(c, old), SETTLE, f"{old} is fenced", c)
    running_once(c, survivors)
    c.reboot(old)
    c.heal(SETTLE)
    c.steady(SETTLE)
    # Now the server of the node running the group dies while its service runs on.
    where = running_once(c, c.nodes)
    starts = c.starts()
    c.kill_server(where)
    elsewhere = running_once(c, [n for n in c.nodes if n != where])
    assert fenced(c, where), "the orphaned service was killed with its namespace"
    wait_for(lambda: c.starts() == starts + 1, 20, f"the service starts on {elsewhere}", c)
