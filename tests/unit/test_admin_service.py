"""The admin service over a single-node server on a fake clock, called directly (no
network): roles per method, argument checks, audit records, the answers, and fuzzing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyha.admin.auth import AdminRole, Identity
from pyha.admin.errors import InvalidArgument, NotFound, PermissionDenied
from pyha.admin.report import Explanation, StatusReport
from pyha.admin.service import AdminService
from pyha.admin.target import ServerTarget
from pyha.directory.embedded import ConfigStore
from pyha.errors import AdminError, PyhaError
from pyha.executor.runner import Executor
from pyha.model.config import ClusterConfig
from pyha.resources.agent import Origin
from pyha.resources.python import PythonAgent
from pyha.resources.registry import Registry
from pyha.resources.spi import TypeName
from pyha.server import ClusterServer
from pyha.testing import FakeClock
from pyha.testing.dummy import DummyPlugin, default_state_path, set_knobs

READ: dict[str, dict[str, Any]] = {
    "whoami": {}, "status": {}, "explain": {}, "history": {}, "audit": {}}
ACT: dict[str, dict[str, Any]] = {
    "cleanup": {"resource": "ip"}, "standby": {"node": "n1"}, "online": {"node": "n1"},
    "maintenance": {"on": False}}
NEEDED = {**dict.fromkeys(READ, AdminRole.VIEWER), **dict.fromkeys(ACT, AdminRole.OPERATOR)}


def config() -> ClusterConfig:
    return ClusterConfig.from_mapping({
        "cluster": {"name": "t"},
        "nodes": [{"name": "n1"}],
        "groups": [{"name": "web", "resources": [
            {"name": "ip", "type": "dummy",
             "operations": [{"name": "monitor", "interval": "5s"}],
             "meta": {"migration_threshold": 1}},
            {"name": "app", "type": "dummy"}]}],
    })


class Node:
    """A server whose operations run inline, and its admin service with a settable caller."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = FakeClock()
        self.tmp_path = tmp_path
        registry = Registry()
        registry.register(PythonAgent(DummyPlugin(), TypeName.parse("python:pyha:dummy"),
                                      Origin("bundled", "test")))
        executor = Executor(node="n1", clock=self.clock, state_dir=tmp_path, inline=True)
        self.server = ClusterServer(config(), registry, clock=self.clock, state_dir=tmp_path,
                                    executor=executor)
        self.caller: Identity | None = Identity("alice", AdminRole.ADMIN)
        self.service = AdminService(ServerTarget(self.server), identity=lambda: self.caller,
                                    clock=self.clock.wall)
        self.server.probe()
        self.server.cycle()

    def as_role(self, role: AdminRole) -> None:
        self.caller = Identity(f"someone-{role.value}", role)

    def fail_ip(self) -> None:
        """The ip resource's monitor finds it gone: one failure, counted."""
        set_knobs(default_state_path(self.tmp_path, "ip"), fail_on=["monitor"], fail_code=7)
        self.clock.advance(6)
        self.server.cycle()

    def state(self) -> Any:
        """What a rejected call must leave alone."""
        s = self.server
        return (s.fail_counts.records(), s.view(), dict(s._reprobe), len(s.history.all()),
                s.config, s._pending)


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def test_status_shows_nodes_groups_resources_and_timing(node: Node) -> None:
    status = StatusReport.model_validate(node.service.status())
    assert (status.cluster, status.mode, status.coordinator, status.quorum) == (
        "t", "single", "n1", True)
    assert [(n.name, n.online, n.coordinator) for n in status.nodes] == [("n1", True, True)]
    web = status.groups[0]
    assert (web.name, web.state, web.node, web.target) == ("web", "running", "n1", "n1")
    assert "stickiness" in web.why
    assert [(r.name, r.role, r.node, r.type) for r in status.resources] == [
        ("ip", "started", "n1", "python:pyha:dummy"), ("app", "started", "n1",
                                                       "python:pyha:dummy")]
    assert status.resources[0].last_operation.startswith("start ip on n1")
    assert status.timing.detection_worst == pytest.approx(1.1)
    assert status.timing.server_loss_detection == pytest.approx(0.4)  # 3 + 1 heartbeats
    assert web.failover_worst > status.timing.detection_worst


def test_a_failure_shows_in_status_and_cleanup_forgets_it(node: Node) -> None:
    node.fail_ip()
    status = StatusReport.model_validate(node.service.status())
    assert status.resources[0].fail_counts == {"n1": 1}
    assert "fail" in status.groups[0].why or status.groups[0].state != "running"
    node.as_role(AdminRole.OPERATOR)
    result = node.service.cleanup("ip")
    assert result == {"resource": "ip", "nodes": ["n1"], "cleared": 1}
    assert node.server.fail_counts.records() == ()
    assert "ip" in node.server._reprobe  # probed again before the next decision


def test_standby_online_and_maintenance_are_kept_in_the_configuration(
        node: Node) -> None:
    epoch = node.server.config.epoch
    answer = node.service.standby("n1")
    assert answer["standby"] == {"n1": True} and answer["applied_on"] == ["n1"]
    assert answer["note"] == f"configuration epoch {epoch + 1}"
    stored = ConfigStore(node.server.state_dir).load()
    assert stored is not None and stored.epoch == epoch + 1
    assert stored.nodes[0].standby  # on disk: a restart keeps it
    node.clock.advance(1)
    node.server.cycle()
    status = StatusReport.model_validate(node.service.status())
    assert status.nodes[0].standby
    assert status.groups[0].state == "stopped"
    node.service.online("n1")
    node.service.maintenance(True)
    node.clock.advance(1)
    node.server.cycle()
    status = StatusReport.model_validate(node.service.status())
    assert status.maintenance and not status.nodes[0].standby
    assert status.groups[0].state == "stopped"  # maintenance: left as it is
    node.service.maintenance(False)
    node.clock.advance(1)
    node.server.cycle()
    assert StatusReport.model_validate(node.service.status()).groups[0].state == "running"


