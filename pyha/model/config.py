"""The desired state of a cluster: frozen models, parsed and checked once at the edge."""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from collections.abc import Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pyha.errors import ConfigError
from pyha.model.types import INFINITY, Duration, Name, Score
from pyha.quorum import Tiebreaker

ParamValue = str | int | float | bool | list[str]

DEFAULT_STICKINESS = 100
"""Enough to keep a healthy group where it runs against an ordinary preference elsewhere."""
DEFAULT_MIGRATION_THRESHOLD = 3
DEFAULT_FAILURE_TIMEOUT = 600.0
"""Failure counts expire after ten minutes by default (Pacemaker's never do)."""


class Frozen(BaseModel):
    """Base of every config model: immutable, and unknown fields are errors, not ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class OnFail(StrEnum):
    """What to do when an operation fails."""

    IGNORE = "ignore"
    RESTART = "restart"
    MOVE = "move"
    STOP = "stop"
    BLOCK = "block"
    FENCE = "fence"


class TargetRole(StrEnum):
    """The state a resource should be in."""

    STARTED = "started"
    STOPPED = "stopped"
    PROMOTED = "promoted"
    UNPROMOTED = "unpromoted"


class NoQuorumPolicy(StrEnum):
    """What a partition without quorum does with its resources."""

    STOP = "stop"
    FREEZE = "freeze"
    IGNORE = "ignore"


class Operation(Frozen):
    """One configured operation of a resource: a recurring monitor, or a start/stop timeout."""

    name: Literal[
        "start", "stop", "monitor", "promote", "demote", "migrate_to", "migrate_from", "reload"
    ]
    interval: Duration = 0.0
    timeout: Duration | None = None
    on_fail: OnFail | None = None
    role: TargetRole | None = None

    @model_validator(mode="after")
    def _interval_only_for_monitor(self) -> Operation:
        if self.interval and self.name != "monitor":
            raise ValueError(f"interval: only monitor recurs; {self.name} must have interval 0")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("timeout: must be greater than 0")
        return self

    def effective_on_fail(self) -> OnFail:
        """The configured policy, else Pacemaker's default: stop failures fence, others restart."""
        if self.on_fail is not None:
            return self.on_fail
        return OnFail.FENCE if self.name == "stop" else OnFail.RESTART


class ResourceMeta(Frozen):
    """Meta attributes: how the cluster treats a resource, as opposed to how it is run."""

    target_role: TargetRole = TargetRole.STARTED
    stickiness: Score | None = None
    migration_threshold: int = Field(default=DEFAULT_MIGRATION_THRESHOLD, ge=1)
    failure_timeout: Duration = DEFAULT_FAILURE_TIMEOUT
    """0 means failures never expire."""


class Resource(Frozen):
    """An instance of a resource type with its parameters, operations and meta attributes."""

    name: Name
    type: str = Field(min_length=1)
    params: dict[str, ParamValue] = Field(default_factory=dict)
    operations: tuple[Operation, ...] = ()
    meta: ResourceMeta = ResourceMeta()
    description: str = ""

    @field_validator("params")
    @classmethod
    def _param_names(cls, params: dict[str, ParamValue]) -> dict[str, ParamValue]:
        for key in params:
            if not key or not all(c.isalnum() or c in "_-" for c in key):
                raise ValueError(f"parameter name {key!r} may hold only letters, digits, _ and -")
        return params

    @model_validator(mode="after")
    def _one_op_per_name_and_interval(self) -> Resource:
        seen: set[tuple[str, float]] = set()
        for op in self.operations:
            key = (op.name, op.interval)
            if key in seen:
                raise ValueError(
                    f"operations: {op.name} with interval {op.interval:g}s appears twice"
                )
            seen.add(key)
        return self

    def operation(self, name: str) -> Operation | None:
        """The configured one-shot operation `name` (interval 0), if any."""
        return next((o for o in self.operations if o.name == name and not o.interval), None)

    def monitors(self) -> tuple[Operation, ...]:
        """The recurring monitors."""
        return tuple(o for o in self.operations if o.name == "monitor" and o.interval > 0)


class GroupMeta(Frozen):
    """Meta attributes of a group; members inherit what they do not set themselves."""

    target_role: TargetRole = TargetRole.STARTED
    stickiness: Score | None = None


