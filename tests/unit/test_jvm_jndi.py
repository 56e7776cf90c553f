"""The JNDI snapshot of an embedded store: its content, its mode, and when it is rewritten."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from pydantic import SecretStr

from pyha.directory.bootstrap import DirectorySettings
from pyha.directory.tree import Layout
from pyha.jvm.jndi import (
    EMBEDDED_BASE_DN,
    SNAPSHOT_FILE,
    LdapSource,
    SnapshotSource,
    snapshot,
    write_snapshot,
)
from pyha.model.config import ClusterConfig


def _config(epoch: int = 0, group: str = "web") -> ClusterConfig:
    return ClusterConfig.from_mapping({
        "cluster": {"name": "c"}, "epoch": epoch, "nodes": [{"name": "n1"}],
        "groups": [{"name": group, "resources": [
            {"name": "vip", "type": "dummy", "params": {"ip": "192.0.2.1"}}]}]})


def test_the_snapshot_holds_the_entries_the_ldap_backend_stores() -> None:
    data = snapshot(_config(epoch=3), Layout(EMBEDDED_BASE_DN, "c"))
    assert data["format"] == "pyha-jndi-tree-1"
    assert data["cluster_dn"] == "cn=c,o=pyha"
    assert data["epoch"] == 3
    assert "pyhaParameter" in data["case_exact"]
    entries = {e["dn"]: e["attributes"] for e in data["entries"]}
    assert entries["o=pyha"]["objectClass"] == ["organization"]
    assert entries["cn=c,o=pyha"]["pyhaEpoch"] == ["3"]
    vip = entries["cn=vip,cn=web,ou=groups,cn=c,o=pyha"]
    assert vip["pyhaType"] == ["dummy"]
    assert vip["pyhaParameter"] == ["ip=192.0.2.1"]


def test_the_snapshot_file_is_private_even_over_an_open_one(tmp_path: Path) -> None:
    path = tmp_path / SNAPSHOT_FILE
    path.write_text("{}")
    path.chmod(0o644)
    (tmp_path / f".{SNAPSHOT_FILE}.tmp").write_text("")
    (tmp_path / f".{SNAPSHOT_FILE}.tmp").chmod(0o644)
    write_snapshot(path, _config(), Layout(EMBEDDED_BASE_DN, "c"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["cluster_dn"] == "cn=c,o=pyha"


def test_a_snapshot_is_rewritten_only_when_the_configuration_changed(tmp_path: Path) -> None:
    current = [_config()]
    source = SnapshotSource(lambda: current[0], tmp_path)
    assert source.message() == {"kind": "tree", "path": str(tmp_path / SNAPSHOT_FILE)}
    first = source.path.stat().st_ino
    current[0] = _config()  # equal content, another object
    source.refresh()
    assert source.path.stat().st_ino == first
    current[0] = _config(epoch=1, group="db")
    source.refresh()
    assert source.path.stat().st_ino != first
    assert json.loads(source.path.read_text())["epoch"] == 1
    source.path.unlink()
    source.refresh()  # a removed snapshot comes back
    assert source.path.is_file()


def test_the_ldap_source_carries_what_jndi_needs() -> None:
    settings = DirectorySettings(urls=("ldaps://a:636", "ldaps://b:636"), base_dn="dc=x",
                                 bind_dn="cn=admin,dc=x", password=SecretStr("pw"),
                                 ca_file=Path("/etc/ca.crt"), timeout=2.5)
    message = LdapSource(settings, Layout("dc=x", "c")).message()
    assert message == {
        "kind": "ldap", "urls": ["ldaps://a:636", "ldaps://b:636"], "cluster_dn": "cn=c,dc=x",
        "bind_dn": "cn=admin,dc=x", "password": "pw", "starttls": False,
        "ca_file": "/etc/ca.crt", "timeout_ms": 2500}
