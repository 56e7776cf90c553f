"""The Directory contract: every backend (in-memory, embedded files, OpenLDAP) passes the same
tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pyha.directory.diff import Change
from pyha.directory.embedded import EmbeddedDirectory
from pyha.directory.ldif import parse_ldif, write_ldif
from pyha.directory.records import AuditRecord, NodeStatusRecord, StatusRecord
from pyha.directory.store import ConcurrentChange, EntryStore
from pyha.directory.transfer import config_from_ldif
from pyha.directory.tree import ClusterNotFound
from pyha.errors import ConfigError
from pyha.model.config import ClusterConfig, Group, Node, Resource
from pyha.model.status import Role
from pyha.testing.directory import MemoryDirectory, sample_config
from pyha.testing.waiting import eventually


@dataclass
class Backend:
    """A directory under test and a way to change its entries behind pyha's back."""

    directory: EntryStore
    modify: Callable[[str, dict[str, str | list[str]]], None]
    actor: str

    def wait(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        return eventually(predicate, timeout)


def _ldap_modify(server: Any) -> Callable[[str, dict[str, str | list[str]]], None]:
    def modify(dn: str, attrs: dict[str, str | list[str]]) -> None:
        lines = [f"dn: {dn}", "changetype: modify"]
        for name, values in attrs.items():
            lines.append(f"replace: {name}")
            lines += [f"{name}: {v}" for v in ([values] if isinstance(values, str) else values)]
            lines.append("-")
        server.modify("\n".join(lines) + "\n")
    return modify


@pytest.fixture(params=["memory", "embedded", "ldap"])
def backend(request: pytest.FixtureRequest, cluster_name: str,
            tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        memory = MemoryDirectory(cluster=cluster_name)
        yield Backend(memory, memory.modify_entry, memory.actor)
        return
    if request.param == "embedded":
        # Behind its back: another directory on the same files (as another process would be).
        embedded = EmbeddedDirectory(tmp_path, cluster_name, actor="pyha@n1")
        other = EmbeddedDirectory(tmp_path, cluster_name, actor="admin@elsewhere")
        try:
            yield Backend(embedded, other.modify_entry, other.actor)
        finally:
            embedded.close()
            other.close()
        return
    from pyha.directory.ldap import LdapDirectory

    server = request.getfixturevalue("slapd_server")
    ldap = LdapDirectory(server.settings(cluster_name))
    try:
        yield Backend(ldap, _ldap_modify(server), server.bind_dn)
    finally:
        ldap.close()


def small(name: str) -> ClusterConfig:
    return ClusterConfig.from_mapping({
        "cluster": {"name": name}, "nodes": [{"name": "n1"}],
        "groups": [{"name": "g", "resources": [{"name": "a", "type": "dummy"},
                                               {"name": "b", "type": "dummy"}]}]})


def test_a_missing_cluster_is_reported(backend: Backend) -> None:
    with pytest.raises(ClusterNotFound):
        backend.directory.load()


def test_every_field_round_trips(backend: Backend) -> None:
    name = backend.directory.layout.cluster
    stored = backend.directory.replace(sample_config(name))
    assert backend.directory.load() == stored == sample_config(name)


def test_changes_are_stored_with_a_rising_epoch(backend: Backend) -> None:
    d = backend.directory
    first = d.replace(small(d.layout.cluster))
    d.add_node(Node(name="n2", addresses=("10.0.0.2:5405",)))
    d.add_group(Group(name="g2", resources=(Resource(name="c", type="dummy"),)))
    d.add_resource("g", Resource(name="x", type="dummy", params={"n": 1}), position=0)
    d.update_resource(Resource(name="a", type="dummy", description="changed"))
    d.remove_resource("b")
    last = d.remove_node("n2")
    assert last.epoch == first.epoch + 6
    loaded = d.load()
    assert loaded == last
    assert [r.name for r in loaded.group("g").resources] == ["x", "a"]
    assert loaded.resource("x").params == {"n": 1}


def test_a_change_that_would_break_the_configuration_writes_nothing(backend: Backend) -> None:
    d = backend.directory
    d.replace(sample_config(d.layout.cluster))
    before = d.load()
    with pytest.raises(ConfigError, match="no group named 'g2'"):
        d.remove_group("g2")
    with pytest.raises(ConfigError):
        d.add_resource("g", Resource(name="c", type="dummy"))  # c is in g2 already
    assert d.load() == before


def test_the_later_of_two_concurrent_writers_fails(backend: Backend) -> None:
    d = backend.directory
    d.replace(small(d.layout.cluster))

    def meddle(config: ClusterConfig) -> ClusterConfig:
        backend.modify(d.layout.cluster_dn, {"pyhaEpoch": "42"})
        return config.model_copy(update={"nodes": (*config.nodes, Node(name="n9"))})

    with pytest.raises(ConcurrentChange):
        d.apply(meddle)
    assert [n.name for n in d.load().nodes] == ["n1"]


def test_status_and_audit_records(backend: Backend) -> None:
    d = backend.directory
    d.replace(small(d.layout.cluster))
    a = StatusRecord(resource="a", node="n1", role=Role.STARTED, since=1_767_225_600.5)
    d.write_status([a, a.model_copy(update={"resource": "b"})])
    d.write_status([a.model_copy(update={"role": Role.FAILED, "fail_count": 1,
                                         "last_failure": 1_767_225_601.0})])
    assert [(r.resource, r.role, r.fail_count) for r in d.read_status()] == [
        ("a", Role.FAILED, 1), ("b", Role.STARTED, 0)]
    d.remove_status("n1", "b")
    assert [r.resource for r in d.read_status()] == ["a"]
    for i in range(3):
        d.write_audit(AuditRecord.new(1_767_225_600.0 + i, "tester", "modify",
                                      changes=(f"change {i}",)))
    assert [r.changes[0] for r in d.read_audit(limit=2)] == ["change 1", "change 2"]
    assert d.load() == small(d.layout.cluster).model_copy(update={"epoch": 1})


def test_node_status_records(backend: Backend) -> None:
    d = backend.directory
    d.replace(small(d.layout.cluster))
    d.write_status([StatusRecord(resource="a", node="n1", role=Role.STARTED)])
    d.write_node_status([NodeStatusRecord(node="n1", online=True, last_seen=1_767_225_600.25),
                         NodeStatusRecord(node="n2", online=False)])
    assert d.read_node_status() == [
        NodeStatusRecord(node="n1", online=True, last_seen=1_767_225_600.25),
        NodeStatusRecord(node="n2", online=False)]
    d.write_node_status([NodeStatusRecord(node="n1", online=False, last_seen=1_767_225_700.0)])
    assert d.read_node_status()[0] == NodeStatusRecord(node="n1", online=False,
                                                       last_seen=1_767_225_700.0)
    assert [r.resource for r in d.read_status()] == ["a"]  # resource entries untouched
    assert d.load() == small(d.layout.cluster).model_copy(update={"epoch": 1})


def test_who_changed_an_entry_is_known(backend: Backend) -> None:
    d = backend.directory
    d.replace(small(d.layout.cluster))
    backend.modify(d.layout.resource_dn("g", "a"), {"description": "by hand"})
    origin = d.origin(Change("modify", "resource", "a", "g"))
    assert origin is not None and origin.who.lower() == backend.actor.lower()
    assert origin.when is not None and abs(origin.when - time.time()) < 120


def test_an_export_imports_again(backend: Backend) -> None:
    d = backend.directory
    d.replace(sample_config(d.layout.cluster))
    text = write_ldif(d.export_entries())
    assert len(parse_ldif(text)) == len(d.export_entries())
    config, layout = config_from_ldif(text)
    assert layout == d.layout and config == d.load()


def test_a_direct_change_is_watched_and_a_bad_one_rejected(backend: Backend) -> None:
    d = backend.directory
    d.replace(small(d.layout.cluster))
    got: list[ClusterConfig] = []
    rejected: list[ConfigError] = []
    done = threading.Event()
    watch = d.watch(lambda c: (got.append(c), done.set()), rejected.append, known=d.load())
    try:
        if hasattr(watch, "connected"):
            assert watch.connected.wait(10)
        a_dn = d.layout.resource_dn("g", "a")
        backend.modify(a_dn, {"pyhaTargetRole": "stopped"})
        assert backend.wait(lambda: bool(got))
        assert got[-1].resource("a").meta.target_role == "stopped"
        backend.modify(a_dn, {"pyhaTargetRole": "sideways"})
        assert backend.wait(lambda: bool(rejected))
        assert a_dn in str(rejected[0]) and "pyhaTargetRole" in str(rejected[0])
        backend.modify(a_dn, {"pyhaTargetRole": "started"})
        assert backend.wait(lambda: len(got) == 2)
        assert got[-1].resource("a").meta.target_role == "started"
    finally:
        watch.stop()
