"""The ldap backend against a real slapd: TLS, binds, discovery, watch modes, cookies, size."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyha.directory.ldap import LdapDirectory
from pyha.errors import ConfigError, DirectoryError
from pyha.model.config import ClusterConfig
from pyha.testing.waiting import eventually


def small(name: str, resources: int = 2) -> ClusterConfig:
    return ClusterConfig.from_mapping({
        "cluster": {"name": name}, "nodes": [{"name": "n1"}],
        "groups": [{"name": "g", "resources": [
            {"name": f"r{i}", "type": "dummy"} for i in range(resources)]}]})


wait_for = eventually


class Collector:
    """Configurations a watch handed over."""

    def __init__(self) -> None:
        self.configs: list[ClusterConfig] = []
        self.rejected: list[ConfigError] = []
        self.lock = threading.Lock()

    def __call__(self, config: ClusterConfig) -> None:
        with self.lock:
            self.configs.append(config)

    def last(self) -> ClusterConfig:
        with self.lock:
            return self.configs[-1]


def test_starttls_with_the_test_ca(slapd_server: Any, cluster_name: str) -> None:
    if slapd_server.ca_file is None:
        pytest.skip("openssl is not installed: no test certificates")
    with LdapDirectory(slapd_server.settings(cluster_name, starttls=True,
                                             ca_file=slapd_server.ca_file)) as good:
        assert good.replace(small(cluster_name)) == good.load()
        watch = good.watch(lambda config: None, known=good.load())
        try:
            assert watch.connected.wait(10)  # the watcher's connection starts TLS too
        finally:
            watch.stop()
    # the system's CAs do not know the test CA: the certificate is refused
    with LdapDirectory(slapd_server.settings(cluster_name, starttls=True)) as untrusted, \
            pytest.raises(DirectoryError, match=r"StartTLS|certificate|CERTIFICATE"):
        untrusted.load()


def test_ldaps_with_the_test_ca(slapd_server: Any, cluster_name: str) -> None:
    if slapd_server.ldaps_url is None:
        pytest.skip("openssl is not installed: no test certificates")
    settings = slapd_server.settings(cluster_name, urls=(slapd_server.ldaps_url,),
                                     ca_file=slapd_server.ca_file)
    with LdapDirectory(settings) as d:
        assert d.replace(small(cluster_name)) == d.load()
        watch = d.watch(lambda config: None, known=d.load())
        try:
            assert watch.connected.wait(10)  # the watcher speaks TLS too
        finally:
            watch.stop()


def test_a_wrong_password_is_reported_without_the_password(slapd_server: Any,
                                                           cluster_name: str) -> None:
    from pydantic import SecretStr

    with LdapDirectory(slapd_server.settings(cluster_name, password=SecretStr("guess-again"))
                       ) as bad, pytest.raises(DirectoryError) as caught:
        bad.load()
    assert "invalidCredentials" in str(caught.value)
    assert "guess-again" not in str(caught.value)


def test_the_cluster_is_found_when_it_is_the_only_one(slapd_server: Any,
                                                      cluster_name: str) -> None:
    base = f"ou={cluster_name},{slapd_server.suffix}"
    slapd_server.ldap_tool("ldapadd", text=f"dn: {base}\nobjectClass: organizationalUnit\n"
                                           f"ou: {cluster_name}\n")
    with LdapDirectory(slapd_server.settings(cluster_name, base_dn=base)) as d:
        d.replace(small(cluster_name))
    with LdapDirectory(slapd_server.settings(None, base_dn=base)) as found:
        assert found.layout.cluster == cluster_name
    with LdapDirectory(slapd_server.settings(f"{cluster_name}b", base_dn=base)) as d:
        d.replace(small(f"{cluster_name}b"))
    with pytest.raises(ConfigError, match=f"name the cluster.*{cluster_name}, {cluster_name}b"):
        LdapDirectory(slapd_server.settings(None, base_dn=base))


def test_polling_notices_changes_but_not_status_writes(slapd_server: Any,
                                                       cluster_name: str) -> None:
    from pyha.directory.records import StatusRecord
    from pyha.model.status import Role

    d = LdapDirectory(slapd_server.settings(cluster_name, watch="poll", poll_interval=0.1))
    d.replace(small(cluster_name))
    got = Collector()
    watch = d.watch(got, known=d.load())
    try:
        assert watch.connected.wait(10)
        assert watch.mode == "poll"
        checks = watch.follower.checks
        d.write_status([StatusRecord(resource="r0", node="n1", role=Role.STARTED)])
        time.sleep(0.5)
        assert watch.follower.checks == checks  # status is not configuration
        slapd_server.modify(f"dn: {d.layout.resource_dn('g', 'r1')}\nchangetype: modify\n"
                            "replace: pyhaTargetRole\npyhaTargetRole: stopped\n")
        assert wait_for(lambda: bool(got.configs))
        assert got.last().resource("r1").meta.target_role == "stopped"
    finally:
        watch.stop()
        d.close()


def test_a_restarted_watcher_resumes_from_its_cookie_and_sees_deletes(
        slapd_server: Any, cluster_name: str, tmp_path: Path) -> None:
    settings = slapd_server.settings(cluster_name, state_dir=tmp_path)
    d = LdapDirectory(settings)
    d.replace(small(cluster_name, resources=3))
    known = d.load()
    first = d.watch(Collector(), known=known)
    assert first.connected.wait(10)
    first.stop()
    d.close()
    assert (tmp_path / "directory.cookie").exists()
    slapd_server.ldap_tool("ldapdelete", d.layout.resource_dn("g", "r2"))
    got = Collector()
    again = LdapDirectory(settings)
    second = again.watch(got, known=known)
    try:
        assert wait_for(lambda: bool(got.configs))
        assert [r.name for r in got.last().group("g").resources] == ["r0", "r1"]
    finally:
        second.stop()
        again.close()


def test_patches_from_sync_events_give_the_same_configuration_as_a_full_load(
        slapd_server: Any, cluster_name: str) -> None:
    d = LdapDirectory(slapd_server.settings(cluster_name))
    d.replace(small(cluster_name, resources=3))
    got = Collector()
    watch = d.watch(got, known=d.load())
    try:
        assert watch.connected.wait(10)
        group = d.layout.group_dn("g")
        slapd_server.modify(f"dn: cn=r9,{group}\nchangetype: add\nobjectClass: pyhaResource\n"
                            "cn: r9\npyhaType: dummy\npyhaPosition: 9\n")
        slapd_server.ldap_tool("ldapdelete", f"cn=r0,{group}")
        slapd_server.modify(f"dn: cn=r1,{group}\nchangetype: modify\nreplace: pyhaParameter\n"
                            "pyhaParameter: port=8080\n")
        assert wait_for(lambda: bool(got.configs) and got.last().resource("r1").params == {
            "port": 8080} and "r9" in [r.name for _, r in got.last().resources()])
        with LdapDirectory(slapd_server.settings(cluster_name)) as fresh:
            assert got.last() == fresh.load()
    finally:
        watch.stop()
        d.close()


@pytest.mark.slow
def test_ten_thousand_resources_load_and_a_change_is_still_seen(
        slapd_server: Any, cluster_name: str, tmp_path: Path) -> None:
    d = LdapDirectory(slapd_server.settings(cluster_name))
    d.replace(small(cluster_name))
    groups = d.layout.container("groups")
    lines = []
    for g in range(1000):
        lines.append(f"dn: cn=big{g},{groups}\nobjectClass: pyhaGroup\npyhaPosition: {g + 1}\n")
        lines += [f"dn: cn=big{g}r{r},cn=big{g},{groups}\nobjectClass: pyhaResource\n"
                  f"pyhaType: dummy\npyhaPosition: {r}\npyhaParameter: delay=0\n"
                  "pyhaOperation: monitor interval=10s\n" for r in range(10)]
    (tmp_path / "big.ldif").write_text("\n".join(lines))
    slapd_server.ldap_tool("ldapadd", "-f", str(tmp_path / "big.ldif"))
    config = d.load()
    assert sum(len(g.resources) for g in config.groups) == 10_002
    got = Collector()
    watch = d.watch(got, known=config)
    try:
        assert watch.connected.wait(30)
        slapd_server.modify(f"dn: cn=big500r5,cn=big500,{groups}\nchangetype: modify\n"
                            "replace: pyhaTargetRole\npyhaTargetRole: stopped\n")
        assert wait_for(lambda: bool(got.configs), 30)
        assert got.last().resource("big500r5").meta.target_role == "stopped"
    finally:
        watch.stop()
        d.close()


def test_the_shipped_base_tree_loads_with_ldapadd(new_slapd: Callable[..., Any]) -> None:
    slapd = new_slapd()
    tree = Path(__file__).resolve().parents[2] / "jndi" / "base-tree.ldif"
    done = slapd.ldap_tool("ldapadd", "-c", "-f", str(tree), check=False)
    assert done.returncode in (0, 68), done.stderr  # 68: the suffix entry exists already
    with LdapDirectory(slapd.settings("pyha")) as d:
        assert [n.name for n in d.load().nodes] == ["node1"]
