"""The filesystem plugin: mount a device or image at a directory, watch it, unmount it."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyha.executor.command import CommandResult, run_command
from pyha.resources.spi import (
    MetaData,
    OcfCode,
    OperationContext,
    OperationSpec,
    ParameterSpec,
    Plugin,
)

from .checks import device_problems, directory_problems, fstype_problems, option_problems
from .mountinfo import MountEntry, mounted_at, read_mountinfo
from .source import TAGS, FilesystemError, Source, describe_mount, resolve_source
from .users import describe_pids, stop_processes, users_of

__all__ = ["FilesystemPlugin"]

FSCK_FINE = (0, 1)
"""fsck exit codes that allow mounting: clean, or errors corrected."""
MAX_UNMOUNT_ROUNDS = 10
"""umount attempts in one stop; each round first stops the processes found using it."""
_OUTPUT_LIMIT = 2000
_SAFE_NODE = re.compile(r"[^A-Za-z0-9_.-]")

_META = MetaData(
    name="filesystem",
    description=(
        "A file system mounted at a directory: a block device, an image file (mounted "
        "through a loop device), LABEL=... or UUID=..., or a source such as tmpfs. Start "
        "never stacks a mount on another one; stop stops the processes keeping it busy "
        "(force_unmount) and never unmounts lazily."
    ),
    parameters=(
        ParameterSpec(
            name="device",
            required=True,
            description="Block device path, image file path, LABEL=..., UUID=..., "
            "PARTLABEL=..., PARTUUID=..., or the source text of a device-less file "
            "system (tmpfs, host:/export).",
        ),
        ParameterSpec(
            name="directory",
            required=True,
            unique=True,
            description="Mount point, an absolute path.",
        ),
        ParameterSpec(
            name="fstype",
            description="File system type (ext4, xfs, ...); unset or auto lets mount detect it.",
        ),
        ParameterSpec(
            name="options",
            default="",
            description="Mount options, comma-separated (noatime,ro); 'loop' is added for "
            "image files.",
        ),
        ParameterSpec(
            name="fsck",
            type="boolean",
            default=False,
            description="Check the file system (fsck -p; e2fsck -p for ext*) before "
            "mounting; exit codes 0 and 1 mount, 2 and above fail the start. Raise the "
            "start timeout for large file systems.",
        ),
        ParameterSpec(
            name="create_directory",
            type="boolean",
            default=True,
            description="Create the mount point (and its parents) if it is missing.",
        ),
        ParameterSpec(
            name="force_unmount",
            type="boolean",
            default=True,
            description="When the file system is busy at stop, stop the processes using "
            "it (SIGTERM, then SIGKILL after kill_grace) and unmount again.",
        ),
        ParameterSpec(
            name="kill_grace",
            type="duration",
            default="5s",
            description="How long processes using the file system get after SIGTERM.",
        ),
        ParameterSpec(
            name="probe",
            type="boolean",
            default=False,
            description="Monitor also writes, reads back and deletes .pyha-probe-<node> "
            "in the mount (only reads the directory if the mount is read-only).",
        ),
    ),
    operations=(
        OperationSpec(name="start", timeout=60.0),
        OperationSpec(name="stop", timeout=60.0),
        OperationSpec(name="monitor", timeout=20.0, interval=20.0),
    ),
)


@dataclass(frozen=True)
class Settings:
    """A resource's parameters, typed and defaulted."""

    device: str
    directory: str
    fstype: str | None
    options: str
    fsck: bool
    create_directory: bool
    force_unmount: bool
    kill_grace: float
    probe: bool

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Settings:
        """Settings from parameters that passed MetaData.check (so typed and defaulted)."""
        fstype = params.get("fstype")
        return cls(
            device=str(params["device"]),
            directory=os.path.normpath(str(params["directory"])),
            fstype=None if fstype in (None, "", "auto") else str(fstype),
            options=str(params.get("options") or ""),
            fsck=bool(params.get("fsck", False)),
            create_directory=bool(params.get("create_directory", True)),
            force_unmount=bool(params.get("force_unmount", True)),
            kill_grace=float(params.get("kill_grace", 5.0)),
            probe=bool(params.get("probe", False)),
        )


