"""One node's cluster server: probe, monitor, schedule, act, and report a decision per cycle."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from pyha.clock import Clock, MonotonicClock
from pyha.errors import ConfigError, PyhaError
from pyha.executor.history import FailCounts, OperationHistory
from pyha.executor.monitors import MonitorSchedule
from pyha.executor.runner import Executor
from pyha.model.actions import Action, ActionKind, Transition
from pyha.model.config import ClusterConfig, Group, OnFail, Resource
from pyha.model.status import NodeStatus, ResourceStatus, Role, View
from pyha.resources.agent import Agent
from pyha.resources.registry import Registry
from pyha.resources.spi import OcfCode, OperationResult
from pyha.scheduler import schedule
from pyha.scheduler.inputs import INPUTS_DIR, INPUTS_KEPT, SchedulerInput, input_name, input_number

DEFAULT_MONITOR_INTERVAL = 10.0
WAKE_CHECK = 0.05
PROBE_WORKERS = 8
"""How many resources a probe asks at once (the executor keeps one operation per
resource; different resources' monitors may run side by side)."""
"""How often an idle loop looks for wake() (a config change, a command)."""


@dataclass(frozen=True)
class Member:
    """A configured resource bound to the agent of its type and its checked parameters."""

    group: Group
    resource: Resource
    agent: Agent
    params: dict[str, Any]

    def timeout(self, operation: str) -> float | None:
        """The resource's configured timeout for a one-shot `operation`, if any."""
        op = self.resource.operation(operation)
        return op.timeout if op else None

    def monitor_plan(self) -> list[tuple[float, float | None]]:
        """(interval, timeout) of each recurring monitor; the plugin's hint if none set."""
        configured = [(m.interval, m.timeout) for m in self.resource.monitors()]
        if configured:
            return configured
        hint = self.agent.meta.operation("monitor")
        interval = hint.interval if hint and hint.interval else DEFAULT_MONITOR_INTERVAL
        return [(interval, None)]


@dataclass(frozen=True)
class ResourceReport:
    """One resource as `status` shows it."""

    name: str
    group: str
    type: str
    role: Role
    failures: int
    message: str
    last_operation: str


@dataclass(frozen=True)
class ServerStatus:
    """A snapshot of the server for displays: each resource, each group's placement and notes."""

    node: str
    cycle: int
    resources: tuple[ResourceReport, ...]
    groups: dict[str, str]
    decision: str


def bind_members(config: ClusterConfig, registry: Registry) -> dict[str, Member]:
    """Resolve every resource's type and check its parameters, all before anything runs.

    ConfigError lists every problem, each naming the resource and the parameter.
    """
    members: dict[str, Member] = {}
    problems: list[str] = []
    for group, resource in config.resources():
        where = f"resource {resource.name} (group {group.name})"
        try:
            agent = registry.resolve(resource.type)
        except PyhaError as exc:
            problems.append(f"{where}: type: {exc}")
            continue
        params, bad = agent.validate(resource.params)
        problems.extend(f"{where}: params.{p}" for p in bad)
        for op in resource.operations:
            if not agent.supports(op.name):
                problems.append(f"{where}: operations: {agent.name} has no {op.name} operation")
        members[resource.name] = Member(group, resource, agent, params)
    if problems:
        raise ConfigError("the configuration cannot run", tuple(problems))
    return members


class ClusterServer:
    """Keeps the configured groups running on this node.

    Invariant: a cycle reads one snapshot of what the monitors and operations said,
    schedules once, and runs the transition's actions in dependency order; the first
    failed action ends the transition and the next cycle decides again from the facts.
    """

    def __init__(self, config: ClusterConfig, registry: Registry, *, node: str | None = None,
                 clock: Clock | None = None, state_dir: Path | None = None,
                 executor: Executor | None = None,
                 on_cycle: Callable[[ServerStatus], None] | None = None) -> None:
        self.config = config
        self.node = node or _only_node(config)
        if self.node not in {n.name for n in config.nodes}:
            raise ConfigError(f"--node: {self.node!r} is not a node of the cluster file")
        self.clock = clock or MonotonicClock()
        self.state_dir = Path(state_dir or config.cluster.state_dir)
        self.log = logging.getLogger("pyha.server")
        self.members = bind_members(config, registry)
        self.registry = registry
        self._pending: tuple[ClusterConfig, dict[str, Member]] | None = None
        self._pending_lock = threading.Lock()
        self.history = OperationHistory()
        self.executor = executor or Executor(node=self.node, clock=self.clock,
                                             state_dir=self.state_dir, history=self.history)
        self.history = self.executor.history
        self.fail_counts = FailCounts()
        self.monitors = MonitorSchedule()
        self.on_cycle = on_cycle
        self.config_writer: Callable[[Callable[[ClusterConfig], ClusterConfig]],
                                     ClusterConfig] | None = None
        """Where admin changes go when the configuration lives in a directory (it applies
        one change and returns the new configuration); None: the embedded store."""
        self._roles: dict[str, ResourceStatus] = {}
        self._policies: dict[str, OnFail] = {}
        """The on-fail policy of each resource's last failure, for the view's fail records."""
        self._reprobe: dict[str, str] = {}
        """Resources to probe again at the next cycle, with why (their plugin host
        restarted, or an admin cleaned them up)."""
        self._watch_java_host()
        self._tell_ocf_agents_the_nodes()
        self._cycle = 0
        self._last_line = ""
        self._last_notes: dict[str, str] = {}
        self._wake = threading.Event()

    # -- the loop ---------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Probe, then cycle until `stop` is set; then stop everything in reverse order."""
        from pyha.admin.target import serve_admin

        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log.info("cluster server for node %s of cluster %s starting",
                      self.node, self.config.cluster.name)
        admin = serve_admin(self)  # None unless <state_dir>/admin holds its TLS files
        try:
            self.probe()
            while not stop.is_set():
                self.cycle()
                self._idle(stop)
            self.shutdown()
        finally:
            if admin is not None:
                admin.close()

    def probe(self) -> None:
        """Ask every resource whether it already runs here (a one-shot monitor), several
        at a time: a new coordinator waits for every node's probe before it acts."""
        members = list(self.members.values())
        for member in members:
            self.monitors.remove(member.resource.name)
        with ThreadPoolExecutor(max_workers=max(1, min(PROBE_WORKERS, len(members))),
                                thread_name_prefix="pyha-probe") as pool:
            results = list(pool.map(partial(self._run, operation="monitor"), members))
        for member, result in zip(members, results, strict=True):
            self._probed(member, result)

    def cycle(self) -> str:
        """One decision cycle: due monitors, schedule, act. Returns the decision line."""
        self._cycle += 1
        self.apply_pending()
        self.monitor_tick()
        view, now = self.view(), self.clock.wall()
        transition = schedule(self.config, view, now)
        if transition.actions:
            self._save_input(view, now)
        line = f"cycle {self._cycle}: {transition.summary}"
        self._report(line, transition)
        outcome = self._execute(transition)
        if outcome:
            line += f" -> {outcome}"
            self.log.info("cycle %d: %s", self._cycle, outcome)
        self._publish(transition.summary)
        return line

    def shutdown(self) -> None:
        """Stop every active resource: groups in reverse order, members in reverse."""
        self.stop_all("shutting down")
        self.log.info("cluster server for node %s stopped", self.node)

    def stop_all(self, why: str) -> None:
        """Stop every active resource here, last group and last member first."""
        active = [m for m in reversed(list(self.members.values()))
                  if self._role(m.resource.name) not in (Role.STOPPED, Role.UNKNOWN)]
        names = ", ".join(m.resource.name for m in active) or "nothing active"
        self.log.info("%s: stop %s", why, names)
        for member in active:
            self.monitors.remove(member.resource.name)
            result = self._run(member, "stop")
            if result.ok:
                self._set(member, Role.STOPPED)
            else:
                self.log.error("%s: %s", why, result.describe())

    def wake(self) -> None:
        """Make the loop run a cycle now (after a config change or a command)."""
        self._wake.set()

    def cleanup(self, resource: str) -> int:
        """Forget the failures of `resource` here and probe it again before the next
        decision, as Pacemaker's cleanup does; how many failure records went."""
        cleared = self.fail_counts.clear(resource, self.node)
        if resource in self.members:
            self._reprobe[resource] = "an admin cleaned up its failures"
        self.wake()
        return cleared

    # -- reconfiguration ----------------------------------------------------------------

    def reconfigure(self, config: ClusterConfig,
                    members: dict[str, Member] | None = None) -> str:
        """Take a new configuration: bind and check it first, apply it at the next cycle.

        Every resource is bound to its type through the registry and its parameters
        are checked before anything is touched; a configuration that fails raises
        ConfigError (logged) and the running one stays. Otherwise the next cycle
        stops removed resources and those whose type or parameters changed (they start
        again with the new ones), updates monitors, probes new resources, and then
        schedules with the new configuration. Returns what will change, in words.
        """
        try:
            if not any(n.name == self.node for n in config.nodes):
                raise ConfigError(f"nodes: this node ({self.node}) is not in the new "
                                  "configuration")
            if members is None:  # else bound by check() for this very configuration
                members = bind_members(config, self.registry)
        except ConfigError as exc:
            self.log.error("configuration epoch %d rejected; keeping epoch %d: %s",
                           config.epoch, self.config.epoch, exc)
            raise
        with self._pending_lock:
            self._pending = (config, members)
        plan = _describe_plan(_member_changes(self.members, members))
        self.log.info("configuration epoch %d accepted: %s", config.epoch, plan)
        self.wake()
        return plan

    def check(self, config: ClusterConfig) -> dict[str, Member]:
        """Raise ConfigError unless this node could run `config`: it is one of its nodes,
        and every resource binds to its type with valid parameters. Changes nothing;
        returns the bound resources (for `reconfigure` of the same configuration)."""
        if not any(n.name == self.node for n in config.nodes):
            raise ConfigError(f"nodes: this node ({self.node}) is not in the new configuration")
        return bind_members(config, self.registry)

    def next_config(self) -> ClusterConfig:
        """The configuration the next cycle runs with: one accepted but not yet applied,
        else the one in force."""
        with self._pending_lock:
            return self._pending[0] if self._pending else self.config

    def apply_pending(self) -> bool:
        """Switch to a configuration `reconfigure` accepted; True if there was one."""
        with self._pending_lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return False
        config, members = pending
        removed, added, restarted, remonitor = _member_changes(self.members, members)
        order = list(self.members)
        for name in sorted(set(removed) | set(restarted), key=order.index, reverse=True):
            self._stop_for_change(self.members[name], "removed" if name in removed
                                  else "its type or parameters changed")
        for name in removed:
            self._forget(name)
        self.config, self.members = config, members
        for name in remonitor:
            if self._role(name) in (Role.STARTED, Role.PROMOTED):
                self.monitors.remove(name)
                self._schedule_monitors(members[name])
        for name in added:
            self.monitors.remove(name)
            self._probed(members[name], self._run(members[name], "monitor"))
        self.log.info("configuration epoch %d in force", config.epoch)
        return True

    def _stop_for_change(self, member: Member, why: str) -> None:
        name = member.resource.name
        self.monitors.remove(name)
        if self._role(name) in (Role.STOPPED, Role.UNKNOWN):
            return
        self.log.info("stopping %s: %s", name, why)
        result = self._run(member, "stop")
        if result.ok:
            self._set(member, Role.STOPPED)
        else:
            self.log.error("could not stop %s (%s): %s; it may still run, stop it by hand",
                           name, why, result.describe())
            self._failed(member, result)

    def _forget(self, name: str) -> None:
        self._roles.pop(name, None)
        self._policies.pop(name, None)
        self.fail_counts.clear(name)
        self.monitors.remove(name)

    # -- the view ---------------------------------------------------------------------

    def view(self) -> View:
        """The scheduler's input: this node, every resource's role here, failures."""
        node = self.config.node(self.node)
        return View(
            nodes=(NodeStatus(name=self.node, standby=node.standby,
                              maintenance=node.maintenance),),
            resources=tuple(self._roles.values()),
            failures=tuple(r.model_copy(update={"on_fail": self._policies.get(r.resource)})
                           for r in self.fail_counts.records()),
        )

    def status(self) -> ServerStatus:
        """What this server knows now, for displays and tests."""
        reports = []
        for name, member in self.members.items():
            record = self.fail_counts.get(name, self.node)
            last = self.history.last(name)
            state = self._roles.get(name)
            reports.append(ResourceReport(
                name=name, group=member.group.name, type=str(member.agent.name),
                role=self._role(name), failures=record.count if record else 0,
                message=state.message if state else "",
                last_operation=last.describe() if last else "",
            ))
        return ServerStatus(node=self.node, cycle=self._cycle, resources=tuple(reports),
                            groups=self._group_states(), decision=self._last_line)

    @property
    def decision(self) -> str:
        """The last cycle's decision line ("" before the first cycle)."""
        return self._last_line

    def last_operation(self, resource: str) -> OperationResult | None:
        """The most recent operation of `resource` here, if any ran."""
        return self.history.last(resource)

    # -- internals ----------------------------------------------------------------------

    def _failure_timeout(self, resource: str) -> float:
        member = self.members.get(resource)
        return member.resource.meta.failure_timeout if member else 1.0

    def _role(self, resource: str) -> Role:
        state = self._roles.get(resource)
        return state.role if state else Role.UNKNOWN

    def _set(self, member: Member, role: Role, message: str = "", failed_op: str = "") -> None:
        name = member.resource.name
        self._roles[name] = ResourceStatus(resource=name, node=self.node, role=role,
                                           since=self.clock.wall(), message=message,
                                           failed_operation=failed_op)

    def _run(self, member: Member, operation: str, interval: float = 0.0,
             timeout: float | None = None) -> OperationResult:
        return self.executor.run(
            member.agent, member.resource.name, operation, member.params,
            timeout=timeout if timeout is not None else member.timeout(operation),
            interval=interval, meta=member.resource.meta.model_dump(mode="json"),
        )

    def _schedule_monitors(self, member: Member) -> None:
        for interval, timeout in member.monitor_plan():
            self.monitors.add(member.resource.name, interval, timeout, self.clock.now())

    def _run_due_monitors(self) -> None:
        for due in self.monitors.due(self.clock.now()):
            member = self.members[due.resource]
            if self._role(due.resource) not in (Role.STARTED, Role.PROMOTED):
                continue
            result = self._run(member, "monitor", due.interval, due.timeout)
            if not result.ok:  # a recurring monitor answering "not running" is a failure
                self._failed(member, result)

    def _failed(self, member: Member, result: OperationResult) -> None:
        """Record a failed operation and set the role the on-fail policy asks for."""
        name = member.resource.name
        policy = _on_fail(member.resource, result.operation, result.interval)
        message = _failure_message(result)
        self.log.warning("%s failed on %s: %s (on-fail=%s)", name, self.node, message,
                         policy.value)
        if policy is OnFail.IGNORE:
            return
        self.monitors.remove(name)
        self._policies[name] = policy
        self.fail_counts.record(result, self.clock.wall(),
                                fatal=policy in (OnFail.MOVE, OnFail.STOP))
        if result.operation == "stop" or policy in (OnFail.BLOCK, OnFail.FENCE):
            if policy is OnFail.FENCE:
                message += "; on-fail=fence but this node has no fence device"
            self._set(member, Role.BLOCKED, message, result.operation)
        else:
            self._set(member, Role.FAILED, message, result.operation)

    def _execute(self, transition: Transition) -> str:
        done: set[int] = set()
        while True:
            ready = transition.ready(done)
            if not ready:
                break
            for action in ready:
                if not self.perform(action):
                    left = len(transition.actions) - len(done) - 1
                    return f"{action.describe()} failed; {left} action(s) left for the next cycle"
                done.add(action.id)
        return f"{len(done)} action(s) done" if done else ""

    def perform(self, action: Action) -> bool:
        """Run one action of a transition on this node; True when it did what was asked."""
        if action.node != self.node or action.resource is None:
            self.log.error("cannot %s: not on this node", action.describe())
            return False
        member = self.members.get(action.resource)
        if member is None:
            self.log.error("cannot %s: no such resource here", action.describe())
            return False
        if action.kind is ActionKind.STOP:
            self.monitors.remove(action.resource)
        operation = action.kind.value
        result = self._run(member, operation)
        if action.kind is ActionKind.MONITOR:  # a probe: any clean answer is a fact
            self._probed(member, result)
            return result.ok
        if result.ok:
            self._set(member, _ROLE_AFTER[action.kind])
            if action.kind is not ActionKind.STOP:
                self._schedule_monitors(member)
            return True
        self._failed(member, result)
        return False

    def monitor_tick(self) -> None:
        """Run the monitors that are due and forget expired failures (no scheduling)."""
        self._probe_again()
        self._run_due_monitors()
        self.fail_counts.expire(self.clock.wall(), self._failure_timeout)

    def _tell_ocf_agents_the_nodes(self) -> None:
        """OCF agents ask `crm_node -l` for the cluster's nodes: give them the config's."""
        from pyha.resources.ocf import OcfAgent

        names = tuple(n.name for n in self.config.nodes)
        for member in self.members.values():
            if isinstance(member.agent, OcfAgent):
                member.agent.nodes = names

    def _watch_java_host(self) -> None:
        """Probe the Java resources again whenever their JVM host was restarted: what the
        old host knew is gone, and the resources' real state must be asked afresh."""
        from pyha.resources.java import JavaAgent, java_runtime

        java = [m.resource.name for m in self.members.values()
                if isinstance(m.agent, JavaAgent)]
        runtime = java_runtime(m.agent for m in self.members.values()) if java else None
        if runtime is not None:
            # The listener runs in the thread that restarted the host: only take note.
            runtime.on_host_restarted(lambda _generation: self._reprobe.update(
                dict.fromkeys(java, "its plugin host restarted")))
        # Java plugins read the configuration in force through JNDI: a snapshot of it,
        # unless the server runs on an LDAP directory (pyha.cli.directory.serve).
        plugins = java_runtime(self.registry.agents())
        if plugins is not None:
            plugins.follow_config(lambda: self.config, self.state_dir)

    def _probe_again(self) -> None:
        while self._reprobe:
            name, why = self._reprobe.popitem()
            member = self.members.get(name)
            if member is not None:
                self.log.warning("probing %s again: %s", name, why)
                self.monitors.remove(name)
                self._probed(member, self._run(member, "monitor"))

    def _probed(self, member: Member, result: OperationResult) -> None:
        if result.ok and result.running:
            promoted = result.code == OcfCode.RUNNING_PROMOTED
            self._set(member, Role.PROMOTED if promoted else Role.STARTED,
                      "found running by a probe")
            self._schedule_monitors(member)
        elif result.ok:
            self._set(member, Role.STOPPED)
        else:
            self._failed(member, result)

    def _save_input(self, view: View, now: float) -> None:
        """Keep what produced a transition, for `pyha simulate` to replay."""
        data = SchedulerInput(now=now, config=self.config, view=view)
        try:
            save_input(self.state_dir / INPUTS_DIR, data)
        except OSError as exc:
            self.log.warning("cannot save the scheduler input: %s", exc)

    def _report(self, line: str, transition: Transition) -> None:
        # Identical idle cycles are logged at debug level so the log shows changes.
        level = logging.INFO if (transition.actions or line.split(": ", 1)[1]
                                 != self._last_line) else logging.DEBUG
        self.log.log(level, "%s", line)
        self._last_line = line.split(": ", 1)[1]
        for note in transition.notes:
            if self._last_notes.get(note.subject) != note.text:
                self.log.warning("group %s %s", note.subject, note.text)
        self._last_notes = {n.subject: n.text for n in transition.notes}

    def _publish(self, summary: str) -> None:
        if self.on_cycle:
            self.on_cycle(self.status())

    def _group_states(self) -> dict[str, str]:
        states = {}
        for group in self.config.groups:
            roles = [self._role(r.name) for r in group.resources]
            note = self._last_notes.get(group.name)
            if all(r is Role.STARTED for r in roles):
                states[group.name] = f"running on {self.node}"
            elif note:
                states[group.name] = f"failed: {note}" if "cannot run" in note else note
            elif any(r in (Role.FAILED, Role.BLOCKED) for r in roles):
                states[group.name] = "recovering"
            elif all(r is Role.STOPPED for r in roles):
                states[group.name] = "stopped"
            else:
                states[group.name] = "starting"
        return states

    def _idle(self, stop: threading.Event) -> None:
        """Wait for the next due cycle, returning early on stop() or wake()."""
        deadline = self.clock.now() + self._wait_time()
        while not stop.is_set() and not self._wake.is_set():
            left = deadline - self.clock.now()
            if left <= 0:
                return
            self.clock.wait(stop, min(left, WAKE_CHECK))
        self._wake.clear()

    def _wait_time(self) -> float:
        if self._wake.is_set():
            self._wake.clear()
            return 0.0
        wait = self.config.cluster.cycle_interval
        next_due = self.monitors.next_due()
        if next_due is not None:
            wait = min(wait, max(0.0, next_due - self.clock.now()))
        return wait


def save_input(directory: Path, data: SchedulerInput, keep: int = INPUTS_KEPT) -> Path:
    """Write `data` as the next numbered input file, atomically; keep the newest `keep`."""
    directory.mkdir(parents=True, exist_ok=True)
    numbers = sorted(n for p in directory.iterdir() if (n := input_number(p.name)) is not None)
    number = numbers[-1] + 1 if numbers else 1
    path = directory / input_name(number)
    temporary = directory / f".{path.name}.tmp"
    temporary.write_text(data.to_json())
    os.replace(temporary, path)  # readers see the whole file or none
    for old in numbers[:max(0, len(numbers) + 1 - keep)]:
        (directory / input_name(old)).unlink(missing_ok=True)
    return path


_ROLE_AFTER = {ActionKind.START: Role.STARTED, ActionKind.STOP: Role.STOPPED,
               ActionKind.PROMOTE: Role.PROMOTED, ActionKind.DEMOTE: Role.STARTED}


def _member_changes(old: dict[str, Member], new: dict[str, Member],
                    ) -> tuple[list[str], list[str], list[str], list[str]]:
    """(removed, added, restarted, monitors changed) between two bindings, in order."""
    removed = [n for n in old if n not in new]
    added = [n for n in new if n not in old]
    restarted = [n for n in new if n in old and (
        old[n].resource.type != new[n].resource.type or old[n].params != new[n].params
        or old[n].agent.name != new[n].agent.name)]
    remonitor = [n for n in new if n in old and n not in restarted
                 and old[n].monitor_plan() != new[n].monitor_plan()]
    return removed, added, restarted, remonitor


def _describe_plan(changes: tuple[list[str], list[str], list[str], list[str]]) -> str:
    removed, added, restarted, remonitor = changes
    parts = [f"{label} {', '.join(names)}" for label, names in (
        ("stop and remove", removed), ("restart", restarted), ("add", added),
        ("new monitors for", remonitor)) if names]
    return "; ".join(parts) or "no resource changes"


def _only_node(config: ClusterConfig) -> str:
    if len(config.nodes) == 1:
        return config.nodes[0].name
    import socket

    host = socket.gethostname().split(".")[0]
    for node in config.nodes:
        if node.name == host:
            return node.name
    names = ", ".join(n.name for n in config.nodes)
    raise ConfigError(f"--node is required: this host ({host}) is none of the nodes {names}")


def _on_fail(resource: Resource, operation: str, interval: float) -> OnFail:
    for op in resource.operations:
        if op.name == operation and op.interval == interval:
            return op.effective_on_fail()
    return OnFail.FENCE if operation == "stop" else OnFail.RESTART


def _failure_message(result: OperationResult) -> str:
    if result.running is False:
        return "monitor found it not running"
    return result.describe().split(": ", 1)[-1]
