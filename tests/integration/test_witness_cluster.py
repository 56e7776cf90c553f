"""A two-node cluster whose tiebreaker is the LDAP witness (a real slapd): when the node
running the group dies, the survivor wins the witness, fences its peer and takes over."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyha.directory.bootstrap import write_bootstrap
from pyha.directory.ldap import LdapDirectory
from pyha.model.config import ClusterConfig
from tests.cluster.harness import LocalCluster, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def pair(tmp_path: Path, slapd_server: Any) -> Iterator[LocalCluster]:
    bootstrap = tmp_path / "witness.toml"
    cluster = LocalCluster(tmp_path, size=2, fence="process-tree",
                           options=('tiebreaker = "witness"',),
                           args=("--witness", str(bootstrap)))
    tls: dict[str, Any] = {}
    if slapd_server.ca_file is not None:
        tls = {"starttls": True, "ca_file": slapd_server.ca_file}
    settings = slapd_server.settings(cluster.name, **tls)
    with LdapDirectory(settings) as directory:  # the witness lives under the cluster's entry
        directory.replace(ClusterConfig.from_toml(cluster.config))
    write_bootstrap(bootstrap, settings, slapd_server.password_file)
    yield from cluster.serving()


def test_without_the_witness_file_the_server_refuses_to_start(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, size=2, fence="process-tree",
                           options=('tiebreaker = "witness"',))
    try:
        cluster.start("n1")
        assert cluster.procs["n1"].wait(timeout=60) != 0
    finally:
        cluster.close()
    assert "witness needs the LDAP directory" in cluster.log("n1")


def test_the_survivor_wins_the_witness_and_takes_over(pair: LocalCluster) -> None:
    wait_for(lambda: len(pair.running_on()) == 1, 40, "the service starts on one node", pair)
    (first,) = pair.running_on()
    other = next(n for n in pair.nodes if n != first)
    pair.kill_server(first)
    wait_for(lambda: pair.running_on() == [other], 40, f"the service runs on {other}", pair)
    # Elected with the witness's vote, or, already coordinator, it renews its lease
    # through the witness: either way the log says so (just after the fence, maybe).
    wait_for(lambda: "tiebreak (witness)" in pair.log(other), 10,
             "the survivor holds the lease through the witness", pair)
    assert f"fence {first}" in pair.log(other)