class FilesystemPlugin(Plugin):
    """Mounts one file system per resource.

    Invariant: start mounts only on a directory where nothing is mounted, and stop
    unmounts only the mount whose source is this resource's device (or one it cannot
    tell apart because the device is gone); nothing is ever unmounted lazily, so a
    stopped resource leaves no mount that still writes to the device.
    """

    def meta_data(self) -> MetaData:
        """Parameters and default timeouts."""
        return _META

    def validate(self, params: Mapping[str, Any]) -> list[str]:
        """Paths, file system type and options; the device itself is checked at start."""
        device = str(params.get("device", ""))
        problems = device_problems(device)
        problems += directory_problems(str(params.get("directory", "")))
        problems += fstype_problems(params.get("fstype") or None)
        problems += option_problems(str(params.get("options") or ""))
        if params.get("fsck") and not device.startswith(("/", *TAGS)):
            problems.append(f"fsck: {device!r} is no device or image file to check")
        return problems

    def start(self, ctx: OperationContext) -> int:
        """Mount it; success if it is mounted already, failure if something else is."""
        return _answer(ctx, _start)

    def stop(self, ctx: OperationContext) -> int:
        """Unmount it, stopping the processes that keep it busy if force_unmount is set."""
        return _answer(ctx, _stop)

    def monitor(self, ctx: OperationContext) -> int:
        """0 if mounted from the right source (and the probe passed), 7 if not mounted."""
        return _answer(ctx, _monitor)


def _answer(ctx: OperationContext, operation: Callable[[OperationContext, Settings], int]) -> int:
    """Run `operation`; an expected failure is logged with its reason and becomes its code."""
    try:
        return operation(ctx, Settings.from_params(ctx.params))
    except FilesystemError as exc:
        ctx.log.error("%s %s: %s", ctx.operation, ctx.resource, exc)
        return exc.code
    except OSError as exc:
        ctx.log.error("%s %s: %s", ctx.operation, ctx.resource, exc)
        return OcfCode.ERR_GENERIC


# --- start --------------------------------------------------------------------------


def _start(ctx: OperationContext, s: Settings) -> int:
    directory = _mount_point(ctx, s)
    source = resolve_source(ctx, s.device)
    current = mounted_at(read_mountinfo(), directory)
    if current is not None:
        if source.matches(current):
            ctx.log.info("%s: %s is already mounted at %s", ctx.resource, source, directory)
            return OcfCode.SUCCESS
        raise FilesystemError(
            f"{directory} already has {describe_mount(current)} mounted; "
            f"refusing to mount {source} over it"
        )
    if s.fsck:
        _fsck(ctx, s, source)
    _mount(ctx, s, source, directory)
    return OcfCode.SUCCESS


def _mount_point(ctx: OperationContext, s: Settings) -> str:
    """The mount point with symlinks resolved (as mountinfo shows it), created if allowed."""
    path = Path(s.directory)
    if not path.is_dir():
        if path.exists():
            raise FilesystemError(f"directory {path} exists but is not a directory", 5)
        if not s.create_directory:
            raise FilesystemError(
                f"directory {path} does not exist and create_directory is false", 5
            )
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
        ctx.log.info("%s: created mount point %s", ctx.resource, path)
    return os.path.realpath(path)


def _fsck(ctx: OperationContext, s: Settings, source: Source) -> None:
    target = source.mount_name
    if (s.fstype or "").startswith("ext"):
        argv = ["e2fsck", "-p", target]
    else:
        argv = ["fsck", "-T", "-p", *(["-t", s.fstype] if s.fstype else []), target]
    ctx.log.info("%s: checking %s (%s)", ctx.resource, target, " ".join(argv))
    result = _run(ctx, argv)
    if result.returncode in FSCK_FINE:
        if result.returncode == 1:
            ctx.log.warning(
                "%s: %s corrected errors on %s: %s", ctx.resource, argv[0], target, _output(result)
            )
        return
    raise FilesystemError(
        f"{argv[0]} of {target} {_how_it_ended(result)}; not mounting: {_output(result)}"
    )


def _mount(ctx: OperationContext, s: Settings, source: Source, directory: str) -> None:
    argv = ["mount", *(["-t", s.fstype] if s.fstype else [])]
    options = _mount_options(s.options, source)
    if options:
        argv += ["-o", options]
    argv += [source.mount_name, directory]
    result = _run(ctx, argv)
    if not result.ok:
        raise FilesystemError(
            f"mounting {source} at {directory}: mount {_how_it_ended(result)}: {_output(result)}"
        )
    entry = mounted_at(read_mountinfo(), directory)
    if entry is None or not source.matches(entry):
        shown = describe_mount(entry) if entry else "nothing"
        raise FilesystemError(
            f"mount reported success, but {directory} shows {shown} instead of {source}"
        )
    ctx.log.info("%s: mounted %s at %s", ctx.resource, describe_mount(entry), directory)


def _mount_options(options: str, source: Source) -> str:
    items = [item for item in options.split(",") if item]
    if source.kind == "image" and "loop" not in items:
        items.insert(0, "loop")
    return ",".join(items)


# --- stop ---------------------------------------------------------------------------


