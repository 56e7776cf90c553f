"""What the admin service reads and acts on: a single-node ClusterServer or one node of a
cluster (ClusterNode), behind one interface; and where a node finds its admin settings."""

from __future__ import annotations

import logging
import threading
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pyha.admin.changes import Change, apply_change, invalid_config
from pyha.admin.errors import NotFound
from pyha.admin.report import (
    ChangeResult,
    CleanupResult,
    OperationRecord,
    Snapshot,
    operation_record,
)
from pyha.directory.embedded import ConfigStore
from pyha.errors import ConfigError, PyhaError
from pyha.model.config import ClusterConfig, parse_endpoint
from pyha.model.status import View

if TYPE_CHECKING:
    from pyha.admin.daemon import AdminDaemon
    from pyha.cluster.node import ClusterNode
    from pyha.resources.spi import OperationResult
    from pyha.server import ClusterServer, Member

ADMIN_DIR = "admin"
"""The folder under a node's state directory with its admin endpoint's files."""
SETTINGS_FILE = "admin.toml"
DEFAULT_ADDRESS = "127.0.0.1:7790"
"""Loopback: the admin endpoint is reachable from other computers only when asked."""
AUDIT_FILE = "audit.jsonl"

_log = logging.getLogger("pyha.admin")


@dataclass(frozen=True)
class AdminSettings:
    """Where a node's admin endpoint listens and the TLS files it uses."""

    bind: tuple[str, int]
    ca: Path
    cert: Path
    key: Path
    audit: Path

    @classmethod
    def find(cls, state_dir: Path, node: str) -> AdminSettings | None:
        """The settings in `<state_dir>/admin/`: `ca.crt`, `<node>.crt`, `<node>.key`
        (from `pyha ca issue <node> --server --out <state_dir>/admin`) and an optional
        `admin.toml` with `address = "host:port"`. None when the folder holds none of
        the TLS files (no admin endpoint); ConfigError when it holds only some."""
        folder = state_dir / ADMIN_DIR
        files = {"ca": folder / "ca.crt", "cert": folder / f"{node}.crt",
                 "key": folder / f"{node}.key"}
        present = [p for p in files.values() if p.is_file()]
        if not present:
            return None
        if len(present) < len(files):
            missing = ", ".join(str(p) for p in files.values() if not p.is_file())
            raise ConfigError(f"admin endpoint: {missing} missing")
        return cls(bind=_address(folder / SETTINGS_FILE), audit=folder / AUDIT_FILE, **files)


def _address(path: Path) -> tuple[str, int]:
    text = DEFAULT_ADDRESS
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
        unknown = sorted(set(data) - {"address"})
        if unknown:
            raise ConfigError(f"{path}: {', '.join(unknown)}: unknown setting")
        text = str(data.get("address", DEFAULT_ADDRESS))
    try:
        return parse_endpoint(text)
    except ValueError as exc:
        raise ConfigError(f"{path}: address: {exc}") from None


class Target(Protocol):
    """A cluster server as the admin service sees it."""

    @property
    def node(self) -> str:
        """The answering node."""
        ...

    @property
    def config(self) -> ClusterConfig:
        """The configuration in force."""
        ...

    def snapshot(self) -> Snapshot:
        """Everything status and explain read, gathered now."""
        ...

    def history(self, resource: str | None, node: str | None,
                limit: int) -> list[OperationRecord]:
        """The newest `limit` operations (of `resource`, on `node`), oldest first."""
        ...

    def cleanup(self, resource: str, node: str | None) -> CleanupResult:
        """Forget the failures of `resource` (on `node`, or everywhere) and probe it."""
        ...

    def commit(self, change: Change) -> ChangeResult:
        """Make a configuration change durably (on a majority of votes in a cluster)."""
        ...


class ServerTarget:
    """A single-node ClusterServer: everything is local."""

    def __init__(self, server: ClusterServer) -> None:
        self.server = server
        self._lock = threading.Lock()
        self._facts = MemberFacts()
        self._said: dict[str, tuple[OperationResult, str]] = {}

    @property
    def node(self) -> str:
        """This node."""
        return self.server.node

    @property
    def config(self) -> ClusterConfig:
        """The configuration in force."""
        return self.server.config

    def snapshot(self) -> Snapshot:
        """The server's view, decision line and last operations (read when asked)."""
        s = self.server
        config, members = s.config, s.members
        facts = self._facts.of(members)
        if len(self._said) > 2 * len(members):  # resources removed since
            self._said.clear()
        return Snapshot(
            config=config, node=s.node, mode="single", view=s.view(), now=s.clock.wall(),
            coordinator=s.node, term=0, members=frozenset({s.node}),
            decision=s.decision, view_from=f"{s.node}'s own probes and monitors",
            types=facts.types, start_timeouts=facts.start_timeouts,
            last_operations=LastOperations(s, members, self._said))

    def history(self, resource: str | None, node: str | None,
                limit: int) -> list[OperationRecord]:
        """This node's kept operations."""
        if node not in (None, self.node):
            raise NotFound("history", "node", f"no node named {node!r} here")
        return local_history(self.server, resource, limit)

    def cleanup(self, resource: str, node: str | None) -> CleanupResult:
        """Forget the failures here and probe the resource again."""
        if node not in (None, self.node):
            raise NotFound("cleanup", "node", f"no node named {node!r} here")
        cleared = self.server.cleanup(resource)
        return CleanupResult(resource=resource, nodes=(self.node,), cleared=cleared)

    def commit(self, change: Change) -> ChangeResult:
        """Make the change: in the directory when the configuration lives there (its
        watch brings it back), else in the embedded store; in force from the next cycle."""
        server = self.server
        with self._lock:
            members = None
            if server.config_writer is not None:
                new = server.config_writer(lambda c: apply_change(c, change))
            else:
                base = server.next_config()
                new = apply_change(base, change).model_copy(update={"epoch": base.epoch + 1})
                try:
                    members = server.check(new)
                except ConfigError as exc:
                    raise invalid_config(change, exc) from None
                ConfigStore(server.state_dir, actor=f"pyha-server@{self.node}").save(new)
            server.reconfigure(new, members)
        return ChangeResult(change=change.describe(), epoch=new.epoch, coordinator=self.node,
                            acked=(self.node,))


