"""Block devices as the disk plugin sees them: identity, a read check, who uses them."""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from pyha.errors import PyhaError
from pyha.resources.spi import OcfCode

__all__ = ["DiskError", "Identity", "identify", "open_exclusive", "read_check", "users"]

READ_SIZE = 4096
_ESCAPE = re.compile(r"\\([0-7]{3})")


class DiskError(PyhaError):
    """A disk operation cannot go on; `code` is the OCF code to answer."""

    def __init__(self, message: str, code: int = OcfCode.ERR_GENERIC) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Identity:
    """Which device a path names: its number, and the kernel's disk sequence number.

    Invariant: `diskseq` (Linux 5.15+) changes whenever new media appears behind the
    same device number (a loop device attached again, a disk swapped), so two equal
    identities are the same media; None where the kernel does not tell.
    """

    rdev: tuple[int, int]
    diskseq: int | None

    @property
    def key(self) -> str:
        """A file-name-safe name for the device number: 'dev-7-0'."""
        return f"dev-{self.rdev[0]}-{self.rdev[1]}"

    def record(self) -> dict[str, str]:
        """As kept in a claim file."""
        seq = {"diskseq": str(self.diskseq)} if self.diskseq is not None else {}
        return {"rdev": f"{self.rdev[0]}:{self.rdev[1]}", **seq}


def identify(path: str, *, missing_code: int = OcfCode.ERR_INSTALLED) -> Identity:
    """The identity of block device `path`; DiskError with `missing_code` if it is not one."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise DiskError(f"device {path} does not exist on this node", missing_code) from None
    except OSError as exc:
        raise DiskError(f"device {path}: {exc.strerror}", missing_code) from None
    if not stat.S_ISBLK(info.st_mode):
        raise DiskError(f"device {path} is not a block device", missing_code)
    rdev = (os.major(info.st_rdev), os.minor(info.st_rdev))
    return Identity(rdev, _diskseq(rdev))


def _diskseq(rdev: tuple[int, int]) -> int | None:
    try:
        return int(Path(f"/sys/dev/block/{rdev[0]}:{rdev[1]}/diskseq").read_text())
    except (OSError, ValueError):
        return None


def read_check(path: str) -> None:
    """Read the first 4 KiB past the page cache (O_DIRECT where allowed); DiskError if not."""
    try:
        fd = _open_for_check(path)
    except OSError as exc:
        raise DiskError(f"device {path} cannot be opened: {exc.strerror}") from None
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
        if size == 0:
            raise DiskError(f"device {path} has no media (size 0): detached, ejected or gone")
        wanted = min(READ_SIZE, size)
        with mmap.mmap(-1, READ_SIZE) as buffer:  # page-aligned, as O_DIRECT needs
            got = os.preadv(fd, [buffer], 0)
        if got < wanted:
            raise DiskError(f"device {path}: read {got} of the first {wanted} bytes")
    except OSError as exc:
        raise DiskError(f"device {path} cannot be read: {exc.strerror}") from None
    finally:
        os.close(fd)


def _open_for_check(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # no O_DIRECT on this device


def open_exclusive(path: str) -> int:
    """Open `path` with O_EXCL: Linux then refuses mounts and other exclusive opens of it.

    DiskError (with who uses it) if it is mounted or exclusively open already.
    """
    try:
        return os.open(path, os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            rdev = identify(path).rdev
            raise DiskError(f"device {path} is in use on this node: {users(rdev)}") from None
        raise DiskError(f"device {path} cannot be opened exclusively: {exc.strerror}") from None


def users(rdev: tuple[int, int]) -> str:
    """What keeps the device busy: its mounts and the devices stacked on it (LVM, md)."""
    found = [f"mounted at {point}" for point in _mount_points(rdev)]
    holders = Path(f"/sys/dev/block/{rdev[0]}:{rdev[1]}/holders")
    with contextlib.suppress(OSError):
        found += [f"held by {name}" for name in sorted(os.listdir(holders))]
    return ", ".join(found) or "opened exclusively by a process (not a mount)"


def _mount_points(rdev: tuple[int, int]) -> list[str]:
    wanted = f"{rdev[0]}:{rdev[1]}"
    try:
        text = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [
        _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), fields[4])
        for fields in (line.split(" ") for line in text.splitlines())
        if len(fields) > 4 and fields[2] == wanted
    ]
