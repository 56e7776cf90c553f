"""CommandFence with small power scripts: success, failure, timeout, confirmation, secrets."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from pyha.clock import MonotonicClock
from pyha.fencing import CommandFence, NodeState

CLOCK = MonotonicClock()
SECRET = "hunter2-bmc"


def script(tmp_path: Path, name: str, body: str) -> str:
    """An executable shell script in tmp_path; its path."""
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture
def power(tmp_path: Path) -> dict[str, str]:
    """A fake BMC: `off` writes the power state, `status` prints it like ipmitool."""
    state = tmp_path / "power"
    state.write_text("on")
    return {
        "state": str(state),
        "off": script(tmp_path, "off", f'echo off > "{state}"\n'),
        "status": script(tmp_path, "status", f'echo "Chassis Power is $(cat "{state}")"\n'),
    }


def deadline(seconds: float = 10.0) -> float:
    return CLOCK.now() + seconds


def test_the_off_command_exiting_0_fences(power: dict[str, str]) -> None:
    fence = CommandFence({"n1": [power["off"]]})
    result = fence.fence("n1", deadline())
    assert result.ok, result.message
    assert result.method == "command"
    assert "no status command" in result.message
    assert Path(power["state"]).read_text().strip() == "off"


def test_the_status_command_confirms_off(power: dict[str, str]) -> None:
    fence = CommandFence({"n1": [power["off"]]}, {"n1": [power["status"]]})
    assert fence.status("n1", deadline()) is NodeState.ON
    result = fence.fence("n1", deadline())
    assert result.ok, result.message
    assert "confirmed" in result.message
    assert "Chassis Power is off" in result.message
    assert fence.status("n1", deadline()) is NodeState.OFF


def test_a_status_that_turns_off_later_is_polled_until_it_does(tmp_path: Path) -> None:
    count = tmp_path / "count"
    status = script(tmp_path, "status", (
        f'n=$(cat "{count}" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "{count}"\n'
        'if [ $n -ge 3 ]; then echo "Status: OFF"; exit 2; fi\n'
        'echo "Status: ON"\n'))
    fence = CommandFence({"n1": ["true"]}, {"n1": [status]}, poll_interval=0.05)
    result = fence.fence("n1", deadline())
    assert result.ok, result.message
    assert count.read_text().strip() == "3"


def test_a_node_that_stays_on_is_not_fenced(power: dict[str, str]) -> None:
    fence = CommandFence({"n1": ["true"]}, {"n1": [power["status"]]}, poll_interval=0.05)
    result = fence.fence("n1", deadline(1.5))
    assert not result.ok
    assert "not confirmed off" in result.message
    assert "Chassis Power is on" in result.message


def test_a_failing_status_command_is_not_taken_for_off(tmp_path: Path) -> None:
    status = script(tmp_path, "status", 'echo "power state off? unknown" ; exit 1\n')
    fence = CommandFence({"n1": ["true"]}, {"n1": [status]}, poll_interval=0.05)
    assert fence.status("n1", deadline()) is NodeState.UNKNOWN
    assert not fence.fence("n1", deadline(0.4)).ok


def test_a_failing_off_command_reports_its_stderr(tmp_path: Path) -> None:
    off = script(tmp_path, "off", 'echo "Error: Unable to establish IPMI v2 session" >&2\n'
                                  "exit 1\n")
    result = CommandFence({"n1": [off]}).fence("n1", deadline())
    assert not result.ok
    assert "exit 1: Error: Unable to establish IPMI v2 session" in result.message


def test_an_off_command_past_the_deadline_is_killed(tmp_path: Path) -> None:
    marker = tmp_path / "still-running"
    off = script(tmp_path, "off", f'trap "" TERM\nsleep 5\ntouch "{marker}"\n')
    fence = CommandFence({"n1": [off]}, grace=0.2)
    result = fence.fence("n1", deadline(0.3))
    assert not result.ok
    assert "timed out at the deadline, killed" in result.message
    assert not marker.exists()


def test_a_missing_program_is_reported(tmp_path: Path) -> None:
    result = CommandFence({"n1": [str(tmp_path / "no-such-ipmitool")]}).fence("n1", deadline())
    assert not result.ok
    assert "command not found" in result.message


def test_secrets_never_reach_the_log_or_the_result(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    slow = script(tmp_path, "ipmitool", "sleep 5\n")
    fail = script(tmp_path, "fail", 'echo "bad credentials" >&2; exit 1\n')
    caplog.set_level(logging.DEBUG)
    argv = ["-H", "bmc1", "-U", "admin", "-P", SECRET, "chassis", "power", "off"]
    timed_out = CommandFence({"n1": [slow, *argv]}, grace=0.1).fence("n1", deadline(0.3))
    failed = CommandFence({"n1": [fail, "--password", SECRET]}).fence("n1", deadline())
    assert not timed_out.ok
    assert not failed.ok
    assert "-P '******'" in caplog.text or "-P ******" in caplog.text
    assert "--password ******" in caplog.text or "--password '******'" in caplog.text
    for text in (caplog.text, timed_out.message, failed.message):
        assert SECRET not in text
