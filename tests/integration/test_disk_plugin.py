"""The disk plugin on real loop devices: claims, second claimants, detaching, LVM."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pyha.resources.agent import Agent
from pyha.resources.registry import Registry
from pyha.resources.spi import CallStatus, OcfCode, OperationContext
from tests.loopdev import LoopDevice, LoopDevices, make_image, unmount_under

pytestmark = pytest.mark.root

FOLDER = Path(__file__).resolve().parents[2] / "plugins" / "disk"
LOGGER = "pyha.test.disk"
LVM_ENV = {**os.environ, "LVM_SUPPRESS_FD_WARNINGS": "1", "LC_ALL": "C"}

# A second pyha on this node: claims a device for another resource, then waits
# until its stdin closes, and exits without releasing (as a crashed server would).
CLAIMANT = """
import sys, time
from pathlib import Path
from pyha.resources.registry import Registry
from pyha.resources.spi import OperationContext

folder, state_dir, device, resource, node = sys.argv[1:6]
registry = Registry()
registry.load_folder(Path(folder), "bundled", default_provider="pyha")
agent = registry.resolve("python:pyha:disk")
params, problems = agent.validate({"device": device})
assert not problems, problems
ctx = OperationContext(
    resource=resource, operation="start", params=params, deadline=time.monotonic() + 30,
    node=node, state_dir=Path(state_dir),
)
print(agent.invoke(ctx).code, flush=True)
sys.stdin.read()
"""


def _agent() -> Agent:
    registry = Registry()
    registry.load_folder(FOLDER, "bundled", default_provider="pyha")
    assert registry.errors == []
    return registry.resolve("python:pyha:disk")


class Harness:
    """Runs disk operations as the server does, for resources on node n1."""

    def __init__(self, tmp_path: Path) -> None:
        self.agent = _agent()
        self.tmp_path = tmp_path
        self.state_dir = tmp_path / "state"
        self.params: dict[str, dict[str, Any]] = {}
        self.claimants: list[subprocess.Popen[str]] = []

    def run(self, op: str, resource: str = "disk1", **params: Any) -> int:
        if params:
            self.params[resource] = params
        coerced, problems = self.agent.validate(self.params[resource])
        assert problems == ()
        ctx = OperationContext(
            resource=resource,
            operation=op,
            params=coerced,
            deadline=time.monotonic() + self.agent.meta.timeout(op),
            node="n1",
            state_dir=self.state_dir,
            log=logging.getLogger(LOGGER),
        )
        outcome = self.agent.invoke(ctx)
        assert outcome.status is CallStatus.DONE, outcome.message  # never a traceback
        return outcome.code

    def claim_files(self) -> list[dict[str, Any]]:
        folder = self.state_dir / "disk"
        files = sorted(folder.glob("*.claim")) if folder.is_dir() else []
        return [json.loads(path.read_text()) for path in files]

    def claimant(self, device: str, resource: str, node: str) -> subprocess.Popen[str]:
        """Another process claiming `device`; it holds the claim until finish()."""
        argv = [sys.executable, "-c", CLAIMANT, str(FOLDER), str(self.state_dir), device]
        proc = subprocess.Popen(
            [*argv, resource, node], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.claimants.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "0"
        return proc

    def finish(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0

    def cleanup(self) -> None:
        for resource in self.params:
            with contextlib.suppress(AssertionError):
                self.run("stop", resource)
        for proc in self.claimants:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=10)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
        unmount_under(self.tmp_path)


@pytest.fixture
def loops(tmp_path: Path) -> Iterator[LoopDevices]:
    with LoopDevices(tmp_path) as devices:
        yield devices


@pytest.fixture
def disk(tmp_path: Path, loops: LoopDevices) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    try:
        yield harness
    finally:
        harness.cleanup()


def _messages(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name == LOGGER)


# --- block devices ------------------------------------------------------------------


def test_claim_monitor_release(disk: Harness, loops: LoopDevices) -> None:
    loop = loops.new(mkfs=False)
    assert disk.run("monitor", device=loop.path) == OcfCode.NOT_RUNNING
    assert disk.run("stop") == OcfCode.SUCCESS
    assert disk.run("start") == OcfCode.SUCCESS
    (record,) = disk.claim_files()
    assert (record["node"], record["resource"], record["target"]) == ("n1", "disk1", loop.path)
    assert record["pid"] == os.getpid()
    assert record["identity"]["rdev"] == "{}:{}".format(*loop.rdev)
    assert disk.run("monitor") == OcfCode.SUCCESS

    assert disk.run("start") == OcfCode.SUCCESS  # idempotent
    assert len(disk.claim_files()) == 1
    assert disk.run("stop") == OcfCode.SUCCESS
    assert disk.claim_files() == []
    assert disk.run("monitor") == OcfCode.NOT_RUNNING
    assert disk.run("stop") == OcfCode.SUCCESS


def test_second_claimant_is_refused_with_its_name(
    disk: Harness, loops: LoopDevices, caplog: pytest.LogCaptureFixture
) -> None:
    loop = loops.new(mkfs=False)
    other = disk.claimant(loop.path, "other", "n2")
    assert disk.run("start", device=loop.path) == OcfCode.ERR_GENERIC
    text = _messages(caplog)
    assert f"{loop.path} is claimed by resource other on node n2 (pid {other.pid})" in text
    assert disk.run("monitor") == OcfCode.NOT_RUNNING

    disk.finish(other)  # it dies without releasing: its claim is stale now
    assert disk.run("start") == OcfCode.SUCCESS
    assert "took over the stale claim of resource other on node n2" in _messages(caplog)
    (record,) = disk.claim_files()
    assert record["resource"] == "disk1"


def test_two_resources_on_one_device_in_one_process(
    disk: Harness, loops: LoopDevices, caplog: pytest.LogCaptureFixture
) -> None:
    loop = loops.new(mkfs=False)
    assert disk.run("start", "disk1", device=loop.path) == OcfCode.SUCCESS
    assert disk.run("start", "disk2", device=loop.path) == OcfCode.ERR_GENERIC
    assert f"{loop.path} is claimed by resource disk1 on node n1" in _messages(caplog)
    assert disk.run("monitor", "disk2") == OcfCode.NOT_RUNNING
    assert disk.run("monitor", "disk1") == OcfCode.SUCCESS


def test_a_restarted_pyha_adopts_its_claim(disk: Harness, loops: LoopDevices) -> None:
    loop = loops.new(mkfs=False)
    earlier = disk.claimant(loop.path, "disk1", "n1")  # this resource, an earlier server
    disk.finish(earlier)
    disk.params["disk1"] = {"device": loop.path}
    assert disk.run("monitor") == OcfCode.SUCCESS
    assert disk.run("stop") == OcfCode.SUCCESS
    assert disk.claim_files() == []
    assert disk.run("monitor") == OcfCode.NOT_RUNNING


def test_device_detached_behind_pyhas_back(
    disk: Harness, loops: LoopDevices, caplog: pytest.LogCaptureFixture
) -> None:
    loop = loops.new(mkfs=False)
    assert disk.run("start", device=loop.path) == OcfCode.SUCCESS
    subprocess.run(["losetup", "-d", loop.path], check=True, timeout=30)
    assert disk.run("monitor") == OcfCode.ERR_GENERIC
    assert f"device {loop.path} has no media (size 0)" in _messages(caplog)
    assert disk.run("stop") == OcfCode.SUCCESS
    assert disk.run("monitor") == OcfCode.NOT_RUNNING


def test_other_media_behind_the_same_device(
    disk: Harness, loops: LoopDevices, caplog: pytest.LogCaptureFixture
) -> None:
    loop = loops.new(mkfs=False)
    assert disk.run("start", device=loop.path) == OcfCode.SUCCESS
    subprocess.run(["losetup", "-d", loop.path], check=True, timeout=30)
    try:
        loops.attach(make_image(disk.tmp_path / "other.img", mkfs=False), loop.path)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"{loop.path} was taken by someone else meanwhile: {exc.stderr}")
    assert disk.run("monitor") == OcfCode.ERR_GENERIC
    assert "other media appeared behind it since it was claimed" in _messages(caplog)
    assert disk.run("stop") == OcfCode.SUCCESS


def test_missing_device(disk: Harness, caplog: pytest.LogCaptureFixture) -> None:
    missing = f"/dev/pyha-missing-{os.getpid()}"
    assert disk.run("start", device=missing) == OcfCode.ERR_INSTALLED
    assert f"device {missing} does not exist on this node" in _messages(caplog)
    assert disk.run("monitor") == OcfCode.NOT_RUNNING
    assert disk.run("stop") == OcfCode.SUCCESS


def test_a_device_mounted_here_is_refused(
    disk: Harness, loops: LoopDevices, caplog: pytest.LogCaptureFixture
) -> None:
    loop = loops.new()
    point = disk.tmp_path / "mnt"
    point.mkdir()
    subprocess.run(["mount", loop.path, str(point)], check=True, timeout=30)
    assert disk.run("start", device=loop.path) == OcfCode.ERR_GENERIC
    assert f"device {loop.path} is in use on this node: mounted at {point}" in _messages(caplog)
    assert disk.claim_files() == []


def test_hold_exclusive_keeps_mounts_away(disk: Harness, loops: LoopDevices) -> None:
    loop = loops.new()
    point = disk.tmp_path / "mnt"
    point.mkdir()
    assert disk.run("start", device=loop.path, hold_exclusive=True) == OcfCode.SUCCESS
    mount = ["mount", loop.path, str(point)]
    refused = subprocess.run(mount, capture_output=True, timeout=30, check=False)
    assert refused.returncode != 0
    assert disk.run("monitor") == OcfCode.SUCCESS
    assert disk.run("stop") == OcfCode.SUCCESS
    subprocess.run(mount, check=True, timeout=30)
    subprocess.run(["umount", str(point)], check=True, timeout=30)


# --- LVM ----------------------------------------------------------------------------


@dataclass(frozen=True)
class VolumeGroup:
    """A test VG on one loop device, and the --config that keeps LVM off other disks."""

    name: str
    config: str
    loop: LoopDevice

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [argv[0], "--config", self.config, *argv[1:]]
        return subprocess.run(
            command, capture_output=True, text=True, env=LVM_ENV, timeout=60, check=check
        )


@pytest.fixture
def volume_group(loops: LoopDevices) -> Iterator[VolumeGroup]:
    if shutil.which("pvcreate") is None:
        pytest.skip("lvm2 is not installed (apt-get install lvm2)")
    loop = loops.new(size_mb=64, mkfs=False)
    only_loop = f'["a|^{loop.path}$|","r|.*|"]'
    config = f"devices {{ use_devicesfile=0 filter={only_loop} global_filter={only_loop} }}"
    vg = VolumeGroup(f"pyhatest{os.getpid()}", config, loop)
    try:
        vg.run("pvcreate", "-q", loop.path)
        vg.run("vgcreate", "-q", vg.name, loop.path)
        yield vg
    finally:
        vg.run("vgchange", "-an", vg.name, check=False)
        vg.run("vgremove", "-q", "-f", vg.name, check=False)
        vg.run("pvremove", "-q", "-ff", "-y", loop.path, check=False)


def _device_mapper_problem(vg: VolumeGroup) -> str:
    """Why logical volumes cannot be made here, or '' if they can."""
    if not Path("/dev/mapper/control").exists():
        return "no /dev/mapper/control: the kernel has no device-mapper"
    probe = subprocess.run(["dmsetup", "version"], capture_output=True, timeout=30, check=False)
    if probe.returncode:
        return "dmsetup version fails: device-mapper is not usable"
    made = vg.run("lvcreate", "-q", "-L", "8M", "-n", "lv1", "-y", vg.name, check=False)
    return f"lvcreate fails: {made.stderr.strip()}" if made.returncode else ""


def test_volume_group_claim_without_volumes(
    disk: Harness, volume_group: VolumeGroup, caplog: pytest.LogCaptureFixture
) -> None:
    """Runs even without device-mapper: a VG with no LVs needs none to activate."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    params = {"volume_group": volume_group.name, "lvm_config": volume_group.config}
    assert disk.run("monitor", **params) == OcfCode.NOT_RUNNING
    assert disk.run("start") == OcfCode.SUCCESS
    assert "exclusively on this node only (a local VG)" in _messages(caplog)
    assert disk.run("monitor") == OcfCode.SUCCESS
    assert disk.run("start") == OcfCode.SUCCESS

    assert disk.run("start", "vg2", **params) == OcfCode.ERR_GENERIC
    assert f"{volume_group.name} is claimed by resource disk1 on node n1" in _messages(caplog)

    assert disk.run("stop") == OcfCode.SUCCESS
    assert disk.run("monitor") == OcfCode.NOT_RUNNING
    assert disk.run("stop") == OcfCode.SUCCESS


