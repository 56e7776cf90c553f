"""Loop devices for tests: sparse ext4 images attached with losetup, always detached after."""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

__all__ = [
    "LoopDevice",
    "LoopDevices",
    "backing_file",
    "make_image",
    "mounts_of",
    "mounts_under",
    "unmount_under",
]

_COMMAND_TIMEOUT = 30.0


@dataclass(frozen=True)
class LoopDevice:
    """A loop device a test attached, and the image file behind it."""

    path: str
    image: Path

    @property
    def rdev(self) -> tuple[int, int]:
        """(major, minor) of the device."""
        rdev = os.stat(self.path).st_rdev
        return os.major(rdev), os.minor(rdev)

    @property
    def attached(self) -> bool:
        """True while this device is still bound to this image."""
        return backing_file(self.path) == str(self.image.resolve())


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), capture_output=True, text=True, timeout=_COMMAND_TIMEOUT, check=True
    )


def make_image(path: Path, size_mb: int = 32, *, mkfs: bool = True, label: str = "") -> Path:
    """A sparse file of `size_mb` MiB, formatted ext4 (with `label`) unless mkfs is False."""
    with path.open("wb") as image:
        image.truncate(size_mb * 1024 * 1024)
    if mkfs:
        _run("mkfs.ext4", "-q", "-F", *(["-L", label] if label else []), str(path))
    return path


def backing_file(device: str) -> str | None:
    """The file a loop device is bound to, or None if it is detached."""
    name = os.path.basename(device)
    try:
        text = Path(f"/sys/block/{name}/loop/backing_file").read_text().rstrip("\n")
    except OSError:
        return None
    return text.removesuffix(" (deleted)")


def mounts_of(rdev: tuple[int, int]) -> list[str]:
    """Mount points of the file system on device (major, minor), innermost last."""
    wanted = f"{rdev[0]}:{rdev[1]}"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" ")
        if fields[2] == wanted:
            points.append(fields[4].encode().decode("unicode_escape"))
    return points


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below `directory`, in mount order."""
    top = str(directory.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split(" ")[4].encode().decode("unicode_escape")
        if point == top or point.startswith(top + "/"):
            points.append(point)
    return points


def unmount_under(directory: Path) -> None:
    """Unmount everything mounted at or below `directory`, newest first (tests' cleanup)."""
    for point in reversed(mounts_under(directory)):
        if subprocess.run(["umount", point], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)


class LoopDevices:
    """Attaches images to loop devices and detaches every one of them on close.

    Invariant: close() detaches only devices still bound to an image this object
    made, so a device another test attached after this one was detached is never hit;
    a mount left on one is unmounted first (lazily as a last resort, tests only).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.devices: list[LoopDevice] = []

    def new(self, size_mb: int = 32, *, mkfs: bool = True, label: str = "") -> LoopDevice:
        """A fresh image in the directory, attached to the first free loop device."""
        image = make_image(
            self.directory / f"loop{len(self.devices)}.img", size_mb, mkfs=mkfs, label=label
        )
        return self.attach(image)

    def attach(self, image: Path, device: str | None = None) -> LoopDevice:
        """Attach an existing image (to `device`, else a free one); detached on close."""
        where = [device] if device else ["--find", "--show"]
        path = _run("losetup", *where, str(image)).stdout.strip() or str(device)
        device = LoopDevice(path, image.resolve())
        self.devices.append(device)
        return device

    def detach(self, device: LoopDevice) -> None:
        """Unmount what is mounted from the device, then detach it if still ours."""
        if not device.attached:
            return
        for point in reversed(mounts_of(device.rdev)):
            if subprocess.run(["umount", point], capture_output=True, check=False).returncode:
                subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        if device.attached:
            subprocess.run(["losetup", "-d", device.path], capture_output=True, check=False)

    def close(self) -> None:
        """Detach every device, newest first, whatever happened to the others."""
        for device in reversed(self.devices):
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                self.detach(device)

    def __enter__(self) -> LoopDevices:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
