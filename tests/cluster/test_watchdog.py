"""Three real cluster servers that self-fence through their watchdog (sbd-style).

Each node's watchdog is the EMULATOR in tests/emulators/watchdog (a FIFO served by one
emulator process per node; no /dev/watchdog and no softdog here, and a test never
opens a real watchdog): when the node's server stops feeding it, the emulator "resets
the machine" by killing the node's whole process tree through its keeper.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cluster.harness import LocalCluster, wait_for

pytestmark = pytest.mark.slow
EMULATOR = Path(__file__).parents[1] / "emulators" / "watchdog" / "watchdog_emulator.py"
TIMEOUT = 3
"""The watchdog timeout, in the nodes' fence and in the emulators."""


@dataclass
class WatchdogCluster(LocalCluster):
    """A LocalCluster whose nodes run under keepers (process trees) and are fenced by
    their emulated watchdogs."""

    fence: str = "process-tree"
    emulators: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def device(self, node: str) -> Path:
        return self.root / f"{node}.watchdog"

    def events(self, node: str) -> str:
        """What node's emulated watchdog logged so far."""
        path = self.root / f"{node}.watchdog.log"
        return path.read_text() if path.exists() else ""

    def _fence_line(self, node: str) -> str:
        return (f'fence = {{ kind = "watchdog", device = "{self.device(node)}", '
                f'timeout = "{TIMEOUT}s" }}')

    def start_emulator(self, node: str) -> None:
        log = self.root / f"{node}.watchdog.log"
        self.emulators[node] = subprocess.Popen(
            [sys.executable, str(EMULATOR), "--device", str(self.device(node)),
             "--timeout", str(TIMEOUT), "--node", node, "--keeper", str(self.keeper(node)),
             "--log", str(log)])
        wait_for(lambda: "ready" in self.events(node), 20, f"{node}'s watchdog emulator")

    def start_all(self) -> None:
        """Each node's watchdog emulator first, then the nodes."""
        for node in self.nodes:
            self.start_emulator(node)
        super().start_all()

    def close(self) -> None:
        try:
            super().close()
        finally:
            for proc in self.emulators.values():
                proc.terminate()
            for proc in self.emulators.values():
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[WatchdogCluster]:
    yield from WatchdogCluster(tmp_path).serving()


def started(c: WatchdogCluster) -> str:
    wait_for(lambda: len(c.running_on()) == 1, 60, "the service starts somewhere", c)
    wait_for(lambda: all("armed (opened" in c.events(n) for n in c.nodes), 20,
             "every node armed its watchdog", c)
    return c.running_on()[0]


def _times(text: str, word: str, column: int = 0) -> list[float]:
    """The time in `column` of each line that holds `word`."""
    return [float(line.split()[column]) for line in text.splitlines() if word in line]


def test_a_paused_node_is_reset_by_its_watchdog_before_its_service_moves(
        cluster: WatchdogCluster) -> None:
    first = started(cluster)
    # A FIFO answers the timeout ioctl with ENOTTY: the log says the device keeps its own.
    assert "cannot set a timeout (ENOTTY) and keeps its own" in cluster.log(first)
    cluster.signal(first, signal.SIGSTOP)  # it stops feeding; its service runs on
    wait_for(lambda: "RESET" in cluster.events(first), 30, f"{first}'s watchdog resets it",
             cluster)
    wait_for(lambda: any(n != first for n in cluster.running_on()), 60,
             "the service runs on another node", cluster)
    wait_for(lambda: cluster.starts() == 2, 10, "the new copy records its start", cluster)
    assert cluster.violations() == []
    (reset,) = _times(cluster.events(first), "RESET")
    second_start = _times(cluster.record.read_text(), "start", 1)[1]
    assert reset < second_start, "the service started elsewhere before the reset"
    logs = "".join(cluster.log(n) for n in cluster.nodes if n != first)
    assert f"fence {first}: its watchdog has reset it" in logs
    assert f"fence {first}: waiting" in logs


def test_a_clean_stop_disarms_the_watchdog(cluster: WatchdogCluster) -> None:
    first = started(cluster)
    other = next(n for n in cluster.nodes if n != first)
    cluster.procs[other].send_signal(signal.SIGTERM)
    cluster.procs[other].wait(timeout=90)
    wait_for(lambda: "disarmed (magic close" in cluster.events(other), 10,
             f"{other}'s watchdog is disarmed", cluster)
    time.sleep(TIMEOUT + 1)  # a watchdog left armed would have reset it by now
    assert "RESET" not in cluster.events(other)
    assert cluster.running_on() == [first]
    assert cluster.starts() == 1
