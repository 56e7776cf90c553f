"""The disk plugin: a block device or LVM volume group claimed by exactly one node."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyha.resources.spi import (
    MetaData,
    OcfCode,
    OperationContext,
    OperationSpec,
    ParameterSpec,
    Plugin,
)

from .blockdev import DiskError, identify, open_exclusive, read_check
from .claims import Claim, ClaimRefused, Claims, Holder
from .lvm import Lvm

__all__ = ["DiskPlugin"]

_VG_NAME = re.compile(r"^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$")
_VG_NAME_MAX = 127

_META = MetaData(
    name="disk",
    description=(
        "A block device or an LVM volume group that must be present and used by one node "
        "only. A device is claimed with a locked claim file under the state dir (and, with "
        "hold_exclusive, an O_EXCL open that makes the kernel refuse mounts); a volume group "
        "is activated with vgchange -aey. Both claims are local to this node: across "
        "nodes, single use rests on the cluster's fencing, or on lvmlockd for shared VGs."
    ),
    parameters=(
        ParameterSpec(
            name="device",
            unique=True,
            description="Block device path (/dev/disk/by-id/...); give this or volume_group.",
        ),
        ParameterSpec(
            name="volume_group",
            unique=True,
            description="LVM volume group whose logical volumes are activated; give this "
            "or device.",
        ),
        ParameterSpec(
            name="lvm_config",
            description="LVM configuration passed as --config to every LVM command, e.g. "
            'devices { filter=["a|^/dev/sdb$|","r|.*|"] }.',
        ),
        ParameterSpec(
            name="hold_exclusive",
            type="boolean",
            default=False,
            description="Keep the device open with O_EXCL while claimed: the kernel then "
            "refuses to mount it or open it exclusively for anyone else on this node, this "
            "node's pyha included (so not for a device a filesystem resource mounts).",
        ),
    ),
    operations=(
        OperationSpec(name="start", timeout=30.0),
        OperationSpec(name="stop", timeout=30.0),
        OperationSpec(name="monitor", timeout=20.0, interval=10.0),
    ),
)


@dataclass(frozen=True)
class Settings:
    """A resource's parameters, typed and defaulted; exactly one of device and volume_group."""

    device: str | None
    volume_group: str | None
    lvm_config: str | None
    hold_exclusive: bool

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Settings:
        """Settings from parameters that passed validation."""
        return cls(
            device=params.get("device") or None,
            volume_group=params.get("volume_group") or None,
            lvm_config=params.get("lvm_config") or None,
            hold_exclusive=bool(params.get("hold_exclusive", False)),
        )


