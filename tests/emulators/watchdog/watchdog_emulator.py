"""EMULATOR of a Linux watchdog device, for tests only: not a watchdog, never /dev/watchdog.

The test machines have no /dev/watchdog and no softdog, and a test must never open a
real watchdog (a watchdog nobody feeds resets the machine). This emulator stands in
for one node's watchdog: it serves a FIFO that the node's cluster server opens as its
`fence.device`, and follows the Linux watchdog API (Documentation/watchdog/
watchdog-api.rst) as far as a FIFO allows:

- opening the device arms it: the countdown starts (the emulator notices the writer
  within one poll, POLL seconds);
- every write feeds it: the countdown restarts;
- the magic close: when the newest data read before the writer closed holds a 'V',
  closing disarms it; a close without it leaves it armed ("watchdog did not stop!"),
  as after a crash of the server;
- no feed for `--timeout` seconds while armed "resets the machine": the emulator kills
  the node's whole process tree through its keeper file (pyha.fencing.tree.TreeFence),
  logs RESET, and waits disarmed for the next open (the machine's reboot).

What a FIFO cannot do: the WDIOC_* ioctls (the server gets ENOTTY, so the device keeps
its own timeout: give the emulator no longer a timeout than the node's fence.timeout),
refusing a second open (EBUSY), and telling writes apart when the emulator reads
several at once. Every event goes, one line each, to `--log`: "<time.time()> <event>".

    python watchdog_emulator.py --device FIFO --timeout 3 --node n1 --keeper n1.keeper \\
        --log n1.watchdog.log
"""

from __future__ import annotations

import argparse
import os
import signal
import stat
import sys
import time
from pathlib import Path

from pyha.fencing.tree import TreeFence

POLL = 0.05


class Emulator:
    """One emulated watchdog: armed while opened or after a close without 'V'."""

    def __init__(self, device: Path, timeout: float, node: str, keeper: Path,
                 log: Path) -> None:
        self.device, self.timeout, self.node, self.keeper = device, timeout, node, keeper
        self.log_path = log
        self.armed = self.writer = self.expect_close = False
        self.last_feed = 0.0
        self.feeds = 0
        if not device.exists():
            os.mkfifo(device, 0o600)
        if not stat.S_ISFIFO(device.stat().st_mode):
            raise SystemExit(f"{device} is not a FIFO: the emulator serves FIFOs only")
        # Open for reading first, so that the server's non-blocking open for writing works.
        self.fd = os.open(device, os.O_RDONLY | os.O_NONBLOCK)

    def log(self, event: str) -> None:
        with self.log_path.open("a") as out:
            out.write(f"{time.time():.3f} {event}\n")

    def poll(self) -> None:
        """Read what the server wrote; arm, feed, disarm or reset as the API says."""
        now = time.monotonic()
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:  # a writer holds the device open, nothing written yet
            self._opened(now)
        else:
            if data:
                self._opened(now)
                self.last_feed, self.feeds = now, self.feeds + 1
                self.expect_close = b"V" in data
            elif self.writer:  # EOF: the writer closed the device
                self._closed()
        if self.armed and now - self.last_feed > self.timeout:
            self._reset(now)

    def _opened(self, now: float) -> None:
        if not self.writer:
            self.writer = True
            if not self.armed:
                self.armed, self.last_feed = True, now
                self.log(f"armed (opened; timeout {self.timeout:g}s)")

    def _closed(self) -> None:
        self.writer = False
        if self.expect_close:
            self.armed = self.expect_close = False
            self.log(f"disarmed (magic close after {self.feeds} feeds)")
        else:
            self.log("closed without the magic character: watchdog did not stop!")

    def _reset(self, now: float) -> None:
        self.log(f"RESET: not fed for {now - self.last_feed:.2f}s (timeout "
                 f"{self.timeout:g}s): killing {self.node}'s process tree")
        result = TreeFence({self.node: self.keeper}).fence(self.node, time.monotonic() + 10)
        self.log(f"reset done: {result.message}")
        self.armed = self.expect_close = False
        self.feeds = 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="EMULATOR of a Linux watchdog (tests only)")
    parser.add_argument("--device", type=Path, required=True, help="the FIFO to serve")
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--keeper", type=Path, required=True,
                        help="the node's keeper file (pyha.fencing.tree)")
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args(argv)
    emulator = Emulator(args.device, args.timeout, args.node, args.keeper, args.log)
    stopping = []
    signal.signal(signal.SIGTERM, lambda _s, _f: stopping.append(True))
    emulator.log("ready")
    while not stopping:
        emulator.poll()
        time.sleep(POLL)
    emulator.log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
