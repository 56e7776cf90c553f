"""Watchdog self-fencing (sbd-style): a node's own watchdog, and when a lost node is surely reset.

WatchdogPolicy and `why_not_feed` are pure. `Watchdog` is the node's side: it opens
(arms), feeds and disarms the device named in the node's `fence`. `WatchdogFence` is
the coordinator's side: a fence device that confirms a watchdog node fenced once
`WatchdogPolicy.safe_after` has passed on the coordinator's clock. `watchdogs()` and
`softdog_available()` only look at /sys and /dev entries: they never open a watchdog
device, since opening one arms it and a machine whose watchdog is not fed is reset.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pyha.clock import Clock, MonotonicClock
from pyha.fencing.device import FenceResult, NodeState

__all__ = ["Watchdog", "WatchdogFence", "WatchdogInfo", "WatchdogPolicy", "softdog_available",
           "watchdogs", "why_not_feed"]

_LOG = logging.getLogger("pyha.fencing")
WDIOC_SETTIMEOUT = 0xC0045706
"""_IOWR('W', 6, int) of linux/watchdog.h: set the timeout, read back what was set."""
WDIOC_GETTIMEOUT = 0x80045707
"""_IOR('W', 7, int): the timeout in force."""
_UNSUPPORTED = (errno.ENOTTY, errno.EOPNOTSUPP, errno.EINVAL)
"""What a device that cannot set (or tell) its timeout answers to the ioctl."""


@dataclass(frozen=True)
class WatchdogPolicy:
    """When a lost node that runs an armed watchdog has surely been reset.

    The node's side (the feeding rule, `why_not_feed`): its cluster server arms the
    watchdog before it starts any resource, and only while it may feed it (arming
    starts the timer like a feed); it feeds it only from its main loop, and only while
    it is quorate and holds its membership lease: `lease` after the send time of its
    newest heartbeat that the coordinator confirmed hearing (the coordinator itself:
    while its own lease lets it act). A node that is paused, hung, partitioned or cut
    off stops feeding by then at the latest; the watchdog resets it at most
    `watchdog_timeout` after the last feed. A crash closes the device without the
    magic character, which leaves it armed; only a clean stop, once the node's
    resources are stopped, disarms it (with the driver's `nowayout`, not even that).

    The coordinator's side: it heard the node last at `last_heard` (its own clock).
    Any heartbeat it confirmed was sent before it arrived, so before `last_heard`:
    the node's lease ended by last_heard + lease, its last feed came before that, and
    the reset by last_heard + lease + watchdog_timeout. The two clocks may run at
    rates that differ by up to `drift` (relative), and the reset itself takes up to
    `margin` seconds (softdog's timer has one-second ticks), hence

        safe_after = last_heard + (lease + watchdog_timeout) * (1 + drift) + margin

    A coordinator that took office after `last_heard` uses its start of office
    instead: heartbeats that an earlier coordinator confirmed were confirmed while
    that one's lease ran, so before this one's office began.

    Invariant: safe_after is never earlier than the last moment the node could still
    run anything, as long as the node keeps the feeding rule and the clocks' rates
    differ by at most `drift`.
    """

    drift: float = 0.01
    margin: float = 1.0

    def __post_init__(self) -> None:
        if self.drift < 0 or self.margin < 0:
            raise ValueError("drift and margin must not be negative")

    def safe_after(self, last_heard: float, watchdog_timeout: float, lease: float) -> float:
        """The time (coordinator's clock) after which the node has surely been reset."""
        if watchdog_timeout <= 0:
            raise ValueError("watchdog_timeout must be positive")
        if lease < 0:
            raise ValueError("lease must not be negative")
        return last_heard + (lease + watchdog_timeout) * (1 + self.drift) + self.margin

    def verdict(self, node: str, now: float, last_heard: float, watchdog_timeout: float,
                lease: float) -> FenceResult:
        """A fence result for `node` at `now`: ok once safe_after has passed."""
        at = self.safe_after(last_heard, watchdog_timeout, lease)
        waited = max(0.0, now - last_heard)
        if now >= at:
            return FenceResult(True, "watchdog", f"fence {node}: its watchdog has reset it "
                               f"(last heard {waited:.1f}s ago; lease {lease:g}s + watchdog "
                               f"{watchdog_timeout:g}s have passed)", waited)
        return FenceResult(False, "watchdog", f"fence {node}: waiting {at - now:.1f}s more "
                           f"for its watchdog (lease {lease:g}s + watchdog "
                           f"{watchdog_timeout:g}s after last heard)", waited)


def why_not_feed(*, quorate: bool, coordinating: bool, confirmed_sent: float | None,
                 lease: float, now: float) -> str:
    """Why the node may not feed (or arm) its watchdog at `now`, or '' when it may.

    `confirmed_sent` is the send time (this node's clock) of its newest heartbeat that
    the coordinator confirmed hearing; `coordinating` whether this node is the
    coordinator and its lease lets it act.
    """
    if not quorate:
        return "no quorum"
    if coordinating:
        return ""
    if confirmed_sent is None:
        return "no coordinator has confirmed hearing this node yet"
    if now >= confirmed_sent + lease:
        return (f"membership lease ran out {now - confirmed_sent - lease:.1f}s ago (the "
                f"coordinator last confirmed a heartbeat sent {now - confirmed_sent:.1f}s ago)")
    return ""


class Watchdog:
    """This node's watchdog device (Linux watchdog API): arm, feed, disarm.

    Invariant: once armed, the device is disarmed only by `disarm` (the magic close:
    'V', then close); the descriptor is close-on-exec, so no resource inherits it and
    a crash of the server closes it without the magic character, leaving it armed.
    """

    def __init__(self, device: Path, timeout: float, *,
                 log: logging.Logger | None = None) -> None:
        self.device, self.timeout = device, int(timeout)
        self._fd: int | None = None
        self._log = log or _LOG
        self.closed = False
        """True once disarmed: the node stopped cleanly and may start nothing more."""
        self._feed_failed = False

    @property
    def armed(self) -> bool:
        """True while the device is open (and so counting down)."""
        return self._fd is not None

    def arm(self) -> None:
        """Open the device (which starts it) and set its timeout; OSError if it cannot be
        opened, ValueError (device disarmed again) if it keeps a longer timeout."""
        if self._fd is not None:
            return
        # O_NONBLOCK: opening never hangs (a FIFO without a reader fails at once).
        fd = os.open(self.device, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self._fd = fd
        try:
            note = self._set_timeout(fd)
        except ValueError:
            self.disarm()
            raise
        self._log.warning("watchdog %s armed: it resets this machine unless fed every %ds "
                          "(%s)", self.device, self.timeout, note)

    def _set_timeout(self, fd: int) -> str:
        """Set the configured timeout through WDIOC_SETTIMEOUT; a device that cannot keeps
        its own, which must then be no longer (the coordinator waits for the configured one)."""
        try:
            answer = fcntl.ioctl(fd, WDIOC_SETTIMEOUT, struct.pack("i", self.timeout))
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise
            own = self._own_timeout(fd)
            if own is not None and own > self.timeout:
                raise ValueError(f"{self.device} cannot set its timeout and keeps {own}s, "
                                 f"longer than fence.timeout ({self.timeout}s)") from None
            name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
            kept = f"{own}s" if own is not None else (
                f"not known here; it must be no longer than fence.timeout, {self.timeout}s")
            return f"the device cannot set a timeout ({name}) and keeps its own: {kept}"
        (took,) = struct.unpack("i", answer)
        if took > self.timeout:
            raise ValueError(f"{self.device} took a timeout of {took}s, longer than "
                             f"fence.timeout ({self.timeout}s)")
        return f"timeout set to {took}s"

    def _own_timeout(self, fd: int) -> int | None:
        try:
            answer = fcntl.ioctl(fd, WDIOC_GETTIMEOUT, struct.pack("i", 0))
        except OSError:
            return None
        value: int = struct.unpack("i", answer)[0]
        return value

    def feed(self) -> None:
        """One write: the device restarts its countdown. A failed write is logged once."""
        if self._fd is None:
            return
        try:
            os.write(self._fd, b"\0")
        except OSError as exc:
            if not self._feed_failed:
                self._log.error("watchdog %s: feeding failed: %s", self.device, exc)
            self._feed_failed = True
            return
        self._feed_failed = False

    def disarm(self) -> None:
        """The magic close: write 'V', then close; the driver stops the countdown (unless
        it was loaded with nowayout). Only for a clean stop, once nothing runs here."""
        self.closed = True
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.write(fd, b"V")
        except OSError as exc:
            self._log.error("watchdog %s: magic close failed (it stays armed): %s",
                            self.device, exc)
        finally:
            os.close(fd)
        self._log.info("watchdog %s disarmed (magic close)", self.device)


class WatchdogFence:
    """The coordinator's fence device for nodes that self-fence through their watchdog.

    It never touches the node: `fence` answers at once, ok only when
    `WatchdogPolicy.safe_after(heard(node), timeout, lease)` has passed on this clock,
    and otherwise not ok with how long is left, so the coordinator's next cycle asks
    again (heartbeats and the coordinator's own watchdog are never held up by a wait).
    `heard(node)` is when this coordinator last heard the node, or its start of office
    if later (see WatchdogPolicy).

    Invariant: ok only once the node's watchdog has surely reset it, given the node
    keeps the feeding rule.
    """

    method = "watchdog"

    def __init__(self, timeouts: Mapping[str, float], lease: float,
                 heard: Callable[[str], float], *, clock: Clock | None = None,
                 policy: WatchdogPolicy | None = None,
                 log: logging.Logger | None = None) -> None:
        self.timeouts, self.lease, self.heard = dict(timeouts), lease, heard
        self.policy = policy or WatchdogPolicy()
        self._clock = clock or MonotonicClock()
        self._log = log or _LOG

    def fence(self, node: str, deadline: float) -> FenceResult:
        """Whether `node`'s watchdog has surely reset it by now; never waits."""
        result = self.policy.verdict(node, self._clock.now(), self.heard(node),
                                     self.timeouts[node], self.lease)
        if result.ok:
            self._log.warning("%s", result.message)
        else:
            self._log.info("%s", result.message)
        return result

    def status(self, node: str, deadline: float) -> NodeState:
        """OFF once safe_after has passed, else UNKNOWN (a watchdog tells nothing)."""
        at = self.policy.safe_after(self.heard(node), self.timeouts[node], self.lease)
        return NodeState.OFF if self._clock.now() >= at else NodeState.UNKNOWN


@dataclass(frozen=True)
class WatchdogInfo:
    """A watchdog device as sysfs describes it (read without opening the device)."""

    device: Path
    identity: str
    timeout: int | None
    state: str


def watchdogs(sysfs: Path = Path("/sys/class/watchdog"),
              dev: Path = Path("/dev")) -> list[WatchdogInfo]:
    """The machine's watchdog devices, read from sysfs; the devices are never opened."""
    if not sysfs.is_dir():
        return []
    found = []
    for entry in sorted(sysfs.iterdir()):
        timeout = _read(entry / "timeout")
        found.append(WatchdogInfo(dev / entry.name, _read(entry / "identity"),
                                  int(timeout) if timeout.isdigit() else None,
                                  _read(entry / "state") or "unknown"))
    return found


def softdog_available(modules: Path = Path("/lib/modules")) -> bool:
    """True if the softdog driver is loaded or can be loaded for the running kernel."""
    if Path("/sys/module/softdog").exists():
        return True
    try:
        listing = (modules / os.uname().release / "modules.dep").read_text()
    except OSError:
        return False
    return "/softdog.ko" in listing


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