class Group(Frozen):
    """An ordered set of resources that run together on one node, started in order."""

    name: Name
    resources: tuple[Resource, ...]
    meta: GroupMeta = GroupMeta()
    description: str = ""

    @model_validator(mode="after")
    def _unique_members(self) -> Group:
        if not self.resources:
            raise ValueError("resources: a group needs at least one resource")
        names = [r.name for r in self.resources]
        dupes = _repeated(names)
        if dupes:
            raise ValueError(f"resources: {', '.join(dupes)} appear more than once")
        return self


def parse_endpoint(text: str) -> tuple[str, int]:
    """("host", port) from "host:port"; ValueError says what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r} is not host:port")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return host.strip("[]"), int(port)


def _endpoint(text: str) -> str:
    parse_endpoint(text)
    return text


Endpoint = Annotated[str, AfterValidator(_endpoint)]


class FenceConfig(Frozen):
    """How to make sure a node runs nothing: a power command, its cgroup, its namespace,
    (nodes sharing one machine, no root needed) its process tree, or its own watchdog
    (sbd-style self-fencing: the coordinator waits until the watchdog surely reset it)."""

    kind: Literal["command", "cgroup", "namespace", "process-tree", "watchdog"]
    off: tuple[str, ...] = ()
    """command: the power-off command line (argv, never a shell string)."""
    status: tuple[str, ...] = ()
    """command: optional status command that must then say the node is off."""
    namespace: str = ""
    """namespace: the network namespace the node runs in."""
    bridge_port: str = ""
    """namespace: the bridge-side end of the node's cable, set down when the node is
    fenced, so its addresses stop answering too (as after a power switch)."""
    bridge_namespace: str = ""
    """namespace: the network namespace that bridge port is in ('' for the machine's own)."""
    keeper: str = ""
    """process-tree: the file where the node's keeper process records itself."""
    device: str = "/dev/watchdog"
    """watchdog: the node's watchdog device, which its cluster server arms and feeds."""
    timeout: Duration = 10.0
    """watchdog: after how long without a feed the watchdog resets the node (whole
    seconds: the kernel's watchdog API takes an integer)."""

    @model_validator(mode="after")
    def _complete(self) -> FenceConfig:
        if self.kind == "command" and not self.off:
            raise ValueError("off: a command fence needs the power-off command")
        if self.kind == "namespace" and not self.namespace:
            raise ValueError("namespace: a namespace fence needs the namespace's name")
        _check_bridge_port(self.kind, self.bridge_port, self.bridge_namespace)
        if self.kind == "process-tree" and not self.keeper:
            raise ValueError("keeper: a process-tree fence needs the keeper file's path")
        if self.kind == "watchdog":
            _check_watchdog(self.device, self.timeout)
        return self


_INTERFACE = re.compile(r"[^/\s:]{1,15}")
"""A Linux interface name: at most 15 bytes, no slash, colon or white space."""


def _check_bridge_port(kind: str, port: str, namespace: str) -> None:
    """ValueError naming the field when a namespace fence's cable settings cannot work."""
    if (port or namespace) and kind != "namespace":
        raise ValueError(f"bridge_port: only a namespace fence has a cable to pull, not "
                         f"a {kind} fence")
    if port and not _INTERFACE.fullmatch(port):
        raise ValueError(f"bridge_port: {port!r} is not an interface name (at most 15 "
                         "characters, no '/', ':' or white space)")
    if namespace and not port:
        raise ValueError("bridge_namespace: set only with bridge_port, the port it holds")
    if namespace and ("/" in namespace or namespace in (".", "..")):
        raise ValueError(f"bridge_namespace: {namespace!r} is not a namespace name")


def _check_watchdog(device: str, timeout: float) -> None:
    """ValueError naming the field when a watchdog fence's settings cannot work."""
    if not device.startswith("/"):
        raise ValueError(f"device: {device!r}: a watchdog device is an absolute path")
    if timeout < 1 or not float(timeout).is_integer():
        raise ValueError(f"timeout: {timeout:g}s: a watchdog's timeout is a whole number of "
                         "seconds, at least 1s")


class Node(Frozen):
    """A computer of the cluster."""

    name: Name
    addresses: tuple[Endpoint, ...] = ()
    """One host:port per heartbeat link (UDP)."""
    rpc: Endpoint | None = None
    """host:port where the node answers calls from the other nodes (TCP)."""
    votes: int = Field(default=1, ge=0)
    standby: bool = False
    maintenance: bool = False
    attributes: dict[str, str] = Field(default_factory=dict)
    fence: FenceConfig | None = None


class ResourceType(Frozen):
    """A resource type declared in the configuration, naming the plugin that implements it."""

    name: Name
    plugin: str = Field(min_length=1, description="class:provider:type of the plugin")
    description: str = ""


class LocationConstraint(Frozen):
    """A preference (or, at +/-INFINITY, a rule) for a group to run on a node."""

    kind: Literal["location"] = "location"
    id: Name
    group: Name
    node: Name
    score: Score
    expires: float | None = None
    """Wall-clock time after which the constraint no longer applies (used by `move`)."""


class ColocationConstraint(Frozen):
    """Place `group` with (positive score) or apart from (negative) `with_group`."""

    kind: Literal["colocation"] = "colocation"
    id: Name
    group: Name
    with_group: Name
    score: Score = INFINITY

    @model_validator(mode="after")
    def _distinct(self) -> ColocationConstraint:
        if self.group == self.with_group:
            raise ValueError("with_group: a group cannot be colocated with itself")
        return self


class OrderConstraint(Frozen):
    """Start `first` before `then` (and, if symmetrical, stop `then` before `first`)."""

    kind: Literal["order"] = "order"
    id: Name
    first: Name
    then: Name
    mandatory: bool = True
    symmetrical: bool = True

    @model_validator(mode="after")
    def _distinct(self) -> OrderConstraint:
        if self.first == self.then:
            raise ValueError("then: a group cannot be ordered after itself")
        return self


Constraint = LocationConstraint | ColocationConstraint | OrderConstraint


class ClusterOptions(Frozen):
    """Cluster-wide options."""

    name: Name
    stickiness: Score = DEFAULT_STICKINESS
    no_quorum_policy: NoQuorumPolicy = NoQuorumPolicy.STOP
    maintenance: bool = False
    dead_after: Duration = 1.0
    heartbeat_interval: Duration = 0.1
    tiebreaker: Tiebreaker = Tiebreaker.NONE
    """How a partition with exactly half of the votes decides (two-node clusters need one)."""
    fence_race_delay: Duration = 5.0
    """With tiebreaker fence-race: how much longer each later node waits before fencing."""
    cycle_interval: Duration = 1.0
    """Longest wait between two decision cycles when nothing happens."""
    call_timeout: Duration = 2.0
    """How long a node-to-node call may take before the peer counts as unreachable."""
    probe_departures: bool = True
    """Ask the host of a peer silent for 3 heartbeat intervals whether its server still
    runs: a refused connection makes the peer down at once (pyha.cluster.departures).
    Turn off where a firewall between the nodes rejects connections."""
    key_file: str = ""
    """The cluster key (pyha keygen); default <state_dir>/cluster.key."""
    recovery_without_fencing: bool = False
    """Unsafe: start a lost node's groups elsewhere without fencing it first."""
    state_dir: str = "/var/lib/pyha"
    plugin_paths: tuple[str, ...] = ()


class ClusterConfig(Frozen):
    """The whole desired state: options, nodes, types, groups and constraints."""

    cluster: ClusterOptions
    epoch: int = Field(default=0, ge=0)
    nodes: tuple[Node, ...]
    resource_types: tuple[ResourceType, ...] = ()
    groups: tuple[Group, ...] = ()
    constraints: tuple[
        Annotated[
            LocationConstraint | ColocationConstraint | OrderConstraint,
            Field(discriminator="kind"),
        ],
        ...,
    ] = ()

    @field_validator("constraints", mode="before")
    @classmethod
    def _constraint_kind_required(cls, value: Any) -> Any:
        for i, item in enumerate(value or ()):
            if isinstance(item, Mapping) and item.get("kind") not in (
                "location", "colocation", "order"
            ):
                raise ValueError(
                    f"constraints[{i}].kind: must be location, colocation or order, "
                    f"got {item.get('kind')!r}"
                )
        return value

    @model_validator(mode="after")
    def _references(self) -> ClusterConfig:
        problems = list(_reference_problems(self))
        if problems:
            raise ValueError("\n".join(problems))  # split again by config_error
        return self

    def resources(self) -> Iterator[tuple[Group, Resource]]:
        """Every resource with its group, in group order."""
        for group in self.groups:
            for resource in group.resources:
                yield group, resource

    def group(self, name: str) -> Group:
        """The group called `name`; KeyError if there is none."""
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(name)

    def node(self, name: str) -> Node:
        """The node called `name`; KeyError if there is none."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def group_of(self, resource: str) -> Group:
        """The group that holds `resource`; KeyError if none does."""
        for group, r in self.resources():
            if r.name == resource:
                return group
        raise KeyError(resource)

    def resource(self, name: str) -> Resource:
        """The resource called `name`; KeyError if there is none."""
        for _, r in self.resources():
            if r.name == name:
                return r
        raise KeyError(name)

    def stickiness_of(self, group: Group, resource: Resource) -> int:
        """A resource's own stickiness, else its group's, else the cluster's."""
        for value in (resource.meta.stickiness, group.meta.stickiness):
            if value is not None:
                return value
        return self.cluster.stickiness

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "config") -> ClusterConfig:
        """Parse and check a mapping; ConfigError names every bad field and why."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise config_error(exc, source) from None

    @classmethod
    def from_toml(cls, path: str | Path) -> ClusterConfig:
        """Load a TOML cluster file."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        return cls.from_mapping(data, str(path))


