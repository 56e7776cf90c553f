"""The embedded directory's files: durable writes, damaged files, the old format, and the
replicated store (ConfigStore) and the directory being one file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from pyha.directory import embedded, filestore
from pyha.directory.diff import Change
from pyha.directory.embedded import (
    CONFIG_FILE,
    LEGACY_FORMAT,
    RECORDS_FILE,
    ConfigStore,
    EmbeddedDirectory,
    newest,
)
from pyha.directory.records import AuditRecord, StatusRecord
from pyha.directory.store import ConcurrentChange
from pyha.directory.tree import ClusterNotFound
from pyha.errors import ConfigError, DirectoryError
from pyha.model.config import ClusterConfig, Node, Resource
from pyha.model.status import Role
from pyha.testing import FakeClock
from pyha.testing.directory import sample_config


def _config(epoch: int = 1, description: str = "") -> ClusterConfig:
    return ClusterConfig.from_mapping({
        "cluster": {"name": "c"}, "epoch": epoch, "nodes": [{"name": "n1"}],
        "groups": [{"name": "g", "resources": [
            {"name": "a", "type": "dummy", "description": description}]}]})


def _directory(state: Path, actor: str = "alice@h1") -> EmbeddedDirectory:
    return EmbeddedDirectory(state, "c", actor=actor, clock=FakeClock())


def _file(state: Path, name: str = CONFIG_FILE) -> tuple[int, int, bytes]:
    path = state / name
    return path.stat().st_ino, path.stat().st_mtime_ns, path.read_bytes()


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files written durably, in order."""
    seen: list[str] = []
    real = filestore.write_durably

    def counting(path: Path, body: bytes) -> filestore.FileMark:
        seen.append(path.name)
        return real(path, body)

    monkeypatch.setattr(embedded, "write_durably", counting)
    return seen


