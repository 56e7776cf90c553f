"""The JDK-only Java admin client (java/src/io/pyha/admin) against a real three-node
cluster: a separate `java` process speaks Pyro5's protocol with the json serializer over
mutual TLS, acts on the cluster, and gets pyha's refusals and errors as a Java exception
that carries pyha's error type and message."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pyha.admin.auth import AdminRole
from pyha.admin.ca import CertificateAuthority, Issued
from pyha.admin.client import AdminClient
from pyha.admin.service import AdminService
from pyha.jvm.build import java_home
from tests.cluster.admins import AdminAccess, serve_admin
from tests.cluster.harness import LocalCluster, wait_for

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CLIENT_SOURCES = REPO / "java" / "src" / "io" / "pyha" / "admin"
DRIVERS = sorted((REPO / "tests" / "java_admin").glob("*.java"))
JAVA_TIMEOUT = 120.0
JVM_OPTIONS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
"""A short-lived client JVM starts faster without C2 and a parallel GC."""


@pytest.fixture(scope="module")
def classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Java admin client and the test driver, compiled with plain javac."""
    javac = java_home() / "bin" / "javac"
    if not javac.is_file():
        pytest.skip(f"no JDK at {java_home()}")
    out = tmp_path_factory.mktemp("java-admin-classes")
    sources = sorted(str(p) for p in CLIENT_SOURCES.glob("*.java"))
    done = subprocess.run([str(javac), "--release", "17", "-encoding", "UTF-8", "-Xlint:all",
                           "-Werror", "-d", str(out), *sources, *map(str, DRIVERS)],
                          capture_output=True, text=True, timeout=JAVA_TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    return out


def _java(classes: Path, *args: str, stdin: str | None = None) -> list[str]:
    done = subprocess.run([str(java_home() / "bin" / "java"), *JVM_OPTIONS, "-cp", str(classes),
                           *args], input=stdin, capture_output=True, text=True,
                          encoding="utf-8", timeout=JAVA_TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_the_json_codec_reads_and_writes_what_python_does(classes: Path) -> None:
    values: list[Any] = [
        {"a": [1, -2, 3.5, 1e-7, 12345678901234567890, True, False, None], "b": {}},
        "quote \" backslash \\ tab \t newline \n nul \u0000 \u2028 é 漢 \U0001f600",
        [[[[]]], {"nested": {"x": [{"y": "z"}]}}],
        {"inf": float("inf"), "ninf": float("-inf"), "one": 1.0, "big": 1.5e300},
        {"__class__": "pyha.admin.errors.NotFound", "__exception__": True, "args": ["x"],
         "attributes": {"argument": "node"}},
    ]
    lines = [json.dumps(v, ensure_ascii=ascii) for v in values for ascii in (True, False)]
    bad = ["{", "[1,]", '{"a" 1}', "tru", '"\\x"', "[1] 2", "[" * 300 + "]" * 300]
    answers = _java(classes, "CodecCheck", "json", stdin="\n".join(lines + bad) + "\n")
    assert len(answers) == len(lines) + len(bad)
    for line, answer in zip(lines, answers[:len(lines)], strict=True):
        assert json.loads(answer) == json.loads(line)
    for text, answer in zip(bad, answers[len(lines):], strict=True):
        assert answer.startswith("ERROR bad JSON at offset "), (text, answer)
    nan = _java(classes, "CodecCheck", "json", stdin='{"x": NaN}\n')
    assert nan == ['{"x":NaN}']


def test_private_keys_in_pkcs8_sec1_and_pkcs1_give_the_same_key(
        classes: Path, tmp_path: Path) -> None:
    ca = CertificateAuthority.init(tmp_path / "ca")
    pkcs8 = ca.issue("alice", AdminRole.VIEWER, out=tmp_path / "alice").key
    sec1, rsa1, rsa8 = tmp_path / "sec1.key", tmp_path / "rsa1.key", tmp_path / "rsa8.key"
    encrypted = tmp_path / "encrypted.key"
    for argv in (["ec", "-in", str(pkcs8), "-out", str(sec1)],
                 ["genrsa", "-traditional", "-out", str(rsa1), "2048"],
                 ["pkey", "-in", str(rsa1), "-out", str(rsa8)],
                 ["pkey", "-in", str(pkcs8), "-aes256", "-passout", "pass:x", "-out",
                  str(encrypted)]):
        subprocess.run(["openssl", *argv], check=True, capture_output=True, timeout=60)
    assert sec1.read_text().startswith("-----BEGIN EC PRIVATE KEY-----")
    assert rsa1.read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert pkcs8.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    out = _java(classes, "CodecCheck", "keys", *map(str, (pkcs8, sec1, rsa8, rsa1, encrypted,
                                                          ca.cert)))
    assert out[0].startswith("EC ") and out[1] == out[0]
    assert out[2].startswith("RSA ") and out[3] == out[2]
    assert out[4].startswith("ERROR pyha.admin.errors.CertificateError: the private key is "
                             "encrypted")
    assert out[5].startswith("ERROR pyha.admin.errors.CertificateError: no PEM private key")


@dataclass
class JavaConsoles(AdminAccess):
    users: dict[str, Issued]
    classes: Path

    def java(self, node: str, user: str | None, *commands: str,
             trust: str = "alice") -> list[dict[str, Any]]:
        """Run the Java driver against `node` as `user` (None: no certificate), trusting
        the CA that issued `trust`'s certificate; one answer per line, the connect first."""
        issued = self.users[user or "alice"]
        cert, key = (str(issued.cert), str(issued.key)) if user else ("-", "-")
        argv = [str(java_home() / "bin" / "java"), *JVM_OPTIONS, "-cp", str(self.classes),
                "AdminDriver", self.addresses[node], str(self.users[trust].ca), cert, key,
                *commands]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=JAVA_TIMEOUT,
                              check=False)
        assert done.returncode in (0, 2), done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]