def _reference_problems(config: ClusterConfig) -> Iterator[str]:
    if not config.nodes:
        yield "nodes: a cluster needs at least one node"
    node_names = [n.name for n in config.nodes]
    group_names = [g.name for g in config.groups]
    resource_names = [r.name for _, r in config.resources()]
    for what, names in (("nodes", node_names), ("groups", group_names),
                        ("resources", resource_names)):
        dupes = _repeated(names)
        if dupes:
            yield f"{what}: {', '.join(dupes)} defined more than once"
    clash = sorted(set(group_names) & set(resource_names))
    if clash:
        yield f"groups: {', '.join(clash)} used both as a group and a resource name"
    ids = [c.id for c in config.constraints]
    dupes = _repeated(ids)
    if dupes:
        yield f"constraints: id {', '.join(dupes)} used more than once"
    groups, nodes = set(group_names), set(node_names)
    for i, c in enumerate(config.constraints):
        refs: list[tuple[str, str, set[str]]] = []
        if isinstance(c, LocationConstraint):
            refs = [("group", c.group, groups), ("node", c.node, nodes)]
        elif isinstance(c, ColocationConstraint):
            refs = [("group", c.group, groups), ("with_group", c.with_group, groups)]
        else:
            refs = [("first", c.first, groups), ("then", c.then, groups)]
        for field, value, known in refs:
            if value not in known:
                kind = "node" if field == "node" else "group"
                yield f"constraints[{i}].{field}: no {kind} named {value!r}"


