"""LDAP entries <-> pyha models, both ways (pure): how each entry of a cluster reads.

Every error names the entry's DN, the attribute and the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from pyha.directory.codecs import (
    BOOLEAN,
    DURATION,
    ENUM,
    EXTRA,
    FLOAT,
    INTEGER,
    JSON,
    OPERATIONS,
    ORDERED,
    PAIRS,
    PARAMS,
    SCORE,
    TIME,
    Attr,
)
from pyha.directory.records import AuditRecord, NodeStatusRecord, StatusRecord
from pyha.directory.tree import (
    ClusterNotFound,
    Entry,
    EntryError,
    Layout,
    container_entries,
    norm_dn,
    parent_dn,
    rdn_value,
)
from pyha.errors import ConfigError
from pyha.model.config import (
    ClusterConfig,
    ClusterOptions,
    ColocationConstraint,
    Constraint,
    Group,
    LocationConstraint,
    Node,
    OrderConstraint,
    Resource,
    ResourceType,
    config_error,
)

OPTIONS_ATTRS = (
    Attr("stickiness", "pyhaStickiness", SCORE),
    Attr("no_quorum_policy", "pyhaNoQuorumPolicy", ENUM),
    Attr("maintenance", "pyhaMaintenance", BOOLEAN),
    Attr("dead_after", "pyhaDeadAfter", DURATION),
    Attr("heartbeat_interval", "pyhaHeartbeatInterval", DURATION),
    Attr("tiebreaker", "pyhaTiebreaker", ENUM),
    Attr("fence_race_delay", "pyhaFenceRaceDelay", DURATION),
    Attr("cycle_interval", "pyhaCycleInterval", DURATION),
    Attr("call_timeout", "pyhaCallTimeout", DURATION),
    Attr("probe_departures", "pyhaProbeDepartures", BOOLEAN),
    Attr("key_file", "pyhaKeyFile"),
    Attr("recovery_without_fencing", "pyhaRecoveryWithoutFencing", BOOLEAN),
    Attr("state_dir", "pyhaStateDir"),
    Attr("plugin_paths", "pyhaPluginPath", ORDERED),
)
NODE_ATTRS = (
    Attr("addresses", "pyhaAddress", ORDERED),
    Attr("rpc", "pyhaRpc"),
    Attr("votes", "pyhaVotes", INTEGER),
    Attr("standby", "pyhaStandby", BOOLEAN),
    Attr("maintenance", "pyhaMaintenance", BOOLEAN),
    Attr("attributes", "pyhaAttribute", PAIRS),
    Attr("fence", "pyhaFence", JSON),
)
TYPE_ATTRS = (Attr("plugin", "pyhaPlugin"), Attr("description", "description"))
GROUP_ATTRS = (
    Attr("meta.target_role", "pyhaTargetRole", ENUM),
    Attr("meta.stickiness", "pyhaStickiness", SCORE),
    Attr("description", "description"),
)
RESOURCE_ATTRS = (
    Attr("type", "pyhaType"),
    Attr("params", "pyhaParameter", PARAMS),
    Attr("operations", "pyhaOperation", OPERATIONS),
    Attr("meta.target_role", "pyhaTargetRole", ENUM),
    Attr("meta.stickiness", "pyhaStickiness", SCORE),
    Attr("meta.migration_threshold", "pyhaMigrationThreshold", INTEGER),
    Attr("meta.failure_timeout", "pyhaFailureTimeout", DURATION),
    Attr("description", "description"),
)
LOCATION_ATTRS = (
    Attr("group", "pyhaGroupName"), Attr("node", "pyhaNodeName"),
    Attr("score", "pyhaScore", SCORE), Attr("expires", "pyhaExpires", FLOAT),
)
COLOCATION_ATTRS = (
    Attr("group", "pyhaGroupName"), Attr("with_group", "pyhaWithGroup"),
    Attr("score", "pyhaScore", SCORE),
)
ORDER_ATTRS = (
    Attr("first", "pyhaFirst"), Attr("then", "pyhaThen"),
    Attr("mandatory", "pyhaMandatory", BOOLEAN), Attr("symmetrical", "pyhaSymmetrical", BOOLEAN),
)
CONSTRAINT_KINDS: dict[str, tuple[str, type[BaseModel], tuple[Attr, ...]]] = {
    "location": ("pyhaLocationConstraint", LocationConstraint, LOCATION_ATTRS),
    "colocation": ("pyhaColocationConstraint", ColocationConstraint, COLOCATION_ATTRS),
    "order": ("pyhaOrderConstraint", OrderConstraint, ORDER_ATTRS),
}
_KIND_OF_CLASS = {oc.lower(): kind for kind, (oc, _, _) in CONSTRAINT_KINDS.items()}


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and path in ("meta",):
            out.update(_flatten(value, path + "."))
        else:
            out[path] = value
    return out


_NAMED_BY_DN = ("name", "id", "resource", "kind", "resources")
"""Fields that come from the DN, the object class or the child entries."""
EXTRA_ATTR = Attr("(extra)", "pyhaExtra", EXTRA)


def _encode(model: BaseModel, table: tuple[Attr, ...]) -> dict[str, list[str]]:
    """LDAP attributes for the fields of `model` that differ from their defaults.

    A field the table does not know (the model grew) goes to pyhaExtra as path=JSON,
    so nothing is lost until the schema gets an attribute for it.
    """
    data = _flatten(model.model_dump(exclude_defaults=True))
    attrs: dict[str, list[str]] = {}
    for attr in table:
        if attr.field in data:
            values = attr.codec.encode(data.pop(attr.field))
            if values:
                attrs[attr.name] = values
    extra = {k: v for k, v in data.items() if k not in _NAMED_BY_DN}
    if extra:
        attrs[EXTRA_ATTR.name] = EXTRA.encode(extra)
    return attrs


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    head, _, tail = path.partition(".")
    if tail:
        data.setdefault(head, {})[tail] = value
    else:
        data[head] = value


def _decode(entry: Entry, table: tuple[Attr, ...]) -> dict[str, Any]:
    """Model data from an entry's attributes; EntryError names each bad attribute."""
    data: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for attr in table:
        values = entry.values(attr.name)
        if not values:
            continue
        if len(values) > 1 and not attr.codec.multi:
            problems.append((attr.name, f"has {len(values)} values; only one is allowed"))
            continue
        try:
            value = attr.codec.decode(values)
        except ValueError as exc:
            problems.append((attr.name, str(exc)))
            continue
        _set(data, attr.field, value)
    problems += _decode_extra(entry, data)
    if problems:
        raise EntryError(entry.dn, problems)
    return data


