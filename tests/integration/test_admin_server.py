"""A real single-node cluster server with its admin endpoint, driven from the typed client
and from the `pyha` command: status, explain, history, audit, cleanup and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyha.admin.auth import AdminRole
from pyha.admin.ca import CertificateAuthority, Issued
from pyha.admin.client import AdminClient
from pyha.admin.errors import NotFound, PermissionDenied
from pyha.admin.report import StatusReport
from pyha.admin.target import AdminSettings, serve_admin
from pyha.errors import ConfigError
from pyha.model.config import ClusterConfig
from pyha.ports import free_port
from pyha.resources.registry import Registry
from pyha.server import ClusterServer
from pyha.testing.dummy import clear_knobs, default_state_path, set_knobs
from pyha.testing.waiting import eventually


@dataclass
class Running:
    server: ClusterServer
    address: str
    users: dict[str, Issued]
    state_dir: Path

    def client(self, user: str = "alice") -> AdminClient:
        issued = self.users[user]
        return AdminClient(self.address, issued.ca, issued.cert, issued.key, timeout=20)

    def status(self) -> StatusReport:
        with self.client() as admin:
            return admin.status()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    ca = CertificateAuthority.init(tmp_path / "ca")
    state_dir = tmp_path / "state"
    ca.issue("n1", AdminRole.VIEWER, server=True, out=state_dir / "admin")
    address = f"127.0.0.1:{free_port()}"
    (state_dir / "admin" / "admin.toml").write_text(f'address = "{address}"\n')
    users = {name: ca.issue(name, role, out=tmp_path / name)
             for name, role in (("alice", AdminRole.OPERATOR), ("bob", AdminRole.VIEWER))}
    config = ClusterConfig.from_mapping({
        "cluster": {"name": "t", "cycle_interval": "200ms", "state_dir": str(state_dir)},
        "nodes": [{"name": "n1"}],
        "groups": [{"name": "web", "resources": [
            {"name": "ip", "type": "dummy",
             "operations": [{"name": "monitor", "interval": "300ms"}],
             "meta": {"migration_threshold": 1}},
            {"name": "app", "type": "dummy"}]}]})
    server = ClusterServer(config, Registry.discover([]), state_dir=state_dir)
    stop = threading.Event()
    thread = threading.Thread(target=server.run, args=(stop,), name="test server")
    thread.start()
    run = Running(server, address, users, state_dir)
    try:
        assert eventually(lambda: _running(run), 15), "the group never started"
        yield run
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive()


def _running(run: Running) -> bool:
    try:
        return run.status().groups[0].state == "running"
    except Exception:
        return False


def test_status_and_explain_show_the_running_group(running: Running) -> None:
    status = running.status()
    assert (status.cluster, status.answered_by, status.coordinator) == ("t", "n1", "n1")
    assert [(g.name, g.node, g.state) for g in status.groups] == [("web", "n1", "running")]
    assert {r.name: r.role for r in status.resources} == {"ip": "started", "app": "started"}
    with running.client() as admin:
        assert admin.explain().text.startswith("web: runs on n1")
        starts = [h for h in admin.history() if h.operation == "start"]
        assert [h.resource for h in starts] == ["ip", "app"]


def test_a_failure_is_shown_and_cleanup_brings_the_group_back(running: Running) -> None:
    knobs = default_state_path(running.state_dir, "ip")
    set_knobs(knobs, fail_on=["monitor"], fail_code=7)
    assert eventually(lambda: running.status().resources[0].fail_counts.get("n1", 0) >= 1, 15)
    assert eventually(lambda: running.status().groups[0].state != "running", 15)
    clear_knobs(knobs)
    with running.client("bob") as bob, pytest.raises(PermissionDenied):
        bob.cleanup("ip")
    with running.client() as alice:
        result = alice.cleanup("ip", node="n1")
        assert result.cleared >= 1
        with pytest.raises(NotFound):
            alice.cleanup("ip", node="n2")
    assert eventually(lambda: running.status().resources[0].fail_counts == {}, 15)
    assert eventually(lambda: running.status().groups[0].state == "running", 15)
    with running.client() as alice:
        audit = [(e.who, e.method, e.result) for e in alice.audit()]
    assert ("bob", "cleanup", "refused") in audit
    assert ("alice", "cleanup", "ok") in audit
    lines = (running.state_dir / "admin" / "audit.jsonl").read_text().splitlines()
    assert any('"method":"cleanup"' in line and '"who":"alice"' in line for line in lines)


@pytest.mark.slow
def test_the_pyha_command_and_its_exit_codes(running: Running, tmp_path: Path) -> None:
    alice, bob = running.users["alice"], running.users["bob"]

    def pyha(*args: str, user: Issued | None = alice) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYHA_ADMIN")}
        env.update({"HOME": str(tmp_path / "home"), "COLUMNS": "160"})
        if user is not None:
            env.update({"PYHA_ADMIN": running.address, "PYHA_ADMIN_CA": str(user.ca),
                        "PYHA_ADMIN_CERT": str(user.cert), "PYHA_ADMIN_KEY": str(user.key)})
        return subprocess.run([sys.executable, "-m", "pyha.cli", *args], env=env,
                              capture_output=True, text=True, timeout=60, check=False)

    shown = pyha("status")
    assert shown.returncode == 0, shown.stderr
    assert "Cluster t" in shown.stdout and "running" in shown.stdout and "ip" in shown.stdout
    data = json.loads(pyha("status", "--json").stdout)
    assert data["groups"][0]["node"] == "n1"
    watched = pyha("status", "--watch", "--count", "2", "--interval", "0.1")
    assert watched.returncode == 0 and "Cluster t" in watched.stdout
    explained = pyha("explain", "--group", "web")
    assert explained.returncode == 0 and "web: runs on n1" in explained.stdout
    assert pyha("history", "ip").returncode == 0
    assert pyha("cleanup", "ip").returncode == 0
    refused = pyha("cleanup", "ip", user=bob)
    assert refused.returncode == 1 and "needs the operator role" in refused.stderr
    assert pyha("cleanup", "nope").returncode == 1
    audit = pyha("audit", "--json")
    assert [e["method"] for e in json.loads(audit.stdout)][-2:] == ["cleanup", "cleanup"]
    unreachable = pyha("status", "--connect", f"127.0.0.1:{free_port()}")
    assert unreachable.returncode == 3, unreachable.stderr
    nothing = pyha("status", user=None)
    assert nothing.returncode == 2 and "no address" in nothing.stderr
    assert pyha("history", "--limit", "0").returncode == 2  # typer's usage error
    assert pyha("maintenance", "maybe").returncode == 2
    assert pyha("node", "standby", "n1", user=bob).returncode == 1
    taken = pyha("maintenance", "on")
    assert taken.returncode == 0
    assert "maintenance on: on disk on n1 (configuration epoch 1)" in taken.stdout


def test_the_admin_settings_are_found_in_the_state_directory(tmp_path: Path) -> None:
    assert AdminSettings.find(tmp_path, "n1") is None
    folder = tmp_path / "admin"
    folder.mkdir()
    (folder / "ca.crt").write_text("x")
    with pytest.raises(ConfigError, match=r"n1\.crt, .*n1\.key missing"):
        AdminSettings.find(tmp_path, "n1")
    (folder / "n1.crt").write_text("x")
    (folder / "n1.key").write_text("x")
    assert AdminSettings.find(tmp_path, "n1").bind == ("127.0.0.1", 7790)  # type: ignore[union-attr]
    (folder / "admin.toml").write_text('address = "198.18.0.1:9000"\n')
    assert AdminSettings.find(tmp_path, "n1").bind == ("198.18.0.1", 9000)  # type: ignore[union-attr]
    (folder / "admin.toml").write_text('adress = "198.18.0.1:9000"\n')
    with pytest.raises(ConfigError, match="adress: unknown setting"):
        AdminSettings.find(tmp_path, "n1")


def test_a_broken_admin_setup_never_stops_the_cluster_server(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture
                                                              ) -> None:
    folder = tmp_path / "admin"
    folder.mkdir()
    for name in ("ca.crt", "n1.crt", "n1.key"):
        (folder / name).write_text("not a certificate")
    config = ClusterConfig.from_mapping({"cluster": {"name": "t"}, "nodes": [{"name": "n1"}]})
    server = ClusterServer(config, Registry(), state_dir=tmp_path)
    assert serve_admin(server) is None
    assert "admin endpoint not started" in caplog.text