def test_explain_and_history_answer_for_the_running_node(node: Node) -> None:
    answer = Explanation.model_validate(node.service.explain("web"))
    assert answer.text.startswith("web: runs on n1")
    assert set(answer.placements) == {"web"}
    ops = node.service.history("ip")
    assert [o["operation"] for o in ops] == ["monitor", "start"]
    assert node.service.history(limit=1)[0]["resource"] == "app"


@pytest.mark.parametrize("method", sorted(NEEDED))
@pytest.mark.parametrize("role", list(AdminRole))
def test_each_method_runs_only_for_roles_that_allow_it(node: Node, method: str,
                                                       role: AdminRole) -> None:
    node.as_role(role)
    args = {**READ, **ACT}[method]
    before = node.service.calls
    if role.allows(NEEDED[method]):
        getattr(node.service, method)(**args)
        assert node.service.calls == before + 1
        return
    with pytest.raises(PermissionDenied, match=f"needs the {NEEDED[method].value} role"):
        getattr(node.service, method)(**args)
    assert node.service.calls == before  # refused before the method body ran
    last = node.service.audit_log.recent(1)[0]
    assert (last.method, last.result, last.who) == (method, "refused", f"someone-{role.value}")


def test_a_caller_without_identity_is_refused(node: Node) -> None:
    node.caller = None
    with pytest.raises(PermissionDenied):
        node.service.status()
    assert node.service.calls == 0


def test_every_call_is_audited_with_who_what_and_the_result(node: Node) -> None:
    node.service.status()
    with pytest.raises(NotFound):
        node.service.cleanup("nope", node="n1")
    records = node.service.audit_log.recent(10)
    assert [(r.method, r.result) for r in records] == [("status", "ok"), ("cleanup", "error")]
    assert records[1].arguments == {"resource": "nope", "node": "n1"}
    assert "no resource named 'nope'" in records[1].detail
    assert all(r.who == "alice" and r.role == "admin" and r.node == "n1" for r in records)
    assert [r["method"] for r in node.service.audit(limit=1)] == ["cleanup"]


@pytest.mark.parametrize(("method", "args", "argument"), [
    ("explain", {"group": "nope"}, "group"),
    ("explain", {"group": 3}, "group"),
    ("history", {"resource": "nope"}, "resource"),
    ("history", {"node": "n9"}, "node"),
    ("history", {"limit": 0}, "limit"),
    ("history", {"limit": True}, "limit"),
    ("history", {"limit": "5"}, "limit"),
    ("audit", {"limit": 10**6}, "limit"),
    ("cleanup", {}, "arguments"),
    ("cleanup", {"resource": ""}, "resource"),
    ("cleanup", {"resource": ["ip"]}, "resource"),
    ("cleanup", {"resource": "ip", "colour": "red"}, "arguments"),
    ("status", {"verbose": True}, "arguments"),
    ("standby", {"node": "n2"}, "node"),
    ("online", {}, "arguments"),
    ("maintenance", {"on": "yes"}, "on"),
    ("maintenance", {"on": 1}, "on"),
])
def test_bad_arguments_are_named_and_change_nothing(node: Node, method: str, args: dict[str, Any],
                                                    argument: str) -> None:
    node.fail_ip()
    before = node.state()
    with pytest.raises(InvalidArgument) as caught:
        getattr(node.service, method)(**args)
    assert caught.value.argument == argument
    assert str(caught.value).startswith(f"{method}: {argument}: ")
    assert node.state() == before


def test_an_unexpected_error_reaches_the_caller_as_an_admin_error(node: Node) -> None:
    def broken() -> Any:
        raise KeyError("boom")

    node.service.target.snapshot = broken  # type: ignore[method-assign]
    with pytest.raises(AdminError, match="status: internal error on n1: KeyError"):
        node.service.status()
    assert node.service.audit_log.recent(1)[0].result == "error"


# -- fuzzing --------------------------------------------------------------------------------

ANY_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=6)
NAMES = st.sampled_from(["ip", "app", "web", "n1", "", "nope", "n1 ", "IP"])
ARGUMENT = st.one_of(NAMES, ANY_VALUE)
KEYWORDS = st.sampled_from(["resource", "node", "group", "limit", "x", ""])


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(sorted(NEEDED)), args=st.lists(ARGUMENT, max_size=3),
       kwargs=st.dictionaries(KEYWORDS, ARGUMENT, max_size=3))
def test_fuzzed_calls_get_a_valid_answer_or_a_clear_error_and_rejections_change_nothing(
        node: Node, method: str, args: list[Any], kwargs: dict[str, Any]) -> None:
    node.as_role(AdminRole.ADMIN)
    before = node.state()
    try:
        answer = getattr(node.service, method)(*args, **kwargs)
    except InvalidArgument as exc:
        assert exc.argument and exc.reason
        assert str(exc).startswith(f"{method}: {exc.argument}: ")
        assert node.state() == before
        return
    except PyhaError as exc:  # any other refusal must be one of pyha's, and change nothing
        assert type(exc) is not AdminError or "internal error" not in str(exc)
        assert node.state() == before
        return
    assert isinstance(answer, dict | list)
