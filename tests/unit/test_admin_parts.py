"""Admin parts without a network: roles from certificates, errors on the wire, the
header check, the audit log and the client settings."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from Pyro5 import errors as pyro_errors
from Pyro5 import protocol, serializers

from pyha.admin import wire
from pyha.admin.audit import AuditLog
from pyha.admin.auth import AdminRole, identity_from_certificate
from pyha.admin.client import ClientSettings
from pyha.admin.daemon import _check_header
from pyha.admin.errors import CertificateError, InvalidArgument, NotFound, PermissionDenied
from pyha.admin.report import AuditEntry
from pyha.errors import ConfigError, OperationError, PluginError, PyhaError, Severity
from pyha.membership.rpc import PeerUnreachable


def cert(*subject: tuple[str, str]) -> dict[str, Any]:
    return {"subject": tuple(((k, v),) for k, v in subject)}


# -- roles ----------------------------------------------------------------------------------

def test_the_role_comes_from_the_single_ou_and_the_name_from_the_cn() -> None:
    who = identity_from_certificate(cert(("organizationName", "pyha"),
                                         ("organizationalUnitName", "operator"),
                                         ("commonName", "alice")))
    assert (who.name, who.role) == ("alice", AdminRole.OPERATOR)


@pytest.mark.parametrize(("subject", "said"), [
    ((), "no client certificate"),
    ((("organizationalUnitName", "admin"),), "exactly one CN"),
    ((("commonName", "a"),), "its OU must be one role"),
    ((("commonName", "a"), ("organizationalUnitName", "root")), "its OU must be one role"),
    ((("commonName", "a"), ("organizationalUnitName", "viewer"),
      ("organizationalUnitName", "admin")), "its OU must be one role"),
])
def test_a_certificate_without_one_known_role_is_refused(
        subject: tuple[tuple[str, str], ...], said: str) -> None:
    with pytest.raises(CertificateError, match=said):
        identity_from_certificate(cert(*subject) if subject else None)


def test_each_role_allows_what_the_ones_before_it_allow() -> None:
    viewer, operator, admin = AdminRole
    assert [r for r in AdminRole if viewer.allows(r)] == [viewer]
    assert [r for r in AdminRole if operator.allows(r)] == [viewer, operator]
    assert [r for r in AdminRole if admin.allows(r)] == [viewer, operator, admin]


# -- errors on the wire ---------------------------------------------------------------------

def travel(exc: Exception) -> Any:
    """`exc` through Pyro5's JSON serializer, as a remote call's error travels."""
    wire.register()
    json_serializer = serializers.serializers["json"]
    return json_serializer.loads(json_serializer.dumps(exc))


def test_pyha_errors_arrive_as_their_own_types_with_their_attributes() -> None:
    back = travel(InvalidArgument("history", "limit", "must be from 1 to 1000"))
    assert type(back) is InvalidArgument
    assert (back.method, back.argument, back.reason) == ("history", "limit",
                                                         "must be from 1 to 1000")
    assert str(back) == "history: limit: must be from 1 to 1000"
    config = travel(ConfigError("bad", ("a: wrong", "b: missing")))
    assert type(config) is ConfigError and config.problems == ("a: wrong", "b: missing")
    assert "  - b: missing" in str(config)
    plugin = travel(PluginError("dummy", "crashed", "start"))
    assert type(plugin) is PluginError and plugin.operation == "start"
    assert str(plugin) == "plugin dummy.start: crashed"
    operation = travel(OperationError("stop failed", Severity.BAN_NODE))
    assert operation.severity == Severity.BAN_NODE
    assert isinstance(travel(NotFound("cleanup", "node", "x")), InvalidArgument)
    assert type(travel(PermissionDenied("cleanup", "viewer", "operator"))) is PermissionDenied


def test_a_pyha_error_of_an_unregistered_type_travels_as_its_nearest_registered_base() -> None:
    back = travel(PeerUnreachable("n2", "down"))
    assert type(back) is PyhaError
    assert str(back) == "n2: down" or "down" in str(back)


def test_the_servers_traceback_does_not_travel() -> None:
    exc = InvalidArgument("m", "a", "r")
    exc._pyroTraceback = ["File /srv/pyha/secret.py, line 1"]  # type: ignore[attr-defined]
    data = wire.error_to_dict(exc)
    assert "_pyroTraceback" not in data["attributes"]
    assert "secret" not in json.dumps(data)


def test_only_registered_error_names_are_rebuilt() -> None:
    wire.register()
    forged = json.dumps({"__class__": "os.system", "__exception__": True, "args": ["id"]})
    with pytest.raises(pyro_errors.SerializeError):
        serializers.serializers["json"].loads(forged.encode())


# -- the header check -----------------------------------------------------------------------

def header_rest(msgtype: int, serializer: int, size: int = 10) -> bytes:
    whole = protocol.SendingMessage(msgtype, 0, 1, serializer, b"x" * size).data
    return bytes(whole[6:40])


def test_json_messages_pass_and_other_serializers_are_refused_before_the_payload() -> None:
    _check_header(header_rest(protocol.MSG_INVOKE, 3))
    _check_header(header_rest(protocol.MSG_PING, 42))  # pings carry no payload to parse
    for serializer in (1, 2):  # serpent, marshal
        with pytest.raises(pyro_errors.SecurityError, match=f"serializer id {serializer}"):
            _check_header(header_rest(protocol.MSG_INVOKE, serializer))
        with pytest.raises(pyro_errors.SecurityError):
            _check_header(header_rest(protocol.MSG_CONNECT, serializer))


def test_a_request_larger_than_the_limit_is_refused_from_its_header() -> None:
    rest = bytearray(header_rest(protocol.MSG_INVOKE, 3))
    rest[6:10] = (wire.MAX_REQUEST + 1).to_bytes(4, "big")
    with pytest.raises(pyro_errors.SecurityError, match="at most"):
        _check_header(bytes(rest))


# -- the audit log --------------------------------------------------------------------------

def entry(n: int, result: str = "ok") -> AuditEntry:
    return AuditEntry(when=float(n), who="alice", role="operator", node="n1",
                      method="cleanup", arguments={"resource": f"r{n}"}, result=result)


def test_the_audit_log_is_kept_in_memory_and_in_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "admin" / "audit.jsonl"
    log = AuditLog(path, keep=3)
    for n in range(5):
        log.record(entry(n))
    assert [e.when for e in log.recent(10)] == [2.0, 3.0, 4.0]
    assert [e.when for e in log.recent(1)] == [4.0]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text().splitlines()) == 5
    with path.open("a") as out:
        out.write('{"when": 9, "who": "torn')  # a crash in mid-write
    again = AuditLog(path, keep=3)
    assert [e.when for e in again.recent(10)] == [3.0, 4.0]


def test_the_audit_file_is_rotated_past_its_size(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, max_bytes=600)
    for n in range(6):
        log.record(entry(n))
    older = path.with_name("audit.jsonl.1")
    assert older.exists() and path.stat().st_size <= 600
    kept = older.read_text().splitlines() + path.read_text().splitlines()
    assert len(kept) >= 2 and json.loads(kept[-1])["when"] == 5.0


def test_an_unwritable_audit_file_keeps_the_memory_copy(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    log = AuditLog(blocker / "audit.jsonl")
    log.record(entry(1, "refused"))
    assert [e.result for e in log.recent(5)] == ["refused"]


# -- client settings ------------------------------------------------------------------------

@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ("PYHA_ADMIN", "PYHA_ADMIN_CONFIG", "PYHA_ADMIN_CA", "PYHA_ADMIN_CERT",
                 "PYHA_ADMIN_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


def test_settings_come_from_the_file_with_paths_relative_to_it(
        no_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    file = tmp_path / "client.toml"
    file.write_text('address = "10.1.2.3:7790"\nca = "ca.crt"\ncert = "me.crt"\n'
                    'key = "/keys/me.key"\n')
    settings = ClientSettings.load(config=file)
    assert settings.address == "10.1.2.3:7790"
    assert (settings.ca, settings.key) == (tmp_path / "ca.crt", Path("/keys/me.key"))
    no_env.setenv("PYHA_ADMIN", "127.0.0.1:9")
    no_env.setenv("PYHA_ADMIN_CERT", "/elsewhere/me.crt")
    settings = ClientSettings.load(config=file)
    assert (settings.address, settings.cert) == ("127.0.0.1:9", Path("/elsewhere/me.crt"))
    assert ClientSettings.load("localhost:1", config=file).address == "localhost:1"


def test_the_default_file_lives_under_the_users_config(no_env: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    folder = tmp_path / "home" / ".config" / "pyha"
    folder.mkdir(parents=True)
    (folder / "client.toml").write_text('address = "h:1"\nca = "a"\ncert = "b"\nkey = "c"\n')
    assert ClientSettings.load().cert == folder / "b"


@pytest.mark.parametrize(("text", "said"), [
    ('address = "h:1"\nca = "a"\ncert = "b"\n', "no key given"),
    ('address = "nothing"\nca = "a"\ncert = "b"\nkey = "c"\n', "address"),
    ('address = "h:1"\ncolour = "blue"\n', "colour: unknown setting"),
    ("address = ", "client.toml"),
])
def test_bad_settings_say_what_is_wrong(no_env: pytest.MonkeyPatch, tmp_path: Path,
                                        text: str, said: str) -> None:
    file = tmp_path / "client.toml"
    file.write_text(text)
    with pytest.raises(ConfigError, match=said):
        ClientSettings.load(config=file)


def test_no_settings_at_all_names_every_missing_one(no_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="no address, ca, cert, key given"):
        ClientSettings.load()
