"""Following the directory: only valid configurations reach the server; status and audit."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from pyasn1.codec.ber import decoder, encoder

from pyha.directory import syncrepl
from pyha.directory.link import DirectoryLink, StatusBuffer
from pyha.directory.records import StatusRecord
from pyha.directory.watch import ConfigFollower, CookieStore
from pyha.errors import ConfigError, DirectoryError
from pyha.executor.runner import Executor
from pyha.model.config import ClusterConfig
from pyha.model.status import Role
from pyha.resources.agent import Origin
from pyha.resources.python import PythonAgent
from pyha.resources.registry import Registry
from pyha.resources.spi import TypeName
from pyha.server import ClusterServer
from pyha.testing import FakeClock
from pyha.testing.directory import MemoryDirectory
from pyha.testing.dummy import DummyPlugin

# -- the follower ---------------------------------------------------------------------------


def small(epoch: int = 1, role: str = "started") -> ClusterConfig:
    return ClusterConfig.from_mapping({
        "cluster": {"name": "pyha"}, "epoch": epoch, "nodes": [{"name": "n1"}],
        "groups": [{"name": "g", "resources": [
            {"name": "a", "type": "dummy", "meta": {"target_role": role}},
            {"name": "b", "type": "dummy"}]}]})


class Source:
    """A load function whose answer the test sets."""

    def __init__(self) -> None:
        self.answer: Any = small()

    def __call__(self) -> ClusterConfig:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer  # type: ignore[no-any-return]


def test_only_new_valid_configurations_are_handed_over(
        caplog: pytest.LogCaptureFixture) -> None:
    source, got, rejected = Source(), [], []
    follower = ConfigFollower(source, got.append, rejected.append, known=small(), name="d")
    assert not follower.check()  # the same as known
    source.answer = ConfigError("cn=a,...: pyhaTargetRole: 'x' is not valid")
    assert not follower.check()
    assert not follower.check()  # the same problem is reported once
    assert len(rejected) == 1
    assert caplog.text.count("rejected; keeping the last good one (epoch 1)") == 1
    assert "pyhaTargetRole" in caplog.text
    source.answer = small(2, "stopped")
    assert follower.check()
    assert got == [small(2, "stopped")]
    assert follower.current == small(2, "stopped")


def test_an_unreachable_directory_keeps_the_last_good_configuration(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    source, got = Source(), []
    follower = ConfigFollower(source, got.append, known=small(), name="d")
    source.answer = DirectoryError("connection refused")
    follower.check()
    follower.check()
    assert caplog.text.count("unreachable; running on the last good configuration") == 1
    assert not follower.reachable
    source.answer = small(3)
    assert follower.check()
    assert "reachable again" in caplog.text
    assert follower.current is not None and follower.current.epoch == 3


# -- RFC 4533 messages ------------------------------------------------------------------------


def _state(state: int, ident: bytes, cookie: bytes | None = None) -> bytes:
    value = syncrepl._SyncState()
    value["state"] = state
    value["entryUUID"] = ident
    if cookie:
        value["cookie"] = cookie
    return bytes(encoder.encode(value))


def test_entry_messages_give_state_dn_uuid_cookie_and_attributes() -> None:
    ident = uuid.UUID("45b1a860-7cba-1041-9e6e-2fa68fd07a0c")
    message = {"type": "searchResEntry", "dn": "cn=a,ou=x",
               "raw_attributes": {"pyhaType": [b"dummy"], "cn": [b"a"]},
               "controls": {syncrepl.STATE_OID: {"value": _state(2, ident.bytes, b"rid=000")}}}
    event = syncrepl.decode(message)
    assert (event.kind, event.state, event.dn) == ("entry", "modify", "cn=a,ou=x")
    assert event.entry_uuid == str(ident)
    assert event.cookie == b"rid=000"
    assert event.attributes == {"pyhatype": ("dummy",), "cn": ("a",)}


def test_sync_info_messages_end_the_refresh_and_report_deletes() -> None:
    info = syncrepl._SyncInfo()
    refresh = info.componentType.getTypeByPosition(1).clone()
    refresh["cookie"] = b"rid=000,csn=1"
    info["refreshDelete"] = refresh
    event = syncrepl.decode({"type": "intermediateResponse", "responseName": syncrepl.INFO_OID,
                             "responseValue": encoder.encode(info)})
    assert event.refresh_done and event.deletes and event.cookie == b"rid=000,csn=1"
    info = syncrepl._SyncInfo()
    info["newcookie"] = info.componentType.getTypeByPosition(0).clone(b"c2")
    event = syncrepl.decode({"type": "intermediateResponse", "responseName": syncrepl.INFO_OID,
                             "responseValue": encoder.encode(info)})
    assert event.cookie == b"c2" and not event.refresh_done
    # a real OpenLDAP message (refreshDelete, refreshDone defaulted)
    raw = b"\xa1>\x04<rid=000,sid=001,csn=20261125013449.896947Z#000000#001#000000"
    event = syncrepl.decode({"type": "intermediateResponse", "responseName": syncrepl.INFO_OID,
                             "responseValue": raw})
    assert event.refresh_done
    assert syncrepl.cookie_csns(event.cookie) == {"20261125013449.896947Z#000000#001#000000"}


def test_the_request_control_is_critical_and_carries_the_cookie() -> None:
    oid, critical, value = syncrepl.request_control(b"rid=000,csn=x")
    assert (oid, critical) == (syncrepl.REQUEST_OID, True)
    decoded, _ = decoder.decode(value, asn1Spec=syncrepl._SyncRequest())
    assert str(decoded["mode"]) == "refreshAndPersist"
    assert bytes(decoded["cookie"]) == b"rid=000,csn=x"


def test_the_end_of_the_search_and_garbage_are_reported() -> None:
    done = syncrepl.decode({"type": "searchResDone", "result": 4096, "message": "refresh"})
    assert (done.kind, done.result) == ("done", syncrepl.REFRESH_REQUIRED)
    bad = syncrepl.decode({"type": "intermediateResponse", "responseName": syncrepl.INFO_OID,
                           "responseValue": b"\xff\x00"})
    assert bad.kind == "other" and "undecodable" in bad.message


def test_the_cookie_store_keeps_one_cookie_per_server_and_cluster(tmp_path: Path) -> None:
    store = CookieStore(tmp_path / "directory.cookie", "ldap://a cn=c")
    assert store.load() is None
    store.save(b"rid=000,csn=1")
    assert store.load() == b"rid=000,csn=1"
    assert CookieStore(store.path, "ldap://b cn=c").load() is None
    store.clear()
    assert store.load() is None


# -- status buffer ------------------------------------------------------------------------------


def rec(role: Role = Role.STARTED, resource: str = "a") -> StatusRecord:
    return StatusRecord(resource=resource, node="n1", role=role, since=1.0)


def test_status_is_written_on_change_at_most_once_a_second_and_never_lost() -> None:
    buf = StatusBuffer(interval=1.0)
    buf.offer([rec(), rec(resource="b")])
    write, gone = buf.due(0.0)
    assert [r.resource for r in write] == ["a", "b"] and gone == []
    buf.written(write, 0.0)
    buf.offer([rec(), rec(resource="b")])
    assert buf.due(0.5) == ([], [])  # nothing changed
    buf.offer([rec(Role.FAILED), rec(resource="b")])
    assert buf.due(0.5) == ([], [])  # changed, but written less than a second ago
    assert buf.due(1.0)[0] == [rec(Role.FAILED)]
    buf.written([rec(Role.FAILED)], 1.0)
    buf.offer([rec(Role.FAILED)])  # b left the configuration
    assert buf.due(1.1) == ([], [("n1", "b")])
    buf.removed([("n1", "b")])
    assert buf.due(5.0) == ([], [])


# -- the link: server and in-memory directory -----------------------------------------------------


class Linked:
    """A server on a fake clock, its configuration in a MemoryDirectory, linked."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = FakeClock()
        self.directory = MemoryDirectory(cluster="pyha", clock=self.clock)
        self.directory.replace(small())
        reg = Registry()
        reg.register(PythonAgent(DummyPlugin(), TypeName.parse("python:pyha:dummy"),
                                 Origin("bundled", "test")))
        executor = Executor(node="n1", clock=self.clock, state_dir=tmp_path, inline=True)
        self.server = ClusterServer(self.directory.load(), reg, clock=self.clock,
                                    state_dir=tmp_path, executor=executor)
        self.link = DirectoryLink(self.directory, self.server, clock=self.clock)
        self.server.on_cycle = self.link.on_cycle
        self.link._watch = self.directory.watch(self.link.config_changed,
                                                self.link.config_rejected,
                                                known=self.server.config)
        self.server.probe()

    def cycle(self) -> str:
        self.clock.advance(1.0)
        line = self.server.cycle()
        self.link.flush()
        return line

    def roles(self) -> dict[str, Role]:
        return {r.name: r.role for r in self.server.status().resources}


