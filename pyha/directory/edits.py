"""Changes to a configuration as pure functions: each returns a new, checked ClusterConfig.

A change that would leave the configuration invalid raises ConfigError and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from pyha.errors import ConfigError
from pyha.model.config import (
    ClusterConfig,
    ClusterOptions,
    Constraint,
    Group,
    Node,
    Resource,
    ResourceType,
    config_error,
)

Edit = Callable[[ClusterConfig], ClusterConfig]
"""A change: the current configuration in, the changed one out."""

T = TypeVar("T")


def rebuild(config: ClusterConfig, source: str = "change", **parts: Any) -> ClusterConfig:
    """`config` with some top-level parts replaced, checked as a whole (references, names)."""
    data: dict[str, Any] = {
        "cluster": config.cluster, "epoch": config.epoch, "nodes": config.nodes,
        "resource_types": config.resource_types, "groups": config.groups,
        "constraints": config.constraints,
    }
    data.update(parts)
    try:
        return ClusterConfig.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, source) from None


def _insert(items: Sequence[T], item: T, position: int | None) -> tuple[T, ...]:
    out = list(items)
    out.insert(len(out) if position is None else max(0, position), item)
    return tuple(out)


def _index(items: Sequence[Any], name: str, what: str, attr: str = "name") -> int:
    for i, item in enumerate(items):
        if getattr(item, attr) == name:
            return i
    raise ConfigError(f"no {what} named {name!r}")


def _absent(items: Sequence[Any], name: str, what: str, attr: str = "name") -> None:
    if any(getattr(item, attr) == name for item in items):
        raise ConfigError(f"a {what} named {name!r} exists already")


def _replace(items: Sequence[T], index: int, item: T | None) -> tuple[T, ...]:
    out = list(items)
    if item is None:
        del out[index]
    else:
        out[index] = item
    return tuple(out)


def _model(cls: type[BaseModel], data: dict[str, Any], source: str) -> Any:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, source) from None


# -- groups and resources ---------------------------------------------------------------------


def add_group(group: Group, position: int | None = None) -> Edit:
    """Add a group (with its resources) at `position`, by default last."""
    def edit(c: ClusterConfig) -> ClusterConfig:
        _absent(c.groups, group.name, "group")
        return rebuild(c, f"group {group.name}", groups=_insert(c.groups, group, position))
    return edit


def update_group(group: Group) -> Edit:
    """Replace the group of the same name, resources included; it keeps its position."""
    def edit(c: ClusterConfig) -> ClusterConfig:
        i = _index(c.groups, group.name, "group")
        return rebuild(c, f"group {group.name}", groups=_replace(c.groups, i, group))
    return edit


def remove_group(name: str) -> Edit:
    """Remove a group and its resources; refused while a constraint names it."""
    def edit(c: ClusterConfig) -> ClusterConfig:
        i = _index(c.groups, name, "group")
        return rebuild(c, f"removing group {name}", groups=_replace(c.groups, i, None))
    return edit


def add_resource(group: str, resource: Resource, position: int | None = None) -> Edit:
    """Add a resource to a group at `position` (start order), by default last."""
    def edit(c: ClusterConfig) -> ClusterConfig:
        i = _index(c.groups, group, "group")
        old = c.groups[i]
        data = {**_fields(old), "resources": _insert(old.resources, resource, position)}
        new = _model(Group, data, f"group {group}")
        return rebuild(c, f"resource {resource.name}", groups=_replace(c.groups, i, new))
    return edit


def update_resource(resource: Resource) -> Edit:
    """Replace the resource of the same name in whatever group holds it."""
    def edit(c: ClusterConfig) -> ClusterConfig:
        try:
            group = c.group_of(resource.name)
        except KeyError:
            raise ConfigError(f"no resource named {resource.name!r}") from None
        j = _index(group.resources, resource.name, "resource")
        new = group.model_copy(update={"resources": _replace(group.resources, j, resource)})
        i = c.groups.index(group)
        return rebuild(c, f"resource {resource.name}", groups=_replace(c.groups, i, new))
    return edit


def remove_resource(name: str) -> Edit:
    """Remove a resource; refused if it is the last of its group (remove the group)."""
    def edit(c: ClusterConfig) -> ClusterConfig:
        try:
            group = c.group_of(name)
        except KeyError:
            raise ConfigError(f"no resource named {name!r}") from None
        j = _index(group.resources, name, "resource")
        data = {**_fields(group), "resources": _replace(group.resources, j, None)}
        new = _model(Group, data, f"group {group.name}")
        i = c.groups.index(group)
        return rebuild(c, f"removing resource {name}", groups=_replace(c.groups, i, new))
    return edit


def _fields(group: Group) -> dict[str, Any]:
    return {"name": group.name, "meta": group.meta, "description": group.description}


# -- nodes, types, constraints, options ---------------------------------------------------------


def add_node(node: Node, position: int | None = None) -> Edit:
    """Add a node."""
    def edit(c: ClusterConfig) -> ClusterConfig:
        _absent(c.nodes, node.name, "node")
        return rebuild(c, f"node {node.name}", nodes=_insert(c.nodes, node, position))
    return edit


def update_node(node: Node) -> Edit:
    """Replace the node of the same name."""
    def edit(c: ClusterConfig) -> ClusterConfig:
        i = _index(c.nodes, node.name, "node")
        return rebuild(c, f"node {node.name}", nodes=_replace(c.nodes, i, node))
    return edit


def remove_node(name: str) -> Edit:
    """Remove a node; refused while a constraint names it or it is the last one."""
    def edit(c: ClusterConfig) -> ClusterConfig:
        i = _index(c.nodes, name, "node")
        return rebuild(c, f"removing node {name}", nodes=_replace(c.nodes, i, None))
    return edit


def add_resource_type(rtype: ResourceType, position: int | None = None) -> Edit:
    """Declare a resource type."""
    def edit(c: ClusterConfig) -> ClusterConfig:
        _absent(c.resource_types, rtype.name, "resource type")
        types = _insert(c.resource_types, rtype, position)
        return rebuild(c, f"resource type {rtype.name}", resource_types=types)
    return edit


def remove_resource_type(name: str) -> Edit:
    """Remove a declared resource type."""
    def edit(c: ClusterConfig) -> ClusterConfig:
        i = _index(c.resource_types, name, "resource type")
        types = _replace(c.resource_types, i, None)
        return rebuild(c, f"removing resource type {name}", resource_types=types)
    return edit


def add_constraint(constraint: Constraint, position: int | None = None) -> Edit:
    """Add a constraint."""
    def edit(c: ClusterConfig) -> ClusterConfig:
        _absent(c.constraints, constraint.id, "constraint", "id")
        cons = _insert(c.constraints, constraint, position)
        return rebuild(c, f"constraint {constraint.id}", constraints=cons)
    return edit


def update_constraint(constraint: Constraint) -> Edit:
    """Replace the constraint with the same id (its kind may change)."""
    def edit(c: ClusterConfig) -> ClusterConfig:
        i = _index(c.constraints, constraint.id, "constraint", "id")
        cons = _replace(c.constraints, i, constraint)
        return rebuild(c, f"constraint {constraint.id}", constraints=cons)
    return edit


def remove_constraint(ident: str) -> Edit:
    """Remove a constraint."""
    def edit(c: ClusterConfig) -> ClusterConfig:
        i = _index(c.constraints, ident, "constraint", "id")
        return rebuild(c, f"removing constraint {ident}",
                       constraints=_replace(c.constraints, i, None))
    return edit


def set_options(options: ClusterOptions) -> Edit:
    """Replace the cluster options; the cluster's name cannot change."""
    def edit(c: ClusterConfig) -> ClusterConfig:
        if options.name != c.cluster.name:
            raise ConfigError(f"cluster.name: cannot rename cluster {c.cluster.name!r} "
                              f"to {options.name!r}")
        return rebuild(c, "cluster options", cluster=options)
    return edit


def replace_all(config: ClusterConfig) -> Edit:
    """Replace the whole configuration (import); the cluster's name must match."""
    def edit(c: ClusterConfig) -> ClusterConfig:
        if config.cluster.name != c.cluster.name:
            raise ConfigError(f"cluster.name: this directory holds cluster {c.cluster.name!r}, "
                              f"not {config.cluster.name!r}")
        return config
    return edit
