"""The filesystem plugin's checks that need no mount: parameters and mountinfo parsing."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pyha.resources.agent import Agent
from pyha.resources.registry import Registry

FOLDER = Path(__file__).resolve().parents[2] / "plugins" / "filesystem"


@pytest.fixture(scope="module")
def agent() -> Agent:
    registry = Registry()
    registry.load_folder(FOLDER, "bundled", default_provider="pyha")
    assert registry.errors == []
    return registry.resolve("python:pyha:filesystem")


def _helper(agent: Agent, name: str) -> ModuleType:
    """A helper module of the plugin folder, as the registry imported it."""
    package = type(getattr(agent, "plugin")).__module__.rsplit(".", 1)[0]  # noqa: B009
    return importlib.import_module(f"{package}.{name}")


def _problems(agent: Agent, **params: Any) -> tuple[str, ...]:
    given = {"device": "/dev/sdz1", "directory": "/srv/data", **params}
    return agent.validate(given)[1]


def test_good_parameters_pass(agent: Agent) -> None:
    assert _problems(agent) == ()
    assert _problems(agent, fstype="ext4", options="noatime,ro", fsck=True) == ()
    assert _problems(agent, device="LABEL=data", fstype="auto") == ()
    assert _problems(agent, device="tmpfs", fstype="tmpfs", options="size=10m,mode=0755") == ()
    assert _problems(agent, device="/srv/images/a.img", options="loop") == ()


@pytest.mark.parametrize(
    ("directory", "expected"),
    [
        ("srv/data", "directory: must be an absolute path, got 'srv/data'"),
        ("./data", "directory: must be an absolute path, got './data'"),
        ("/", "directory: cannot be / (the root file system)"),
        ("//", "directory: cannot be / (the root file system)"),
        ("/srv/../etc", "directory: must not contain '..' ('/srv/../etc')"),
    ],
)
def test_bad_directory(agent: Agent, directory: str, expected: str) -> None:
    assert _problems(agent, directory=directory) == (expected,)


def test_unknown_fstype(agent: Agent) -> None:
    (problem,) = _problems(agent, fstype="nosuchfs")
    assert problem.startswith("fstype: 'nosuchfs' is unknown on this node: not in /proc/")
    assert "no mount.nosuchfs helper" in problem
    assert _problems(agent, fstype="EXT4!") == ("fstype: 'EXT4!' is not a file system type name",)


def test_fstype_known_from_the_kernel_list(agent: Agent, tmp_path: Path) -> None:
    checks = _helper(agent, "checks")
    (tmp_path / "filesystems").write_text("nodev\tpyhafs\n\tpyhablockfs\n")
    assert checks.fstype_problems("pyhablockfs", proc=tmp_path) == []
    assert checks.fstype_problems("pyhafs", proc=tmp_path) == []
    assert checks.kernel_filesystems(tmp_path) == {"pyhafs", "pyhablockfs"}
    assert _problems(agent, fstype="proc", device="proc") == ()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("rw,,noatime", "options: an empty item in 'rw,,noatime' (two commas, or one at an end)"),
        ("noatime,", "options: an empty item in 'noatime,' (two commas, or one at an end)"),
        ("rw noatime", "options: must not hold spaces or control characters ('rw noatime')"),
        ("ro,rw", "options: both ro and rw are given"),
        ("-o,ro", "options: must not start with '-' ('-o,ro')"),
        (
            "remount,ro",
            "options: 'remount' is not allowed: changes an existing mount; "
            "pyha mounts and unmounts on its own",
        ),
        (
            "bind",
            "options: 'bind' is not allowed: bind mounts have no device of their own to "
            "watch; not supported",
        ),
    ],
)
def test_bad_options(agent: Agent, options: str, expected: str) -> None:
    assert _problems(agent, options=options) == (expected,)


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ("", "device: must not be empty"),
        ("/dev/my disk", "device: must not hold spaces or control characters ('/dev/my disk')"),
        ("LABEL=", "device: LABEL= needs a value, e.g. LABEL=data"),
        ("-t", "device: must not start with '-' ('-t')"),
    ],
)
def test_bad_device(agent: Agent, device: str, expected: str) -> None:
    assert _problems(agent, device=device) == (expected,)


def test_fsck_needs_a_device(agent: Agent) -> None:
    assert _problems(agent, device="tmpfs", fstype="tmpfs", fsck=True) == (
        "fsck: 'tmpfs' is no device or image file to check",
    )


def test_required_and_typed_parameters(agent: Agent) -> None:
    _, problems = agent.validate({"device": "/dev/sdz1", "fsck": "maybe"})
    assert problems == (
        "directory: required parameter is missing",
        "fsck: must be true or false, got 'maybe'",
    )


def test_meta_data_declares_timeouts(agent: Agent) -> None:
    assert agent.meta.timeout("start") == 60.0
    assert agent.meta.timeout("stop") == 60.0
    monitor = agent.meta.operation("monitor")
    assert monitor is not None and monitor.interval == 20.0
    directory = next(p for p in agent.meta.parameters if p.name == "directory")
    assert directory.unique and directory.required


# --- mountinfo ----------------------------------------------------------------------

MOUNTINFO = (
    "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n"
    "42 27 7:0 / /srv/my\\040data rw,noatime shared:12 master:3 - ext4 /dev/loop0 rw\n"
    "43 42 7:1 /sub /srv/my\\040data/tab\\011and\\012newline\\134x ro,relatime - "
    "xfs /dev/loop1 rw\n"
    "44 27 0:50 / /srv/my\\040data rw - tmpfs tmp\\040fs rw,size=1024k\n"
)


def test_mountinfo_unescapes_paths_and_skips_optional_fields(agent: Agent) -> None:
    mountinfo = _helper(agent, "mountinfo")
    root, loop0, loop1, tmp = mountinfo.parse_mountinfo(MOUNTINFO)
    assert root.mount_point == "/" and root.source == "/dev/vda"
    assert loop0.mount_point == "/srv/my data"
    assert (loop0.device, loop0.fstype, loop0.source) == ((7, 0), "ext4", "/dev/loop0")
    assert loop0.mount_options == ("rw", "noatime")
    assert loop1.mount_point == "/srv/my data/tab\tand\nnewline\\x"
    assert loop1.root == "/sub"
    assert loop1.read_only and not loop0.read_only
    assert tmp.source == "tmp fs" and tmp.super_options == ("rw", "size=1024k")


def test_mountinfo_finds_the_visible_mount(agent: Agent) -> None:
    mountinfo = _helper(agent, "mountinfo")
    entries = mountinfo.parse_mountinfo(MOUNTINFO)
    assert mountinfo.mounted_at(entries, "/srv/my data").fstype == "tmpfs"  # stacked last
    assert mountinfo.mounted_at(entries, "/srv/other") is None
    assert [e.mount_id for e in mountinfo.mounts_of_device(entries, (7, 1))] == [43]


def test_mountinfo_rejects_a_malformed_line(agent: Agent) -> None:
    mountinfo = _helper(agent, "mountinfo")
    with pytest.raises(ValueError, match="not a mountinfo line"):
        mountinfo.parse_mountinfo("27 1 254:0 / / rw,relatime ext4 /dev/vda rw\n")
