"""The embedded directory across processes: concurrent writers lose nothing, a watch sees
another process's writes, a writer that holds the lock too long is reported; and
`pyha directory export|import|status` on a node's state directory."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pyha.directory.embedded import LOCK_FILE, ConfigStore, EmbeddedDirectory
from pyha.directory.filestore import file_lock
from pyha.directory.records import AuditRecord, StatusRecord
from pyha.errors import DirectoryError
from pyha.model.config import ClusterConfig, Node
from pyha.model.status import Role
from pyha.testing.waiting import eventually
from tests.integration.test_directory_cli import CLUSTER_FILE, pyha

WRITER = """
import sys, time
from pathlib import Path
from pyha.directory.embedded import EmbeddedDirectory
from pyha.directory.records import AuditRecord
from pyha.directory.store import ConcurrentChange
from pyha.model.config import Node

state, prefix, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
deadline = time.monotonic() + 30
while not (state / "go").exists() and time.monotonic() < deadline:
    time.sleep(0.001)
directory = EmbeddedDirectory(state, "c", actor=f"writer-{prefix}")
for i in range(count):
    for _ in range(500):
        try:
            directory.add_node(Node(name=f"{prefix}{i}"))
            break
        except ConcurrentChange:
            continue
    else:
        sys.exit(f"{prefix}{i}: lost the epoch race 500 times")
    directory.write_audit(AuditRecord.new(time.time(), prefix, "modify",
                                          changes=(f"{prefix}{i}",)))
"""

SAVER = """
import sys
from pathlib import Path
from pyha.directory.embedded import ConfigStore, from_json
import json

ConfigStore(Path(sys.argv[1]), actor="pyha@n2").save(from_json(json.loads(sys.argv[2])))
"""


def _config(epoch: int = 1) -> ClusterConfig:
    return ClusterConfig.from_mapping({"cluster": {"name": "c"}, "epoch": epoch,
                                       "nodes": [{"name": "n1"}]})


_wait = eventually


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    EmbeddedDirectory(tmp_path, "c").replace(_config())
    count = 15
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), prefix,
                                 str(count)], stderr=subprocess.PIPE, text=True)
               for prefix in ("a", "b")]
    try:
        (tmp_path / "go").touch()
        for writer in writers:
            _, err = writer.communicate(timeout=120)
            assert writer.returncode == 0, err
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
    directory = EmbeddedDirectory(tmp_path, "c")
    config = directory.load()
    names = {n.name for n in config.nodes}
    assert names == {"n1"} | {f"{p}{i}" for p in "ab" for i in range(count)}
    assert config.epoch == 1 + 2 * count
    audited = [r.changes[0] for r in directory.read_audit()]
    assert sorted(audited) == sorted(f"{p}{i}" for p in "ab" for i in range(count))


def test_a_watch_sees_another_process_save_the_configuration(tmp_path: Path) -> None:
    directory = EmbeddedDirectory(tmp_path, "c", poll_interval=0.05)
    directory.replace(_config())
    got: list[ClusterConfig] = []
    watch = directory.watch(got.append, known=directory.load())
    try:
        new = _config(epoch=5).model_copy(update={"nodes": (Node(name="n1"),
                                                            Node(name="n2"))})
        subprocess.run([sys.executable, "-c", SAVER, str(tmp_path), new.model_dump_json()],
                       check=True, timeout=60)
        assert _wait(lambda: bool(got))
        assert got[-1] == new
        directory.add_node(Node(name="n3"))  # its own writes are seen too
        assert _wait(lambda: len(got) == 2)
        assert [n.name for n in got[-1].nodes] == ["n1", "n2", "n3"]
    finally:
        watch.stop()
        directory.close()


def test_a_writer_that_holds_the_lock_too_long_is_reported(tmp_path: Path) -> None:
    directory = EmbeddedDirectory(tmp_path, "c", lock_timeout=0.2)
    directory.replace(_config())
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with file_lock(tmp_path / LOCK_FILE):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(10)
        with pytest.raises(DirectoryError, match=r"held this lock for more than 0\.2 s"):
            directory.add_node(Node(name="n2"))
    finally:
        release.set()
        thread.join(10)
    directory.add_node(Node(name="n2"))
    stored = ConfigStore(tmp_path).load()
    assert stored is not None and [n.name for n in stored.nodes] == ["n1", "n2"]


def test_the_cli_exports_imports_and_shows_a_nodes_embedded_directory(tmp_path: Path) -> None:
    toml = tmp_path / "cluster.toml"
    toml.write_text(CLUSTER_FILE)
    config = ClusterConfig.from_toml(toml).model_copy(update={"epoch": 3})
    node = tmp_path / "n1"
    ConfigStore(node).save(config)  # as the cluster's replication writes it
    directory = EmbeddedDirectory(node)
    directory.write_status([StatusRecord(resource="first", node="n1", role=Role.STARTED)])
    directory.write_audit(AuditRecord.new(1_767_225_600.0, "alice", "modify",
                                          changes=("resource first added",)))
    ldif = tmp_path / "c1.ldif"
    pyha("directory", "export", "--state-dir", str(node), "-o", str(ldif))
    text = ldif.read_text()
    assert "dn: cn=first,cn=app,ou=groups,cn=c1,o=pyha" in text
    assert "pyhaParameter: delay=10ms" in text and "pyhaResourceStatus" not in text
    everything = pyha("directory", "export", "--state-dir", str(node), "--all").stdout
    assert "objectClass: pyhaResourceStatus" in everything
    assert "objectClass: pyhaAuditEntry" in everything
    status = pyha("directory", "status", "--state-dir", str(node), "--audit", "5").stdout
    assert "first on n1: started" in status and "modify by alice" in status

    fresh = tmp_path / "n2"
    done = pyha("directory", "import", str(ldif), "--state-dir", str(fresh), "--embedded")
    assert "create cluster c1" in done.stdout and "epoch 3" in done.stdout
    assert ConfigStore(fresh).load() == config
    assert pyha("directory", "import", str(ldif), "--state-dir", str(fresh),
                "--dry-run").stdout.strip() == "no changes"
    other = tmp_path / "other.toml"
    other.write_text(CLUSTER_FILE.replace('name = "c1"', 'name = "c2"'))
    refused = pyha("directory", "import", str(other), "--state-dir", str(fresh), check=False)
    assert refused.returncode == 2 and "cluster 'c2'" in refused.stderr
    assert ConfigStore(fresh).load() == config
