"""Java reads the cluster's directory through JNDI: plugins through PluginContext.directory()
in the real JVM host (embedded snapshot and OpenLDAP), consoles through the snapshot's
io.pyha.jndi.TreeContextFactory, which must answer as JNDI's LDAP provider does."""

from __future__ import annotations

import logging
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyha.directory.ldap import LdapDirectory
from pyha.directory.tree import Layout
from pyha.jvm.build import java_home, spi_jar
from pyha.jvm.jndi import EMBEDDED_BASE_DN, SNAPSHOT_FILE, write_snapshot
from pyha.model.config import ClusterConfig
from pyha.resources.java import java_runtime, read_ldap_directory
from pyha.resources.registry import Registry
from pyha.server import ClusterServer
from tests.integration.conftest import closing_runtime
from tests.integration.test_directory_jndi import listing_config
from tests.integration.test_jvm_host import needs_jdk

pytestmark = [needs_jdk, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
READER = ROOT / "tests" / "jndi" / "reader"
JDK = java_home()


def _config(cluster: str, *, try_write: bool = False, extra: bool = False,
            epoch: int = 0) -> ClusterConfig:
    reader = "java:test:directory-reader"
    groups: list[dict[str, Any]] = [
        {"name": "web", "resources": [{"name": "app1", "type": reader}]},
        {"name": "db", "resources": [
            {"name": "app2", "type": reader, "params": {"try_write": try_write}}]},
    ]
    if extra:
        groups.append({"name": "extra", "resources": [{"name": "app3", "type": reader}]})
    return ClusterConfig.from_mapping({
        "cluster": {"name": cluster}, "epoch": epoch, "nodes": [{"name": "n1"}],
        "groups": groups})


@pytest.fixture(scope="session")
def java_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.getbasetemp() / "pyha-java-cache"
    cache.mkdir(exist_ok=True)
    return cache


@pytest.fixture
def registry(java_cache: Path, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    monkeypatch.setenv("PYHA_JAVA_CACHE", str(java_cache))
    monkeypatch.setenv("PYHA_JAVA_PLUGIN_PATH", str(READER))
    yield from closing_runtime(Registry.discover(entry_points=False, bundled=False,
                                                 ocf_root=tmp_path / "none"))


def _reports(caplog: pytest.LogCaptureFixture, resource: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == f"pyha.resource.{resource}"]


# ---------------------------------------------------------------- plugins


def test_a_plugin_reads_the_embedded_configuration_from_its_snapshot(
        registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = ClusterServer(_config("emb", try_write=True), registry, state_dir=tmp_path)
    with caplog.at_level(logging.INFO):
        server.probe()
    assert "directory: TreeContext epoch 0 groups web db" in _reports(caplog, "app1")
    assert "same context: true" in _reports(caplog, "app1")
    assert "write: OperationNotSupportedException" in _reports(caplog, "app2")
    snapshot = tmp_path / SNAPSHOT_FILE
    assert stat.S_IMODE(snapshot.stat().st_mode) == 0o600

    server.reconfigure(_config("emb", try_write=True, extra=True, epoch=1))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        server.apply_pending()  # probes the new resource, which sees the new epoch
    assert "directory: TreeContext epoch 1 groups web db extra" in _reports(caplog, "app3")
    assert stat.S_IMODE(snapshot.stat().st_mode) == 0o600


def test_a_plugin_reads_the_ldap_directory_bound_as_the_server(
        registry: Registry, slapd_server: Any, cluster_name: str, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    with LdapDirectory(slapd_server.settings(cluster_name)) as directory:
        directory.replace(_config(cluster_name))
        server = ClusterServer(directory.load(), registry, state_dir=tmp_path)
        with caplog.at_level(logging.DEBUG):
            assert read_ldap_directory(registry.agents(), directory.settings, directory.layout)
            server.probe()
    assert "directory: InitialDirContext epoch 1 groups web db" in _reports(caplog, "app1")
    assert f"Java plugins read the directory {slapd_server.url}" in caplog.text
    assert slapd_server.password not in caplog.text
    assert not (tmp_path / SNAPSHOT_FILE).exists()


@pytest.mark.parametrize("transport", ["ldaps", "starttls"])
def test_a_plugin_reads_the_ldap_directory_over_tls(
        registry: Registry, slapd_server: Any, cluster_name: str, tmp_path: Path, *,
        caplog: pytest.LogCaptureFixture, transport: str) -> None:
    if slapd_server.ca_file is None:
        pytest.skip("no openssl: the session slapd has no TLS")
    tls: dict[str, Any] = {"ca_file": slapd_server.ca_file}
    if transport == "ldaps":
        tls["urls"] = (slapd_server.ldaps_url,)
    else:
        tls["starttls"] = True
    with LdapDirectory(slapd_server.settings(cluster_name, **tls)) as directory:
        directory.replace(_config(cluster_name))
        server = ClusterServer(directory.load(), registry, state_dir=tmp_path)
        read_ldap_directory(registry.agents(), directory.settings, directory.layout)
        with caplog.at_level(logging.INFO):
            server.probe()
    expected = "InitialLdapContext" if transport == "starttls" else "InitialDirContext"
    assert f"directory: {expected} epoch 1 groups web db" in _reports(caplog, "app1")


def test_a_plugin_without_a_directory_gets_none(
        registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = ClusterServer(_config("none"), registry, state_dir=tmp_path)
    runtime = java_runtime(registry.agents())
    assert runtime is not None
    runtime.directory = None
    runtime.host.send_directory()
    with caplog.at_level(logging.INFO):
        server.probe()
    assert "directory: none" in _reports(caplog, "app1")


# ---------------------------------------------------------------- consoles


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ListCluster and TreeCheck compiled; the SPI jar (pyha's JNDI provider) next to them."""
    classes = tmp_path_factory.mktemp("jndi-classes")
    sources = [ROOT / "jndi" / "examples" / "ListCluster.java",
               ROOT / "tests" / "jndi" / "TreeCheck.java"]
    subprocess.run([str(JDK / "bin" / "javac"), "-d", str(classes), *map(str, sources)],
                   check=True, capture_output=True, timeout=120)
    return classes


def _java(classes: Path, *args: str) -> list[str]:
    spi = spi_jar(cache=classes.parent / "pyha-java-cache")
    done = subprocess.run(
        [str(JDK / "bin" / "java"), "-cp", f"{classes}:{spi}", *args],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_list_cluster_reads_the_snapshot_as_it_reads_ldap(
        programs: Path, slapd_server: Any, cluster_name: str, tmp_path: Path) -> None:
    with LdapDirectory(slapd_server.settings(cluster_name)) as directory:
        directory.replace(listing_config(cluster_name))
        config = directory.load()
    ldap = _java(programs, "ListCluster", slapd_server.url, slapd_server.suffix, cluster_name,
                 slapd_server.bind_dn, str(slapd_server.password_file))
    snapshot = tmp_path / SNAPSHOT_FILE
    write_snapshot(snapshot, config, Layout(EMBEDDED_BASE_DN, cluster_name))
    tree = _java(programs, "ListCluster", snapshot.as_uri(), EMBEDDED_BASE_DN, cluster_name,
                 "-", "-")
    assert tree == ldap
    assert ldap[:2] == [f"cluster {cluster_name} epoch 1", "node n2 {0}10.0.0.2:5405"]


def test_the_snapshot_answers_searches_as_ldap_does(
        programs: Path, slapd_server: Any, cluster_name: str, tmp_path: Path) -> None:
    with LdapDirectory(slapd_server.settings(cluster_name)) as directory:
        directory.replace(listing_config(cluster_name))
        config = directory.load()
    cluster_dn = Layout(slapd_server.suffix, cluster_name).cluster_dn
    ldap = _java(programs, "TreeCheck", slapd_server.url, cluster_dn, slapd_server.bind_dn,
                 str(slapd_server.password_file))
    snapshot = tmp_path / SNAPSHOT_FILE
    write_snapshot(snapshot, config, Layout(slapd_server.suffix, cluster_name))
    tree = _java(programs, "TreeCheck", snapshot.as_uri(), cluster_dn)
    assert tree == ldap
    facts = dict(line.split(": ", 1) for line in tree)
    assert facts["groups one level"] == "[[cn=db], [cn=web]]"
    assert facts["argument escaped"] == "[]"
    assert facts["missing"] == "NameNotFoundException"
    assert facts["bad filter"] == "InvalidSearchFilterException"


def test_the_snapshot_refuses_every_write(programs: Path, tmp_path: Path) -> None:
    snapshot = tmp_path / SNAPSHOT_FILE
    write_snapshot(snapshot, listing_config("w"), Layout(EMBEDDED_BASE_DN, "w"))
    lines = _java(programs, "TreeCheck", snapshot.as_uri(), "cn=w,o=pyha", "--writes")
    facts = dict(line.split(": ", 1) for line in lines)
    for write in ("bind", "rebind", "unbind", "rename", "create", "destroy", "modify",
                  "modify op"):
        assert facts[write] == "OperationNotSupportedException", write
    assert facts["still there"] == "web"


def test_a_wrong_password_over_starttls_fails_the_bind_not_the_operation(
        registry: Registry, slapd_server: Any, cluster_name: str, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    if slapd_server.ca_file is None:
        pytest.skip("no openssl: the session slapd has no TLS")
    from pydantic import SecretStr

    settings = slapd_server.settings(cluster_name, starttls=True, ca_file=slapd_server.ca_file)
    with LdapDirectory(settings) as directory:
        directory.replace(_config(cluster_name))
        server = ClusterServer(directory.load(), registry, state_dir=tmp_path)
        wrong = settings.model_copy(update={"password": SecretStr("not-the-password")})
        read_ldap_directory(registry.agents(), wrong, directory.layout)
        with caplog.at_level(logging.INFO):
            server.probe()
    reports = _reports(caplog, "app1")
    assert any("StartTLS" in r and "AuthenticationException" in r for r in reports), reports
    assert "directory: none" in reports
    assert "not-the-password" not in caplog.text
