"""Fuzzing the admin endpoint over the wire: every exposed method (found by introspection)
called through a real daemon (Pyro5, json, mutual TLS) with random and malformed JSON
arguments, and with the `__class__` mappings Pyro5's own json reader would rebuild into
objects on the server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from pyha.admin.auth import AdminRole
from pyha.admin.ca import CertificateAuthority, Issued
from pyha.admin.client import AdminClient
from pyha.admin.errors import AdminUnreachable
from pyha.model.config import ClusterConfig
from pyha.ports import free_port
from pyha.resources.registry import Registry
from pyha.server import ClusterServer
from tests.unit.test_admin_fuzz import SERVICE_ERRORS, Call, calls, config, documented_shape

pytestmark = pytest.mark.slow


@dataclass
class Endpoint:
    server: ClusterServer
    address: str
    user: Issued

    def client(self) -> AdminClient:
        return AdminClient(self.address, self.user.ca, self.user.cert, self.user.key,
                           timeout=30)


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    root = tmp_path_factory.mktemp("wire-fuzz")
    ca = CertificateAuthority.init(root / "ca")
    state_dir = root / "state"
    ca.issue("n1", AdminRole.VIEWER, server=True, out=state_dir / "admin")
    address = f"127.0.0.1:{free_port()}"
    (state_dir / "admin" / "admin.toml").write_text(f'address = "{address}"\n')
    user = ca.issue("fuzzer", AdminRole.ADMIN, out=root / "fuzzer")
    data = config().model_dump(mode="json")
    data["cluster"].update(state_dir=str(state_dir), cycle_interval=0.2)
    server = ClusterServer(ClusterConfig.model_validate(data), Registry.discover([]),
                           state_dir=state_dir)
    stop = threading.Event()
    thread = threading.Thread(target=server.run, args=(stop,), name="wire fuzz server")
    thread.start()
    run = Endpoint(server, address, user)
    try:
        deadline = time.monotonic() + 30
        while not _answers(run) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _answers(run), "the admin endpoint never answered"
        yield run
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive()


def _answers(run: Endpoint) -> bool:
    try:
        with run.client() as admin:
            return admin.whoami().name == "fuzzer"
    except Exception:
        return False


def json_only(call: Call) -> bool:
    """What a json message can carry: a call with other values cannot travel."""
    try:
        travelled = json.loads(json.dumps([call.args, call.kwargs], allow_nan=False))
    except (TypeError, ValueError):
        return False
    return bool(travelled == [list(call.args), call.kwargs])


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])
@given(call=calls().filter(json_only))
def test_remote_calls_answer_in_shape_or_are_refused_with_pyhas_errors(
        endpoint: Endpoint, call: Call) -> None:
    server = endpoint.server
    before = (server.next_config(), server.fail_counts.records())
    with endpoint.client() as admin:
        try:
            answer = admin.call(call.method, *call.args, **call.kwargs)
        except SERVICE_ERRORS as exc:
            assert "internal error" not in str(exc), f"{call!r}: {exc}"
            assert str(exc).startswith(f"{call.method}: "), f"{call!r}: {exc}"
            assert (server.next_config(), server.fail_counts.records()) == before, call
            last = admin.audit(limit=1)[0]
            assert (last.method, last.result) == (call.method, "error"), call
        else:
            documented_shape(call.method, answer)
        assert admin.whoami().role == "admin"  # the connection survived


REBUILT = [
    pytest.param({"__class__": "builtins.ValueError", "__exception__": True, "args": ["x"]},
                 id="builtin-exception"),
    pytest.param({"__class__": "pyha.admin.errors.NotFound", "__exception__": True,
                  "args": ["x"]}, id="pyha-error"),
    pytest.param({"__class__": "Pyro5.core.URI", "state": ["PYRO", "x", None, "h", 1]},
                 id="pyro-uri"),
    pytest.param({"__class__": "Pyro5.errors.NoSuchError", "args": []}, id="unknown-pyro-error"),
    pytest.param({"__class__": "builtins.print", "__exception__": True, "args": []},
                 id="builtin-non-exception"),
    pytest.param({"__class__": "Pyro5.client.Proxy", "state": []}, id="pyro-proxy"),
    pytest.param({"__class__": "unregistered"}, id="unknown-class"),
]
"""Mappings Pyro5's own json reader would turn into objects; pyha's reads call arguments
as plain JSON (pyha.admin.wire.PlainCallJson), so each stays a mapping and is refused."""


@pytest.mark.parametrize("value", REBUILT)
def test_a_mapping_with_a_class_name_is_refused_as_a_bad_argument(
        endpoint: Endpoint, value: dict[str, Any]) -> None:
    """Pyro5's json serializer would turn a mapping with `__class__` into an object on
    the server (exceptions, URIs, proxies); the caller must get an InvalidArgument naming
    the argument, and the connection must stay usable."""
    with endpoint.client() as admin:
        try:
            admin.call("cleanup", resource=value)
        except AdminUnreachable:
            raise
        except Exception as exc:
            assert isinstance(exc, SERVICE_ERRORS), f"{type(exc).__module__}." \
                                                    f"{type(exc).__name__}: {exc}"
            assert getattr(exc, "argument", None) == "resource", str(exc)
        else:
            pytest.fail("a mapping with a class name was taken as a resource name")
        assert admin.whoami().name == "fuzzer"
