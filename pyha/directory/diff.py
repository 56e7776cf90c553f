"""What changed between two configurations, item by item, in words (pure)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from pyha.directory.tree import Layout
from pyha.model.config import ClusterConfig


@dataclass(frozen=True)
class Change:
    """One added, modified or removed part of a configuration."""

    action: str
    """add, modify or delete."""
    kind: str
    """cluster, node, type, group, resource or constraint."""
    name: str
    group: str = ""
    """For a resource: the group that holds it (in the new config, else the old)."""
    fields: tuple[str, ...] = ()
    """For a modify: the fields that differ."""

    def describe(self) -> str:
        """e.g. `modify resource web (params, meta)`."""
        detail = f" ({', '.join(self.fields)})" if self.fields else ""
        where = f" in group {self.group}" if self.group and self.action == "add" else ""
        return f"{self.action} {self.kind} {self.name}{where}{detail}"

    def dn(self, layout: Layout) -> str:
        """The DN of the entry this change is about."""
        if self.kind == "cluster":
            return layout.cluster_dn
        if self.kind == "resource":
            return layout.resource_dn(self.group, self.name)
        return {"node": layout.node_dn, "type": layout.type_dn, "group": layout.group_dn,
                "constraint": layout.constraint_dn}[self.kind](self.name)


def _fields_differ(a: BaseModel, b: BaseModel, skip: tuple[str, ...] = ()) -> tuple[str, ...]:
    return tuple(f for f in type(a).model_fields
                 if f not in skip and getattr(a, f) != getattr(b, f))


def _by_name(items: Sequence[Any], attr: str = "name") -> dict[str, Any]:
    return {getattr(i, attr): i for i in items}


def _compare(kind: str, old: Sequence[Any], new: Sequence[Any], attr: str = "name",
             skip: tuple[str, ...] = ()) -> Iterator[Change]:
    a, b = _by_name(old, attr), _by_name(new, attr)
    for name in b.keys() - a.keys():
        yield Change("add", kind, name)
    for name in a.keys() - b.keys():
        yield Change("delete", kind, name)
    for name in a.keys() & b.keys():
        fields = _fields_differ(a[name], b[name], skip)
        if fields:
            yield Change("modify", kind, name, fields=fields)


def _resources(old: ClusterConfig, new: ClusterConfig) -> Iterator[Change]:
    a = {r.name: (g.name, r) for g, r in old.resources()}
    b = {r.name: (g.name, r) for g, r in new.resources()}
    for name in b.keys() - a.keys():
        yield Change("add", "resource", name, b[name][0])
    for name in a.keys() - b.keys():
        yield Change("delete", "resource", name, a[name][0])
    for name in a.keys() & b.keys():
        fields = _fields_differ(a[name][1], b[name][1])
        if a[name][0] != b[name][0]:
            fields = ("group", *fields)
        if fields:
            yield Change("modify", "resource", name, b[name][0], fields)


def _order_changed(old: Sequence[Any], new: Sequence[Any], attr: str = "name") -> bool:
    common = set(_by_name(old, attr)) & set(_by_name(new, attr))
    return [getattr(i, attr) for i in old if getattr(i, attr) in common] != \
        [getattr(i, attr) for i in new if getattr(i, attr) in common]


def diff_configs(old: ClusterConfig, new: ClusterConfig) -> list[Change]:
    """Every change from `old` to `new`, sorted by kind and name (epoch alone is no change)."""
    changes: list[Change] = []
    if old.cluster != new.cluster:
        changes.append(Change("modify", "cluster", new.cluster.name,
                              fields=_fields_differ(old.cluster, new.cluster)))
    changes += _compare("node", old.nodes, new.nodes)
    changes += _compare("type", old.resource_types, new.resource_types)
    changes += _compare("group", old.groups, new.groups, skip=("resources",))
    changes += _group_orders(old, new, changes)
    changes += _resources(old, new)
    changes += _compare("constraint", old.constraints, new.constraints, attr="id")
    order = {"cluster": 0, "node": 1, "type": 2, "group": 3, "resource": 4, "constraint": 5}
    return sorted(changes, key=lambda c: (order[c.kind], c.name, c.action))


def _group_orders(old: ClusterConfig, new: ClusterConfig,
                  seen: list[Change]) -> Iterator[Change]:
    """Groups whose members were reordered (start order is part of a group)."""
    before = _by_name(old.groups)
    modified = {c.name for c in seen if c.kind == "group"}
    for group in new.groups:
        prior = before.get(group.name)
        if prior and group.name not in modified and _order_changed(prior.resources,
                                                                   group.resources):
            yield Change("modify", "group", group.name, fields=("resource order",))
