"""The admin endpoint over real mutual TLS on loopback: who is refused before any method
runs, roles per method over the wire, pyha's errors as themselves, and fuzzed calls."""

from __future__ import annotations

import socket
import ssl
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from Pyro5 import protocol, serializers

from pyha.admin.auth import AdminRole, Identity, client_context, server_context
from pyha.admin.ca import CertificateAuthority, Issued
from pyha.admin.client import AdminClient
from pyha.admin.daemon import OBJECT_ID, AdminDaemon
from pyha.admin.errors import (
    CertificateError,
    ConnectionRefused,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from pyha.admin.service import AdminService
from pyha.admin.target import ServerTarget
from pyha.errors import PyhaError
from pyha.executor.runner import Executor
from pyha.model.config import ClusterConfig
from pyha.resources.agent import Origin
from pyha.resources.python import PythonAgent
from pyha.resources.registry import Registry
from pyha.resources.spi import TypeName
from pyha.server import ClusterServer
from pyha.testing import FakeClock
from pyha.testing.dummy import DummyPlugin
from pyha.testing.waiting import eventually


@dataclass
class Pki:
    """A cluster CA with a node and users of each role, and certificates it must refuse."""

    server: Issued
    users: dict[str, Issued]
    ca: CertificateAuthority
    root: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority.init(root / "ca")
    other = CertificateAuthority.init(root / "other-ca")
    users = {
        "alice": ca.issue("alice", AdminRole.OPERATOR, out=root / "alice"),
        "bob": ca.issue("bob", AdminRole.VIEWER, out=root / "bob"),
        "carol": ca.issue("carol", AdminRole.ADMIN, out=root / "carol"),
        "expired": ca.issue("expired", AdminRole.ADMIN, days=-1, out=root / "expired"),
        "mallory": other.issue("mallory", AdminRole.ADMIN, out=root / "mallory"),
    }
    users["mallory"] = Issued(users["mallory"].cert, users["mallory"].key, ca.cert)
    users["norole"] = _without_role(ca, root / "norole")
    server = ca.issue("n1", AdminRole.VIEWER, server=True, out=root / "n1")
    return Pki(server=server, users=users, ca=ca, root=root)


def _without_role(ca: CertificateAuthority, out: Path) -> Issued:
    """A certificate the cluster CA signed, but with no OU: it must still be refused."""
    out.mkdir()
    key, csr, cert = out / "norole.key", out / "norole.csr", out / "norole.crt"
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(csr),
                    "-subj", "/CN=norole"], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey",
                    str(ca.key), "-set_serial", "7", "-days", "1", "-out", str(cert)],
                   check=True, capture_output=True)
    return Issued(cert, key, ca.cert)


@dataclass
class Endpoint:
    daemon: AdminDaemon
    service: AdminService
    server: ClusterServer

    @property
    def address(self) -> str:
        return self.daemon.address_text


@pytest.fixture
def endpoint(pki: Pki, tmp_path: Path) -> Iterator[Endpoint]:
    registry = Registry()
    registry.register(PythonAgent(DummyPlugin(), TypeName.parse("python:pyha:dummy"),
                                  Origin("bundled", "test")))
    config = ClusterConfig.from_mapping({
        "cluster": {"name": "t"}, "nodes": [{"name": "n1"}],
        "groups": [{"name": "web", "resources": [{"name": "ip", "type": "dummy"}]}]})
    clock = FakeClock()
    server = ClusterServer(config, registry, clock=clock, state_dir=tmp_path,
                           executor=Executor(node="n1", clock=clock, state_dir=tmp_path,
                                             inline=True))
    server.probe()
    server.cycle()
    service = AdminService(ServerTarget(server), audit_path=tmp_path / "audit.jsonl")
    daemon = AdminDaemon(service, ("127.0.0.1", 0),
                         server_context(pki.server.ca, pki.server.cert, pki.server.key),
                         on_refused=service.refused, node="n1")
    daemon.start()
    yield Endpoint(daemon, service, server)
    daemon.close()


def client(endpoint: Endpoint, pki: Pki, user: str) -> AdminClient:
    issued = pki.users[user]
    return AdminClient(endpoint.address, issued.ca, issued.cert, issued.key, timeout=10)




def refused_connections(endpoint: Endpoint) -> list[str]:
    return [e.detail for e in endpoint.service.audit_log.recent(100) if e.method == "connect"]


# -- refused before any method runs -------------------------------------------------------

@pytest.mark.parametrize(("user", "said"), [
    ("mallory", "certificate"),
    ("expired", "certificate"),
    ("norole", "its OU must be one role"),
])
def test_a_client_the_ca_did_not_vouch_for_is_refused_before_any_method(
        endpoint: Endpoint, pki: Pki, user: str, said: str) -> None:
    with client(endpoint, pki, user) as admin, pytest.raises(ConnectionRefused, match=said):
        admin.status()
    assert eventually(lambda: endpoint.daemon.refusals == 1)
    assert len(refused_connections(endpoint)) == 1
    assert endpoint.service.calls == 0


def test_a_client_without_a_certificate_is_refused_before_any_method(
        endpoint: Endpoint, pki: Pki) -> None:
    admin = client(endpoint, pki, "alice")
    bare = ssl.create_default_context(cafile=str(pki.ca.cert))  # trusts the node, shows nothing
    admin._context = bare
    with admin, pytest.raises(ConnectionRefused, match="certificate"):
        admin.whoami()
    assert eventually(lambda: len(refused_connections(endpoint)) == 1)
    assert "TLS handshake failed" in refused_connections(endpoint)[0]
    assert endpoint.service.calls == 0


