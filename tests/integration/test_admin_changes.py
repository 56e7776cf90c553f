"""Configuration changes on a real three-node cluster: made through any node, applied by
the coordinator, durable on a majority before the answer, caught up by a node that was
away, kept across restarts; bad changes refused with nothing changed; a computer added
at runtime becomes a member that groups can use."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyha.admin.errors import InvalidArgument, NotFound, PermissionDenied
from pyha.directory.embedded import ConfigStore
from tests.cluster.admins import Admins, admin_cluster
from tests.cluster.harness import wait_for

pytestmark = pytest.mark.slow

EXTRA = {"name": "extra", "type": "dummy",
         "operations": [{"name": "monitor", "interval": "1s"}]}


@pytest.fixture
def admins(tmp_path: Path) -> Iterator[Admins]:
    with admin_cluster(tmp_path) as made:
        yield made


def stored_epochs(admins: Admins) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for node in admins.cluster.nodes[:admins.cluster.listed]:
        stored = ConfigStore(admins.cluster.state_dir(node)).load()
        out[node] = stored.epoch if stored else None
    return out


def epochs(admins: Admins) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for node in admins.cluster.procs:
        report = admins.status(node)
        out[node] = report.epoch if report is not None else None
    return out


def test_a_change_through_any_node_is_durable_on_every_node_and_acts(admins: Admins) -> None:
    c = admins.cluster
    wait_for(admins.settled, 60, "every node reports the group running", c)
    first = admins.status("n1")
    assert first is not None and first.coordinator
    other = next(n for n in c.nodes if n != first.coordinator)
    where = first.groups[0].node

    with admins.client(other, admins.root) as admin:
        done = admin.add_resource("svc", EXTRA)
    assert done.epoch == first.epoch + 1
    assert done.coordinator == first.coordinator  # forwarded there, applied there
    assert sorted(done.acked) == ["n1", "n2", "n3"]
    assert stored_epochs(admins) == dict.fromkeys(c.nodes, done.epoch)  # on disk first

    def extra_runs_with_the_group() -> bool:
        report = admins.status(other)
        return report is not None and any(
            r.name == "extra" and r.role == "started" and r.node == where
            for r in report.resources)

    wait_for(extra_runs_with_the_group, 30, "the new resource starts with its group", c)
    assert epochs(admins) == dict.fromkeys(c.nodes, done.epoch)

    with admins.client(other, admins.root) as admin:
        assert [r.name for _, r in admin.resources()] == ["guard", "extra"]
        with pytest.raises(InvalidArgument, match=r"operations\[0\]\.interval: 'soon'"):
            admin.update_resource("extra", operations=[{"name": "monitor",
                                                        "interval": "soon"}])
        with pytest.raises(NotFound, match="no group named 'nope'"):
            admin.add_resource("nope", {"name": "x", "type": "dummy"})
        with pytest.raises(InvalidArgument, match="no-such-plugin"):
            admin.add_resource("svc", {"name": "y", "type": "no-such-plugin"})
    with admins.client(other) as operator, pytest.raises(PermissionDenied):
        operator.remove_resource("extra")
    assert stored_epochs(admins) == dict.fromkeys(c.nodes, done.epoch)  # nothing changed

    with admins.client(other, admins.root) as admin:
        removed = admin.remove_resource("extra")
    assert removed.epoch == done.epoch + 1

    def extra_gone() -> bool:
        report = admins.status(where or "n1")
        return report is not None and all(r.name != "extra" for r in report.resources)

    wait_for(extra_gone, 30, "the removed resource is gone", c)


def test_move_a_node_away_catches_up_and_restarts_with_the_newest_config(
        admins: Admins) -> None:
    c = admins.cluster
    wait_for(admins.settled, 60, "every node reports the group running", c)
    status = admins.status("n1")
    assert status is not None and status.coordinator
    where = status.groups[0].node
    target = next(n for n in c.nodes if n not in (where, status.coordinator))
    away = next(n for n in c.nodes if n not in (where, target))

    with admins.client(target) as admin:
        moved = admin.move("svc", target, lifetime="1h")
    assert sorted(moved.acked) == ["n1", "n2", "n3"]

    def on_target() -> bool:
        report = admins.status(target)
        return report is not None and report.groups[0].node == target \
            and report.groups[0].state == "running"

    wait_for(on_target, 40, f"the group moves to {target}", c)
    assert c.running_on() == [target]

    # A node that is away misses a change and catches up when it comes back.
    c.signal(away, signal.SIGTERM)
    c.procs[away].wait(timeout=60)

    def two_left() -> bool:  # `away` may have been the coordinator
        report = admins.status(target)
        return report is not None and report.coordinator not in (None, away) \
            and len(report.members) == 2

    wait_for(two_left, 30, "the two others agree on a coordinator", c)
    with admins.client(target) as admin:
        unmoved = admin.unmove("svc")
    assert away not in unmoved.acked and len(unmoved.acked) == 2  # still a majority
    assert stored_epochs(admins)[away] == moved.epoch
    c.start(away)
    wait_for(lambda: stored_epochs(admins)[away] == unmoved.epoch, 40,
             f"{away} catches up with epoch {unmoved.epoch}", c)
    wait_for(admins.settled, 40, "the cluster settles again", c)
    report = admins.status(away)
    assert report is not None and report.epoch == unmoved.epoch
    assert report.groups[0].node == target  # stickiness keeps it where it was moved

    # Standby is configuration now: it survives a restart of every node.
    with admins.client(away) as admin:
        admin.standby(where or "n1")
    for node in c.nodes:
        c.signal(node, signal.SIGTERM)
    for node in c.nodes:
        c.procs[node].wait(timeout=90)
    for node in c.nodes:
        c.start(node)
    wait_for(admins.settled, 60, "the restarted cluster runs the group", c)
    after = admins.status(target)
    assert after is not None
    assert [n.standby for n in after.nodes if n.name == where] == [True]


def test_a_computer_added_at_runtime_becomes_a_member_that_groups_can_use(
        tmp_path: Path) -> None:
    with admin_cluster(tmp_path, size=4, listed=3) as admins:
        c = admins.cluster
        wait_for(lambda: admins.settled(3), 60, "three nodes run the group", c)
        with admins.client("n2", admins.root) as admin:
            added = admin.add_node(c.node_entry("n4"))
        assert sorted(added.acked) == ["n1", "n2", "n3"]
        c.start("n4")  # its own file lists four nodes at epoch 0; it catches up
        wait_for(lambda: admins.settled(4), 60, "n4 is a member", c)
        report = admins.status("n4")
        assert report is not None and report.epoch == added.epoch
        with admins.client("n4") as admin:
            admin.move("svc", "n4")
        wait_for(lambda: c.running_on() == ["n4"], 40, "the group runs on n4", c)
