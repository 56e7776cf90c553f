"""A scheduler harness: configs and views from compact specs, schedule, and apply a
transition to a view as if every action succeeded. Pure, no side effects."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pyha.errors import ConfigError
from pyha.model.actions import ActionKind, Transition
from pyha.model.config import ClusterConfig, OnFail
from pyha.model.status import FailRecord, NodeStatus, ResourceStatus, Role, View
from pyha.scheduler import schedule
from pyha.scheduler.index import INACTIVE, Index
from pyha.scheduler.recovery import failed_policy

GroupSpec = str | Sequence[str] | Mapping[str, Any]
"""'ip app' (members of type dummy), a list of names, or a group mapping as in the config."""


def make_config(nodes: str | Sequence[str] = "n1 n2", groups: Mapping[str, GroupSpec] | None = None,
                constraints: Iterable[str | Mapping[str, Any]] = (),
                **cluster: Any) -> ClusterConfig:
    """A config from compact specs.

    Constraints read as sentences: 'web prefers n1 50', 'web prefers n1' (INFINITY),
    'web avoids n1' (-INFINITY), 'web with db [score]', 'web apart db [score]'
    (default -INFINITY), 'db then web [optional] [asymmetrical]'; or config mappings.
    """
    data = {
        "cluster": {"name": "test"} | cluster,
        "nodes": [{"name": n} for n in _words(nodes)],
        "groups": [_group(name, spec) for name, spec in (groups or {"web": "ip app"}).items()],
        "constraints": [_constraint(c) if isinstance(c, str) else dict(c) for c in constraints],
    }
    return ClusterConfig.from_mapping(data, "harness")


def _words(spec: str | Sequence[str]) -> list[str]:
    return spec.split() if isinstance(spec, str) else list(spec)


def _group(name: str, spec: GroupSpec) -> dict[str, Any]:
    if isinstance(spec, Mapping):
        return {"name": name, **spec}
    return {"name": name, "resources": [{"name": r, "type": "dummy"} for r in _words(spec)]}


def _constraint(sentence: str) -> dict[str, Any]:
    words = sentence.split()
    if len(words) < 3:
        raise ConfigError(f"constraint {sentence!r}: write e.g. 'web prefers n1 50'")
    subject, verb, other, rest = words[0], words[1], words[2], words[3:]
    if verb in ("prefers", "avoids"):
        score = rest[0] if rest else ("INFINITY" if verb == "prefers" else "-INFINITY")
        return {"kind": "location", "id": f"loc-{subject}-{other}", "group": subject,
                "node": other, "score": score}
    if verb in ("with", "apart"):
        score = rest[0] if rest else ("INFINITY" if verb == "with" else "-INFINITY")
        return {"kind": "colocation", "id": f"col-{subject}-{other}", "group": subject,
                "with_group": other, "score": score}
    if verb == "then":
        return {"kind": "order", "id": f"ord-{subject}-{other}", "first": subject, "then": other,
                "mandatory": "optional" not in rest, "symmetrical": "asymmetrical" not in rest}
    raise ConfigError(f"constraint {sentence!r}: the verb must be prefers, avoids, with, "
                      "apart or then")


def make_view(config: ClusterConfig, *, running: Mapping[str, str] | None = None,
              roles: Mapping[str, str] | None = None, down: str | Sequence[str] = (),
              standby: str | Sequence[str] = (), maintenance: str | Sequence[str] = (),
              failures: Mapping[str, int | str] | None = None, quorum: bool = True,
              now: float = 0.0) -> View:
    """A view from compact specs.

    `running`: group -> node where all its members are started. `roles`:
    'resource@node' -> 'started', 'promoted', 'unknown', 'failed:monitor', 'blocked:stop'.
    `failures`: 'resource@node' -> a count (last failure at `now`) or 'fatal'.
    """
    down_, standby_, maint_ = _words(down), _words(standby), _words(maintenance)
    nodes = tuple(NodeStatus(name=n.name, online=n.name not in down_,
                             standby=n.name in standby_, maintenance=n.name in maint_)
                  for n in config.nodes)
    states: dict[tuple[str, str], ResourceStatus] = {}
    for group_name, node in (running or {}).items():
        for r in config.group(group_name).resources:
            states[(r.name, node)] = ResourceStatus(resource=r.name, node=node,
                                                    role=Role.STARTED)
    for key, spec in (roles or {}).items():
        name, node = key.split("@")
        role, _, operation = spec.partition(":")
        states[(name, node)] = ResourceStatus(resource=name, node=node, role=Role(role),
                                              failed_operation=operation)
    records = tuple(_record(key, spec, now) for key, spec in (failures or {}).items())
    return View(nodes=nodes, resources=tuple(states.values()), failures=records, quorum=quorum)


def _record(key: str, spec: int | str, now: float) -> FailRecord:
    name, node = key.split("@")
    if spec == "fatal":
        return FailRecord(resource=name, node=node, count=1, last_failure=now, fatal=True)
    return FailRecord(resource=name, node=node, count=int(spec), last_failure=now)


def run(config: ClusterConfig, view: View, now: float = 0.0) -> Transition:
    """Schedule once (the scheduler is pure, so this has no side effects)."""
    return schedule(config, view, now)


def apply(view: View, transition: Transition) -> View:
    """The view once every action of `transition` succeeded, in dependency order."""
    states = {(s.resource, s.node): s for s in view.resources}
    nodes = {n.name: n for n in view.nodes}
    done: set[int] = set()
    while True:
        ready = transition.ready(done)
        if not ready:
            break
        for action in ready:
            _apply_one(action.kind, action.node, action.resource, states, nodes)
            done.add(action.id)
    return View(nodes=tuple(nodes.values()), resources=tuple(states.values()),
                failures=view.failures, quorum=view.quorum)


_AFTER = {ActionKind.START: Role.STARTED, ActionKind.STOP: Role.STOPPED,
          ActionKind.PROMOTE: Role.PROMOTED, ActionKind.DEMOTE: Role.STARTED}


def _apply_one(kind: ActionKind, node: str, resource: str | None,
               states: dict[tuple[str, str], ResourceStatus],
               nodes: dict[str, NodeStatus]) -> None:
    if kind is ActionKind.FENCE:
        # A fenced node is off: nothing runs on it any more.
        nodes[node] = nodes.get(node, NodeStatus(name=node)).model_copy(update={"online": False})
        for key, status in list(states.items()):
            if status.node == node:
                states[key] = ResourceStatus(resource=status.resource, node=node,
                                             role=Role.STOPPED)
        return
    assert resource is not None
    old = states.get((resource, node))
    role: Role
    if kind is ActionKind.MONITOR:
        # A probe that succeeds finds nothing running there.
        role = old.role if old and old.role is not Role.UNKNOWN else Role.STOPPED
    else:
        role = _AFTER[kind]
    states[(resource, node)] = ResourceStatus(resource=resource, node=node, role=role)


def converge(config: ClusterConfig, view: View, now: float = 0.0,
             rounds: int = 5) -> tuple[View, list[Transition]]:
    """Schedule and apply until a transition is empty (at most `rounds` times)."""
    done = []
    for _ in range(rounds):
        transition = schedule(config, view, now)
        if transition.is_empty():
            break
        done.append(transition)
        view = apply(view, transition)
    return view, done


def where(view: View, resource: str) -> list[str]:
    """The nodes where `resource` is or may be active in `view`."""
    return [s.node for s in view.resources if s.resource == resource and s.role not in INACTIVE]


# -- injections, as `pyha simulate` applies them -----------------------------------------

def idle_view(config: ClusterConfig, running: Mapping[str, str] | None = None) -> View:
    """Every node online, nothing running except the groups in `running` (group -> node)."""
    for group, node in (running or {}).items():
        if group not in {g.name for g in config.groups}:
            raise ConfigError(f"--running {group}={node}: no group named {group!r}")
        if node not in {n.name for n in config.nodes}:
            raise ConfigError(f"--running {group}={node}: no node named {node!r}")
    return make_view(config, running=running)


def node_down(view: View, node: str) -> View:
    """`view` with `node` down."""
    return _set_node(view, node, online=False)


def standby(view: View, node: str) -> View:
    """`view` with `node` in standby."""
    return _set_node(view, node, standby=True)


def _set_node(view: View, node: str, **change: bool) -> View:
    if node not in {n.name for n in view.nodes}:
        raise ConfigError(f"no node named {node!r} in the view")
    nodes = tuple(n.model_copy(update=change) if n.name == node else n for n in view.nodes)
    return view.model_copy(update={"nodes": nodes})


def fail(config: ClusterConfig, view: View, resource: str, operation: str,
         now: float) -> View:
    """`view` with `resource` failed by `operation` wherever it runs, counted as the
    server counts it: on-fail move/stop are fatal, a failed stop or on-fail block blocks."""
    nodes = where(view, resource)
    if resource not in {r.name for _, r in config.resources()}:
        raise ConfigError(f"--fail {resource}:{operation}: no resource named {resource!r}")
    if not nodes:
        raise ConfigError(f"--fail {resource}:{operation}: {resource} is not running anywhere")
    policy = failed_policy(Index.build(config, view, now), resource, operation)
    blocked = operation == "stop" or policy is OnFail.BLOCK
    role = Role.BLOCKED if blocked else Role.FAILED
    states = [s for s in view.resources if not (s.resource == resource and s.node in nodes)]
    states += [ResourceStatus(resource=resource, node=n, role=role, since=now,
                              message=f"{operation} failed (simulated)",
                              failed_operation=operation) for n in nodes]
    records = {(f.resource, f.node): f for f in view.failures}
    for n in nodes:
        old = records.get((resource, n))
        records[(resource, n)] = FailRecord(
            resource=resource, node=n, count=(old.count if old else 0) + 1, last_failure=now,
            fatal=policy in (OnFail.MOVE, OnFail.STOP) or bool(old and old.fatal),
            on_fail=policy)
    return view.model_copy(update={"resources": tuple(states),
                                   "failures": tuple(records.values())})