@pytest.fixture(scope="module")
def consoles(tmp_path_factory: pytest.TempPathFactory, classes: Path) -> Iterator[JavaConsoles]:
    root = tmp_path_factory.mktemp("java-admin-cluster")
    cluster = LocalCluster(root, fence="process-tree")
    ca = CertificateAuthority.init(root / "ca")
    other = CertificateAuthority.init(root / "other-ca")
    addresses = serve_admin(cluster, ca)
    users = {
        "alice": ca.issue("alice", AdminRole.OPERATOR, out=root / "alice"),
        "bob": ca.issue("bob", AdminRole.VIEWER, out=root / "bob"),
        "mallory": other.issue("mallory", AdminRole.ADMIN, out=root / "mallory"),
    }
    for running in cluster.serving():
        yield JavaConsoles(running, addresses, users["alice"], users, classes)


def _group_node(consoles: JavaConsoles, node: str) -> str | None:
    report = consoles.status(node)
    return None if report is None else report.groups[0].node


def test_refused_without_a_certificate_and_with_one_from_another_ca(
        consoles: JavaConsoles) -> None:
    """...and a node whose certificate another CA signed is not trusted."""
    wait_for(lambda: consoles.status("n1") is not None, 60, "n1's admin endpoint answers",
             consoles.cluster)
    for user in (None, "mallory"):
        [connect] = consoles.java("n1", user, "whoami")
        assert connect["command"] == "connect" and connect["ok"] is False
        assert connect["type"] == "pyha.admin.errors.ConnectionRefused"
        assert connect["remote"] is False
        assert connect["message"].startswith(
            f"the admin endpoint at {consoles.addresses['n1']} refused the connection: ")
        assert "certificate" in connect["message"]
        assert connect["text"] == f"pyha.admin.errors.ConnectionRefused: {connect['message']}"

    [connect] = consoles.java("n1", "alice", "whoami", trust="mallory")  # not the cluster CA
    assert connect["type"] == "pyha.admin.errors.CertificateError"
    assert connect["message"].startswith(
        f"{consoles.addresses['n1']}: the endpoint's certificate is not trusted: ")

    def audited() -> bool:  # the node records each refusal just after the client sees it
        alice = consoles.users["alice"]
        with AdminClient(consoles.addresses["n1"], alice.ca, alice.cert, alice.key) as admin:
            return [e.result for e in admin.audit() if e.method == "connect"] == ["refused"] * 2

    wait_for(audited, 10, "n1 audits both refused connections", consoles.cluster)