def test_the_store_keeps_a_configuration_in_a_private_file(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    assert store.load() is None
    store.save(sample_config("c"))
    assert store.load() == sample_config("c")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    data = json.loads(store.path.read_text())
    assert (data["format"], data["base_dn"], data["cluster"]) == ("pyha-directory-1", "o=pyha",
                                                                  "c")


def test_a_crash_before_the_rename_leaves_the_old_configuration(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    store.save(_config(epoch=1))
    temporary = filestore.temporary_path(store.path)
    temporary.write_text('{"format": "pyha-directory-1", "base_dn": "o=pyha", "con')  # torn
    assert store.load() == _config(epoch=1)
    assert _directory(tmp_path).load() == _config(epoch=1)
    store.save(_config(epoch=2))
    assert store.load() == _config(epoch=2)
    assert not temporary.exists()


@pytest.mark.parametrize("text, reason", [
    ('{"format": "pyha-directory-1", "base_dn"', "not valid JSON"),
    ('{"format": "something-else"}', "format: not a pyha-directory-1 file"),
    ('{"format": "pyha-directory-1", "base_dn": "o=pyha", "entries": [{"dn": 1}]}',
     r"entries\[0\]: malformed"),
    ('{"format": "pyha-directory-1", "base_dn": "o=pyha", "config": {"cluster": {}}}',
     "cluster.name"),
])
def test_a_damaged_file_is_an_error_that_names_it(tmp_path: Path, text: str,
                                                  reason: str) -> None:
    (tmp_path / CONFIG_FILE).write_text(text)
    with pytest.raises(ConfigError, match=reason) as caught:
        ConfigStore(tmp_path).load()
    assert str(tmp_path / CONFIG_FILE) in str(caught.value)
    with pytest.raises(ConfigError, match=reason) as caught:
        EmbeddedDirectory(tmp_path, "c").load()
    assert str(tmp_path / CONFIG_FILE) in str(caught.value)


def test_a_bad_entry_is_named_by_file_dn_and_attribute(tmp_path: Path) -> None:
    directory = _directory(tmp_path)
    directory.replace(_config())
    dn = directory.layout.resource_dn("g", "a")
    directory.modify_entry(dn, {"pyhaTargetRole": "sideways"})
    with pytest.raises(ConfigError) as caught:
        ConfigStore(tmp_path).load()
    text = str(caught.value)
    assert str(tmp_path / CONFIG_FILE) in text and dn in text and "pyhaTargetRole" in text


def test_a_file_of_the_old_format_is_read_and_rewritten_in_the_new_one(tmp_path: Path) -> None:
    old = {"format": LEGACY_FORMAT, "config": _config(epoch=4).model_dump(mode="json")}
    (tmp_path / CONFIG_FILE).write_text(json.dumps(old))
    assert ConfigStore(tmp_path).load() == _config(epoch=4)
    assert newest(_config(epoch=2), ConfigStore(tmp_path)) == _config(epoch=4)
    directory = EmbeddedDirectory(tmp_path)  # the cluster's name comes from the file
    assert directory.layout.cluster_dn == "cn=c,o=pyha"
    assert directory.load() == _config(epoch=4)
    directory.add_node(Node(name="n2"))
    assert json.loads((tmp_path / CONFIG_FILE).read_text())["format"] == "pyha-directory-1"
    stored = ConfigStore(tmp_path).load()
    assert stored is not None and [n.name for n in stored.nodes] == ["n1", "n2"]


def test_the_store_and_the_directory_are_one_file(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path, actor="pyha@n1")
    store.save(_config(epoch=3))
    directory = _directory(tmp_path)
    assert directory.load() == _config(epoch=3)
    origin = directory.origin(Change("modify", "resource", "a", "g"))
    assert origin is not None and origin.who == "pyha@n1"
    changed = directory.update_resource(Resource(name="a", type="dummy", description="new"))
    assert changed.epoch == 4 and store.load() == changed
    store.save(_config(epoch=9, description="from the coordinator"))
    assert directory.load() == _config(epoch=9, description="from the coordinator")
    assert directory.read_status() == []


def test_a_directory_without_a_file_has_no_cluster(tmp_path: Path) -> None:
    with pytest.raises(ClusterNotFound):
        _directory(tmp_path).load()
    with pytest.raises(ConfigError, match="name the cluster"):
        EmbeddedDirectory(tmp_path)


def test_a_state_directory_holds_one_cluster(tmp_path: Path) -> None:
    ConfigStore(tmp_path).save(_config())
    with pytest.raises(ConfigError, match="holds cluster 'c', not 'other'"):
        EmbeddedDirectory(tmp_path, "other")


def test_a_change_is_one_write_of_the_configuration_file(tmp_path: Path,
                                                         writes: list[str]) -> None:
    directory = _directory(tmp_path)
    directory.replace(sample_config("c"))
    assert writes == [CONFIG_FILE]
    directory.add_node(Node(name="n3"))
    assert writes == [CONFIG_FILE, CONFIG_FILE]


def test_status_and_audit_go_to_their_own_file(tmp_path: Path, writes: list[str]) -> None:
    directory = _directory(tmp_path)
    directory.replace(_config())
    before = _file(tmp_path)
    a = StatusRecord(resource="a", node="n1", role=Role.STARTED, since=10.0)
    directory.write_status([a, a.model_copy(update={"node": "n2"})])
    for i in range(5):
        directory.write_audit(AuditRecord.new(100.0 + i, "me", "modify", changes=(str(i),)))
    assert directory.prune_audit(keep=2) == 3
    assert _file(tmp_path) == before
    # ou=status/cn=<node> entries come first; then one write per call.
    assert writes == [CONFIG_FILE, RECORDS_FILE, *[RECORDS_FILE] * 5, RECORDS_FILE]
    again = _directory(tmp_path, actor="bob@h2")
    assert [(r.node, r.role) for r in again.read_status()] == [("n1", Role.STARTED),
                                                               ("n2", Role.STARTED)]
    assert [r.changes for r in again.read_audit()] == [("3",), ("4",)]


def test_a_failed_change_writes_nothing(tmp_path: Path, writes: list[str]) -> None:
    directory = _directory(tmp_path)
    directory.replace(_config())
    other = _directory(tmp_path, actor="bob@h2")
    before = _file(tmp_path)

    def meddle(config: ClusterConfig) -> ClusterConfig:
        other.modify_entry(directory.layout.cluster_dn, {"pyhaEpoch": "42"})
        return config.model_copy(update={"nodes": (*config.nodes, Node(name="n9"))})

    with pytest.raises(ConcurrentChange):
        directory.apply(meddle)
    assert _file(tmp_path) != before  # the meddling write, and nothing after it
    assert writes == [CONFIG_FILE, CONFIG_FILE]
    # A batch that fails half-way leaves the file as it was.
    with pytest.raises(DirectoryError, match="notAllowedOnNonLeaf"), directory._batch():
        directory._delete(directory.layout.resource_dn("g", "a"))
        directory._delete(directory.layout.container("nodes"))  # n1 is below it
    assert writes == [CONFIG_FILE, CONFIG_FILE]
    assert [r.name for r in directory.load().group("g").resources] == ["a"]


def test_writers_on_the_same_files_see_each_other(tmp_path: Path) -> None:
    first, second = _directory(tmp_path), _directory(tmp_path, actor="bob@h2")
    first.replace(_config())
    second.add_node(Node(name="n2"))
    first.add_node(Node(name="n3"))  # starts from the file with n2 in it
    second.write_audit(AuditRecord.new(1.0, "bob", "modify"))
    first.write_audit(AuditRecord.new(2.0, "alice", "modify"))
    for d in (first, second):
        assert [n.name for n in d.load().nodes] == ["n1", "n2", "n3"]
        assert [r.actor for r in d.read_audit()] == ["bob", "alice"]
    origin = first.origin(Change("add", "node", "n2"))
    assert origin is not None and origin.who == "bob@h2"


def test_a_damaged_records_file_is_a_directory_error(tmp_path: Path) -> None:
    directory = _directory(tmp_path)
    directory.replace(_config())
    (tmp_path / RECORDS_FILE).write_text("[]")
    with pytest.raises(DirectoryError, match=f"{tmp_path / RECORDS_FILE}: format"):
        directory.read_status()


def test_a_write_that_fails_on_disk_writes_nothing_and_the_next_one_works(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = _directory(tmp_path)
    directory.replace(_config())
    record = StatusRecord(resource="a", node="n1", role=Role.STARTED)

    def full(path: Path, body: bytes) -> filestore.FileMark:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(embedded, "write_durably", full)
    with pytest.raises(DirectoryError, match="cannot write: No space left on device"):
        directory.write_status([record])
    monkeypatch.undo()
    assert directory.read_status() == []
    directory.write_status([record])  # creates cn=n1,ou=status again: none was written
    assert _directory(tmp_path, actor="bob@h2").read_status() == [record]
