"""TreeFence: a keeper holds a node's whole process tree, so fencing needs no root."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pyha.fencing.device import NodeState
from pyha.fencing.tree import TreeFence, descendants, keeper_argv
from pyha.testing.waiting import eventually

# A server stand-in: it starts a service in a new session, then keeps running.
SERVER = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                 start_new_session=True)
time.sleep(300)
"""


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    assert eventually(check, timeout), "condition not met in time"


def start_node(tmp_path: Path, code: str = SERVER,
               tree: int = 2) -> tuple[subprocess.Popen[bytes], Path]:
    keeper_file = tmp_path / "n1.keeper"
    proc = subprocess.Popen(keeper_argv(keeper_file, [sys.executable, "-c", code]))
    wait_until(lambda: keeper_file.exists() and len(descendants(proc.pid)) >= tree)
    return proc, keeper_file


def test_fencing_kills_the_orphaned_service_of_a_dead_server(tmp_path: Path) -> None:
    proc, keeper_file = start_node(tmp_path)
    fence = TreeFence({"n1": keeper_file})
    try:
        tree = descendants(proc.pid)
        server = min(tree)
        os.kill(server, signal.SIGKILL)  # the server dies; its service stays, now an orphan
        wait_until(lambda: server not in descendants(proc.pid))
        assert descendants(proc.pid), "the orphaned service is still below the keeper"
        assert fence.status("n1", time.monotonic() + 5) is NodeState.ON
        result = fence.fence("n1", time.monotonic() + 10)
        assert result.ok, result.message
        assert "its process tree is gone" in result.message
        for pid in tree:
            assert not Path(f"/proc/{pid}").exists() or \
                Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_a_cleanly_exited_node_is_off_and_a_vanished_keeper_fails_closed(
        tmp_path: Path) -> None:
    proc, keeper_file = start_node(tmp_path, "print('bye')", tree=0)
    assert proc.wait(timeout=10) == 0
    fence = TreeFence({"n1": keeper_file})
    assert json.loads(keeper_file.read_text())["done"] is True
    assert fence.status("n1", time.monotonic() + 5) is NodeState.OFF
    assert fence.fence("n1", time.monotonic() + 5).ok

    proc, keeper_file = start_node(tmp_path)
    tree = descendants(proc.pid)
    proc.kill()  # the keeper itself is killed: its tree can no longer be found
    proc.wait(timeout=10)
    try:
        result = fence.fence("n1", time.monotonic() + 5)
        assert not result.ok
        assert "died without a clean exit" in result.message
        assert fence.status("n1", time.monotonic() + 5) is NodeState.UNKNOWN
    finally:
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_nodes_without_a_keeper_file_never_ran(tmp_path: Path) -> None:
    fence = TreeFence({"n1": tmp_path / "missing.keeper"})
    assert fence.fence("n1", time.monotonic() + 1).ok
    assert fence.status("n1", time.monotonic() + 1) is NodeState.OFF
