"""The disk plugin's checks that need no device: parameters, LVM reports, claim records."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pyha.resources.agent import Agent
from pyha.resources.registry import Registry

FOLDER = Path(__file__).resolve().parents[2] / "plugins" / "disk"


@pytest.fixture(scope="module")
def agent() -> Agent:
    registry = Registry()
    registry.load_folder(FOLDER, "bundled", default_provider="pyha")
    assert registry.errors == []
    return registry.resolve("python:pyha:disk")


def _helper(agent: Agent, name: str) -> ModuleType:
    """A helper module of the plugin folder, as the registry imported it."""
    package = type(getattr(agent, "plugin")).__module__.rsplit(".", 1)[0]  # noqa: B009
    return importlib.import_module(f"{package}.{name}")


def _problems(agent: Agent, **params: Any) -> tuple[str, ...]:
    return agent.validate(params)[1]


def test_good_parameters_pass(agent: Agent) -> None:
    assert _problems(agent, device="/dev/pyha-not-attached-here") == ()
    assert _problems(agent, device="/dev/pyha-not-attached-here", hold_exclusive=True) == ()
    assert _problems(agent, volume_group="vg_data-1.x+") == ()
    assert _problems(agent, volume_group="data", lvm_config="devices { filter=[] }") == ()


def test_exactly_one_of_device_and_volume_group(agent: Agent) -> None:
    assert _problems(agent) == ("device: one of device or volume_group is required",)
    assert _problems(agent, device="/dev/sdz", volume_group="data") == (
        "device: give either device or volume_group, not both",
    )


def test_a_path_that_is_no_block_device_is_rejected(agent: Agent, tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(b"")
    assert _problems(agent, device=str(image)) == (
        f"device: {image} is not a block device (it is a regular file)",
    )
    assert _problems(agent, device=str(tmp_path)) == (
        f"device: {tmp_path} is not a block device (it is a directory)",
    )
    assert _problems(agent, device="/dev/null") == (
        "device: /dev/null is not a block device (it is a character device)",
    )
    assert _problems(agent, device="dev/sdb") == (
        "device: must be an absolute path, got 'dev/sdb'",
    )


@pytest.mark.parametrize("name", ["-data", "..", "my vg", "vg/lv", "x" * 128])
def test_bad_volume_group_names(agent: Agent, name: str) -> None:
    (problem,) = _problems(agent, volume_group=name)
    assert problem.startswith(f"volume_group: {name!r} is not a volume group name")


def test_options_that_belong_to_the_other_kind(agent: Agent) -> None:
    assert _problems(agent, device="/dev/sdz", lvm_config="devices {}") == (
        "lvm_config: only applies with volume_group",
    )
    assert _problems(agent, volume_group="data", hold_exclusive=True) == (
        "hold_exclusive: only applies with device",
    )


def test_meta_data_declares_timeouts(agent: Agent) -> None:
    assert agent.meta.timeout("start") == 30.0
    assert agent.meta.timeout("stop") == 30.0
    monitor = agent.meta.operation("monitor")
    assert monitor is not None and monitor.interval == 10.0


# --- LVM reports --------------------------------------------------------------------


def test_lvs_report_tells_active_volumes(agent: Agent) -> None:
    lvm = _helper(agent, "lvm")
    text = "  data|-wi-a-----\n  logs|-wi-------\n\n  swap|-wi-ao----\n"
    volumes = lvm.parse_lvs(text)
    assert [(v.name, v.active) for v in volumes] == [
        ("data", True),
        ("logs", False),
        ("swap", True),
    ]


def test_vgs_report_tells_shared_groups(agent: Agent) -> None:
    lvm = _helper(agent, "lvm")
    local = lvm.parse_vgs("  data|\n")
    shared = lvm.parse_vgs("  cluster|sanlock\n")
    assert (local.name, local.shared) == ("data", False)
    assert (shared.name, shared.shared) == ("cluster", True)
    assert lvm.parse_vgs("\n") is None


# --- claim records ------------------------------------------------------------------


def test_claim_record_round_trip(agent: Agent) -> None:
    claims = _helper(agent, "claims")
    holder = claims.Holder("n1", "db", 4242, 1.5e9, "/dev/sdz", {"rdev": "8:16"})
    again = claims.Holder.from_json(holder.to_json())
    assert again == holder
    assert again.is_for("n1", "db") and not again.is_for("n2", "db")
    assert again.describe().startswith("resource db on node n1 (pid 4242) since ")
    assert claims.Holder.from_json(b"not json") is None
    assert claims.Holder.from_json(b'{"node": "n1"}') is None


def test_lock_holders_read_from_a_locks_table(agent: Agent, tmp_path: Path) -> None:
    claims = _helper(agent, "claims")
    path = tmp_path / "dev-7-0.claim"
    path.write_bytes(b"")
    info = os.stat(path)
    where = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    locks = tmp_path / "locks"
    locks.write_text(
        f"1: FLOCK  ADVISORY  WRITE 4242 {where} 0 EOF\n"
        f"1: -> FLOCK  ADVISORY  WRITE 4343 {where} 0 EOF\n"
        "2: POSIX  ADVISORY  WRITE 99 00:01:12 0 EOF\n"
    )
    assert claims.lock_holders(path, locks) == [4242]