def test_a_viewer_gets_pyhas_permission_error_through_the_java_exception(
        consoles: JavaConsoles) -> None:
    wait_for(lambda: consoles.status("n2") is not None, 60, "n2's admin endpoint answers",
             consoles.cluster)
    connect, who, standby, move = consoles.java("n2", "bob", "whoami", "standby:n1",
                                                "move:svc:n1")
    assert connect["ok"] and connect["result"]["role"] == "viewer"
    assert who["result"] == {"node": "n2", "name": "bob", "role": "viewer"}
    assert standby["ok"] is False and standby["remote"] is True
    assert standby["type"] == "pyha.admin.errors.PermissionDenied"
    assert standby["simple_type"] == "PermissionDenied"
    assert standby["message"] == "standby: needs the operator role; your certificate carries viewer"
    assert standby["attributes"] == {"method": "standby", "role": "viewer", "needed": "operator"}
    assert standby["text"] == f"pyha.admin.errors.PermissionDenied: {standby['message']}"
    if hasattr(AdminService, "move"):
        assert move["type"] == "pyha.admin.errors.PermissionDenied"
        assert move["attributes"]["needed"] == "operator"


def test_an_operator_lists_groups_and_moves_one(consoles: JavaConsoles) -> None:
    wait_for(consoles.settled, 60, "every node reports the group running",
             consoles.cluster)
    where = _group_node(consoles, "n1")
    assert where in consoles.cluster.nodes
    to = next(n for n in consoles.cluster.nodes if n != where)
    moving = hasattr(AdminService, "move")
    act = f"move:svc:{to}" if moving else f"standby:{where}"
    connect, who, groups, missing, acted = consoles.java(
        to, "alice", "whoami", "groups", "standby:n9", act)
    assert connect["result"]["identity"] == "alice"
    assert who["result"] == {"node": to, "name": "alice", "role": "operator"}
    assert groups["result"] == [{"name": "svc", "node": where, "state": "running",
                                 "active_on": [where], "target": where}]
    assert missing["type"] == "pyha.admin.errors.NotFound"
    assert missing["message"] == "standby: node: no node named 'n9'"
    assert missing["attributes"]["argument"] == "node"
    assert acted["ok"] is True, acted
    assert isinstance(acted["result"], dict)

    def away() -> bool:
        now = _group_node(consoles, to)
        return now is not None and now != where and (now == to or not moving)

    wait_for(away, 60, f"the group leaves {where} ({act})", consoles.cluster)
    undo = "unmove:svc" if moving else f"online:{where}"
    _, after, undone = consoles.java(to, "alice", "groups", undo)
    [group] = after["result"]
    assert group["node"] != where and group["state"] == "running"
    if moving:
        assert group["node"] == to
    assert undone["ok"] is True, undone
    assert len(consoles.cluster.running_on()) == 1


def test_status_in_full_lists_every_resource_as_the_python_client_does(
        consoles: JavaConsoles) -> None:
    """`status(true)` asks for every resource; this cluster is small, so the lean
    `status()` lists every one too and neither omits any."""
    wait_for(consoles.settled, 60, "every node reports the group running",
             consoles.cluster)
    alice = consoles.users["alice"]
    with AdminClient(consoles.addresses["n3"], alice.ca, alice.cert, alice.key) as admin:
        python = admin.status(full=True)
    names = [r.name for r in python.resources]
    assert names == ["guard"] and python.omitted == 0
    _, full, lean = consoles.java("n3", "bob", "status:true", "status")
    for answer in (full, lean):
        assert answer["ok"] is True, answer
        assert answer["result"]["answered_by"] == "n3"
        assert answer["result"]["resources"] == names
        assert answer["result"]["omitted"] == 0