def test_a_plain_tcp_client_gets_nothing(endpoint: Endpoint) -> None:
    host, port = endpoint.daemon.address
    hello = serializers.serializers["json"].dumps({"handshake": "hello", "object": OBJECT_ID})
    message = protocol.SendingMessage(protocol.MSG_CONNECT, 0, 0, 3, hello).data
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(message)
        answer = b""
        with pytest.raises(OSError):  # closed (or reset) without a Pyro5 answer
            while chunk := sock.recv(100):
                answer += chunk
            raise ConnectionResetError("closed")
        assert not answer.startswith(b"PYRO")
    assert endpoint.service.calls == 0


def test_serpent_is_refused_even_with_a_good_certificate(endpoint: Endpoint, pki: Pki) -> None:
    issued = pki.users["carol"]
    host, port = endpoint.daemon.address
    context = ssl.create_default_context(cafile=str(issued.ca))
    context.load_cert_chain(str(issued.cert), str(issued.key))
    serpent = serializers.serializers["serpent"]
    hello = serpent.dumps({"handshake": "hello", "object": OBJECT_ID})
    message = protocol.SendingMessage(protocol.MSG_CONNECT, 0, 0, serpent.serializer_id,
                                      hello).data
    with socket.create_connection((host, port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=host) as sock:
        sock.sendall(message)
        reply = sock.recv(4096)
    assert reply[6] == protocol.MSG_CONNECTFAIL
    assert b"serializer id 1 refused" in reply
    assert endpoint.service.calls == 0


def test_the_client_refuses_a_node_whose_certificate_another_ca_signed(
        endpoint: Endpoint, pki: Pki) -> None:
    mallory = pki.users["mallory"]
    other_ca = pki.root / "other-ca" / "ca.crt"
    admin = AdminClient(endpoint.address, other_ca, mallory.cert, mallory.key)
    with admin, pytest.raises(CertificateError, match="not trusted"):
        admin.whoami()
    assert endpoint.service.calls == 0


def test_a_good_client_gets_in_and_is_known_by_its_certificate(endpoint: Endpoint,
                                                               pki: Pki) -> None:
    with client(endpoint, pki, "alice") as admin:
        me = admin.whoami()
        assert (me.name, me.role, me.node) == ("alice", "operator", "n1")
        assert admin.greeting["role"] == "operator"
        assert admin.status().groups[0].name == "web"
    assert endpoint.service.calls == 2
    assert endpoint.daemon.refusals == 0


def test_only_the_cluster_ca_is_trusted_not_the_systems(pki: Pki) -> None:
    alice = pki.users["alice"]
    for context in (server_context(pki.server.ca, pki.server.cert, pki.server.key),
                    client_context(alice.ca, alice.cert, alice.key)):
        trusted = context.get_ca_certs()
        assert len(trusted) == 1
        assert (("commonName", "pyha cluster CA"),) in trusted[0]["subject"]


def test_certificate_files_are_private_where_they_must_be(pki: Pki) -> None:
    for path in (pki.ca.key, pki.users["alice"].key, pki.server.key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(pki.ca.cert.stat().st_mode) == 0o644


# -- roles and errors over the wire ---------------------------------------------------------

def test_roles_are_enforced_per_method_over_the_wire(endpoint: Endpoint, pki: Pki) -> None:
    with client(endpoint, pki, "bob") as bob:
        assert bob.status().cluster == "t"
        with pytest.raises(PermissionDenied) as denied:
            bob.cleanup("ip")
        assert (denied.value.role, denied.value.needed) == ("viewer", "operator")
    with client(endpoint, pki, "alice") as alice:
        assert alice.cleanup("ip").nodes == ("n1",)
    audit = endpoint.service.audit_log.recent(10)
    assert [(e.who, e.method, e.result) for e in audit] == [
        ("bob", "status", "ok"), ("bob", "cleanup", "refused"), ("alice", "cleanup", "ok")]


def test_remote_errors_arrive_as_pyhas_own_types(endpoint: Endpoint, pki: Pki) -> None:
    with client(endpoint, pki, "carol") as carol:
        with pytest.raises(NotFound) as missing:
            carol.history("nope")
        assert missing.value.argument == "resource"
        with pytest.raises(InvalidArgument, match="limit: must be from 1"):
            carol.audit(limit=0)
        with pytest.raises(InvalidArgument, match="arguments"):
            carol.call("cleanup")
        assert carol.whoami().name == "carol"  # the connection survives refused calls


# -- fuzzing over the wire ------------------------------------------------------------------

VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**9) | st.text(max_size=12)
    | st.sampled_from(["ip", "web", "n1"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=2),
    max_leaves=5)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["whoami", "status", "explain", "history", "audit", "cleanup"]),
       kwargs=st.dictionaries(st.sampled_from(["resource", "node", "group", "limit", "z"]),
                              VALUES, max_size=3))
def test_fuzzed_remote_calls_get_an_answer_or_one_of_pyhas_errors(
        endpoint: Endpoint, pki: Pki, method: str, kwargs: dict[str, Any]) -> None:
    before = (endpoint.server.fail_counts.records(), endpoint.server.view())
    with client(endpoint, pki, "carol") as carol:
        try:
            carol.call(method, **kwargs)
        except InvalidArgument as exc:
            assert exc.argument
            assert (endpoint.server.fail_counts.records(), endpoint.server.view()) == before
        except PyhaError as exc:
            assert not isinstance(exc, ConnectionRefused), exc
        assert carol.whoami().role == "admin"


def test_identity_is_taken_per_connection(endpoint: Endpoint, pki: Pki) -> None:
    with client(endpoint, pki, "bob") as bob, client(endpoint, pki, "carol") as carol:
        assert (bob.whoami().name, carol.whoami().name, bob.whoami().role) == (
            "bob", "carol", "viewer")
    assert Identity("x", AdminRole.VIEWER).role.allows(AdminRole.VIEWER)
