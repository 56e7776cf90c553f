"""The in-memory directory and pure edits: changes are checked whole, written minimally."""

from __future__ import annotations

import pytest

from pyha.directory import edits
from pyha.directory.diff import Change, diff_configs
from pyha.directory.store import ConcurrentChange
from pyha.directory.tree import ClusterNotFound, Layout, norm_dn
from pyha.errors import ConfigError, DirectoryError
from pyha.model.config import (
    ClusterConfig,
    Group,
    LocationConstraint,
    Node,
    Resource,
    ResourceType,
)
from pyha.testing import FakeClock
from pyha.testing.directory import MemoryDirectory, sample_config


@pytest.fixture
def directory() -> MemoryDirectory:
    d = MemoryDirectory(cluster="pyha", clock=FakeClock())
    d.replace(sample_config())
    return d


def test_replace_creates_the_tree_and_load_returns_it(directory: MemoryDirectory) -> None:
    assert directory.load() == sample_config()  # a new cluster keeps the file's epoch (7)
    again = directory.replace(sample_config())
    assert again.epoch == 8
    dns = {norm_dn(e.dn) for e in directory.entries()}
    assert "dc=pyha,dc=test" in dns
    assert "ou=status,cn=pyha,dc=pyha,dc=test" in dns


def test_an_empty_directory_has_no_cluster() -> None:
    with pytest.raises(ClusterNotFound):
        MemoryDirectory().load()


@pytest.mark.parametrize("change", [
    lambda d: d.add_group(Group(name="g3", resources=(Resource(name="x", type="dummy"),))),
    lambda d: d.add_resource("g", Resource(name="x", type="dummy"), position=0),
    lambda d: d.update_resource(Resource(name="a", type="dummy", params={"p": 1})),
    lambda d: d.remove_resource("a"),
    lambda d: d.add_node(Node(name="n3")),
    lambda d: d.update_node(Node(name="n1", standby=True)),
    lambda d: d.add_resource_type(ResourceType(name="db", plugin="python:pyha:dummy")),
    lambda d: d.remove_resource_type("web"),
    lambda d: d.add_constraint(LocationConstraint(id="l2", group="g2", node="n2", score=5)),
    lambda d: d.remove_constraint("c1"),
    lambda d: d.set_options(d.load().cluster.model_copy(update={"stickiness": 3})),
], ids=["add-group", "add-resource", "update-resource", "remove-resource", "add-node",
        "update-node", "add-type", "remove-type", "add-constraint", "remove-constraint",
        "options"])
def test_each_change_is_stored_and_raises_the_epoch(directory: MemoryDirectory,
                                                    change: object) -> None:
    before = directory.load()
    after = change(directory)  # type: ignore[operator]
    assert after.epoch == before.epoch + 1
    assert directory.load() == after
    assert diff_configs(before, after)


def test_positions_keep_the_start_order(directory: MemoryDirectory) -> None:
    directory.add_resource("g", Resource(name="x", type="dummy"), position=1)
    assert [r.name for r in directory.load().group("g").resources] == ["b", "x", "a"]


def test_a_change_that_breaks_the_configuration_writes_nothing(
        directory: MemoryDirectory) -> None:
    before = {e.dn: e for e in directory.entries()}
    with pytest.raises(ConfigError, match="constraints"):
        directory.remove_group("g2")  # constraints o1 and c1 name it
    with pytest.raises(ConfigError, match="a group needs at least one resource"):
        directory.remove_resource("c")
    with pytest.raises(ConfigError, match="exists already"):
        directory.add_node(Node(name="n1"))
    with pytest.raises(ConfigError, match="no resource named 'zz'"):
        directory.remove_resource("zz")
    with pytest.raises(ConfigError, match="cannot rename"):
        directory.set_options(directory.load().cluster.model_copy(update={"name": "other"}))
    assert {e.dn: e for e in directory.entries()} == before


def test_only_changed_entries_are_written(directory: MemoryDirectory) -> None:
    before = {e.dn: e for e in directory.entries()}
    directory.update_resource(Resource(name="a", type="dummy"))
    after = {e.dn: e for e in directory.entries()}
    changed = sorted(dn for dn in after if after[dn] != before.get(dn))
    assert changed == ["cn=a,cn=g,ou=groups,cn=pyha,dc=pyha,dc=test", "cn=pyha,dc=pyha,dc=test"]