def _decode_extra(entry: Entry, data: dict[str, Any]) -> list[tuple[str, str]]:
    values = entry.values(EXTRA_ATTR.name)
    if not values:
        return []
    try:
        extra = EXTRA.decode(values)
    except ValueError as exc:
        return [(EXTRA_ATTR.name, str(exc))]
    for path, value in extra.items():
        _set(data, path, value)
    return []


def _attribute_of(path: str, table: tuple[Attr, ...]) -> str | None:
    best = None
    for attr in table:
        matches = path == attr.field or path.startswith((attr.field + ".", attr.field + "["))
        if matches and (best is None or len(attr.field) > len(best.field)):
            best = attr
    return best.name if best else None


def _model_problems(exc: ValidationError, entry: Entry,
                    table: tuple[Attr, ...]) -> list[tuple[str, str]]:
    """Pydantic's errors as (attribute, reason), each pointing at the LDAP value."""
    problems = []
    for line in config_error(exc, entry.dn).problems:
        path, sep, reason = line.partition(": ")
        if not sep:
            problems.append(("", line))
            continue
        attr = _attribute_of(path, table)
        if attr is None:
            attr = {"name": "cn", "id": "cn"}.get(
                path, path if path in _NAMED_BY_DN else EXTRA_ATTR.name)
        problems.append((attr or path, _with_value(path, reason, entry, attr)))
    return problems


