"""The coordinator's view: a lost node's resources stay active until it is fenced."""

from __future__ import annotations

from pyha.cluster.view import UNHEARD, NodeReport, build_view
from pyha.model.config import ClusterConfig
from pyha.model.status import ResourceStatus, Role, View

CONFIG = ClusterConfig.from_mapping({
    "cluster": {"name": "c"},
    "nodes": [{"name": "n1"}, {"name": "n2", "standby": True}, {"name": "n3"}],
    "groups": [{"name": "g", "resources": [{"name": "a", "type": "dummy"},
                                           {"name": "b", "type": "dummy"}]}],
})


def report(node: str, *roles: tuple[str, Role], leaving: bool = False) -> NodeReport:
    return NodeReport(node=node, incarnation=1, leaving=leaving, resources=tuple(
        ResourceStatus(resource=r, node=node, role=role) for r, role in roles))


def roles(view: View, node: str) -> dict[str, Role]:
    return {s.resource: s.role for s in view.resources if s.node == node}


def test_online_nodes_are_taken_at_their_word() -> None:
    view = build_view(CONFIG, {"n1": report("n1", ("a", Role.STARTED), ("b", Role.STOPPED))},
                      frozenset({"n1", "n2", "n3"}), frozenset(), True)
    assert roles(view, "n1") == {"a": Role.STARTED, "b": Role.STOPPED}
    assert [n.online for n in view.nodes] == [True, True, True]
    assert [n.standby for n in view.nodes] == [False, True, False]


def test_a_lost_node_keeps_what_it_last_ran_until_fenced() -> None:
    reports = {"n1": report("n1", ("a", Role.STARTED), ("b", Role.STOPPED))}
    lost = build_view(CONFIG, reports, frozenset({"n3"}), frozenset(), True)
    assert roles(lost, "n1") == {"a": Role.STARTED}
    assert not lost.nodes[0].online
    fenced = build_view(CONFIG, reports, frozenset({"n3"}), frozenset({"n1"}), True)
    assert roles(fenced, "n1") == {}


def test_a_node_never_heard_from_may_run_everything() -> None:
    view = build_view(CONFIG, {}, frozenset({"n1", "n3"}), frozenset(), False)
    assert roles(view, "n2") == {"a": Role.STARTED, "b": Role.STARTED}
    assert all(s.message == UNHEARD for s in view.resources if s.node == "n2")
    assert view.quorum is False


def test_an_unconfirmed_start_counts_as_failed_there() -> None:
    reports = {"n3": report("n3", ("a", Role.STOPPED), ("b", Role.STARTED))}
    view = build_view(CONFIG, reports, frozenset({"n1", "n3"}), frozenset(), True,
                      uncertain={"n3": frozenset({"a", "b"})})
    assert roles(view, "n3") == {"a": Role.FAILED, "b": Role.STARTED}
    (doubt,) = [s for s in view.resources if s.node == "n3" and s.resource == "a"]
    assert doubt.failed_operation == "start"


def test_a_leaving_node_is_in_standby() -> None:
    view = build_view(CONFIG, {"n3": report("n3", leaving=True)},
                      frozenset({"n1", "n3"}), frozenset(), True)
    assert view.nodes[2].standby
