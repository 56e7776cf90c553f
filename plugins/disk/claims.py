"""Claim files: an exclusive flock on a file under the state dir, recording who holds it."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyha.errors import PyhaError

__all__ = ["Claim", "ClaimRefused", "Claims", "Holder", "lock_holders"]

SUFFIX = ".claim"
_ATTEMPTS = 5
"""Tries to lock a claim file that a releasing holder keeps deleting under us."""


class ClaimRefused(PyhaError):
    """Someone else holds the claim; the message names them."""


@dataclass(frozen=True)
class Holder:
    """Who holds a claim, as its claim file records it."""

    node: str
    resource: str
    pid: int
    since: float
    """Wall-clock seconds when the claim was taken."""
    target: str
    """The device path or volume group claimed."""
    identity: dict[str, str] = field(default_factory=dict)
    """What the target was when claimed (device number, disk sequence number)."""

    def is_for(self, node: str, resource: str) -> bool:
        """True if this claim belongs to `resource` on `node`."""
        return self.node == node and self.resource == resource

    def describe(self) -> str:
        """'resource db on node n1 (pid 4242) since 2024-05-01 12:00:00'."""
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"resource {self.resource} on node {self.node} (pid {self.pid}) since {when}"

    def to_json(self) -> bytes:
        """The claim file's content."""
        return (json.dumps(asdict(self), sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> Holder | None:
        """The holder a claim file records, or None if it records nothing readable."""
        try:
            record: Any = json.loads(data)
            return cls(
                node=str(record["node"]),
                resource=str(record["resource"]),
                pid=int(record["pid"]),
                since=float(record["since"]),
                target=str(record["target"]),
                identity={str(k): str(v) for k, v in dict(record.get("identity", {})).items()},
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


@dataclass
class Claim:
    """A claim this process holds: the claim file, open and exclusively locked.

    Invariant: while the Claim is in Claims, `fd` is open, holds LOCK_EX on the
    file at `path`, and the file records `holder`.
    """

    path: Path
    fd: int
    holder: Holder
    extra_fds: list[int] = field(default_factory=list)
    """Descriptors kept open while the claim is held (an O_EXCL open of the device)."""


class Claims:
    """The claims one plugin instance holds, keyed by claim file.

    Invariant: a claim file is locked by at most one Claim of this process (flock
    locks belong to an open file description, so a second open would contend with
    the first even inside one process, which is what refuses a second resource).
    """

    def __init__(self) -> None:
        self._held: dict[Path, Claim] = {}
        self._lock = threading.Lock()

    def acquire(self, path: Path, holder: Holder) -> tuple[Claim, Holder | None]:
        """Lock `path` for `holder`: (the claim, the stale holder it took over, if any).

        ClaimRefused names the current holder when another one keeps it locked.
        """
        with self._lock:
            held = self._held.get(path)
            if held is not None:
                if held.holder.is_for(holder.node, holder.resource):
                    return held, None
                raise ClaimRefused(f"{holder.target} is claimed by {held.holder.describe()}")
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = _lock(path, holder.target)
            stale = _read_holder(fd)
            _write(fd, holder)
            claim = Claim(path, fd, holder)
            self._held[path] = claim
            return claim, stale

    def find(self, directory: Path, node: str, resource: str) -> Claim | None:
        """The claim of `resource` on `node` in `directory`, adopting one left by a dead pyha.

        A claim file that records this resource but is unlocked was left by an
        earlier pyha process (a restart); it is locked again and returned.
        """
        with self._lock:
            for claim in list(self._held.values()):
                if claim.path.parent == directory and claim.holder.is_for(node, resource):
                    if _same_file(claim.fd, claim.path):
                        return claim
                    self._drop(claim)  # someone deleted the file behind our back
            for path in sorted(directory.glob(f"*{SUFFIX}")):
                adopted = self._adopt(path, node, resource)
                if adopted is not None:
                    return adopted
        return None

    def _adopt(self, path: Path, node: str, resource: str) -> Claim | None:
        recorded = _peek(path)
        if recorded is None or not recorded.is_for(node, resource) or path in self._held:
            return None
        try:
            fd = _lock(path, recorded.target)
        except (ClaimRefused, OSError):
            return None  # another live process holds it; it is not ours to adopt
        holder = _read_holder(fd)
        if holder is None or not holder.is_for(node, resource):
            _close(fd)
            return None
        claim = Claim(path, fd, holder)
        self._held[path] = claim
        return claim

    def release(self, claim: Claim) -> None:
        """Delete the claim file and unlock it (deleting first, so no one locks a dead file)."""
        with self._lock:
            if _same_file(claim.fd, claim.path):
                with contextlib.suppress(FileNotFoundError):
                    claim.path.unlink()
            self._drop(claim)

    def _drop(self, claim: Claim) -> None:
        self._held.pop(claim.path, None)
        for fd in claim.extra_fds:
            _close(fd)
        claim.extra_fds.clear()
        _close(claim.fd)


def _lock(path: Path, target: str) -> int:
    """An open descriptor holding LOCK_EX on the file now at `path`; ClaimRefused if held."""
    for _ in range(_ATTEMPTS):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            _close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise ClaimRefused(_refusal(path, target)) from None
            raise
        if _same_file(fd, path):
            return fd
        _close(fd)  # the holder released (deleted) it while we waited; try the new file
    raise ClaimRefused(f"{target}: claim file {path} keeps being replaced; try again")


def _refusal(path: Path, target: str) -> str:
    recorded = _peek(path)
    pids = lock_holders(path)
    who = recorded.describe() if recorded else "a process that recorded nothing"
    if pids and (recorded is None or recorded.pid not in pids):
        who += "; locked by " + ", ".join(_process_name(pid) for pid in pids)
    return f"{target} is claimed by {who} (claim file {path})"


def _same_file(fd: int, path: Path) -> bool:
    try:
        mine, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def _read_holder(fd: int) -> Holder | None:
    return Holder.from_json(os.pread(fd, 64 * 1024, 0))


def _peek(path: Path) -> Holder | None:
    try:
        return Holder.from_json(path.read_bytes())
    except OSError:
        return None


def _write(fd: int, holder: Holder) -> None:
    data = holder.to_json()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def lock_holders(path: Path, locks: Path = Path("/proc/locks")) -> list[int]:
    """Pids holding a lock on the file at `path`, as /proc/locks lists them."""
    try:
        info = os.stat(path)
        text = locks.read_text(encoding="utf-8")
    except OSError:
        return []
    wanted = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    pids = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1] != "->" and fields[5] == wanted:
            with contextlib.suppress(ValueError):
                pids.append(int(fields[4]))
    return sorted(set(pids) - {-1})


def _process_name(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return f"pid {pid}"
    command = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return f"pid {pid} ({command[:120]})" if command else f"pid {pid}"
