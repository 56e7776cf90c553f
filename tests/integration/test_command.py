"""run_command with real subprocesses: capture, deadlines, process-group kill, errors."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator

import pytest

from pyha.clock import MonotonicClock
from pyha.executor.command import run_command

CLOCK = MonotonicClock()
PY = sys.executable


@pytest.fixture
def leftovers() -> Iterator[list[int]]:
    """Pids a test started indirectly; whatever is still alive at the end is killed."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _in(seconds: float) -> float:
    return CLOCK.now() + seconds


def _live_members(pgid: int) -> list[int]:
    """Pids of live (not zombie) processes in group `pgid`."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != b"Z":
            found.append(int(name))
    return found


def _wait_until_gone(pgid: int) -> list[int]:
    """Up to 50 looks, 0.1 s apart, for the group to disappear; its live members."""
    for _ in range(50):
        members = _live_members(pgid)
        if not members:
            return []
        time.sleep(0.1)
    return members


def test_normal_exit_captures_code_and_both_streams() -> None:
    script = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    result = run_command([PY, "-c", script], deadline=_in(30), clock=CLOCK)
    assert result.returncode == 3
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert not result.timed_out
    assert not result.killed
    assert result.warning == ""
    assert not result.ok


def test_env_and_cwd_are_passed_and_nothing_else(tmp_path: os.PathLike[str]) -> None:
    script = "import os; print(os.getcwd()); print(sorted(os.environ))"
    result = run_command(
        [PY, "-c", script], deadline=_in(30), clock=CLOCK, env={"ONLY": "1"}, cwd=str(tmp_path)
    )
    lines = result.stdout.splitlines()
    assert lines[0] == str(tmp_path)
    assert "'ONLY'" in lines[1]
    assert "'PATH'" not in lines[1]


def test_more_than_a_megabyte_on_each_stream_does_not_deadlock() -> None:
    script = (
        "import sys\n"
        "for _ in range(30):\n"
        "    sys.stdout.write('o' * 50_000); sys.stderr.write('e' * 50_000)\n"
    )
    result = run_command([PY, "-c", script], deadline=_in(60), clock=CLOCK)
    assert result.ok
    assert result.stdout == "o" * 1_500_000
    assert result.stderr == "e" * 1_500_000


def test_large_stdin_is_fed_while_output_is_read() -> None:
    data = b"abcdefgh" * 200_000
    result = run_command(["cat"], deadline=_in(60), clock=CLOCK, stdin_data=data)
    assert result.ok
    assert result.stdout.encode() == data


def test_command_ignoring_sigterm_is_killed_with_its_whole_group(
    caplog: pytest.LogCaptureFixture, leftovers: list[int]
) -> None:
    # The leader starts a grandchild; both ignore SIGTERM, so only SIGKILL ends them.
    script = (
        "import os, signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)'])\n"
        "print(os.getpid(), child.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    with caplog.at_level(logging.WARNING, logger="pyha.executor.command"):
        result = run_command(
            [PY, "-c", script], deadline=_in(2), clock=CLOCK, grace=0.5, label="test hang"
        )
    leader, child = (int(p) for p in result.stdout.split())
    leftovers.extend([leader, child])
    assert result.timed_out
    assert result.killed
    assert result.returncode == -signal.SIGKILL
    expected = "test hang: timed out after 2s; sent SIGTERM, still running after 500ms grace, "
    assert result.warning == expected + "sent SIGKILL"
    assert any(
        r.levelno == logging.WARNING and r.getMessage() == result.warning for r in caplog.records
    )
    assert _wait_until_gone(leader) == []


def test_command_that_obeys_sigterm_is_not_killed(leftovers: list[int]) -> None:
    script = "import os, time; print(os.getpid(), flush=True); time.sleep(120)"
    result = run_command([PY, "-c", script], deadline=_in(1), clock=CLOCK, grace=30)
    leftovers.append(int(result.stdout))
    assert result.timed_out
    assert not result.killed
    assert result.returncode == -signal.SIGTERM
    assert "sent SIGTERM, it ended within 30s grace" in result.warning


def test_daemon_holding_the_pipes_does_not_hold_the_call(leftovers: list[int]) -> None:
    # A start action that leaves a daemon behind with our stdout: the call ends with
    # the leader, and the daemon keeps running (it is the service, not a leftover).
    script = "sleep 120 & echo $!"
    result = run_command(["sh", "-c", script], deadline=_in(60), clock=CLOCK)
    daemon = int(result.stdout)
    leftovers.append(daemon)
    assert result.ok
    assert not result.timed_out
    assert _live_members(os.getpgid(daemon)) == [daemon]


def test_command_not_found_is_a_result_not_an_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="pyha.executor.command"):
        result = run_command(["/nonexistent/pyha-no-such-tool"], deadline=_in(5), clock=CLOCK)
    assert result.returncode is None
    assert "command not found: /nonexistent/pyha-no-such-tool" in result.stderr
    assert "command not found" in result.warning
    assert not result.timed_out
    assert "command not found" in caplog.text


def test_not_executable_is_a_result(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "script")
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(path, 0o644)
    result = run_command([path], deadline=_in(5), clock=CLOCK)
    assert result.returncode is None
    assert "permission denied" in result.stderr


def test_deadline_already_passed_does_not_start() -> None:
    result = run_command(["true"], deadline=CLOCK.now() - 1, clock=CLOCK)
    assert result.returncode is None
    assert result.timed_out
    assert "deadline had already passed" in result.warning


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_runs_as_another_user() -> None:
    result = run_command(["id", "-un"], deadline=_in(30), clock=CLOCK, user="nobody")
    assert result.ok
    assert result.stdout.strip() == "nobody"


def test_unknown_user_is_a_result() -> None:
    result = run_command(["true"], deadline=_in(5), clock=CLOCK, user="pyha-no-such-user")
    assert result.returncode is None
    assert "no such user: pyha-no-such-user" in result.stderr


def test_leftover_group_member_ignoring_sigterm_is_killed(leftovers: list[int]) -> None:
    # The leader obeys SIGTERM; the child it left in the group does not.
    script = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)'])\n"
        "print(os.getpid(), child.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    result = run_command([PY, "-c", script], deadline=_in(2), clock=CLOCK, grace=0.5)
    leader, child = (int(p) for p in result.stdout.split())
    leftovers.extend([leader, child])
    assert result.returncode == -signal.SIGTERM
    assert result.killed
    assert result.warning.endswith("still running after 500ms grace, sent SIGKILL")
    assert _wait_until_gone(leader) == []
