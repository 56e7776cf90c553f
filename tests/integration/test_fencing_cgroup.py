"""CgroupFence on this machine's cgroups: a node's whole process tree is killed, then checked."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyha.clock import MonotonicClock
from pyha.fencing import (
    CgroupFence,
    FenceError,
    NodeState,
    cgroup_name,
    detect_hierarchies,
    enter_argv,
    place_in_cgroup,
    remove_cgroup,
)
from pyha.fencing.cgroup import Hierarchy

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]
CLOCK = MonotonicClock()
CLUSTER = f"pyhafence-{os.getpid()}"
_NODES = itertools.count(1)

TREE = textwrap.dedent("""
    import os, subprocess, sys, time
    out = sys.argv[1]
    pids = [os.getpid()]
    for _ in range(3):  # services started in their own sessions, as plugins do
        pids.append(subprocess.Popen(["sleep", "300"], start_new_session=True).pid)
    read, write = os.pipe()
    if os.fork() == 0:  # a daemon: double fork, new session, reparented away from us
        os.setsid()
        if os.fork() == 0:
            os.write(write, b"%d\\n" % os.getpid())
            time.sleep(300)
        os._exit(0)
    pids.append(int(os.read(read, 32)))
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

SELF_FENCE = textwrap.dedent("""
    import json, sys
    from pyha.clock import MonotonicClock
    from pyha.fencing import CgroupFence
    fence = CgroupFence(sys.argv[1])
    result = fence.fence(sys.argv[2], MonotonicClock().now() + 5)
    print(json.dumps({"ok": result.ok, "message": result.message}))
""")


def usable_hierarchies() -> list[Hierarchy]:
    """Hierarchies where a cgroup can really be made here, or skip the test."""
    usable = []
    for hierarchy in detect_hierarchies():
        probe = hierarchy.root / "pyha" / f"{CLUSTER}-probe"
        try:
            probe.mkdir(parents=True, exist_ok=True)
            probe.rmdir()
        except OSError:
            continue
        usable.append(hierarchy)
    if not usable:
        pytest.skip("no writable cgroup hierarchy on this machine")
    return usable


HIERARCHY_KINDS = ["v2", "freezer", "pids"]


class Tree:
    """A process tree started inside a node's cgroup; records the pids it started."""

    def __init__(self, proc: subprocess.Popen[bytes], pids: list[int]) -> None:
        self.proc = proc
        self.pids = pids


@pytest.fixture
def node() -> Iterator[str]:
    """A fresh node name; its cgroup is emptied and removed afterwards, even on failure."""
    name = f"n{next(_NODES)}"
    yield name
    cgroup = cgroup_name(CLUSTER, name)
    hierarchies = detect_hierarchies()
    for _ in range(100):
        pids = set().union(*(h.pids(cgroup) for h in hierarchies if h.exists(cgroup)))
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
    remove_cgroup(cgroup, hierarchies)


@pytest.fixture
def trees(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def start_tree(node: str, tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> Tree:
    out = tmp_path / f"{node}.pids"
    program = tmp_path / "tree.py"
    program.write_text(TREE)
    argv = enter_argv(cgroup_name(CLUSTER, node), [sys.executable, str(program), str(out)])
    proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            start_new_session=True)
    procs.append(proc)
    for _ in range(500):
        if out.exists() or proc.poll() is not None:
            break
        time.sleep(0.02)
    assert out.exists(), f"the tree did not start (exit {proc.poll()})"
    return Tree(proc, [int(w) for w in out.read_text().split()])


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def members(node: str) -> set[int]:
    cgroup = cgroup_name(CLUSTER, node)
    return set().union(*(h.pids(cgroup) for h in detect_hierarchies() if h.exists(cgroup)))


@pytest.mark.parametrize("kind", [*HIERARCHY_KINDS, "all"])
def test_fencing_kills_the_whole_tree_and_empties_the_cgroup(
        kind: str, node: str, tmp_path: Path, trees: list[subprocess.Popen[bytes]]) -> None:
    usable = usable_hierarchies()
    chosen = usable if kind == "all" else [h for h in usable if h.kind == kind]
    if not chosen:
        pytest.skip(f"no writable {kind} hierarchy here")
    tree = start_tree(node, tmp_path, trees)
    assert len(tree.pids) == 5
    assert set(tree.pids) <= members(node)
    for _ in range(250):  # let the forker get going: fencing must win against it
        if len(members(node)) >= 15:
            break
        time.sleep(0.02)
    fence = CgroupFence(CLUSTER, hierarchies=chosen)
    assert fence.status(node, CLOCK.now() + 5) is NodeState.ON
    result = fence.fence(node, CLOCK.now() + 10)
    assert result.ok, result.message
    assert result.method == "cgroup"
    assert "is empty (killed" in result.message
    assert [pid for pid in tree.pids if alive(pid)] == []
    assert members(node) == set()
    assert fence.status(node, CLOCK.now() + 5) is NodeState.OFF
    tree.proc.wait(5)
    assert tree.proc.returncode == -signal.SIGKILL


def test_fencing_an_empty_or_missing_cgroup_succeeds(node: str) -> None:
    usable = usable_hierarchies()
    fence = CgroupFence(CLUSTER, hierarchies=usable)
    missing = fence.fence(node, CLOCK.now() + 5)
    assert missing.ok
    assert "does not exist" in missing.message
    for hierarchy in usable:
        hierarchy.path(cgroup_name(CLUSTER, node)).mkdir(parents=True)
    empty = fence.fence(node, CLOCK.now() + 5)
    assert empty.ok, empty.message
    assert "it was empty" in empty.message


def test_a_running_process_can_be_placed_and_cleanup_removes_the_cgroups(node: str) -> None:
    usable = usable_hierarchies()
    cgroup = cgroup_name(CLUSTER, node)
    proc = subprocess.Popen(["sleep", "300"])
    try:
        paths = place_in_cgroup(cgroup, proc.pid, usable)
        assert {p.parent.parent.parent for p in paths} == {h.root for h in usable}
        assert members(node) == {proc.pid}
        with pytest.raises(FenceError, match="still has processes"):
            remove_cgroup(cgroup, usable)
        assert CgroupFence(CLUSTER, hierarchies=usable).fence(node, CLOCK.now() + 5).ok
    finally:
        proc.kill()
        proc.wait(5)
    remove_cgroup(cgroup, usable)
    for hierarchy in usable:
        assert not hierarchy.path(cgroup).exists()
        assert not (hierarchy.root / "pyha" / CLUSTER).exists()


def test_a_node_never_fences_the_cgroup_it_runs_in(node: str, tmp_path: Path) -> None:
    usable_hierarchies()
    program = tmp_path / "self_fence.py"
    program.write_text(SELF_FENCE)
    argv = enter_argv(cgroup_name(CLUSTER, node), [sys.executable, str(program), CLUSTER, node])
    done = subprocess.run(argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=30, check=True)
    answer = json.loads(done.stdout)
    assert not answer["ok"]
    assert "this process is in cgroup" in answer["message"]


def test_the_enter_wrapper_explains_its_usage() -> None:
    done = subprocess.run([sys.executable, "-m", "pyha.fencing.enter", "x"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert "usage:" in done.stderr