A_DN = "cn=a,cn=g,ou=groups,cn=pyha,dc=pyha,dc=test"


@pytest.fixture
def linked(tmp_path: Path) -> Linked:
    h = Linked(tmp_path)
    h.cycle()
    return h


def test_a_direct_change_reaches_the_server_and_is_audited(linked: Linked) -> None:
    assert linked.roles() == {"a": Role.STARTED, "b": Role.STARTED}
    linked.directory.modify_entry(A_DN, {"pyhaTargetRole": "stopped"}, actor="cn=alice")
    assert linked.link.applied == 1
    linked.cycle()
    assert linked.roles() == {"a": Role.STOPPED, "b": Role.STOPPED}
    audit = linked.directory.read_audit()
    assert [(r.actor, r.action) for r in audit] == [("cn=alice", "modify")]
    assert audit[0].subjects == (A_DN,)
    assert "modify resource a (meta); applied by pyha-server@n1" in audit[0].changes[0]


def test_a_bad_entry_is_rejected_with_its_dn_and_the_last_good_config_stays(
        linked: Linked, caplog: pytest.LogCaptureFixture) -> None:
    linked.directory.modify_entry(A_DN, {"pyhaMigrationThreshold": "lots"})
    assert linked.link.rejected == 1 and linked.link.applied == 0
    assert f"{A_DN}: pyhaMigrationThreshold: 'lots' is not an integer" in caplog.text
    linked.cycle()
    assert linked.roles() == {"a": Role.STARTED, "b": Role.STARTED}
    reject = linked.directory.read_audit()[-1]
    assert reject.action == "reject" and "pyhaMigrationThreshold" in reject.changes[0]
    linked.directory.modify_entry(A_DN, {"pyhaMigrationThreshold": "4"})
    assert linked.link.applied == 1
    assert linked.server.config.epoch == 1  # not yet: applied at the next cycle
    linked.cycle()
    assert linked.server.config.resource("a").meta.migration_threshold == 4


