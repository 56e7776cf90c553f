"""The kernel's mount table (/proc/self/mountinfo), parsed into entries."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MountEntry", "mounted_at", "mounts_of_device", "parse_mountinfo", "read_mountinfo"]

MOUNTINFO = Path("/proc/self/mountinfo")
_ESCAPE = re.compile(r"\\([0-7]{3})")


def unescape(field: str) -> str:
    r"""A mountinfo path field with its octal escapes (\040 space, \011 tab, ...) decoded."""
    return _ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


@dataclass(frozen=True)
class MountEntry:
    """One line of mountinfo.

    Invariant: paths are unescaped; `device` is the (major, minor) pair every file on
    this mount reports as its st_dev.
    """

    mount_id: int
    parent_id: int
    device: tuple[int, int]
    root: str
    mount_point: str
    mount_options: tuple[str, ...]
    fstype: str
    source: str
    super_options: tuple[str, ...]

    @property
    def read_only(self) -> bool:
        """True if writes fail, whether the mount or its file system is read-only."""
        return "ro" in self.mount_options or "ro" in self.super_options

    @property
    def dev_t(self) -> int:
        """The device number as os.stat reports it in st_dev."""
        return os.makedev(*self.device)

    @classmethod
    def from_line(cls, line: str) -> MountEntry:
        """Parse one line; ValueError if it does not have mountinfo's shape."""
        fields = line.split(" ")
        try:
            dash = fields.index("-", 6)
            major, minor = fields[2].split(":")
            return cls(
                mount_id=int(fields[0]),
                parent_id=int(fields[1]),
                device=(int(major), int(minor)),
                root=unescape(fields[3]),
                mount_point=unescape(fields[4]),
                mount_options=tuple(fields[5].split(",")),
                fstype=fields[dash + 1],
                source=unescape(fields[dash + 2]),
                super_options=tuple(fields[dash + 3].split(",")),
            )
        except (ValueError, IndexError):
            raise ValueError(f"not a mountinfo line: {line!r}") from None


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Every entry of a mountinfo text, in the kernel's order (later mounts last)."""
    return [MountEntry.from_line(line) for line in text.splitlines() if line.strip()]


def read_mountinfo(path: Path = MOUNTINFO) -> list[MountEntry]:
    """The current mount table of this process's mount namespace."""
    return parse_mountinfo(path.read_text(encoding="utf-8", errors="surrogateescape"))


def mounted_at(entries: list[MountEntry], directory: str) -> MountEntry | None:
    """The visible mount at `directory` (the last one stacked there), if any."""
    found = [entry for entry in entries if entry.mount_point == directory]
    return found[-1] if found else None


def mounts_of_device(entries: list[MountEntry], device: tuple[int, int]) -> list[MountEntry]:
    """Every mount of the file system on `device` (major, minor)."""
    return [entry for entry in entries if entry.device == device]