class NodeTarget:
    """One node of a cluster: membership from its detector and election, resource states
    from the coordinator's last cycle, and per-node facts asked of each node."""

    def __init__(self, cluster_node: ClusterNode) -> None:
        self.cluster_node = cluster_node
        self._facts = MemberFacts()

    @property
    def node(self) -> str:
        """This node."""
        return self.cluster_node.node

    @property
    def config(self) -> ClusterConfig:
        """The configuration in force."""
        return self.cluster_node.config

    def snapshot(self) -> Snapshot:
        """Membership here, the coordinator's view, and each online node's last operations."""
        cn = self.cluster_node
        m = cn.membership()
        members = frozenset(str(n) for n in m["members"])
        coordinator = m["coordinator"] if isinstance(m["coordinator"], str) else None
        view, view_from, decision = self._view(coordinator, members, bool(m["quorate"]))
        newest: dict[str, tuple[float, str]] = {}
        for node in sorted(members):
            for name, (started, text) in self._ask(node, {"op": "last"}, missing={}).items():
                if name not in newest or float(started) > newest[name][0]:
                    newest[name] = (float(started), str(text))
        last = {name: text for name, (_, text) in newest.items()}
        facts = self._facts.of(cn.local.members)
        return Snapshot(
            config=cn.config, node=cn.node, mode="cluster", view=view,
            now=cn.local.clock.wall(), coordinator=coordinator, term=int(m["term"]),
            members=members, decision=decision or str(m["decision"]), view_from=view_from,
            types=facts.types, start_timeouts=facts.start_timeouts, last_operations=last)

    def _view(self, coordinator: str | None, members: frozenset[str],
              quorate: bool) -> tuple[View, str, str]:
        from pyha.cluster.view import NodeReport, build_view

        if coordinator is not None:
            answer = self._ask(coordinator, {"op": "view"}, missing={})
            if answer.get("view") is not None:
                return (View.model_validate(answer["view"]),
                        f"the coordinator {coordinator}'s last cycle",
                        str(answer.get("decision", "")))
        reports = {}
        for node in sorted(members):
            answer = self._ask(node, {"op": "report"}, missing={})
            if answer:
                reports[node] = NodeReport.model_validate(answer)
        view = build_view(self.config, reports, members, frozenset(), quorate)
        return view, f"reports gathered by {self.node} (no coordinator view yet)", ""

    def history(self, resource: str | None, node: str | None,
                limit: int) -> list[OperationRecord]:
        """The operations of one node, or of every online node merged by start time."""
        nodes = self._nodes("history", node)
        records: list[OperationRecord] = []
        for name in nodes:
            answer = self._ask(name, {"op": "history", "resource": resource, "limit": limit},
                               missing={"records": []})
            records += [OperationRecord.model_validate(r) for r in answer["records"]]
        records.sort(key=lambda r: r.started)
        return records[-limit:]

    def cleanup(self, resource: str, node: str | None) -> CleanupResult:
        """Forget the failures on one node, or on every online node."""
        nodes = self._nodes("cleanup", node)
        cleared = 0
        for name in nodes:
            answer = self._ask(name, {"op": "cleanup", "resource": resource}, missing=None)
            cleared += int(answer.get("cleared", 0))
        return CleanupResult(resource=resource, nodes=tuple(nodes), cleared=cleared)

    def commit(self, change: Change) -> ChangeResult:
        """Make the change through the coordinator; it answers once a majority has it."""
        return self.cluster_node.commit(change)

    def _nodes(self, method: str, node: str | None) -> list[str]:
        online = sorted(self.cluster_node.membership()["members"])
        if node is None:
            return [str(n) for n in online]
        if node not in {n.name for n in self.config.nodes}:
            raise NotFound(method, "node", f"no node named {node!r}")
        if node not in online:
            raise NotFound(method, "node", f"{node} is not online")
        return [node]

    def _ask(self, node: str, params: dict[str, Any],
             missing: dict[str, Any] | None) -> dict[str, Any]:
        """Answer `params` here or ask `node`; `missing` (unless None) stands in for the
        answer of a node that cannot be asked."""
        cn = self.cluster_node
        if node == cn.node:
            return answer_peer(cn, params)
        try:
            return cn.peers[node].call("admin", params, cn.options.call_timeout)
        except PyhaError as exc:
            if missing is None:
                raise
            _log.warning("admin: no answer from %s: %s", node, exc)
            return missing


