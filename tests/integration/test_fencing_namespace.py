"""NamespaceFence on network namespaces: every process inside is killed, the cable pulled."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyha.clock import MonotonicClock
from pyha.fencing import NamespaceFence, NamespaceNode, NodeState, namespace_pids
from tests.netns import Host, Lab, netns_lab

pytestmark = pytest.mark.root

CLOCK = MonotonicClock()

TREE = textwrap.dedent("""
    import os, subprocess, sys, time
    out = sys.argv[1]
    pids = [os.getpid()]
    for _ in range(2):
        pids.append(subprocess.Popen(["sleep", "300"], start_new_session=True).pid)
    if os.fork() == 0:  # a forker that never stops making children
        for _ in range(5000):
            subprocess.Popen(["sleep", "300"], start_new_session=True)
            time.sleep(0.005)
        os._exit(0)
    with open(out + ".tmp", "w") as f:
        f.write(" ".join(map(str, pids)))
    os.rename(out + ".tmp", out)
    time.sleep(300)
""")


@pytest.fixture
def lab() -> Iterator[Lab]:
    with netns_lab("pyhafence") as lab:
        yield lab


@pytest.fixture
def host(lab: Lab) -> Host:
    return lab.add_host("n1", ["198.18.12.1/24"])


def start_tree(host: Host, tmp_path: Path) -> list[int]:
    program, out = tmp_path / "tree.py", tmp_path / "tree.pids"
    program.write_text(TREE)
    host.popen([sys.executable, str(program), str(out)])
    for _ in range(500):
        if out.exists() and len(host.pids()) >= 10:
            break
        time.sleep(0.02)
    assert out.exists(), "the tree did not start"
    return [int(w) for w in out.read_text().split()]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def port_up(lab: Lab, host: Host) -> bool:
    shown = json.loads(lab.bridge.ip("-j", "link", "show", "dev", host.port).stdout)
    return "UP" in shown[0]["flags"]


def test_every_process_in_the_namespace_is_killed_and_the_port_set_down(
        lab: Lab, host: Host, tmp_path: Path) -> None:
    sleepers = [host.popen(["sleep", "300"]) for _ in range(3)]
    tree = start_tree(host, tmp_path)
    assert {s.pid for s in sleepers} | set(tree) <= namespace_pids(host.name)
    assert port_up(lab, host)
    fence = NamespaceFence({"n1": NamespaceNode(host.name, host.port, lab.bridge.name)})
    assert fence.status("n1", CLOCK.now() + 5) is NodeState.ON
    result = fence.fence("n1", CLOCK.now() + 10)
    assert result.ok, result.message
    assert result.method == "namespace"
    assert f"bridge port {host.port} is down" in result.message
    assert namespace_pids(host.name) == set()
    assert host.pids() == []  # what `ip netns pids` says, too
    assert [pid for pid in [*tree, *(s.pid for s in sleepers)] if alive(pid)] == []
    assert not port_up(lab, host)
    assert fence.status("n1", CLOCK.now() + 5) is NodeState.OFF


def test_an_empty_namespace_is_fenced_at_once(host: Host) -> None:
    result = NamespaceFence({"n1": host.name}).fence("n1", CLOCK.now() + 5)
    assert result.ok, result.message
    assert "it was empty" in result.message


def test_a_namespace_without_a_name_is_not_counted_as_fenced(lab: Lab) -> None:
    fence = NamespaceFence({"n1": f"{lab.prefix}-gone"})
    result = fence.fence("n1", CLOCK.now() + 5)
    assert not result.ok
    assert "does not exist" in result.message
    assert fence.status("n1", CLOCK.now() + 5) is NodeState.UNKNOWN


def test_a_port_that_cannot_be_set_down_is_reported(lab: Lab, host: Host) -> None:
    sleeper = host.popen(["sleep", "300"])
    fence = NamespaceFence({"n1": NamespaceNode(host.name, "p-nosuch", lab.bridge.name)})
    result = fence.fence("n1", CLOCK.now() + 5)
    assert result.ok, result.message  # nothing runs: the node is fenced all the same
    assert "bridge port p-nosuch not set down" in result.message
    assert not alive(sleeper.pid)


def test_ip_netns_exec_processes_are_found_like_ip_netns_pids(host: Host) -> None:
    sleeper = host.popen(["sleep", "300"])
    for _ in range(250):
        if host.pids():
            break
        time.sleep(0.02)
    assert namespace_pids(host.name) == set(host.pids()) == {sleeper.pid}
    subprocess.run(["kill", "-9", str(sleeper.pid)], check=True, timeout=10)
    sleeper.wait(10)
    assert namespace_pids(host.name) == set()


def test_a_node_never_fences_the_namespace_it_runs_in(tmp_path: Path) -> None:
    (tmp_path / "here").symlink_to("/proc/self/ns/net")  # names the namespace we run in
    fence = NamespaceFence({"n1": "here"}, netns_dir=tmp_path)
    result = fence.fence("n1", CLOCK.now() + 5)
    assert not result.ok
    assert "this process is in namespace here" in result.message


def test_one_kill_round_runs_even_past_the_deadline(host: Host) -> None:
    sleeper = host.popen(["sleep", "300"])
    for _ in range(250):
        if host.pids():
            break
        time.sleep(0.02)
    result = NamespaceFence({"n1": host.name}).fence("n1", CLOCK.now() - 1)
    assert result.ok, result.message
    assert not alive(sleeper.pid)
