"""Fencing's pure parts: the watchdog rule, secret masking, names and configuration checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyha.errors import ConfigError
from pyha.fencing import (
    CommandFence,
    FenceError,
    WatchdogPolicy,
    cgroup_name,
    detect_hierarchies,
    mask_argv,
    softdog_available,
    watchdogs,
)
from pyha.fencing.cgroup import CgroupV2, Freezer, PidsLimit
from pyha.testing import FakeClock

# --- watchdog -----------------------------------------------------------------------


def test_safe_after_adds_lease_and_watchdog_timeout_with_drift_and_margin() -> None:
    policy = WatchdogPolicy(drift=0.01, margin=1.0)
    assert policy.safe_after(100.0, watchdog_timeout=10.0, lease=1.0) == pytest.approx(
        100.0 + 11.0 * 1.01 + 1.0)


def test_without_drift_and_margin_it_is_exactly_lease_plus_timeout() -> None:
    assert WatchdogPolicy(drift=0, margin=0).safe_after(5.0, 3.0, 1.0) == 9.0


def test_the_verdict_waits_until_safe_after_and_then_counts_as_fenced() -> None:
    policy = WatchdogPolicy(drift=0, margin=0.5)
    early = policy.verdict("n2", now=110.0, last_heard=100.0, watchdog_timeout=10, lease=1)
    assert not early.ok
    assert early.method == "watchdog"
    assert "waiting 1.5s more" in early.message
    late = policy.verdict("n2", now=111.5, last_heard=100.0, watchdog_timeout=10, lease=1)
    assert late.ok
    assert "n2" in late.message
    assert late.duration == 11.5


@pytest.mark.parametrize(("timeout", "lease"), [(0, 1), (-1, 1), (5, -0.1)])
def test_impossible_settings_are_refused(timeout: float, lease: float) -> None:
    with pytest.raises(ValueError, match="must"):
        WatchdogPolicy().safe_after(0.0, timeout, lease)


def test_a_negative_drift_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        WatchdogPolicy(drift=-0.1)


def test_watchdogs_are_read_from_sysfs_without_opening_a_device(tmp_path: Path) -> None:
    sysfs = tmp_path / "class"
    (sysfs / "watchdog0").mkdir(parents=True)
    (sysfs / "watchdog0" / "identity").write_text("Software Watchdog\n")
    (sysfs / "watchdog0" / "timeout").write_text("60\n")
    (sysfs / "watchdog0" / "state").write_text("inactive\n")
    dev = tmp_path / "dev"  # no device files at all: nothing may be opened
    found = watchdogs(sysfs, dev)
    assert [(w.device, w.identity, w.timeout, w.state) for w in found] == [
        (dev / "watchdog0", "Software Watchdog", 60, "inactive")]
    assert watchdogs(tmp_path / "none", dev) == []


def test_softdog_is_found_in_the_module_list_of_the_running_kernel(tmp_path: Path) -> None:
    release = tmp_path / os.uname().release
    release.mkdir()
    (release / "modules.dep").write_text("kernel/drivers/watchdog/softdog.ko.xz:\n")
    if Path("/sys/module/softdog").exists():
        pytest.skip("softdog is loaded here: the module list is not consulted")
    assert softdog_available(tmp_path)
    (release / "modules.dep").write_text("kernel/drivers/net/veth.ko.xz:\n")
    assert not softdog_available(tmp_path)


# --- masking secrets ----------------------------------------------------------------


def test_the_value_after_ipmitools_password_option_is_masked() -> None:
    argv = ["ipmitool", "-H", "bmc1", "-U", "admin", "-P", "s3cret", "chassis", "power", "off"]
    assert mask_argv(argv) == ["ipmitool", "-H", "bmc1", "-U", "admin", "-P", "******",
                               "chassis", "power", "off"]


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["fence_x", "--password", "pw"], ["fence_x", "--password", "******"]),
        (["fence_x", "--password=pw", "-o", "off"], ["fence_x", "--password=******", "-o", "off"]),
        (["fence_x", "--api-token", "t"], ["fence_x", "--api-token", "******"]),
        (["fence_x", "--ssh-key-passphrase=p"], ["fence_x", "--ssh-key-passphrase=******"]),
        (["fence_x", "--username", "admin", "-p", "623"],
         ["fence_x", "--username", "admin", "-p", "623"]),
        (["fence_x", "-f", "/etc/pyha/bmc.pass"], ["fence_x", "-f", "/etc/pyha/bmc.pass"]),
        (["fence_x", "--password"], ["fence_x", "--password"]),
    ],
)
def test_secret_looking_options_are_masked(argv: list[str], shown: list[str]) -> None:
    assert mask_argv(argv) == shown


def test_extra_secret_options_can_be_named() -> None:
    assert mask_argv(["ipmitool", "-y", "abcdef", "-k", "x"], extra={"-y"}) == [
        "ipmitool", "-y", "******", "-k", "x"]


# --- configuration checks -----------------------------------------------------------


def test_a_command_must_be_an_argv_list_not_a_shell_string() -> None:
    with pytest.raises(ConfigError, match="node n1: the fence off command must be"):
        CommandFence({"n1": "ipmitool -H bmc1 chassis power off"}, clock=FakeClock())
    with pytest.raises(ConfigError, match="status command"):
        CommandFence({"n1": ["true"]}, {"n1": []}, clock=FakeClock())


def test_a_bad_off_pattern_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="off_pattern"):
        CommandFence({"n1": ["true"]}, off_pattern="(", clock=FakeClock())


def test_a_node_without_an_off_command_is_not_fenced() -> None:
    clock = FakeClock()
    result = CommandFence({"n1": ["true"]}, clock=clock).fence("n2", clock.now() + 5)
    assert not result.ok
    assert "no off command" in result.message


def test_cgroup_names_are_checked() -> None:
    assert cgroup_name("prod", "node-1") == "pyha/prod/node-1"
    for cluster, node in [("prod", "../etc"), ("a/b", "n1"), ("prod", ""), ("", "n1"),
                          ("prod", ".hidden")]:
        with pytest.raises(FenceError, match="cannot name a cgroup"):
            cgroup_name(cluster, node)


def test_a_hierarchy_only_touches_pyhas_cgroups(tmp_path: Path) -> None:
    hierarchy = Freezer(tmp_path)
    assert hierarchy.path("pyha/c/n1") == tmp_path / "pyha/c/n1"
    for name in ["user.slice", "pyha/../user.slice", "/pyha/c/n1"]:
        with pytest.raises(FenceError, match="not one of pyha's"):
            hierarchy.path(name)


def test_hierarchies_are_detected_from_the_mount_table(tmp_path: Path) -> None:
    for name in ["unified", "freezer", "pids", "cpu", "ro"]:
        (tmp_path / name).mkdir()
    mounts = tmp_path / "mounts"
    mounts.write_text(
        f"cgroup {tmp_path}/cpu cgroup rw,relatime,cpu 0 0\n"
        f"cgroup {tmp_path}/pids cgroup rw,relatime,pids 0 0\n"
        f"cgroup {tmp_path}/ro cgroup ro,relatime,freezer 0 0\n"
        f"cgroup {tmp_path}/freezer cgroup rw,relatime,freezer 0 0\n"
        f"cgroup2 {tmp_path}/unified cgroup2 rw,relatime 0 0\n"
        "proc /proc proc rw 0 0\n")
    found = detect_hierarchies(str(mounts))
    assert [(type(h), h.root) for h in found] == [
        (CgroupV2, tmp_path / "unified"), (Freezer, tmp_path / "freezer"),
        (PidsLimit, tmp_path / "pids")]
