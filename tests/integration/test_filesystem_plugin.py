"""The filesystem plugin on real loop devices: mounts, fsck, busy unmounts, probes."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyha.resources.agent import Agent
from pyha.resources.registry import Registry
from pyha.resources.spi import CallStatus, OcfCode, OperationContext
from tests.loopdev import (
    LoopDevices,
    backing_file,
    mounts_of,
    mounts_under,
    unmount_under,
)

pytestmark = pytest.mark.root

FOLDER = Path(__file__).resolve().parents[2] / "plugins" / "filesystem"
LOGGER = "pyha.test.filesystem"


def _agent() -> Agent:
    registry = Registry()
    registry.load_folder(FOLDER, "bundled", default_provider="pyha")
    assert registry.errors == []
    return registry.resolve("python:pyha:filesystem")


class Harness:
    """Runs filesystem operations the way the server does: checked params, one context."""

    def __init__(self, tmp_path: Path, loops: LoopDevices) -> None:
        self.agent = _agent()
        self.tmp_path = tmp_path
        self.loops = loops
        self.directory = tmp_path / "mnt point"  # a space: mountinfo shows it as \040
        self.params: dict[str, Any] = {}
        self.sleepers: list[subprocess.Popen[bytes]] = []

    def run(self, op: str, timeout: float | None = None, **params: Any) -> int:
        if params:
            self.params = {"directory": str(self.directory), **params}
        coerced, problems = self.agent.validate(self.params)
        assert problems == ()
        ctx = OperationContext(
            resource="fs1",
            operation=op,
            params=coerced,
            deadline=time.monotonic() + (timeout or self.agent.meta.timeout(op)),
            node="n1",
            state_dir=self.tmp_path / "state",
            log=logging.getLogger(LOGGER),
        )
        outcome = self.agent.invoke(ctx)
        assert outcome.status is CallStatus.DONE, outcome.message  # never a traceback
        return outcome.code

    def mounts(self) -> list[str]:
        return [p for p in mounts_under(self.tmp_path) if p == str(self.directory)]

    def sleep_in(self, **popen: Any) -> subprocess.Popen[bytes]:
        popen.setdefault("args", ["sleep", "60"])
        proc = subprocess.Popen(**popen)
        self.sleepers.append(proc)
        return proc

    def cleanup(self) -> None:
        for proc in self.sleepers:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
        unmount_under(self.tmp_path)


@pytest.fixture
def loops(tmp_path: Path) -> Iterator[LoopDevices]:
    with LoopDevices(tmp_path) as devices:
        yield devices


@pytest.fixture
def fs(tmp_path: Path, loops: LoopDevices) -> Iterator[Harness]:
    harness = Harness(tmp_path, loops)
    try:
        yield harness
    finally:
        harness.cleanup()


def _messages(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name == LOGGER)


# --- start, monitor, stop -----------------------------------------------------------


def test_block_device_lifecycle(fs: Harness, loops: LoopDevices) -> None:
    loop = loops.new()
    assert fs.run("stop", device=loop.path, fstype="ext4") == OcfCode.SUCCESS
    assert fs.run("monitor") == OcfCode.NOT_RUNNING
    assert fs.run("start") == OcfCode.SUCCESS
    assert mounts_of(loop.rdev) == [str(fs.directory)]
    assert fs.run("monitor") == OcfCode.SUCCESS
    (fs.directory / "data").write_text("kept")

    assert fs.run("start") == OcfCode.SUCCESS  # idempotent, and never stacked
    assert fs.mounts() == [str(fs.directory)]

    assert fs.run("stop") == OcfCode.SUCCESS
    assert mounts_of(loop.rdev) == []
    assert not (fs.directory / "data").exists()
    assert fs.run("monitor") == OcfCode.NOT_RUNNING
    assert fs.run("stop") == OcfCode.SUCCESS

    assert fs.run("start") == OcfCode.SUCCESS
    assert (fs.directory / "data").read_text() == "kept"
    assert fs.run("stop") == OcfCode.SUCCESS


def test_image_file_is_mounted_through_a_loop_device(fs: Harness, loops: LoopDevices) -> None:
    image = loops.new().image
    loops.detach(loops.devices[-1])  # the plugin attaches the image itself
    assert fs.run("start", device=str(image), options="noatime") == OcfCode.SUCCESS
    (mount,) = fs.mounts()
    loop_device = _mounted_source(mount)
    assert backing_file(loop_device) == str(image)
    assert fs.run("monitor") == OcfCode.SUCCESS
    assert fs.run("start") == OcfCode.SUCCESS
    assert fs.mounts() == [str(fs.directory)]

    assert fs.run("stop") == OcfCode.SUCCESS
    assert fs.mounts() == []
    assert backing_file(loop_device) != str(image)  # mount's loop device was released
    assert fs.run("monitor") == OcfCode.NOT_RUNNING


def _mounted_source(point: str) -> str:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" ")
        if fields[4].encode().decode("unicode_escape") == point:
            return fields[fields.index("-", 6) + 2]
    raise AssertionError(f"{point} is not mounted")


def test_label_source(fs: Harness, loops: LoopDevices) -> None:
    label = f"pyha{os.getpid()}"
    loop = loops.new(label=label)
    assert fs.run("start", device=f"LABEL={label}") == OcfCode.SUCCESS
    assert mounts_of(loop.rdev) == [str(fs.directory)]
    assert fs.run("monitor") == OcfCode.SUCCESS
    assert fs.run("stop") == OcfCode.SUCCESS
    assert mounts_of(loop.rdev) == []


def test_directory_is_created_only_when_allowed(
    fs: Harness, loops: LoopDevices, caplog: pytest.LogCaptureFixture
) -> None:
    loop = loops.new()
    fs.directory = fs.tmp_path / "a" / "b"
    assert fs.run("start", device=loop.path, create_directory=False) == OcfCode.ERR_INSTALLED
    assert "does not exist and create_directory is false" in _messages(caplog)
    assert not fs.directory.exists()
    assert fs.run("start", device=loop.path) == OcfCode.SUCCESS
    assert mounts_of(loop.rdev) == [str(fs.directory)]
    assert fs.run("stop") == OcfCode.SUCCESS


# --- what start refuses -------------------------------------------------------------


def test_missing_device_fails_with_a_clear_message(
    fs: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    missing = f"/dev/pyha-missing-{os.getpid()}"
    assert fs.run("start", device=missing) == OcfCode.ERR_INSTALLED
    assert f"device {missing} does not exist on this node" in _messages(caplog)
    assert fs.run("monitor") == OcfCode.NOT_RUNNING
    assert fs.run("stop") == OcfCode.SUCCESS

    label = f"LABEL=pyhanone{os.getpid()}"
    assert fs.run("start", device=label) == OcfCode.ERR_INSTALLED
    assert f"device {label}: no block device on this node carries it" in _messages(caplog)
    assert fs.mounts() == []


def test_mounted_with_another_source_is_refused(
    fs: Harness, loops: LoopDevices, caplog: pytest.LogCaptureFixture
) -> None:
    theirs, ours = loops.new(), loops.new()
    fs.directory.mkdir()
    subprocess.run(["mount", theirs.path, str(fs.directory)], check=True, timeout=30)

    assert fs.run("start", device=ours.path) == OcfCode.ERR_GENERIC
    text = _messages(caplog)
    assert f"already has {theirs.path} (ext4, image {theirs.image}) mounted" in text
    assert f"refusing to mount {ours.path} over it" in text
    assert fs.mounts() == [str(fs.directory)]
    assert mounts_of(ours.rdev) == []

    assert fs.run("monitor") == OcfCode.NOT_RUNNING
    assert fs.run("stop") == OcfCode.SUCCESS  # not ours: left alone
    assert mounts_of(theirs.rdev) == [str(fs.directory)]
    assert "leaving it alone" in _messages(caplog)


# --- monitor ------------------------------------------------------------------------


def test_unmounted_behind_pyhas_back(fs: Harness, loops: LoopDevices) -> None:
    loop = loops.new()
    assert fs.run("start", device=loop.path) == OcfCode.SUCCESS
    subprocess.run(["umount", str(fs.directory)], check=True, timeout=30)
    assert fs.run("monitor") == OcfCode.NOT_RUNNING
    assert fs.run("stop") == OcfCode.SUCCESS


def test_probe_writes_reads_and_deletes(
    fs: Harness, loops: LoopDevices, caplog: pytest.LogCaptureFixture
) -> None:
    loop = loops.new()
    assert fs.run("start", device=loop.path, probe=True) == OcfCode.SUCCESS
    assert fs.run("monitor") == OcfCode.SUCCESS
    probe_file = fs.directory / ".pyha-probe-n1"
    assert not probe_file.exists()

    probe_file.mkdir()  # the probe can no longer write its file
    assert fs.run("monitor") == OcfCode.ERR_GENERIC
    assert "read/write probe failed: [Errno 21] Is a directory" in _messages(caplog)

    remount = ["mount", "-o", "remount,ro", str(fs.directory)]
    subprocess.run(remount, check=True, timeout=30)
    assert fs.run("monitor") == OcfCode.SUCCESS  # read-only: the write is skipped
    assert probe_file.is_dir()
    assert fs.run("stop") == OcfCode.SUCCESS


# --- fsck ---------------------------------------------------------------------------


def _superblock(device: str) -> dict[str, str]:
    out = subprocess.run(
        ["dumpe2fs", "-h", device], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    pairs = (line.split(":", 1) for line in out.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def test_fsck_runs_before_mount(fs: Harness, loops: LoopDevices) -> None:
    loop = loops.new()
    dirty = ["debugfs", "-w", "-R", "ssv state 0", loop.path]
    subprocess.run(dirty, capture_output=True, check=True, timeout=30)
    subprocess.run(["tune2fs", "-T", "20000101", loop.path], capture_output=True, check=True)
    before = _superblock(loop.path)
    assert before["Filesystem state"] == "not clean"

    assert fs.run("start", device=loop.path, fstype="ext4", fsck=True) == OcfCode.SUCCESS
    assert fs.run("stop") == OcfCode.SUCCESS
    after = _superblock(loop.path)
    assert after["Filesystem state"] == "clean"
    assert after["Last checked"] != before["Last checked"]


def test_fsck_failure_stops_the_mount(
    fs: Harness, loops: LoopDevices, caplog: pytest.LogCaptureFixture
) -> None:
    loop = loops.new()
    with open(loop.path, "r+b") as device:  # wipe the primary superblock
        device.write(bytes(8192))
    assert fs.run("start", device=loop.path, fstype="ext4", fsck=True) == OcfCode.ERR_GENERIC
    text = _messages(caplog)
    assert re.search(rf"e2fsck of {loop.path} exited 8; not mounting: .*superblock", text, re.S)
    assert mounts_of(loop.rdev) == []


# --- busy mounts --------------------------------------------------------------------


def test_busy_mount_is_unmounted_by_stopping_its_users(
    fs: Harness, loops: LoopDevices, caplog: pytest.LogCaptureFixture
) -> None:
    loop = loops.new()
    assert fs.run("start", device=loop.path) == OcfCode.SUCCESS
    in_cwd = fs.sleep_in(cwd=fs.directory)
    with (fs.directory / "log").open("wb") as log:
        with_file = fs.sleep_in(stdout=log)
    bystander = fs.sleep_in(cwd=fs.tmp_path)

    assert fs.run("stop", device=loop.path, kill_grace="2s") == OcfCode.SUCCESS
    assert mounts_of(loop.rdev) == []
    assert in_cwd.wait(timeout=10) == -15  # SIGTERM was enough
    assert with_file.wait(timeout=10) == -15
    assert bystander.poll() is None
    assert f"is busy; stopping {in_cwd.pid} (sleep)" in _messages(caplog)


def test_busy_mount_is_refused_without_force(
    fs: Harness, loops: LoopDevices, caplog: pytest.LogCaptureFixture
) -> None:
    loop = loops.new()
    assert fs.run("start", device=loop.path, force_unmount=False) == OcfCode.SUCCESS
    user = fs.sleep_in(cwd=fs.directory)
    assert fs.run("stop") == OcfCode.ERR_GENERIC
    assert f"is busy, used by {user.pid} (sleep); force_unmount is false" in _messages(caplog)
    assert mounts_of(loop.rdev) == [str(fs.directory)]
    assert user.poll() is None
    assert fs.run("monitor") == OcfCode.SUCCESS


def test_busy_at_the_deadline_fails_the_stop(
    fs: Harness, loops: LoopDevices, caplog: pytest.LogCaptureFixture
) -> None:
    loop = loops.new()
    assert fs.run("start", device=loop.path, kill_grace="1m") == OcfCode.SUCCESS
    stubborn = fs.sleep_in(
        args=[sys.executable, "-c", IGNORES_SIGTERM], cwd=fs.directory, stdout=subprocess.PIPE
    )
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"

    assert fs.run("stop", timeout=1.0) == OcfCode.ERR_GENERIC
    assert "still busy at the deadline" in _messages(caplog)
    assert mounts_of(loop.rdev) == [str(fs.directory)]
    # At the deadline it was killed, so a later stop (the scheduler's retry) succeeds.
    assert stubborn.wait(timeout=10) == -9
    assert fs.run("stop") == OcfCode.SUCCESS
    assert mounts_of(loop.rdev) == []


IGNORES_SIGTERM = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)
