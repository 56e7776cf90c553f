"""Checks of filesystem parameters that need no mount: paths, file system types, options."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from .source import TAGS

__all__ = [
    "device_problems",
    "directory_problems",
    "fstype_problems",
    "kernel_filesystems",
    "option_problems",
]

HELPER_DIRS = ("/sbin", "/usr/sbin", "/bin", "/usr/bin")
"""Where `mount` looks for /sbin/mount.<type> helpers (nfs, cifs, fuse file systems)."""
_FSTYPE = re.compile(r"^[a-z0-9][a-z0-9_.+-]*$")
_UNSUPPORTED_OPTIONS = {
    "remount": "changes an existing mount; pyha mounts and unmounts on its own",
    "move": "moves an existing mount; pyha mounts and unmounts on its own",
    "bind": "bind mounts have no device of their own to watch; not supported",
    "rbind": "bind mounts have no device of their own to watch; not supported",
}
_BAD_CHARACTERS = re.compile(r"[\s\x00-\x1f\x7f]")


def directory_problems(directory: str) -> list[str]:
    """The mount point must be an absolute path other than /, without '..'."""
    if not directory.startswith("/"):
        return [f"directory: must be an absolute path, got {directory!r}"]
    if "\0" in directory:
        return ["directory: holds a NUL character"]
    if not os.path.normpath(directory).strip("/"):
        return ["directory: cannot be / (the root file system)"]
    if ".." in directory.split("/"):
        return [f"directory: must not contain '..' ({directory!r})"]
    return []


def device_problems(device: str) -> list[str]:
    """A device path, an image file, LABEL=/UUID=..., or a source text such as tmpfs."""
    if not device.strip():
        return ["device: must not be empty"]
    if _BAD_CHARACTERS.search(device):
        return [f"device: must not hold spaces or control characters ({device!r})"]
    for tag in TAGS:
        if device.startswith(tag) and len(device) == len(tag):
            return [f"device: {tag} needs a value, e.g. {tag}data"]
    if device.startswith("-"):
        return [f"device: must not start with '-' ({device!r})"]
    return []


def fstype_problems(fstype: str | None, *, proc: Path = Path("/proc")) -> list[str]:
    """The type must be one this node can mount: kernel, kernel module or mount helper."""
    if fstype is None or fstype == "auto":
        return []
    if not _FSTYPE.match(fstype):
        return [f"fstype: {fstype!r} is not a file system type name"]
    if _known_fstype(fstype, proc):
        return []
    return [
        f"fstype: {fstype!r} is unknown on this node: not in {proc}/filesystems, "
        f"no kernel module and no mount.{fstype} helper"
    ]


def _known_fstype(fstype: str, proc: Path) -> bool:
    kernel = kernel_filesystems(proc)
    if fstype in kernel:
        return True
    if any(os.access(f"{d}/mount.{fstype}", os.X_OK) for d in HELPER_DIRS):
        return True
    head, _, subtype = fstype.partition(".")
    if subtype and head in ("fuse", "fuseblk") and head in kernel:
        return True  # fuse.sshfs and the like: the fuse helper finds the subtype's program
    return _has_module(fstype)


def kernel_filesystems(proc: Path = Path("/proc")) -> set[str]:
    """The file system types the running kernel knows now (loaded or built in)."""
    try:
        text = (proc / "filesystems").read_text(encoding="utf-8")
    except OSError:
        return set()
    return {line.split()[-1] for line in text.splitlines() if line.split()}


def _has_module(fstype: str) -> bool:
    """True if a kernel module of that name is installed (mount loads it on demand)."""
    base = Path("/lib/modules") / os.uname().release
    pattern = re.compile(rf"/{re.escape(fstype)}\.ko(\.[a-z]+)?:?$")
    for name in ("modules.dep", "modules.builtin"):
        try:
            lines: Iterable[str] = (base / name).read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        if any(pattern.search(line.split(" ", 1)[0]) for line in lines):
            return True
    return False


def option_problems(options: str) -> list[str]:
    """Mount options: comma-separated words, none that changes other mounts, ro xor rw."""
    if not options:
        return []
    if _BAD_CHARACTERS.search(options):
        return [f"options: must not hold spaces or control characters ({options!r})"]
    items = options.split(",")
    problems = []
    if "" in items:
        problems.append(f"options: an empty item in {options!r} (two commas, or one at an end)")
    if options.startswith("-"):
        problems.append(f"options: must not start with '-' ({options!r})")
    for item in items:
        why = _UNSUPPORTED_OPTIONS.get(item)
        if why:
            problems.append(f"options: {item!r} is not allowed: {why}")
    if "ro" in items and "rw" in items:
        problems.append("options: both ro and rw are given")
    return problems
