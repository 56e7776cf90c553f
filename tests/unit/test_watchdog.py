"""Watchdog self-fencing: the feeding rule, the coordinator's wait, the device calls.

The device tests use a FIFO served in-process by the watchdog EMULATOR of
tests/emulators/watchdog (never a real /dev/watchdog: opening one arms it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyha.cluster.fence import fence_devices
from pyha.cluster.node import ClusterNode
from pyha.fencing.device import NodeState
from pyha.fencing.watchdog import Watchdog, WatchdogFence, WatchdogPolicy, watchdogs, why_not_feed
from pyha.membership.heartbeat import Heartbeat
from pyha.model.config import ClusterConfig, FenceConfig
from pyha.ports import free_port
from pyha.resources.registry import Registry
from pyha.testing import FakeClock
from tests.emulators.watchdog.watchdog_emulator import Emulator

# --- the feeding rule -------------------------------------------------------------------


@pytest.mark.parametrize(("quorate", "coordinating", "confirmed", "now", "refused"), [
    (True, True, None, 100.0, ""),
    (True, False, 99.5, 100.0, ""),
    (True, False, 99.0, 100.0, "membership lease ran out"),
    (True, False, None, 100.0, "no coordinator has confirmed"),
    (False, True, 99.9, 100.0, "no quorum"),
    (False, False, 99.9, 100.0, "no quorum"),
])
def test_a_node_feeds_only_while_quorate_and_holding_its_lease(
        quorate: bool, coordinating: bool, confirmed: float | None, now: float,
        refused: str) -> None:
    why = why_not_feed(quorate=quorate, coordinating=coordinating, confirmed_sent=confirmed,
                       lease=1.0, now=now)
    assert (why.startswith(refused) if refused else why == "")


# --- the configuration ------------------------------------------------------------------


def test_a_watchdog_fence_has_defaults_and_named_errors() -> None:
    spec = FenceConfig(kind="watchdog")
    assert (spec.device, spec.timeout) == ("/dev/watchdog", 10.0)
    for bad, field in ((dict(timeout="1.5s"), "timeout: 1.5s"), (dict(timeout="0s"), "timeout"),
                       (dict(device="watchdog0"), "device: 'watchdog0'")):
        with pytest.raises(ValueError, match=field):
            FenceConfig(kind="watchdog", **bad)


# --- the coordinator's wait -------------------------------------------------------------


def test_the_watchdog_fence_confirms_only_after_safe_after() -> None:
    clock = FakeClock(start=100.0)
    fence = WatchdogFence({"n2": 3.0}, 1.0, lambda _n: 100.0, clock=clock,
                          policy=WatchdogPolicy(drift=0.0, margin=1.0))
    first = fence.fence("n2", deadline=200.0)
    assert not first.ok and first.method == "watchdog"
    assert "waiting 5.0s more" in first.message
    assert fence.status("n2", 200.0) is NodeState.UNKNOWN
    clock.advance(4.9)
    assert not fence.fence("n2", 200.0).ok
    clock.advance(0.1)
    done = fence.fence("n2", 200.0)
    assert done.ok and "its watchdog has reset it" in done.message
    assert fence.status("n2", 200.0) is NodeState.OFF


def three(**fence: Any) -> ClusterConfig:
    nodes = [{"name": f"n{i}", "addresses": [f"127.0.0.1:{free_port()}"],
              "rpc": f"127.0.0.1:{free_port()}", "fence": {"kind": "watchdog", **fence}}
             for i in (1, 2, 3)]
    return ClusterConfig.from_mapping({"cluster": {"name": "c"}, "nodes": nodes})


def test_fence_devices_give_watchdog_nodes_the_coordinators_wait() -> None:
    config = three(timeout="4s")
    devices = fence_devices(config, lambda _n: 0.0, FakeClock())
    assert {type(d) for d in devices.values()} == {WatchdogFence}
    assert fence_devices(config) == {}  # nothing could confirm them without `heard`


Make = Callable[..., ClusterNode]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Make]:
    """Builds ClusterNodes on a fake clock (never run); closes their sockets after."""
    made: list[ClusterNode] = []

    def build(name: str, clock: FakeClock, **fence: Any) -> ClusterNode:
        node = ClusterNode(three(**fence), Registry(), node=name, key=b"k" * 32,
                           state_dir=tmp_path / name, clock=clock)
        made.append(node)
        return node

    yield build
    for node in made:
        node.endpoint.close()
        node.rpc.close()
        for client in node.peers.values():
            client.close()


def test_the_coordinator_waits_out_a_lost_nodes_watchdog(make: Make) -> None:
    clock = FakeClock(start=1000.0)
    node = make("n1", clock, timeout="3s")
    node._heard(Heartbeat("n2", 1, 1, 0, 0), clock.now())  # last heard at 1000
    clock.advance(2.0)
    assert not node._fence("n2", "n2 is down")  # safe at 1000 + 4 * 1.01 + 1 = 1005.04
    clock.advance(3.0)
    assert not node._fence("n2", "n2 is down")
    clock.advance(0.1)
    assert node._fence("n2", "n2 is down")
    assert "n2" in node._fenced


def test_a_coordinator_in_office_after_last_heard_waits_from_its_office(
        make: Make) -> None:
    clock = FakeClock(start=1000.0)
    node = make("n1", clock, timeout="3s")
    node._heard(Heartbeat("n2", 1, 1, 0, 0), clock.now())
    clock.advance(10.0)
    node._office = clock.now()  # elected long after n2 was last heard here
    assert not node._fence("n2", "n2 is down")
    clock.advance(5.1)
    assert node._fence("n2", "n2 is down")


# --- the node's side --------------------------------------------------------------------


class RecordingWatchdog(Watchdog):
    """A Watchdog that records what the node asked of it instead of opening a device."""

    def __init__(self) -> None:
        super().__init__(Path("/nonexistent/watchdog"), 3)
        self.calls: list[str] = []
        self._open = False

    @property
    def armed(self) -> bool:
        return self._open

    def arm(self) -> None:
        self.calls.append("arm")
        self._open = True

    def feed(self) -> None:
        self.calls.append("feed")


def test_a_follower_feeds_until_lease_after_its_confirmed_heartbeat(make: Make) -> None:
    clock = FakeClock(start=1000.0)
    node = make("n2", clock, timeout="3s")
    dog = RecordingWatchdog()
    node.watchdog = dog
    node._tend_watchdog(clock.now())
    assert dog.calls == []  # no coordinator confirmed anything: not even armed
    mine = node._heartbeat()  # sent at 1000
    clock.advance(0.05)
    confirm = {"coordinator": clock.now(), "heard": {"n2": [node.incarnation, mine.sequence]}}
    node._heard(Heartbeat("n1", 1, 1, 1, 0, payload=confirm), clock.now())
    assert node._confirmed == 1000.0
    node._tend_watchdog(clock.now())
    clock.advance(0.5)
    node._tend_watchdog(clock.now())
    assert dog.calls == ["arm", "feed"]
    clock.advance(0.5)  # 1000 + lease (1s): the lease ran out
    node._tend_watchdog(clock.now())
    assert dog.calls == ["arm", "feed"]
    assert "lease ran out" in node._starving


def test_a_confirmation_of_another_incarnation_counts_for_nothing(make: Make) -> None:
    clock = FakeClock(start=1000.0)
    node = make("n2", clock)
    mine = node._heartbeat()
    stale = {"coordinator": clock.now(), "heard": {"n2": [node.incarnation - 1, mine.sequence]}}
    node._heard(Heartbeat("n1", 1, 1, 1, 0, payload=stale), clock.now())
    assert node._confirmed is None


# --- the device calls, against the emulator ---------------------------------------------


def test_arm_feed_and_magic_close_against_the_emulator(tmp_path: Path) -> None:
    fifo, log = tmp_path / "watchdog", tmp_path / "events"
    emulator = Emulator(fifo, 3.0, "n1", tmp_path / "keeper", log)
    dog = Watchdog(fifo, 3)
    dog.arm()  # the FIFO answers the timeout ioctl with ENOTTY: it keeps its own
    emulator.poll()
    dog.feed()
    emulator.poll()
    dog.disarm()
    emulator.poll()
    emulator.poll()
    events = log.read_text()
    assert "armed (opened" in events
    assert "disarmed (magic close after 2 feeds)" in events
    assert dog.closed and not dog.armed


def test_a_close_without_the_magic_character_leaves_it_armed(tmp_path: Path) -> None:
    import os

    fifo, log = tmp_path / "watchdog", tmp_path / "events"
    emulator = Emulator(fifo, 3.0, "n1", tmp_path / "keeper", log)
    dog = Watchdog(fifo, 3)
    dog.arm()
    dog.feed()
    emulator.poll()
    assert dog._fd is not None
    os.close(dog._fd)  # what a crash does
    emulator.poll()
    assert "watchdog did not stop!" in log.read_text()
    assert emulator.armed


def test_arming_a_device_nobody_serves_fails_at_once(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "watchdog"
    os.mkfifo(fifo)
    with pytest.raises(OSError):
        Watchdog(fifo, 3).arm()


@pytest.mark.skipif(not Path("/dev/watchdog").exists(),
                    reason="no /dev/watchdog on this machine")
def test_a_real_watchdog_is_listed_and_never_opened() -> None:
    # Opening /dev/watchdog would arm it and reset this machine: only sysfs is read.
    assert any(w.device.name.startswith("watchdog") for w in watchdogs())