def test_parameters_the_plugin_refuses_are_rejected_by_the_server(
        linked: Linked, caplog: pytest.LogCaptureFixture) -> None:
    linked.directory.modify_entry(A_DN, {"pyhaParameter": "fail_code=often"})
    assert linked.link.rejected == 1
    assert "params.fail_code" in caplog.text
    assert linked.directory.read_audit()[-1].action == "reject"


def test_status_is_written_and_follows_the_resources(linked: Linked) -> None:
    status = {(r.resource, r.role) for r in linked.directory.read_status()}
    assert status == {("a", Role.STARTED), ("b", Role.STARTED)}
    b_dn = "cn=b,cn=g,ou=groups,cn=pyha,dc=pyha,dc=test"
    linked.directory.delete_entry(b_dn)
    linked.cycle()  # b is stopped and forgotten
    linked.cycle()
    assert [(r.resource, r.role) for r in linked.directory.read_status()] == [
        ("a", Role.STARTED)]


def test_status_writes_survive_an_outage(linked: Linked,
                                         caplog: pytest.LogCaptureFixture) -> None:
    linked.directory.available = False
    linked.directory.recheck()  # as a watcher does after losing its connection
    linked.link.buffer.offer([rec(Role.FAILED)])
    linked.clock.advance(2.0)
    linked.link.flush()
    assert "cannot write status" in caplog.text
    assert "unreachable; running on the last good configuration" in caplog.text
    linked.directory.available = True
    linked.link.flush()
    assert any(r.role is Role.FAILED for r in linked.directory.read_status())
