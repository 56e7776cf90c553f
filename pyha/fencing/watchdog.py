"""Watchdog self-fencing (sbd-style): when a lost node with an armed watchdog is surely reset.

WatchdogPolicy is pure. The helpers below only look at /sys and /dev entries: they
never open a watchdog device, since opening one arms it and a machine whose watchdog
is not fed is reset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pyha.fencing.device import FenceResult

__all__ = ["WatchdogInfo", "WatchdogPolicy", "softdog_available", "watchdogs"]


@dataclass(frozen=True)
class WatchdogPolicy:
    """When a lost node that runs an armed watchdog has surely been reset.

    The node's side (the feeding rule): its cluster server arms the watchdog (with
    `nowayout`, so a crash or a close cannot disarm it) before it starts any resource,
    and feeds it only from its main loop, and only while it is quorate and holds its
    membership lease: `lease` after the send time of its newest heartbeat that the
    coordinator confirmed hearing. A node that is paused, hung, partitioned or cut
    off stops feeding by then at the latest; the watchdog resets it at most
    `watchdog_timeout` after the last feed.

    The coordinator's side: it heard the node last at `last_heard` (its own clock).
    Any heartbeat it confirmed was sent before it arrived, so before `last_heard`:
    the node's lease ended by last_heard + lease, its last feed came before that, and
    the reset by last_heard + lease + watchdog_timeout. The two clocks may run at
    rates that differ by up to `drift` (relative), and the reset itself takes up to
    `margin` seconds (softdog's timer has one-second ticks), hence

        safe_after = last_heard + (lease + watchdog_timeout) * (1 + drift) + margin

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
