"""The admin endpoints of a real three-node cluster: any node answers, with the
coordinator's view; history and cleanup reach every node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pyha.admin.errors import NotFound
from tests.cluster.admins import Admins, admin_cluster
from tests.cluster.harness import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def admins(tmp_path: Path) -> Iterator[Admins]:
    with admin_cluster(tmp_path) as made:
        yield made


def _settled(admins: Admins) -> bool:
    return admins.settled()


def test_every_node_answers_with_the_coordinators_view(admins: Admins) -> None:
    wait_for(lambda: _settled(admins), 60, "every node reports the group running", admins.cluster)
    reports = [admins.status(n) for n in admins.cluster.nodes]
    assert all(r is not None for r in reports)
    first = reports[0]
    assert first is not None
    where = first.groups[0].node
    assert where in admins.cluster.nodes
    for report in reports:
        assert report is not None
        assert (report.coordinator, report.term, report.mode) == (
            first.coordinator, first.term, "cluster")
        assert report.members == ("n1", "n2", "n3")
        assert report.view_from.startswith(f"the coordinator {first.coordinator}")
        assert report.groups[0].node == where
        guard = report.resources[0]
        assert (guard.name, guard.node, guard.role) == ("guard", where, "started")
        assert f"guard on {where}: success" in guard.last_operation  # the newest, anywhere
    assert [n.coordinator for n in first.nodes].count(True) == 1

    other = next(n for n in admins.cluster.nodes if n != where)
    with admins.client(other) as admin:
        starts = [h for h in admin.history("guard") if h.operation == "start"]
        assert [h.node for h in starts] == [where]
        assert [h.node for h in admin.history("guard", node=where)
                if h.operation == "start"] == [where]
        assert "svc" in admin.explain().text
        cleaned = admin.cleanup("guard")
        assert cleaned.nodes == ("n1", "n2", "n3")
        with pytest.raises(NotFound, match="no node named 'n9'"):
            admin.cleanup("guard", node="n9")
        assert admin.whoami().node == other
    wait_for(lambda: _settled(admins), 30, "the group still runs after the cleanup", admins.cluster)
    final = admins.status(other)
    assert final is not None and final.groups[0].node == where


def test_standby_moves_the_group_away_and_maintenance_reaches_every_node(
        admins: Admins) -> None:
    wait_for(lambda: _settled(admins), 60, "every node reports the group running", admins.cluster)
    status = admins.status("n1")
    assert status is not None
    where = status.groups[0].node
    assert where is not None
    asked = next(n for n in admins.cluster.nodes if n != where)
    with admins.client(asked) as admin:
        assert sorted(admin.standby(where).applied_on) == ["n1", "n2", "n3"]

    def moved() -> bool:
        now = admins.status(asked)
        return now is not None and now.groups[0].node not in (None, where)

    wait_for(moved, 40, "the group leaves the node in standby", admins.cluster)
    after = admins.status(where)
    assert after is not None
    assert [n.standby for n in after.nodes if n.name == where] == [True]
    with admins.client(asked) as admin:
        admin.online(where)
        admin.maintenance(True)
    def flags_everywhere() -> bool:  # the view is the coordinator's next cycle's
        reports = [admins.status(n) for n in admins.cluster.nodes]
        return all(r is not None and r.maintenance and not any(n.standby for n in r.nodes)
                   for r in reports)

    wait_for(flags_everywhere, 20, "every node shows maintenance on and no standby", admins.cluster)
    assert len(admins.cluster.running_on()) == 1

