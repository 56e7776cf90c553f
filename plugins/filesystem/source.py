"""What a filesystem resource's `device` names on this node, and whether a mount is of it."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pyha.errors import PyhaError
from pyha.executor.command import run_command
from pyha.resources.spi import OcfCode, OperationContext

from .mountinfo import MountEntry

__all__ = ["TAGS", "FilesystemError", "Source", "loop_backing_file", "resolve_source"]

TAGS = ("LABEL=", "UUID=", "PARTLABEL=", "PARTUUID=")
"""Prefixes of a device given by a tag that blkid looks up."""

SourceKind = Literal["block", "image", "other"]


class FilesystemError(PyhaError):
    """A filesystem operation cannot go on; `code` is the OCF code to answer."""

    def __init__(self, message: str, code: int = OcfCode.ERR_GENERIC) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Source:
    """The `device` parameter resolved on this node.

    Invariant: a block source has `path` (resolved) and `rdev`; an image source has the
    image file's resolved `path`; an `other` source (tmpfs, host:/export) is matched by
    the text the kernel shows as the mount's source.
    """

    spec: str
    kind: SourceKind
    path: str = ""
    rdev: tuple[int, int] | None = None

    @property
    def mount_name(self) -> str:
        """What `mount` is given: the resolved device, the image file, or the text as is."""
        return self.path if self.kind != "other" else self.spec

    def matches(self, entry: MountEntry) -> bool:
        """True if `entry` mounts this source."""
        if self.kind == "block":
            return entry.device == self.rdev or _same_path(entry.source, self.path)
        if self.kind == "image":
            backing = loop_backing_file(entry.device) or _backing_of_path(entry.source)
            return backing is not None and _same_path(backing, self.path)
        return entry.source == self.spec

    def __str__(self) -> str:
        if self.spec != self.mount_name:
            return f"{self.spec} ({self.mount_name})"
        return self.spec


def describe_mount(entry: MountEntry) -> str:
    """'/dev/loop3 (ext4, image /tmp/a.img)' for messages about what is mounted."""
    backing = loop_backing_file(entry.device)
    detail = f"{entry.fstype}, image {backing}" if backing else entry.fstype
    return f"{entry.source} ({detail})"


def resolve_source(ctx: OperationContext, spec: str) -> Source:
    """The source `spec` names; FilesystemError (not installed) if it is not here."""
    if spec.startswith(TAGS):
        return _block(spec, _lookup_tag(ctx, spec))
    if not spec.startswith("/"):
        return Source(spec, "other")
    try:
        info = os.stat(spec)
    except FileNotFoundError:
        raise FilesystemError(f"device {spec} does not exist on this node", 5) from None
    except OSError as exc:
        raise FilesystemError(f"device {spec}: {exc.strerror}", 5) from None
    if stat.S_ISBLK(info.st_mode):
        return _block(spec, spec)
    if stat.S_ISREG(info.st_mode):
        return Source(spec, "image", os.path.realpath(spec))
    raise FilesystemError(f"device {spec} is neither a block device nor an image file", 5)


def _block(spec: str, path: str) -> Source:
    try:
        rdev = os.stat(path).st_rdev
    except OSError as exc:
        raise FilesystemError(f"device {spec}: {path}: {exc.strerror}", 5) from None
    return Source(spec, "block", os.path.realpath(path), (os.major(rdev), os.minor(rdev)))


def _lookup_tag(ctx: OperationContext, spec: str) -> str:
    """The one block device carrying the tag (LABEL=data); FilesystemError otherwise."""
    argv = ["blkid", "-c", "/dev/null", "-o", "device", "-t", spec]
    result = run_command(argv, deadline=ctx.deadline, clock=ctx.clock, log=ctx.log)
    if result.returncode is None:
        raise FilesystemError(f"device {spec}: cannot run blkid: {result.warning}", 5)
    devices = result.stdout.split()
    if not devices:
        raise FilesystemError(f"device {spec}: no block device on this node carries it", 5)
    if len(devices) > 1:
        # Two devices with one label (a cloned disk, multipath legs): mounting either
        # could be the wrong one.
        raise FilesystemError(
            f"device {spec} is ambiguous: {', '.join(devices)} all carry it; "
            "name the device by its path"
        )
    return devices[0]


def loop_backing_file(device: tuple[int, int]) -> str | None:
    """The file behind loop device (major, minor), or None if it is no attached loop device."""
    path = Path(f"/sys/dev/block/{device[0]}:{device[1]}/loop/backing_file")
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape").rstrip("\n")
    except OSError:
        return None
    return text.removesuffix(" (deleted)") or None


def _backing_of_path(source: str) -> str | None:
    try:
        rdev = os.stat(source).st_rdev
    except OSError:
        return None
    return loop_backing_file((os.major(rdev), os.minor(rdev))) if rdev else None


def _same_path(a: str, b: str) -> bool:
    return a == b or os.path.realpath(a) == os.path.realpath(b)
