"""LVM volume groups through the lvm2 commands: activate, deactivate, report."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from pyha.executor.command import CommandResult, run_command
from pyha.resources.spi import OperationContext

from .blockdev import DiskError

__all__ = ["LogicalVolume", "Lvm", "VolumeGroup", "parse_lvs", "parse_vgs"]

SBIN_PATH = "/usr/local/sbin:/usr/sbin:/sbin"
SHARED_LOCK_TYPES = ("sanlock", "dlm", "idm")
"""Lock types of a VG shared through lvmlockd; its lockspace must be started first."""
_SEPARATOR = "|"
_OUTPUT_LIMIT = 2000


@dataclass(frozen=True)
class LogicalVolume:
    """One LV as lvs reports it."""

    name: str
    attr: str

    @property
    def active(self) -> bool:
        """The fifth lv_attr character is 'a' for an active LV."""
        return len(self.attr) > 4 and self.attr[4] == "a"


@dataclass(frozen=True)
class VolumeGroup:
    """A VG as vgs reports it: its name and its lvmlockd lock type ('' for a local VG)."""

    name: str
    lock_type: str

    @property
    def shared(self) -> bool:
        """True for a VG shared between hosts through lvmlockd."""
        return self.lock_type in SHARED_LOCK_TYPES


def parse_lvs(text: str) -> list[LogicalVolume]:
    """Rows of `lvs --noheadings --separator '|' -o lv_name,lv_attr`."""
    rows = (line.strip().split(_SEPARATOR) for line in text.splitlines() if line.strip())
    return [LogicalVolume(row[0].strip(), row[1].strip()) for row in rows if len(row) >= 2]


def parse_vgs(text: str) -> VolumeGroup | None:
    """The first row of `vgs --noheadings --separator '|' -o vg_name,vg_lock_type`."""
    for line in text.splitlines():
        fields = [part.strip() for part in line.strip().split(_SEPARATOR)]
        if fields and fields[0]:
            return VolumeGroup(fields[0], fields[1] if len(fields) > 1 else "")
    return None


class Lvm:
    """lvm2 commands for one volume group, each given `--config` if set.

    Invariant: every command runs through run_command under the operation's
    deadline, never through a shell, with LVM's file-descriptor warnings off.
    """

    def __init__(self, ctx: OperationContext, vg: str, config: str | None) -> None:
        self.ctx = ctx
        self.vg = vg
        self.config = config
        self.env = {
            "PATH": _path(),
            "LVM_SUPPRESS_FD_WARNINGS": "1",
            "LC_ALL": "C",  # the "not found" test reads LVM's English messages
        }

    @staticmethod
    def installed() -> bool:
        """True if lvm2's commands are on this node."""
        return shutil.which("vgchange", path=_path()) is not None

    def group(self) -> VolumeGroup | None:
        """The VG, or None if no PV of it is visible on this node."""
        result = self._run(
            "vgs", "--noheadings", "--separator", _SEPARATOR, "-o", "vg_name,vg_lock_type", self.vg
        )
        if result.ok:
            return parse_vgs(result.stdout)
        if _not_found(result):
            return None
        raise DiskError(f"vgs {self.vg} {describe(result)}")

    def volumes(self) -> list[LogicalVolume] | None:
        """The VG's LVs with their state, or None if the VG is not found."""
        result = self._run(
            "lvs", "--noheadings", "--separator", _SEPARATOR, "-o", "lv_name,lv_attr", self.vg
        )
        if result.ok:
            return parse_lvs(result.stdout)
        if _not_found(result):
            return None
        raise DiskError(f"lvs {self.vg} {describe(result)}")

    def start_lockspace(self) -> None:
        """Join the VG's lvmlockd lockspace (needed before a shared VG can be activated)."""
        result = self._run("vgchange", "--lockstart", self.vg)
        if not result.ok:
            raise DiskError(f"vgchange --lockstart {self.vg} {describe(result)}")

    def activate(self) -> None:
        """vgchange -aey: activate every LV exclusively (cluster-wide only with lvmlockd)."""
        result = self._run("vgchange", "-aey", self.vg)
        if not result.ok:
            raise DiskError(f"vgchange -aey {self.vg} {describe(result)}")

    def deactivate(self) -> None:
        """vgchange -an: deactivate every LV (fails while one is open, e.g. mounted)."""
        result = self._run("vgchange", "-an", self.vg)
        if not result.ok:
            raise DiskError(f"vgchange -an {self.vg} {describe(result)}")

    def _run(self, command: str, *args: str) -> CommandResult:
        config = ["--config", self.config] if self.config else []
        argv = [command, *config, *args]
        return run_command(
            argv, deadline=self.ctx.deadline, clock=self.ctx.clock, env=self.env, log=self.ctx.log
        )


def _path() -> str:
    return os.pathsep.join(part for part in (os.environ.get("PATH", ""), SBIN_PATH) if part)


def _not_found(result: CommandResult) -> bool:
    return result.returncode == 5 and "not found" in result.stderr


def describe(result: CommandResult) -> str:
    """'exited 5: Volume group "x" not found' for messages."""
    if result.timed_out:
        how = "timed out"
    elif result.returncode is None:
        how = "could not run"
    else:
        how = f"exited {result.returncode}"
    text = " ".join(result.stderr.split()) or result.warning or "no output"
    if len(text) > _OUTPUT_LIMIT:
        text = text[:_OUTPUT_LIMIT] + " ..."
    return f"{how}: {text}"