def answer_peer(cluster_node: ClusterNode, params: dict[str, Any]) -> dict[str, Any]:
    """A node's answer to another node's `admin` call (or to its own admin service)."""
    op = params.get("op")
    local = cluster_node.local
    if op == "view":
        view = cluster_node.last_view
        return {"view": view.model_dump(mode="json") if view is not None else None,
                "decision": cluster_node.membership()["decision"]}
    if op == "report":
        return cluster_node.report().model_dump(mode="json")
    if op == "last":  # resource -> [start time, the operation in words]
        return {name: [result.started, result.describe()] for name in local.members
                if (result := local.history.last(name)) is not None}
    if op == "history":
        resource = params.get("resource")
        records = local_history(local, str(resource) if resource else None,
                                int(params.get("limit", 50)))
        return {"records": [r.model_dump(mode="json") for r in records]}
    if op == "cleanup":
        return {"cleared": local.cleanup(str(params["resource"]))}
    raise ValueError(f"admin: unknown request {op!r}")


def local_history(server: ClusterServer, resource: str | None,
                  limit: int) -> list[OperationRecord]:
    """The newest `limit` operations this node's executor kept, oldest first."""
    results = server.history.for_resource(resource) if resource else server.history.all()
    return [operation_record(r) for r in results[-limit:]]


class MemberFacts:
    """Each resource's resolved type and start timeout, computed once per set of bound
    resources (a server replaces the whole set when a configuration comes in force), so
    that the same mappings come back while it is unchanged."""

    def __init__(self) -> None:
        self._of: tuple[Mapping[str, Member], dict[str, str], dict[str, float]] | None = None
        self._lock = threading.Lock()

    def of(self, members: Mapping[str, Member]) -> MemberFacts.Facts:
        """The facts of `members` (the very mappings given last time for the same set)."""
        with self._lock:
            if self._of is None or self._of[0] is not members:
                types = {name: str(m.agent.name) for name, m in members.items()}
                timeouts = {}
                for name, m in members.items():
                    configured = m.timeout("start")
                    timeouts[name] = configured if configured is not None \
                        else m.agent.meta.timeout("start")
                self._of = (members, types, timeouts)
            return MemberFacts.Facts(types=self._of[1], start_timeouts=self._of[2])

    @dataclass(frozen=True)
    class Facts:
        """Resource -> type, and resource -> seconds its start may take."""

        types: Mapping[str, str]
        start_timeouts: Mapping[str, float]


class LastOperations(Mapping[str, str]):
    """Each resource's last operation on a server, in words, read when asked: a lean
    status reads a few of 10,000. `said` keeps the words of each resource's last result
    (shared between snapshots: a result's words never change)."""

    def __init__(self, server: ClusterServer, members: Mapping[str, Member],
                 said: dict[str, tuple[OperationResult, str]] | None = None) -> None:
        self.server = server
        self.members = members
        self.said = {} if said is None else said

    def __getitem__(self, name: str) -> str:
        if name not in self.members:
            raise KeyError(name)
        last = self.server.last_operation(name)
        if last is None:
            return ""
        known = self.said.get(name)
        if known is None or known[0] is not last:
            known = self.said[name] = (last, last.describe())
        return known[1]

    def __iter__(self) -> Iterator[str]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)


def serve_admin(server: ClusterServer | ClusterNode) -> AdminDaemon | None:
    """Start the admin endpoint of `server` when its state directory holds the admin
    files (see AdminSettings.find); None when it has none or cannot start. The cluster
    server keeps running either way: the endpoint's problems are logged, never fatal."""
    from pyha.admin.auth import server_context
    from pyha.admin.daemon import AdminDaemon
    from pyha.admin.service import AdminService
    from pyha.cluster.node import ClusterNode

    target: Target = NodeTarget(server) if isinstance(server, ClusterNode) \
        else ServerTarget(server)
    try:
        settings = AdminSettings.find(server.state_dir, server.node)
        if settings is None:
            return None
        service = AdminService(target, audit_path=settings.audit)
        daemon = AdminDaemon(service, settings.bind,
                             server_context(settings.ca, settings.cert, settings.key),
                             on_refused=service.refused, node=server.node)
    except PyhaError as exc:
        _log.error("admin endpoint not started: %s", exc)
        return None
    daemon.start()
    from pyha.admin.jmx_bridge import JmxBridge

    if JmxBridge.configured(server.state_dir):
        bridge = JmxBridge(server.state_dir, server.node)
        daemon.companions.append(bridge)
        bridge.start()
    return daemon