class DiskPlugin(Plugin):
    """Claims block devices and activates volume groups, one resource each.

    Invariant: a resource is running here exactly while this process holds its claim
    (for a VG: while its LVs are active), and no two resources on this node hold a
    claim on the same device or VG at once.
    """

    def __init__(self) -> None:
        self.claims = Claims()

    def meta_data(self) -> MetaData:
        """Parameters and default timeouts."""
        return _META

    def validate(self, params: Mapping[str, Any]) -> list[str]:
        """Exactly one of device and volume_group, each well formed."""
        device, vg = params.get("device"), params.get("volume_group")
        if device and vg:
            return ["device: give either device or volume_group, not both"]
        if not device and not vg:
            return ["device: one of device or volume_group is required"]
        if device:
            problems = _device_problems(str(device))
            if params.get("lvm_config"):
                problems.append("lvm_config: only applies with volume_group")
            return problems
        problems = _vg_problems(str(vg))
        if params.get("hold_exclusive"):
            problems.append("hold_exclusive: only applies with device")
        return problems

    def start(self, ctx: OperationContext) -> int:
        """Claim the device, or activate the volume group."""
        return self._answer(ctx, self._start_device, self._start_group)

    def stop(self, ctx: OperationContext) -> int:
        """Release the claim, or deactivate the volume group."""
        return self._answer(ctx, self._stop_device, self._stop_group)

    def monitor(self, ctx: OperationContext) -> int:
        """0 claimed and readable (VG: all LVs active), 7 released, 1 gone or unreadable."""
        return self._answer(ctx, self._monitor_device, self._monitor_group)

    def _answer(
        self,
        ctx: OperationContext,
        on_device: Callable[[OperationContext, Settings], int],
        on_group: Callable[[OperationContext, Settings], int],
    ) -> int:
        s = Settings.from_params(ctx.params)
        try:
            return on_device(ctx, s) if s.device else on_group(ctx, s)
        except DiskError as exc:
            ctx.log.error("%s %s: %s", ctx.operation, ctx.resource, exc)
            return exc.code
        except (ClaimRefused, OSError) as exc:
            ctx.log.error("%s %s: %s", ctx.operation, ctx.resource, exc)
            return OcfCode.ERR_GENERIC

    # --- block devices --------------------------------------------------------------

    def _start_device(self, ctx: OperationContext, s: Settings) -> int:
        assert s.device is not None  # _answer dispatches on it
        identity = identify(s.device)
        claim = self._own_claim(ctx)
        if claim is not None:
            why = _changed(claim, s.device, identity.record())
            if not why:
                _hold_exclusive(s, claim)
                read_check(s.device)
                ctx.log.info("%s: %s is already claimed here", ctx.resource, s.device)
                return OcfCode.SUCCESS
            ctx.log.warning("%s: dropping its old claim: %s", ctx.resource, why)
            self.claims.release(claim)
        holder = _holder(ctx, s.device, identity.record())
        claim = self._take(ctx, _claims_dir(ctx) / f"{identity.key}.claim", holder)
        try:
            _hold_exclusive(s, claim)
            if not s.hold_exclusive:
                os.close(open_exclusive(s.device))  # refuses a device mounted or held here
            read_check(s.device)
        except (DiskError, OSError):
            self.claims.release(claim)
            raise
        ctx.log.info("%s: claimed %s (%s)", ctx.resource, s.device, holder.identity["rdev"])
        return OcfCode.SUCCESS

    def _stop_device(self, ctx: OperationContext, s: Settings) -> int:
        claim = self._own_claim(ctx)
        if claim is None:
            ctx.log.info("%s: %s is not claimed here", ctx.resource, s.device)
            return OcfCode.SUCCESS
        self.claims.release(claim)
        ctx.log.info("%s: released %s", ctx.resource, claim.holder.target)
        return OcfCode.SUCCESS

    def _monitor_device(self, ctx: OperationContext, s: Settings) -> int:
        assert s.device is not None  # _answer dispatches on it
        claim = self._own_claim(ctx)
        if claim is None:
            ctx.log.info("%s: %s is not claimed here", ctx.resource, s.device)
            return OcfCode.NOT_RUNNING
        try:
            identity = identify(s.device, missing_code=OcfCode.ERR_GENERIC)
        except DiskError as exc:
            raise DiskError(f"{exc}: gone while claimed") from None
        read_check(s.device)
        why = _changed(claim, s.device, identity.record())
        if why:
            raise DiskError(f"device {s.device} is not the device claimed: {why}")
        _hold_exclusive(s, claim)
        return OcfCode.SUCCESS

    # --- volume groups --------------------------------------------------------------

    def _start_group(self, ctx: OperationContext, s: Settings) -> int:
        assert s.volume_group is not None  # _answer dispatches on it
        lvm = _lvm(ctx, s)
        holder = _holder(ctx, s.volume_group, {"volume_group": s.volume_group})
        claim = self._take(ctx, _claims_dir(ctx) / f"vg-{s.volume_group}.claim", holder)
        try:
            group = lvm.group()
            if group is None:
                raise DiskError(
                    f"volume group {s.volume_group} is not found on this node",
                    OcfCode.ERR_INSTALLED,
                )
            if group.shared:
                lvm.start_lockspace()
            lvm.activate()
            inactive = _inactive(lvm)
        except DiskError:
            self.claims.release(claim)
            raise
        if inactive:
            raise DiskError(f"volume group {s.volume_group}: still inactive: {inactive}")
        scope = "all hosts (lvmlockd)" if group.shared else "this node only (a local VG)"
        ctx.log.info("%s: activated %s exclusively on %s", ctx.resource, s.volume_group, scope)
        return OcfCode.SUCCESS

    def _stop_group(self, ctx: OperationContext, s: Settings) -> int:
        claim = self._own_claim(ctx)
        if Lvm.installed():
            lvm = _lvm(ctx, s)
            if lvm.group() is not None:
                lvm.deactivate()
                active = [v.name for v in lvm.volumes() or [] if v.active]
                if active:
                    raise DiskError(f"{s.volume_group}: still active: {', '.join(active)}")
        if claim is not None:
            self.claims.release(claim)
        ctx.log.info("%s: deactivated %s", ctx.resource, s.volume_group)
        return OcfCode.SUCCESS

    def _monitor_group(self, ctx: OperationContext, s: Settings) -> int:
        claim = self._own_claim(ctx)
        if not Lvm.installed():
            if claim is None:
                return OcfCode.NOT_RUNNING
            raise DiskError("lvm2 is no longer installed on this node (no vgchange)")
        lvm = _lvm(ctx, s)
        volumes = lvm.volumes()
        if volumes is None:
            if claim is None:
                return OcfCode.NOT_RUNNING
            raise DiskError(f"volume group {s.volume_group} is gone while active here")
        active = [v for v in volumes if v.active]
        if volumes and len(active) == len(volumes):
            return OcfCode.SUCCESS
        if not active:
            # A VG without LVs has nothing to activate: the claim alone says running.
            return OcfCode.SUCCESS if claim and not volumes else OcfCode.NOT_RUNNING
        raise DiskError(f"volume group {s.volume_group}: only partly active: {_inactive(lvm)}")

    # --- claims ---------------------------------------------------------------------

    def _own_claim(self, ctx: OperationContext) -> Claim | None:
        return self.claims.find(_claims_dir(ctx), ctx.node, ctx.resource)

    def _take(self, ctx: OperationContext, path: Path, holder: Holder) -> Claim:
        claim, stale = self.claims.acquire(path, holder)
        if stale is not None and not stale.is_for(ctx.node, ctx.resource):
            ctx.log.warning(
                "%s: took over the stale claim of %s (it no longer held the lock)",
                ctx.resource,
                stale.describe(),
            )
        return claim