def test_missing_volume_group(
    disk: Harness, volume_group: VolumeGroup, caplog: pytest.LogCaptureFixture
) -> None:
    params = {"volume_group": f"{volume_group.name}x", "lvm_config": volume_group.config}
    assert disk.run("start", **params) == OcfCode.ERR_INSTALLED
    assert f"volume group {volume_group.name}x is not found on this node" in _messages(caplog)
    assert disk.run("monitor") == OcfCode.NOT_RUNNING
    assert disk.run("stop") == OcfCode.SUCCESS
    assert disk.claim_files() == []


def test_volume_group_with_a_logical_volume(disk: Harness, volume_group: VolumeGroup) -> None:
    problem = _device_mapper_problem(volume_group)
    if problem:
        pytest.skip(f"LVM logical volumes need device-mapper: {problem}")
    lv = Path(f"/dev/{volume_group.name}/lv1")
    volume_group.run("vgchange", "-an", volume_group.name)
    params = {"volume_group": volume_group.name, "lvm_config": volume_group.config}
    assert disk.run("monitor", **params) == OcfCode.NOT_RUNNING
    assert disk.run("start") == OcfCode.SUCCESS
    assert lv.exists()
    assert disk.run("monitor") == OcfCode.SUCCESS
    assert disk.run("stop") == OcfCode.SUCCESS
    assert not lv.exists()
    assert disk.run("monitor") == OcfCode.NOT_RUNNING

    assert disk.run("start") == OcfCode.SUCCESS
    volume_group.run("vgchange", "-an", volume_group.name)  # behind pyha's back
    assert disk.run("monitor") == OcfCode.NOT_RUNNING
    assert disk.run("stop") == OcfCode.SUCCESS