def test_a_resource_can_move_to_another_group_and_a_constraint_change_kind(
        directory: MemoryDirectory) -> None:
    config = directory.load()
    g, g2 = config.group("g"), config.group("g2")
    moved = edits.rebuild(config, groups=(
        g.model_copy(update={"resources": (g.resources[0],)}),
        g2.model_copy(update={"resources": (*g2.resources, g.resources[1])})))
    directory.replace(moved)
    assert directory.load().group_of("a").name == "g2"
    directory.update_constraint(LocationConstraint(id="o1", group="g", node="n2", score=1))
    assert directory.load().constraints[0].kind == "location"


def test_a_concurrent_writer_makes_the_later_one_fail(directory: MemoryDirectory) -> None:
    def meddle(config: ClusterConfig) -> ClusterConfig:
        directory.modify_entry(directory.layout.cluster_dn, {"pyhaEpoch": "99"})
        return config

    with pytest.raises(ConcurrentChange, match="changed while this change was prepared"):
        directory.apply(meddle)


def test_replace_refuses_another_cluster(directory: MemoryDirectory) -> None:
    with pytest.raises(ConfigError, match="set up for cluster 'pyha'"):
        directory.replace(sample_config("other"))


def test_replace_removes_what_the_new_configuration_lacks(directory: MemoryDirectory) -> None:
    small = ClusterConfig.from_mapping({"cluster": {"name": "pyha"}, "nodes": [{"name": "n1"}]})
    directory.put_entry("cn=junk,ou=groups,cn=pyha,dc=pyha,dc=test",
                        {"objectClass": "inetOrgPerson"})
    new = directory.replace(small)
    assert directory.load() == new
    assert not [e for e in directory.entries() if "ou=groups" in e.dn and "cn=" in
                e.dn.split(",")[0]]


def test_a_directory_that_is_down_raises_directory_errors(directory: MemoryDirectory) -> None:
    directory.available = False
    with pytest.raises(DirectoryError, match="cannot reach"):
        directory.load()
    with pytest.raises(DirectoryError):
        directory.add_node(Node(name="n3"))


def test_status_records_are_upserted_read_and_removed(directory: MemoryDirectory) -> None:
    from pyha.directory.records import StatusRecord
    from pyha.model.status import Role

    first = StatusRecord(resource="a", node="n1", role=Role.STARTED, since=10.0)
    directory.write_status([first, first.model_copy(update={"resource": "b"})])
    directory.write_status([first.model_copy(update={"role": Role.FAILED, "message": "x"})])
    records = directory.read_status()
    assert [(r.resource, r.role, r.message) for r in records] == [
        ("a", Role.FAILED, "x"), ("b", Role.STARTED, "")]
    directory.remove_status("n1", "a")
    directory.remove_status("n1", "a")  # gone already: fine
    assert [r.resource for r in directory.read_status()] == ["b"]
    assert directory.load().epoch == 7  # status is no configuration change


def test_audit_records_come_back_in_time_order_and_can_be_pruned(
        directory: MemoryDirectory) -> None:
    from pyha.directory.records import AuditRecord

    for i in (3, 1, 2):
        directory.write_audit(AuditRecord.new(1000.0 + i, "me", "modify", changes=(str(i),)))
    assert [r.changes for r in directory.read_audit()] == [("1",), ("2",), ("3",)]
    assert [r.changes for r in directory.read_audit(limit=1)] == [("3",)]
    assert directory.prune_audit(keep=1) == 2
    assert [r.changes for r in directory.read_audit()] == [("3",)]


def test_origin_names_who_wrote_an_entry(directory: MemoryDirectory) -> None:
    directory.modify_entry("cn=a,cn=g,ou=groups,cn=pyha,dc=pyha,dc=test",
                           {"pyhaTargetRole": "stopped"}, actor="cn=alice")
    origin = directory.origin(Change("modify", "resource", "a", "g"))
    assert origin is not None and origin.who == "cn=alice"


def test_diff_names_each_change() -> None:
    old = sample_config()
    new = edits.add_node(Node(name="n3"))(old)
    new = edits.update_resource(old.resource("a").model_copy(update={"params": {"x": 1}}))(new)
    new = edits.remove_constraint("c1")(new)
    g = new.group("g")
    new = edits.update_group(g.model_copy(update={"resources": g.resources[::-1]}))(new)
    assert [c.describe() for c in diff_configs(old, new)] == [
        "add node n3", "modify group g (resource order)", "modify resource a (params)",
        "delete constraint c1"]
    layout = Layout("dc=x", "pyha")
    assert Change("modify", "resource", "a", "g").dn(layout) == "cn=a,cn=g,ou=groups,cn=pyha,dc=x"
    assert diff_configs(old, old.model_copy(update={"epoch": 99})) == []