def _repeated(names: list[str]) -> list[str]:
    """Names that appear more than once, sorted (linear: configs hold 10,000 resources)."""
    return sorted(n for n, count in Counter(names).items() if count > 1)


def config_error(exc: ValidationError, source: str) -> ConfigError:
    """Turn pydantic's errors into one ConfigError with a line per field."""
    problems = tuple(
        line for e in exc.errors() for line in _problem(e).split("\n")
    )
    return ConfigError(f"{source}: invalid configuration", problems)


def _problem(error: Any) -> str:
    where, reason = _location(error["loc"]), _reason(error)
    # Model-level checks name the field they reject ("resources: ..."); join the paths.
    if not where or reason.startswith(where):
        return reason
    head, sep, rest = reason.partition(": ")
    if sep and head.replace("_", "").replace(".", "").replace("[", "").replace("]", "").isalnum():
        return f"{where}.{head}: {rest}"
    return f"{where}: {reason}"


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("location", "colocation", "order") and out.startswith("constraints"):
            continue  # the discriminator tag pydantic adds to the path
        elif part.startswith("function-"):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _reason(error: Any) -> str:
    msg = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if error["type"] == "extra_forbidden":
        return "unknown field (check the spelling)"
    if error["type"] == "missing":
        return "required field is missing"
    return msg
