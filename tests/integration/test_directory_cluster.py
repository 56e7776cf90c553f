"""Three cluster servers on one OpenLDAP directory: the group runs, the coordinator writes
where it runs under ou=status (ldapsearch shows it), and an ldapadd of a location
preference, made straight in LDAP, makes the cluster move the group; an ldapmodify of
that preference moves it again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyha.directory.bootstrap import write_bootstrap
from pyha.directory.embedded import ConfigStore
from pyha.directory.ldap import LdapDirectory
from pyha.directory.ldif import write_ldif
from pyha.directory.schema import constraint_to_entry
from pyha.model.config import ClusterConfig, LocationConstraint
from pyha.model.status import Role
from tests.cluster.harness import LocalCluster, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def on_ldap(tmp_path: Path, slapd_server: Any) -> Iterator[tuple[LocalCluster, LdapDirectory]]:
    bootstrap = tmp_path / "bootstrap.toml"
    cluster = LocalCluster(tmp_path, fence="process-tree", bootstrap=bootstrap)
    settings = slapd_server.settings(cluster.name)
    directory = LdapDirectory(settings)
    directory.replace(ClusterConfig.from_toml(cluster.config))
    write_bootstrap(bootstrap, settings, slapd_server.password_file)
    try:
        for running in cluster.serving():
            yield running, directory
    finally:
        directory.close()


def test_a_cluster_on_ldap_writes_status_and_follows_an_ldapadd(
        on_ldap: tuple[LocalCluster, LdapDirectory], slapd_server: Any) -> None:
    cluster, directory = on_ldap
    wait_for(lambda: len(cluster.running_on()) == 1, 60, "the group starts on one node",
             cluster)
    (where,) = cluster.running_on()

    def status_says_started() -> bool:
        return any(r.resource == "guard" and r.node == where and r.role is Role.STARTED
                   for r in directory.read_status())

    wait_for(status_says_started, 30, "ou=status shows the group where it runs", cluster)
    wait_for(lambda: [(r.node, r.online) for r in directory.read_node_status()] ==
             [(n, True) for n in cluster.nodes], 30, "ou=status shows every node online",
             cluster)
    found = slapd_server.ldap_tool("ldapsearch", "-LLL", "-b",
                                   f"ou=status,{directory.layout.cluster_dn}", "(cn=*)")
    assert "guard" in found.stdout and where in found.stdout

    target = next(n for n in cluster.nodes if n != where)
    prefer = LocationConstraint(id="prefer-target", group="svc", node=target, score=10_000)
    ldif = write_ldif([constraint_to_entry(prefer, directory.layout)])
    slapd_server.ldap_tool("ldapadd", text=ldif)  # straight into LDAP, not through pyha
    wait_for(lambda: cluster.running_on() == [target], 40, f"the group moves to {target}",
             cluster)
    audit = directory.read_audit()  # the coordinator says who changed what
    assert any("prefer-target" in " ".join(a.subjects) and
               a.actor.lower() == slapd_server.bind_dn.lower() for a in audit), audit
    epoch = directory.load().epoch
    wait_for(lambda: all((s := ConfigStore(cluster.state_dir(n)).load()) is not None
                         and s.epoch == epoch for n in cluster.nodes), 20,
             "every node has the directory's configuration on disk", cluster)

    # An ldapmodify of that preference's node moves the group again.
    third = next(n for n in cluster.nodes if n not in (where, target))
    dn = constraint_to_entry(prefer, directory.layout).dn
    slapd_server.ldap_tool("ldapmodify", text=f"dn: {dn}\nchangetype: modify\n"
                                              f"replace: pyhaNodeName\npyhaNodeName: {third}\n")
    wait_for(lambda: cluster.running_on() == [third], 40, f"the group moves to {third}",
             cluster)