def _with_value(path: str, reason: str, entry: Entry, attr: str | None) -> str:
    m = re.match(r"^[a-z_]+\[(\d+)\]\.?(.*)$", path)
    if not (m and attr):
        return reason
    values = entry.values(attr)
    index = int(m.group(1))
    where = f"value {values[index]!r}" if index < len(values) else f"value {index}"
    return f"{where}: {m.group(2) + ': ' if m.group(2) else ''}{reason}"


def _build(model: type[BaseModel], data: dict[str, Any], entry: Entry,
           table: tuple[Attr, ...]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise EntryError(entry.dn, _model_problems(exc, entry, table)) from None


def _position(entry: Entry) -> int | None:
    values = entry.values("pyhaPosition")
    if not values:
        return None
    try:
        return int(values[0])
    except ValueError:
        raise EntryError(entry.dn, [("pyhaPosition", f"{values[0]!r} is not an integer")]) \
            from None


def _entry(dn: str, classes: Sequence[str], name: str, attrs: dict[str, list[str]],
           position: int | None = None) -> Entry:
    data: dict[str, list[str] | str] = {"objectClass": list(classes), "cn": name}
    data.update(attrs)
    if position is not None:
        data["pyhaPosition"] = str(position)
    return Entry.of(dn, data)


# -- named constructors: entry -> model, model -> entry -------------------------------------


def options_from_entry(entry: Entry) -> tuple[ClusterOptions, int]:
    """The cluster options and config epoch from the cluster entry."""
    data = _decode(entry, OPTIONS_ATTRS)
    data["name"] = rdn_value(entry.dn)
    options = _build(ClusterOptions, data, entry, OPTIONS_ATTRS)
    epoch = _decode(entry, (Attr("epoch", "pyhaEpoch", INTEGER),)).get("epoch", 0)
    if epoch < 0:
        raise EntryError(entry.dn, [("pyhaEpoch", "must be 0 or more")])
    return options, epoch


def options_to_entry(options: ClusterOptions, epoch: int, layout: Layout) -> Entry:
    """The cluster entry; the epoch is always written, so writers can compare and swap it."""
    attrs = _encode(options, OPTIONS_ATTRS)
    attrs["pyhaEpoch"] = [str(epoch)]
    return _entry(layout.cluster_dn, ["pyhaCluster"], options.name, attrs)


def node_from_entry(entry: Entry) -> Node:
    """A node from its entry under ou=nodes."""
    data = _decode(entry, NODE_ATTRS)
    data["name"] = rdn_value(entry.dn)
    return _build(Node, data, entry, NODE_ATTRS)  # type: ignore[no-any-return]


def node_to_entry(node: Node, layout: Layout, position: int | None = None) -> Entry:
    """The entry of a node."""
    return _entry(layout.node_dn(node.name), ["pyhaNode"], node.name,
                  _encode(node, NODE_ATTRS), position)


def type_from_entry(entry: Entry) -> ResourceType:
    """A resource type from its entry under ou=types."""
    data = _decode(entry, TYPE_ATTRS)
    data["name"] = rdn_value(entry.dn)
    return _build(ResourceType, data, entry, TYPE_ATTRS)  # type: ignore[no-any-return]


def type_to_entry(rtype: ResourceType, layout: Layout, position: int | None = None) -> Entry:
    """The entry of a resource type."""
    return _entry(layout.type_dn(rtype.name), ["pyhaResourceType"], rtype.name,
                  _encode(rtype, TYPE_ATTRS), position)


def group_data_from_entry(entry: Entry) -> dict[str, Any]:
    """A group's own fields (its resources are its child entries)."""
    data = _decode(entry, GROUP_ATTRS)
    data["name"] = rdn_value(entry.dn)
    return data


def group_from_entry(entry: Entry, resources: Sequence[Resource]) -> Group:
    """A group from its entry and its resources, in order."""
    data = group_data_from_entry(entry)
    data["resources"] = tuple(resources)
    try:
        return Group.model_validate(data)
    except ValidationError as exc:
        problems = _model_problems(exc, entry, GROUP_ATTRS)
        raise EntryError(entry.dn, [("(child entries)" if a == "resources" else a, r)
                                    for a, r in problems]) from None


def group_to_entry(group: Group, layout: Layout, position: int | None = None) -> Entry:
    """The entry of a group, without its resources."""
    attrs = _encode(group, GROUP_ATTRS)
    return _entry(layout.group_dn(group.name), ["pyhaGroup"], group.name, attrs, position)


def resource_from_entry(entry: Entry, layout: Layout | None = None) -> Resource:
    """A resource from its entry; `pyhaType` may name the type or hold its entry's DN."""
    data = _decode(entry, RESOURCE_ATTRS)
    data["name"] = rdn_value(entry.dn)
    named = str(data.get("type", ""))
    if layout and "=" in named and norm_dn(parent_dn(named)) == norm_dn(layout.container("types")):
        data["type"] = rdn_value(named)
    return _build(Resource, data, entry, RESOURCE_ATTRS)  # type: ignore[no-any-return]


def resource_to_entry(resource: Resource, group: str, layout: Layout,
                      position: int | None = None) -> Entry:
    """The entry of a resource, a child of its group's entry."""
    return _entry(layout.resource_dn(group, resource.name), ["pyhaResource"], resource.name,
                  _encode(resource, RESOURCE_ATTRS), position)


def constraint_from_entry(entry: Entry) -> Constraint:
    """A location, colocation or order constraint, by the entry's object class."""
    kinds = [_KIND_OF_CLASS[c] for c in entry.classes() if c in _KIND_OF_CLASS]
    if len(kinds) != 1:
        raise EntryError(entry.dn, [("objectClass", "needs exactly one of "
                                     + ", ".join(oc for oc, _, _ in CONSTRAINT_KINDS.values()))])
    _, model, table = CONSTRAINT_KINDS[kinds[0]]
    data = _decode(entry, table)
    data["id"] = rdn_value(entry.dn)
    return _build(model, data, entry, table)  # type: ignore[no-any-return]


def constraint_to_entry(constraint: Constraint, layout: Layout,
                        position: int | None = None) -> Entry:
    """The entry of a constraint."""
    oc, _, table = CONSTRAINT_KINDS[constraint.kind]
    return _entry(layout.constraint_dn(constraint.id), [oc], constraint.id,
                  _encode(constraint, table), position)


STATUS_ATTRS = (
    Attr("node", "pyhaNodeName"), Attr("role", "pyhaRole", ENUM),
    Attr("since", "pyhaSince", TIME), Attr("fail_count", "pyhaFailCount", INTEGER),
    Attr("last_failure", "pyhaLastFailure", TIME),
    Attr("failed_operation", "pyhaFailedOperation"), Attr("message", "pyhaMessage"),
)
AUDIT_ATTRS = (
    Attr("when", "pyhaWhen", TIME), Attr("actor", "pyhaActor"), Attr("action", "pyhaAction"),
    Attr("subjects", "pyhaSubject", ORDERED), Attr("changes", "pyhaChange", ORDERED),
    Attr("epoch", "pyhaEpoch", INTEGER),
)


NODE_STATUS_ATTRS = (Attr("online", "pyhaOnline", BOOLEAN),
                     Attr("last_seen", "pyhaLastSeen", TIME))


def node_status_from_entry(entry: Entry) -> NodeStatusRecord:
    """A node's status from its cn=<node> entry under ou=status."""
    data = _decode(entry, NODE_STATUS_ATTRS)
    data["node"] = rdn_value(entry.dn)
    data.setdefault("online", False)
    return _build(NodeStatusRecord, data, entry, NODE_STATUS_ATTRS)  # type: ignore[no-any-return]


def status_from_entry(entry: Entry) -> StatusRecord:
    """A status record from its entry under ou=status."""
    data = _decode(entry, STATUS_ATTRS)
    data["resource"] = rdn_value(entry.dn)
    data.setdefault("role", "unknown")
    return _build(StatusRecord, data, entry, STATUS_ATTRS)  # type: ignore[no-any-return]


def status_to_entry(record: StatusRecord, layout: Layout) -> Entry:
    """The entry of a status record; role and node are always written (they are required)."""
    attrs = _encode(record, STATUS_ATTRS)
    attrs["pyhaNodeName"] = [record.node]
    attrs["pyhaRole"] = [record.role.value]
    return _entry(layout.status_dn(record.node, record.resource), ["pyhaResourceStatus"],
                  record.resource, attrs)


def audit_from_entry(entry: Entry) -> AuditRecord:
    """An audit record from its entry under ou=audit."""
    data = _decode(entry, AUDIT_ATTRS)
    data["id"] = rdn_value(entry.dn)
    return _build(AuditRecord, data, entry, AUDIT_ATTRS)  # type: ignore[no-any-return]


def audit_to_entry(record: AuditRecord, layout: Layout) -> Entry:
    """The entry of an audit record."""
    attrs = _encode(record, AUDIT_ATTRS)
    for attr in ("when", "actor", "action"):
        spec = next(a for a in AUDIT_ATTRS if a.field == attr)
        attrs[spec.name] = spec.codec.encode(getattr(record, attr))
    return _entry(layout.audit_dn(record.id), ["pyhaAuditEntry"], record.id, attrs)


def config_to_entries(config: ClusterConfig, layout: Layout) -> list[Entry]:
    """Every entry of a configuration, parents before children, positions explicit."""
    entries = [options_to_entry(config.cluster, config.epoch, layout), *container_entries(layout)]
    entries += [node_to_entry(n, layout, i) for i, n in enumerate(config.nodes)]
    entries += [type_to_entry(t, layout, i) for i, t in enumerate(config.resource_types)]
    for i, group in enumerate(config.groups):
        entries.append(group_to_entry(group, layout, i))
        entries += [resource_to_entry(r, group.name, layout, j)
                    for j, r in enumerate(group.resources)]
    entries += [constraint_to_entry(c, layout, i) for i, c in enumerate(config.constraints)]
    return entries


# -- a whole configuration from its entries ------------------------------------------------


def _content(entry: Entry) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """An entry's attributes as a key. Not sorted: a server sends an unchanged entry's
    values in the same order, and a miss only costs parsing that entry again."""
    return tuple(entry.attrs.items())


class ParseMemo:
    """What each entry parsed to, so a rebuild parses only the entries that changed.

    Invariant: a hit needs the same DN and the same value of every attribute; entries
    not seen in the last build are forgotten at the next `rotate`.
    """

    def __init__(self) -> None:
        self._old: dict[Any, Any] = {}
        self._new: dict[Any, Any] = {}
        self._keys: dict[int, tuple[Entry, Any]] = {}
        self._next_keys: dict[int, tuple[Entry, Any]] = {}

    def _key(self, entry: Entry) -> Any:
        # The very same Entry object (a watcher's copy of the tree) needs no sorting again;
        # the entry is kept with its key, so its id cannot be reused meanwhile.
        known = self._keys.get(id(entry)) or self._next_keys.get(id(entry))
        key = known[1] if known and known[0] is entry else (entry.dn, _content(entry))
        self._next_keys[id(entry)] = (entry, key)
        return key

    def get(self, entry: Entry, parse: Callable[[Entry], Any]) -> Any:
        """The parsed form of `entry`, parsing it only if unseen."""
        key = self._key(entry)
        found = self._new.get(key)
        if found is None:
            found = self._old.get(key)
            if found is None:
                found = parse(entry)
            self._new[key] = found
        return found

    def group(self, entry: Entry, members: list[Resource]) -> Group:
        """The group of `entry` with exactly these member objects, built only if unseen."""
        key = ("group", self._key(entry), tuple(map(id, members)))
        found = self._new.get(key) or self._old.get(key)
        # The ids only match while the very same member objects are alive in the memo.
        if found is None or len(found.resources) != len(members) or any(
                a is not b for a, b in zip(found.resources, members, strict=False)):
            found = group_from_entry(entry, members)
        self._new[key] = found
        return found

    def rotate(self) -> None:
        """Forget entries the last build did not use."""
        self._old, self._new = self._new, {}
        self._keys, self._next_keys = self._next_keys, {}


@dataclass
class _Collected:
    """Entries of one configuration sorted by kind while they are read."""

    layout: Layout
    memo: ParseMemo = field(default_factory=ParseMemo)
    cluster: Entry | None = None
    nodes: list[tuple[int | None, str, Node, str]] = field(default_factory=list)
    types: list[tuple[int | None, str, ResourceType, str]] = field(default_factory=list)
    groups: dict[str, Entry] = field(default_factory=dict)
    resources: dict[str, list[tuple[int | None, str, Resource, str]]] = field(
        default_factory=dict)
    constraints: list[tuple[int | None, str, Constraint, str]] = field(default_factory=list)

    def parse_resource(self, entry: Entry) -> tuple[int | None, str, Resource]:
        """Position, name and model of a resource entry."""
        resource = resource_from_entry(entry, self.layout)
        return _position(entry), resource.name, resource


_KINDS: dict[str, str] = {
    "pyhacluster": "cluster", "pyhanode": "node", "pyharesourcetype": "type",
    "pyhagroup": "group", "pyharesource": "resource",
    **{oc: "constraint" for oc in _KIND_OF_CLASS},
}
_IGNORED = {"pyhanodestatus", "pyharesourcestatus", "pyhaauditentry"}


def kind_of(entry: Entry) -> str | None:
    """What an entry is: cluster, node, type, group, resource, constraint, container, other."""
    classes = [oc.lower() for oc in entry.values("objectClass")]
    for oc in classes:
        if oc in _KINDS:
            return _KINDS[oc]
    if _IGNORED.intersection(classes):
        return None
    if "organizationalunit" in classes:
        return "container"
    return "other"


def _place(entry: Entry, where: str, layout: Layout) -> None:
    if norm_dn(parent_dn(entry.dn)) != norm_dn(layout.container(where)):
        raise EntryError(entry.dn, [("", f"must be directly under {layout.container(where)}")])


def _item(parse: Callable[[Entry], Any]) -> Callable[[Entry], tuple[int | None, str, Any]]:
    def parsed(entry: Entry) -> tuple[int | None, str, Any]:
        model = parse(entry)
        return _position(entry), getattr(model, "name", None) or model.id, model
    return parsed


_PARSERS = {"node": _item(node_from_entry), "type": _item(type_from_entry),
            "constraint": _item(constraint_from_entry)}


def _collect_one(c: _Collected, entry: Entry, kind: str | None) -> None:
    layout = c.layout
    if kind == "resource":
        pos, name, model = c.memo.get(entry, c.parse_resource)
        c.resources.setdefault(norm_dn(parent_dn(entry.dn)), []).append(
            (pos, name, model, entry.dn))
    elif kind in _PARSERS:
        where = {"node": "nodes", "type": "types", "constraint": "constraints"}[kind]
        _place(entry, where, layout)
        pos, name, model = c.memo.get(entry, _PARSERS[kind])
        bucket: list[Any] = {"node": c.nodes, "type": c.types,
                             "constraint": c.constraints}[kind]  # type: ignore[assignment]
        bucket.append((pos, name, model, entry.dn))
    elif kind == "group":
        _place(entry, "groups", layout)
        c.groups[norm_dn(entry.dn)] = entry
    elif kind == "cluster":
        if norm_dn(entry.dn) != norm_dn(layout.cluster_dn):
            raise EntryError(entry.dn, [("objectClass", "a second pyhaCluster entry; only "
                                         f"{layout.cluster_dn} is this cluster")])
        c.cluster = entry
    elif kind == "container":
        if norm_dn(parent_dn(entry.dn)) != norm_dn(layout.cluster_dn):
            raise EntryError(entry.dn, [("objectClass", "unexpected organizationalUnit here")])
    elif kind == "other":
        raise EntryError(entry.dn, [("objectClass", "not a pyha entry: expected pyhaNode, "
                                     "pyhaResourceType, pyhaGroup, pyhaResource or a "
                                     "constraint class")])


def _ordered(items: list[tuple[int | None, str, Any, str]]) -> list[tuple[Any, str]]:
    """Items by explicit position; entries without one come last, by name."""
    items.sort(key=lambda t: (t[0] is None, t[0] or 0, t[1]))
    return [(t[2], t[3]) for t in items]


@dataclass(frozen=True)
class Provenance:
    """Which entry each part of a configuration came from, to name DNs in errors."""

    cluster: str
    nodes: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    resources: dict[str, str] = field(default_factory=dict)
    constraints: tuple[str, ...] = ()


def config_from_entries(entries: Iterable[Entry], layout: Layout,
                        memo: ParseMemo | None = None) -> ClusterConfig:
    """The configuration stored in a cluster's entries; ConfigError names DNs and attributes.

    With a `memo` kept between calls, entries unchanged since the last call are not
    parsed again.
    """
    return config_and_provenance(entries, layout, memo)[0]


def config_and_provenance(entries: Iterable[Entry], layout: Layout,
                          memo: ParseMemo | None = None) -> tuple[ClusterConfig, Provenance]:
    """As config_from_entries, with the DN each part came from."""
    c = _Collected(layout, memo or ParseMemo())
    for entry in entries:
        _collect_one(c, entry, kind_of(entry))
    c.memo.rotate()
    if c.cluster is None:
        raise ClusterNotFound(f"{layout.cluster_dn}: no pyhaCluster entry: this cluster does not "
                          "exist in the directory (run `pyha directory import`)")
    options, epoch = options_from_entry(c.cluster)
    groups, group_dns, resource_dns = _groups(c)
    nodes, types, cons = _ordered(c.nodes), _ordered(c.types), _ordered(c.constraints)
    prov = Provenance(layout.cluster_dn, tuple(d for _, d in nodes), tuple(d for _, d in types),
                      tuple(group_dns), resource_dns, tuple(d for _, d in cons))
    data = {"cluster": options, "epoch": epoch, "nodes": tuple(n for n, _ in nodes),
            "resource_types": tuple(t for t, _ in types), "groups": tuple(groups),
            "constraints": tuple(x for x, _ in cons)}
    try:
        return ClusterConfig.model_validate(data), prov
    except ValidationError as exc:
        problems = config_error(exc, layout.cluster_dn).problems
        raise ConfigError(f"{layout.cluster_dn}: invalid configuration",
                          tuple(_locate(p, prov) for p in problems)) from None


def _groups(c: _Collected) -> tuple[list[Group], list[str], dict[str, str]]:
    orphans = set(c.resources) - set(c.groups)
    if orphans:
        dn = c.resources[sorted(orphans)[0]][0][3]
        raise EntryError(dn, [("", "a pyhaResource must be the child of a pyhaGroup entry")])
    order = _ordered([(_position(e), rdn_value(e.dn), e, e.dn) for e in c.groups.values()])
    groups, dns, resource_dns = [], [], {}
    for entry, dn in order:
        members = _ordered(c.resources.get(norm_dn(dn), []))
        groups.append(c.memo.group(entry, [r for r, _ in members]))
        dns.append(dn)
        resource_dns.update({r.name: rdn for r, rdn in members})
    return groups, dns, resource_dns


_PATH = re.compile(r"^(nodes|groups|constraints|resource_types)\[(\d+)\]\.?([a-z_]*)")
_TABLES: dict[str, tuple[Attr, ...]] = {
    "nodes": NODE_ATTRS, "resource_types": TYPE_ATTRS, "groups": GROUP_ATTRS,
    "constraints": LOCATION_ATTRS + COLOCATION_ATTRS + ORDER_ATTRS,
}


def _locate(problem: str, prov: Provenance) -> str:
    """Rewrite `constraints[2].node: ...` as `<DN of that entry>: pyhaNodeName: ...`."""
    path, sep, reason = problem.partition(": ")
    m = _PATH.match(path)
    if sep and m:
        kind, index, fld = m.group(1), int(m.group(2)), m.group(3)
        dns = {"nodes": prov.nodes, "groups": prov.groups, "constraints": prov.constraints,
               "resource_types": prov.types}[kind]
        if index < len(dns):
            attr = _attribute_of(fld, _TABLES[kind]) if fld else None
            return f"{dns[index]}: {attr + ': ' if attr else ''}{reason}"
    if sep and path == "resources" and "defined more than once" in reason:
        return f"{prov.cluster}: cn: resource names must be unique in the cluster: {reason}"
    return f"{prov.cluster}: {problem}"
