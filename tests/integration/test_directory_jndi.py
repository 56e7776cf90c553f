"""A Java program with only the JDK (JNDI) reads the cluster pyha keeps in OpenLDAP."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pyha.directory.ldap import LdapDirectory
from pyha.model.config import ClusterConfig

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "jndi" / "examples" / "ListCluster.java"
JDK = Path(os.environ.get("JAVA_HOME", "/usr/lib/jvm/java-17-openjdk-amd64"))


def _tool(name: str) -> str | None:
    local = JDK / "bin" / name
    return str(local) if local.exists() else shutil.which(name)


pytestmark = pytest.mark.skipif(_tool("javac") is None or _tool("java") is None,
                                reason="no JDK (javac, java)")


def listing_config(cluster: str) -> ClusterConfig:
    """Two nodes and two groups, one resource stopped: what the JNDI listings show."""
    return ClusterConfig.from_mapping({
        "cluster": {"name": cluster}, "nodes": [
            {"name": "n2", "addresses": ["10.0.0.2:5405"]},
            {"name": "n1", "addresses": ["10.0.0.1:5405", "10.1.0.1:5405"]}],
        "groups": [
            {"name": "web", "resources": [
                {"name": "vip", "type": "ocf:heartbeat:IPaddr2",
                 "params": {"ip": "192.0.2.10", "cidr_netmask": 24}},
                {"name": "tomcat", "type": "tomcat", "meta": {"target_role": "stopped"}}]},
            {"name": "db", "resources": [{"name": "pg", "type": "postgresql"}]}]})


def test_list_cluster_through_jndi(slapd_server: Any, cluster_name: str,
                                   tmp_path: Path) -> None:
    with LdapDirectory(slapd_server.settings(cluster_name)) as directory:
        directory.replace(listing_config(cluster_name))
    classes = tmp_path / "classes"
    subprocess.run([_tool("javac"), "-d", str(classes), str(SOURCE)], check=True,
                   capture_output=True, timeout=120)
    done = subprocess.run(
        [_tool("java"), "-cp", str(classes), "ListCluster", slapd_server.url,
         slapd_server.suffix, cluster_name, slapd_server.bind_dn,
         str(slapd_server.password_file)],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"cluster {cluster_name} epoch 1",
        "node n2 {0}10.0.0.2:5405",
        "node n1 {0}10.0.0.1:5405 {1}10.1.0.1:5405",
        "group web",
        "  resource vip type=ocf:heartbeat:IPaddr2",
        "    cidr_netmask=24",
        "    ip=192.0.2.10",
        "  resource tomcat type=tomcat target-role=stopped",
        "group db",
        "  resource pg type=postgresql",
    ]
