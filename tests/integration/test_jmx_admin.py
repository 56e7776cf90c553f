"""The JMX bridge of a real three-node cluster, driven by a separate JDK-only `java`
client: attributes read, a group moved through the MXBean, wrong passwords and users
without a role refused, a viewer refused a change with a SecurityException, and the
JDK's own MBeans out of reach."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyha.admin.auth import AdminRole
from pyha.admin.ca import CertificateAuthority
from pyha.admin.service import AdminService
from pyha.jvm.build import java_home
from pyha.ports import free_port
from tests.cluster.admins import AdminAccess, serve_admin
from tests.cluster.harness import LocalCluster, wait_for

pytestmark = pytest.mark.slow

CLIENT_SOURCE = Path(__file__).resolve().parents[1] / "jmx_client" / "JmxCheck.java"
BRIDGE_NODE = "n1"
PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret", "mallory": "mallory-secret"}
MOVE = hasattr(AdminService, "move")
"""Whether the admin service moves groups yet; without it the test changes the cluster
through standbyNode instead (moveGroup then answers UnsupportedOperationException)."""


@dataclass
class Bridge(AdminAccess):
    url: str
    classes: Path

    def jmx(self, user: str, password: str, *steps: str) -> dict[str, str]:
        """Run the Java client; {step: "= value" or "ERROR ..."}, or {"connect": ...}."""
        return run_client(self.classes, self.url, user, password, steps)


def run_client(classes: Path, url: str, user: str, password: str, steps: Sequence[str], *,
               options: Sequence[str] = ()) -> dict[str, str]:
    """Run JmxCheck in its own JVM; its answers by step (see JmxCheck.java)."""
    java = str(java_home() / "bin" / "java")
    done = subprocess.run([java, *options, "-cp", str(classes), "JmxCheck", url, user,
                           password, *steps],
                          capture_output=True, text=True, timeout=120, check=False)
    answers: dict[str, str] = {}
    for line in done.stdout.splitlines():
        if line.startswith("CONNECT-ERROR "):
            answers["connect"] = line.removeprefix("CONNECT-ERROR ")
        else:
            step, _, answer = line.partition(" ")
            answers[step] = answer
    assert answers, f"no output from the JMX client: {done.stderr[-2000:]}"
    return answers


def _write_bridge_settings(ca: CertificateAuthority, folder: Path, port: int) -> None:
    ca.issue("jmx-operator", AdminRole.OPERATOR, out=folder)
    ca.issue("jmx-viewer", AdminRole.VIEWER, out=folder)
    passwords = folder / "jmx.password"
    passwords.write_text("".join(f"{u} {p}\n" for u, p in PASSWORDS.items()))
    passwords.chmod(0o600)
    # mallory can log in but has no pyha role: the connector refuses every call
    (folder / "jmx.toml").write_text(f'port = {port}\npassword_file = "jmx.password"\n'
                                     '[users]\nalice = "operator"\nbob = "viewer"\n')


def _compile_client(tmp_path: Path) -> Path:
    classes = tmp_path / "client"
    subprocess.run([str(java_home() / "bin" / "javac"), "--release", "17", "-d", str(classes),
                    str(CLIENT_SOURCE)], check=True, timeout=120)
    return classes


def _start_bridge(state_dir: Path, node: str, log: Path) -> subprocess.Popen[str]:
    with log.open("w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "pyha.jvm.jmx_admin", "--state-dir", str(state_dir),
             "--node", node], stdout=subprocess.PIPE, stderr=err, text=True,
            start_new_session=True)


def _stop_bridge(process: subprocess.Popen[str] | None) -> None:
    if process is None:
        return
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()


def _await_ready(process: subprocess.Popen[str], timeout: float) -> dict[str, object]:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if ready:
            line = process.stdout.readline()
            if line:
                answer: dict[str, object] = json.loads(line)
                return answer
        if process.poll() is not None:
            break
    raise AssertionError(f"the JMX bridge did not start (exit {process.poll()})")


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[Bridge]:
    cluster = LocalCluster(tmp_path, fence="process-tree")
    ca = CertificateAuthority.init(tmp_path / "ca")
    addresses = serve_admin(cluster, ca)
    port = free_port()
    _write_bridge_settings(ca, cluster.state_dir(BRIDGE_NODE) / "admin", port)
    alice = ca.issue("alice", AdminRole.OPERATOR, out=tmp_path / "alice")
    classes = _compile_client(tmp_path)
    url = f"service:jmx:rmi://127.0.0.1:{port}/jndi/rmi://127.0.0.1:{port}/jmxrmi"
    # Each server starts its bridge: its admin folder has jmx.toml.
    for running in cluster.serving():
        wait_for(lambda: f'"url": "{url}"' in cluster.log(BRIDGE_NODE), 120,
                 "the server's JMX bridge is ready", cluster)
        yield Bridge(running, addresses, alice, url, classes)
    assert "JMX bridge stopped" in cluster.log(BRIDGE_NODE)  # stopped with its server


def test_a_console_reads_the_cluster_and_moves_its_group(bridge: Bridge) -> None:
    wait_for(bridge.settled, 60, "every node reports the group running",
             bridge.cluster)
    status = bridge.status(BRIDGE_NODE)
    assert status is not None and status.groups[0].node is not None
    where = status.groups[0].node
    other = next(n for n in bridge.cluster.nodes if n != where)

    read = bridge.jmx("alice", PASSWORDS["alice"], "get:Groups", "get:Coordinator",
                      "get:Quorum", "get:Nodes", "other:gc")
    assert read["get:Groups"] == f"= svc@{where}"
    assert read["get:Coordinator"] == f"= {status.coordinator}"
    assert read["get:Quorum"] == "= true"
    assert read["get:Nodes"] == "= n1@;n2@;n3@"  # NodeInfo has no "node" item
    assert read["other:gc"].startswith("ERROR java.lang.SecurityException: invoke on "
                                       "java.lang:type=Memory is not allowed")

    change = f"call:moveGroup:svc:{other}" if MOVE else f"call:standbyNode:{where}"
    viewer = bridge.jmx("bob", PASSWORDS["bob"], "get:Coordinator", change)
    assert viewer["get:Coordinator"] == f"= {status.coordinator}"
    method = "moveGroup" if MOVE else "standbyNode"
    assert viewer[change] == (f"ERROR java.lang.SecurityException: {method}: needs the "
                              f"operator role; JMX user bob (viewer)")

    moved = bridge.jmx("alice", PASSWORDS["alice"], change)
    expected = f"= move svc to {other}: configuration epoch " if MOVE else f"= {where} in standby"
    assert moved[change].startswith(expected), moved

    def elsewhere() -> bool:
        now = bridge.status(BRIDGE_NODE)
        target = other if MOVE else None
        return now is not None and now.groups[0].node not in (None, where) and (
            target is None or now.groups[0].node == target)

    wait_for(elsewhere, 40, "the group leaves its node", bridge.cluster)
    after = bridge.jmx("alice", PASSWORDS["alice"], "get:Groups")
    assert after["get:Groups"] != f"= svc@{where}"

    with bridge.client(BRIDGE_NODE) as admin:
        records = [(r.who, r.role, r.result) for r in admin.audit(50)
                   if r.method == ("move" if MOVE else "standby")]
    assert ("jmx-viewer", "viewer", "refused") in records
    assert ("jmx-operator", "operator", "ok") in records
    if MOVE:
        undone = bridge.jmx("alice", PASSWORDS["alice"], "call:unmoveGroup:svc")
        assert undone["call:unmoveGroup:svc"].startswith("= unmove svc: configuration epoch ")
    else:
        with bridge.client(BRIDGE_NODE) as admin:
            admin.online(where)
    assert len(bridge.cluster.running_on()) == 1


def test_logins_without_the_password_or_a_role_are_refused(bridge: Bridge) -> None:
    wrong = bridge.jmx("alice", "not-the-password", "get:Coordinator")
    assert wrong == {"connect": "java.lang.SecurityException: Authentication failed! "
                                "Invalid username or password"}
    nobody = bridge.jmx("mallory", PASSWORDS["mallory"], "get:Coordinator")
    assert nobody == {"connect": "java.lang.SecurityException: JMX user mallory has no "
                                 "pyha role"}
    # The bridge lives on; killed, its server starts it again.
    pids = [json.loads(line)["pid"] for line in bridge.cluster.log(BRIDGE_NODE).splitlines()
            if line.startswith('{"url"')]
    assert len(pids) == 1
    os.kill(int(pids[0]), signal.SIGKILL)
    wait_for(lambda: bridge.cluster.log(BRIDGE_NODE).count('{"url"') == 2, 120,
             "the server starts its bridge again", bridge.cluster)
    assert "JMX bridge exited with -9" in bridge.cluster.log(BRIDGE_NODE)
    again = bridge.jmx("alice", PASSWORDS["alice"], "get:Coordinator")
    assert "connect" not in again


def test_with_tls_only_clients_that_trust_its_certificate_get_in(tmp_path: Path) -> None:
    """No cluster here: a call that gets through TLS and the login reaches the bean, which
    answers that the admin endpoint is down."""
    ca = CertificateAuthority.init(tmp_path / "ca")
    folder = tmp_path / "n1" / "admin"
    node = ca.issue("n1", AdminRole.VIEWER, server=True, out=folder)
    port = free_port()
    _write_bridge_settings(ca, folder, port)
    (folder / "admin.toml").write_text(f'address = "127.0.0.1:{free_port()}"\n')
    (folder / "store.pass").write_text("store-secret\n")
    (folder / "store.pass").chmod(0o600)
    subprocess.run(["openssl", "pkcs12", "-export", "-in", str(node.cert), "-inkey",
                    str(node.key), "-name", "jmx", "-out", str(folder / "jmx.p12"),
                    "-passout", "pass:store-secret"], check=True, timeout=60)
    trust = tmp_path / "trust.p12"
    subprocess.run([str(java_home() / "bin" / "keytool"), "-importcert", "-noprompt",
                    "-alias", "pyha-ca", "-file", str(ca.cert), "-keystore", str(trust),
                    "-storetype", "PKCS12", "-storepass", "trust-secret"],
                   check=True, timeout=60, capture_output=True)
    with (folder / "jmx.toml").open("a") as settings:
        settings.write('[tls]\nkeystore = "jmx.p12"\nkeystore_password_file = "store.pass"\n')
    classes = _compile_client(tmp_path)
    process = _start_bridge(tmp_path / "n1", "n1", tmp_path / "jmx.log")
    try:
        url = str(_await_ready(process, 120)["url"])
        tls = ["-Dpyha.jmx.tls=true", f"-Djavax.net.ssl.trustStore={trust}",
               "-Djavax.net.ssl.trustStorePassword=trust-secret"]
        inside = run_client(classes, url, "alice", PASSWORDS["alice"], ["get:Coordinator"],
                            options=tls)
        assert inside["get:Coordinator"].startswith(
            "ERROR java.lang.IllegalStateException: Coordinator: cannot reach the admin "
            "endpoint at 127.0.0.1:")
        wrong = run_client(classes, url, "alice", "not-the-password", ["get:Coordinator"],
                            options=tls)
        assert "Invalid username or password" in wrong["connect"]
        plain = run_client(classes, url, "alice", PASSWORDS["alice"], ["get:Coordinator"])
        assert "non-JRMP server" in plain["connect"]
        untrusted = run_client(classes, url, "alice", PASSWORDS["alice"], ["get:Coordinator"],
                               options=["-Dpyha.jmx.tls=true"])
        assert "PKIX path building failed" in untrusted["connect"]
    finally:
        _stop_bridge(process)
    assert process.returncode == 0
