"""`pyha server --bootstrap`: configuration from OpenLDAP, changes by ldapmodify acted on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyha.directory.bootstrap import write_bootstrap
from pyha.directory.ldap import LdapDirectory
from pyha.model.config import ClusterConfig
from pyha.model.status import Role
from pyha.testing.dummy import default_state_path


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30.0,
             log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise AssertionError(f"{what}: not within {timeout}s\n{tail}")


class Server:
    """A `pyha server` process reading its configuration from a slapd."""

    def __init__(self, slapd: Any, cluster: str, tmp_path: Path) -> None:
        self.slapd = slapd
        self.state = tmp_path / "state"
        self.log = tmp_path / "server.log"
        self.directory = LdapDirectory(slapd.settings(cluster))
        self.directory.replace(ClusterConfig.from_mapping({
            "cluster": {"name": cluster, "cycle_interval": "1s"}, "nodes": [{"name": "n1"}],
            "groups": [{"name": "app", "resources": [
                {"name": "first", "type": "dummy",
                 "operations": [{"name": "monitor", "interval": "1s"}]},
                {"name": "second", "type": "dummy"}]}]}))
        self.bootstrap = tmp_path / "bootstrap.toml"
        write_bootstrap(self.bootstrap, slapd.settings(cluster), slapd.password_file, node="n1")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pyha.cli", "server", "--bootstrap", str(self.bootstrap),
                 "--state-dir", str(self.state), "--log-level", "DEBUG"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.directory.close()

    def running(self, resource: str) -> bool:
        return default_state_path(self.state, resource).exists()

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def dn(self, resource: str) -> str:
        return self.directory.layout.resource_dn("app", resource)

    def set_attribute(self, resource: str, attribute: str, value: str) -> None:
        self.slapd.modify(f"dn: {self.dn(resource)}\nchangetype: modify\n"
                          f"replace: {attribute}\n{attribute}: {value}\n")


@pytest.fixture
def make_server(tmp_path: Path, cluster_name: str) -> Iterator[Callable[[Any], Server]]:
    made: list[Server] = []

    def make(slapd: Any) -> Server:
        server = Server(slapd, cluster_name, tmp_path)
        made.append(server)
        server.start()
        wait_for(lambda: server.running("first") and server.running("second"),
                 "the group starts", log=server.log)
        return server

    try:
        yield make
    finally:
        for server in made:
            server.stop()


def test_an_ldapmodify_of_the_target_role_stops_the_resource_and_is_recorded(
        slapd_server: Any, make_server: Callable[[Any], Server]) -> None:
    server = make_server(slapd_server)
    server.set_attribute("second", "pyhaTargetRole", "stopped")
    wait_for(lambda: not server.running("second"), "second stops", log=server.log)
    assert server.running("first")
    text = server.text()
    assert "configuration epoch" in text and "accepted" in text
    wait_for(lambda: any(r.resource == "second" and r.role is Role.STOPPED
                         for r in server.directory.read_status()),
             "the status entry says stopped", log=server.log)
    audit = server.directory.read_audit()
    assert any(a.action == "modify" and a.actor.lower() == slapd_server.bind_dn.lower()
               and server.dn("second") in a.subjects for a in audit)
    server.set_attribute("second", "pyhaTargetRole", "started")
    wait_for(lambda: server.running("second"), "second starts again", log=server.log)


def test_bad_entries_are_rejected_with_the_reason_and_the_last_good_config_stays(
        slapd_server: Any, make_server: Callable[[Any], Server]) -> None:
    server = make_server(slapd_server)
    server.set_attribute("first", "pyhaTargetRole", "sideways")
    wait_for(lambda: "rejected" in server.text(), "the rejection is logged", log=server.log)
    assert f"{server.dn('first')}: pyhaTargetRole: Input should be" in server.text()
    server.set_attribute("second", "pyhaParameter", "fail_code=often")
    server.set_attribute("first", "pyhaTargetRole", "started")
    wait_for(lambda: "params.fail_code" in server.text(), "the plugin's refusal is logged",
             log=server.log)
    assert server.running("first") and server.running("second")
    assert server.process is not None and server.process.poll() is None
    assert any(a.action == "reject" for a in server.directory.read_audit())


def test_the_server_outlives_its_directory_and_follows_it_again(
        new_slapd: Callable[..., Any], make_server: Callable[[Any], Server]) -> None:
    slapd = new_slapd()
    server = make_server(slapd)
    slapd.instance.kill()
    wait_for(lambda: "watch on" in server.text() and "lost" in server.text(),
             "the lost directory is logged", log=server.log)
    time.sleep(1.5)  # cycles and monitors go on without the directory
    assert server.process is not None and server.process.poll() is None
    assert server.running("first") and server.running("second")
    slapd.instance.start()
    wait_for(lambda: "reachable again" in server.text() or "resumed" in server.text(),
             "the directory is found again", log=server.log)
    server.set_attribute("second", "pyhaTargetRole", "stopped")
    wait_for(lambda: not server.running("second"), "a change after the outage is acted on",
             log=server.log)


def test_connection_options_instead_of_a_bootstrap_file_and_a_clean_stop(
        slapd_server: Any, cluster_name: str, tmp_path: Path) -> None:
    server = Server(slapd_server, cluster_name, tmp_path)
    try:
        with server.log.open("ab") as out:
            server.process = subprocess.Popen(
                [sys.executable, "-m", "pyha.cli", "server", "--directory", slapd_server.url,
                 "--base-dn", slapd_server.suffix, "--bind-dn", slapd_server.bind_dn,
                 "--password-file", str(slapd_server.password_file), "--cluster", cluster_name,
                 "--state-dir", str(server.state)],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: server.running("first") and server.running("second"),
                 "the group starts", log=server.log)
        wait_for((server.state / "directory.cookie").exists,
                 "the watcher keeps its sync cookie in the state dir", log=server.log)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
        assert not server.running("first") and not server.running("second")
        assert slapd_server.password not in server.text()
    finally:
        server.stop()
