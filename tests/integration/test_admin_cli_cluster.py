"""The `pyha` configuration commands against a running three-node cluster, as a script
would use them: output, JSON, and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyha.admin.ca import Issued
from tests.cluster.admins import Admins, admin_cluster
from tests.cluster.harness import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def admins(tmp_path: Path) -> Iterator[Admins]:
    with admin_cluster(tmp_path) as made:
        yield made


def run(admins: Admins, node: str, who: Issued, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYHA_ADMIN": admins.addresses[node], "PYHA_ADMIN_CA": str(who.ca),
           "PYHA_ADMIN_CERT": str(who.cert), "PYHA_ADMIN_KEY": str(who.key),
           "PYHA_ADMIN_CONFIG": ""}
    env.pop("PYHA_ADMIN_CONFIG")
    return subprocess.run([sys.executable, "-m", "pyha.cli", *args], env=env, text=True,
                          capture_output=True, timeout=180, check=False)


def test_configuration_commands_against_a_running_cluster(admins: Admins,
                                                           tmp_path: Path) -> None:
    c = admins.cluster
    wait_for(admins.settled, 60, "every node reports the group running", c)
    boss, alice = admins.root, admins.alice

    added = run(admins, "n2", boss, "resource", "add", "svc", "extra", "--type", "dummy",
                "--param", "delay=0", "--json")
    assert added.returncode == 0, added.stderr
    assert sorted(json.loads(added.stdout)["acked"]) == ["n1", "n2", "n3"]
    listed = run(admins, "n3", alice, "resource", "list")
    assert listed.returncode == 0 and "extra" in listed.stdout and "svc" in listed.stdout
    shown = json.loads(run(admins, "n1", alice, "resource", "show", "extra", "--json").stdout)
    assert shown["params"] == {"delay": 0} and shown["group"] == "svc"

    bad = run(admins, "n1", boss, "resource", "update", "extra", "--set",
              'operations=[{"name": "monitor", "interval": "soon"}]')
    assert bad.returncode == 1
    assert "operations[0].interval: 'soon' is not a duration" in bad.stderr
    refused = run(admins, "n1", alice, "resource", "remove", "extra")
    assert refused.returncode == 1 and "needs the admin role" in refused.stderr
    usage = run(admins, "n1", boss, "resource", "add", "svc", "x", "--param", "novalue")
    assert usage.returncode == 2 and "NAME=VALUE" in usage.stderr

    definition = tmp_path / "group.toml"
    definition.write_text('name = "side"\n[[resources]]\nname = "side-a"\ntype = "dummy"\n')
    assert run(admins, "n1", boss, "group", "add", "--file", str(definition)).returncode == 0
    assert "side-a" in run(admins, "n2", alice, "group", "list").stdout
    constraint = run(admins, "n3", boss, "constraint", "add", "--set", "kind=colocation",
                     "--set", "id=apart", "--set", "group=side", "--set", "with_group=svc",
                     "--set", "score=-100")
    assert constraint.returncode == 0, constraint.stderr
    assert "apart" in run(admins, "n1", alice, "constraint", "list").stdout
    assert run(admins, "n1", boss, "constraint", "update", "apart", "--set",
               "score=-200").returncode == 0
    shown = json.loads(run(admins, "n2", alice, "constraint", "show", "apart").stdout)
    assert shown["score"] == -200

    status = admins.status("n1")
    assert status is not None
    where = next(g.node for g in status.groups if g.name == "svc")
    target = next(n for n in c.nodes if n != where)
    moved = run(admins, "n1", alice, "move", "svc", target, "--timeout", "60")
    assert moved.returncode == 0, moved.stderr
    assert f"svc runs on {target}" in moved.stdout
    assert c.running_on() == [target]
    assert "move-svc" in run(admins, "n2", alice, "constraint", "list").stdout
    assert run(admins, "n2", alice, "unmove", "svc").returncode == 0
    simulated = run(admins, "n3", alice, "simulate", "--node-down", target)
    assert simulated.returncode == 0 and "svc" in simulated.stdout

    for args in (("constraint", "remove", "apart"), ("group", "remove", "side"),
                 ("resource", "remove", "extra")):
        done = run(admins, "n2", boss, *args)
        assert done.returncode == 0, done.stderr
    missing = run(admins, "n1", alice, "group", "show", "side")
    assert missing.returncode == 1 and "no group named 'side'" in missing.stderr


def test_reading_and_operating_commands_against_a_running_cluster(admins: Admins) -> None:
    c = admins.cluster
    wait_for(admins.settled, 60, "every node reports the group running", c)
    alice = admins.alice
    shown = run(admins, "n2", alice, "status", "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    where = report["groups"][0]["node"]
    assert report["coordinator"] and [m for m in report["members"]] == ["n1", "n2", "n3"]
    table = run(admins, "n3", alice, "status")
    assert table.returncode == 0 and "svc" in table.stdout and "guard" in table.stdout
    assert "svc" in run(admins, "n1", alice, "explain", "--group", "svc").stdout
    history = run(admins, "n1", alice, "history", "guard", "--json")
    assert any(h["operation"] == "start" and h["node"] == where
               for h in json.loads(history.stdout))
    cleaned = run(admins, "n3", alice, "cleanup", "guard")
    assert cleaned.returncode == 0 and "cleaned up guard on n1, n2, n3" in cleaned.stdout
    assert run(admins, "n2", alice, "whoami").stdout.strip() == "alice (operator) on n2"
    other = next(n for n in c.nodes if n != where)
    assert run(admins, other, alice, "node", "standby", where).returncode == 0
    wait_for(lambda: (r := admins.status(other)) is not None
             and r.groups[0].node not in (None, where), 40, "the group leaves", c)
    assert run(admins, other, alice, "node", "online", where).returncode == 0
    assert run(admins, "n1", alice, "maintenance", "on").returncode == 0
    assert json.loads(run(admins, "n3", alice, "status", "--json").stdout)["maintenance"]
    assert run(admins, "n1", alice, "maintenance", "off").returncode == 0
    audit = run(admins, other, alice, "audit", "--json")
    assert {"standby", "online"} <= {a["method"] for a in json.loads(audit.stdout)}
    refused = run(admins, "n1", admins.root, "status", "--connect", "127.0.0.1:1")
    assert refused.returncode == 3  # nothing listens there