def _claims_dir(ctx: OperationContext) -> Path:
    return Path(ctx.state_dir) / "disk"


def _holder(ctx: OperationContext, target: str, identity: dict[str, str]) -> Holder:
    return Holder(ctx.node, ctx.resource, os.getpid(), ctx.clock.wall(), target, identity)


def _changed(claim: Claim, device: str, identity: dict[str, str]) -> str:
    """Why `claim` is not a claim on `device` as it is now; '' if it is."""
    if claim.holder.target != device:
        return f"the claim is on {claim.holder.target}, the resource names {device}"
    recorded = claim.holder.identity
    if recorded.get("rdev") != identity["rdev"]:
        return f"it is now device {identity['rdev']}, claimed as {recorded.get('rdev')}"
    if recorded.get("diskseq", identity.get("diskseq")) != identity.get("diskseq"):
        return "other media appeared behind it since it was claimed (disk sequence number)"
    return ""


def _hold_exclusive(s: Settings, claim: Claim) -> None:
    if s.hold_exclusive and s.device and not claim.extra_fds:
        claim.extra_fds.append(open_exclusive(s.device))


def _lvm(ctx: OperationContext, s: Settings) -> Lvm:
    assert s.volume_group is not None  # only called for volume groups
    if not Lvm.installed():
        raise DiskError("lvm2 is not installed on this node (no vgchange)", OcfCode.ERR_INSTALLED)
    return Lvm(ctx, s.volume_group, s.lvm_config)


def _inactive(lvm: Lvm) -> str:
    volumes = lvm.volumes() or []
    return ", ".join(v.name for v in volumes if not v.active)


# --- validation ---------------------------------------------------------------------


def _device_problems(device: str) -> list[str]:
    if not device.startswith("/"):
        return [f"device: must be an absolute path, got {device!r}"]
    try:
        mode = os.stat(device).st_mode
    except FileNotFoundError:
        return []  # a shared disk may be visible only where it is attached; start checks
    except OSError as exc:
        return [f"device: {device}: {exc.strerror}"]
    if not stat.S_ISBLK(mode):
        return [f"device: {device} is not a block device (it is {_kind(mode)})"]
    return []


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISCHR(mode):
        return "a character device"
    return "not a device"


def _vg_problems(vg: str) -> list[str]:
    if vg in (".", "..") or not _VG_NAME.match(vg) or len(vg) > _VG_NAME_MAX:
        return [
            f"volume_group: {vg!r} is not a volume group name (letters, digits and + _ . -, "
            f"not starting with -, at most {_VG_NAME_MAX} characters)"
        ]
    return []