def _stop(ctx: OperationContext, s: Settings) -> int:
    if not Path(s.directory).is_dir():
        return OcfCode.SUCCESS
    directory = os.path.realpath(s.directory)
    entry = mounted_at(read_mountinfo(), directory)
    if entry is None:
        ctx.log.info("%s: nothing is mounted at %s", ctx.resource, directory)
        return OcfCode.SUCCESS
    try:
        source: Source | None = resolve_source(ctx, s.device)
    except FilesystemError as exc:
        # The device vanished under a live mount: that stale mount is still ours
        # (the directory belongs to this resource alone) and must go for a failover.
        ctx.log.warning("%s: %s; unmounting what is mounted at %s", ctx.resource, exc, directory)
        source = None
    if source is not None and not source.matches(entry):
        ctx.log.warning(
            "%s: %s has %s mounted, not %s; leaving it alone",
            ctx.resource,
            directory,
            describe_mount(entry),
            source,
        )
        return OcfCode.SUCCESS
    return _unmount(ctx, s, directory, entry)


def _unmount(ctx: OperationContext, s: Settings, directory: str, entry: MountEntry) -> int:
    """umount; while busy, stop its users (if allowed) and try again, up to the deadline."""
    for _ in range(MAX_UNMOUNT_ROUNDS):
        result = _run(ctx, ["umount", directory])
        if not _still_mounted(directory, entry):
            ctx.log.info("%s: unmounted %s", ctx.resource, directory)
            return OcfCode.SUCCESS
        users = users_of(entry.dev_t)
        if not users:
            raise FilesystemError(f"umount {directory} {_how_it_ended(result)}: {_output(result)}")
        _stop_users(ctx, s, directory, users)
    raise FilesystemError(
        f"{directory} is still busy after {MAX_UNMOUNT_ROUNDS} rounds of stopping its users"
    )


def _stop_users(ctx: OperationContext, s: Settings, directory: str, users: list[int]) -> None:
    shown = describe_pids(users)
    if not s.force_unmount:
        raise FilesystemError(
            f"{directory} is busy, used by {shown}; force_unmount is false, so they are "
            "left running and the file system stays mounted"
        )
    if ctx.expired():
        # Out of time: kill them anyway (no grace), so the scheduler's retry can unmount.
        stop_processes(ctx, users, 0.0)
        raise FilesystemError(f"{directory} is still busy at the deadline, used by {shown}; "
                              "they were sent SIGKILL")
    ctx.log.warning("%s: %s is busy; stopping %s", ctx.resource, directory, shown)
    left = stop_processes(ctx, users, s.kill_grace)
    if left:
        raise FilesystemError(
            f"{directory} is still busy at the deadline: {describe_pids(left)} survived SIGKILL"
        )


def _still_mounted(directory: str, entry: MountEntry) -> bool:
    return any(
        e.mount_id == entry.mount_id and e.mount_point == directory for e in read_mountinfo()
    )


# --- monitor ------------------------------------------------------------------------


def _monitor(ctx: OperationContext, s: Settings) -> int:
    entry = mounted_at(read_mountinfo(), os.path.realpath(s.directory))
    if entry is None:
        ctx.log.info("%s: %s is not mounted", ctx.resource, s.directory)
        return OcfCode.NOT_RUNNING
    try:
        source = resolve_source(ctx, s.device)
    except FilesystemError as exc:
        raise FilesystemError(f"{exc}, but {entry.mount_point} is still mounted from it") from None
    if not source.matches(entry):
        ctx.log.warning(
            "%s: %s has %s mounted, not %s",
            ctx.resource,
            entry.mount_point,
            describe_mount(entry),
            source,
        )
        return OcfCode.NOT_RUNNING
    if s.probe:
        _probe(ctx, entry)
    return OcfCode.SUCCESS


def _probe(ctx: OperationContext, entry: MountEntry) -> None:
    """Write, read back and delete a probe file; on a read-only mount only list the root."""
    directory = Path(entry.mount_point)
    try:
        if entry.read_only:
            os.listdir(directory)
            return
        path = directory / f".pyha-probe-{_SAFE_NODE.sub('_', ctx.node)}"
        written = f"pyha probe {ctx.resource} {secrets.token_hex(8)}\n".encode()
        _write_synced(path, written)
        read = path.read_bytes()
        path.unlink()
    except OSError as exc:
        raise FilesystemError(f"read/write probe failed: {exc}") from None
    if read != written:
        raise FilesystemError(f"read/write probe failed: {path} read back {read[:80]!r}")


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


# --- commands -----------------------------------------------------------------------


def _run(ctx: OperationContext, argv: list[str]) -> CommandResult:
    return run_command(argv, deadline=ctx.deadline, clock=ctx.clock, log=ctx.log)


def _how_it_ended(result: CommandResult) -> str:
    if result.timed_out:
        return "timed out"
    if result.returncode is None:
        return "could not run"
    return f"exited {result.returncode}"


def _output(result: CommandResult) -> str:
    """The command's output, stderr first, trimmed to a readable size."""
    text = " ".join(part.strip() for part in (result.stderr, result.stdout) if part.strip())
    text = text or result.warning or "no output"
    return text if len(text) <= _OUTPUT_LIMIT else text[:_OUTPUT_LIMIT] + " ..."
