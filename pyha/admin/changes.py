"""Configuration changes an admin asks for, in a form that travels between nodes.

A Change is a kind and plain JSON arguments; `apply_change` turns it into the new
configuration (pure: the epoch is left for the committer to set). Any node accepts a
change from its admin service and hands it to the coordinator, which applies it to the
configuration in force, so two admins editing through different nodes never overwrite
each other's changes. Every error is an InvalidArgument (or NotFound) that names the
argument or the field and the reason; a refused change changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from pyha.admin.errors import InvalidArgument, NotFound
from pyha.directory import edits
from pyha.errors import AdminError, ConfigError, PyhaError
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
from pyha.scheduler import moves

NAME_LENGTH = 64


@dataclass(frozen=True)
class Change:
    """One change: `kind` names it (the admin method), `args` are its plain arguments."""

    kind: str
    args: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The change for the node-to-node channel."""
        return {"kind": self.kind, "args": dict(self.args)}

    @classmethod
    def from_json(cls, data: Any, method: str = "change") -> Change:
        """A change from `to_json`; InvalidArgument (for `method`) if it is not one."""
        if not isinstance(data, dict) or not isinstance(data.get("kind"), str) \
                or not isinstance(data.get("args", {}), dict):
            raise InvalidArgument(method, "change", 'must be {"kind": ..., "args": {...}}')
        return cls(data["kind"], dict(data.get("args", {})))

    def describe(self) -> str:
        """The change in words for logs: its kind and the names it touches."""
        names = [str(v) for k, v in self.args.items()
                 if k in ("name", "group", "node", "id", "on") and v is not None]
        return " ".join([self.kind, *names])


def apply_change(config: ClusterConfig, change: Change) -> ClusterConfig:
    """`config` with `change` made (epoch unchanged); InvalidArgument says what is wrong."""
    handler = _HANDLERS.get(change.kind)
    if handler is None:
        raise InvalidArgument(change.kind, "change", f"unknown change {change.kind!r}")
    try:
        return handler(config, change.kind, change.args)
    except ConfigError as exc:
        raise invalid_config(change, exc) from None


def main_argument(change: Change) -> str:
    """The argument an error about the changed configuration is reported against: the
    definition or fields passed, else the name of what is changed."""
    for key, value in change.args.items():
        if isinstance(value, dict):
            return key
    return next((k for k in ("name", "id", "group", "node", "on") if k in change.args),
                "arguments")


# -- argument checks ----------------------------------------------------------------------------


def name_arg(method: str, args: Mapping[str, Any], key: str) -> str:
    """A required name argument."""
    value = args.get(key)
    if not isinstance(value, str):
        raise InvalidArgument(method, key, f"must be a name (text), got {type(value).__name__}")
    if not value or len(value) > NAME_LENGTH:
        raise InvalidArgument(method, key, f"must be 1 to {NAME_LENGTH} characters")
    return value


def mapping_arg(method: str, args: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A required mapping argument (a definition or the fields to change)."""
    value = args.get(key)
    if not isinstance(value, dict):
        raise InvalidArgument(method, key, f"must be a mapping of fields, got "
                                           f"{type(value).__name__}")
    if not all(isinstance(k, str) for k in value):
        raise InvalidArgument(method, key, "field names must be text")
    return dict(value)


def position_arg(method: str, args: Mapping[str, Any]) -> int | None:
    """The optional position (0 is first) of a new item."""
    value = args.get("position")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgument(method, "position", f"must be a whole number from 0, got "
                                                  f"{value!r}"[:120])
    return value


def bool_arg(method: str, args: Mapping[str, Any], key: str) -> bool:
    """A required true/false argument."""
    value = args.get(key)
    if not isinstance(value, bool):
        raise InvalidArgument(method, key, f"must be true or false, got {type(value).__name__}")
    return value


def _model(method: str, argument: str, cls: type[BaseModel], data: dict[str, Any]) -> Any:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise _invalid(method, config_error(exc, argument), argument) from None


def _invalid(method: str, exc: ConfigError, argument: str) -> InvalidArgument:
    """A ConfigError as the admin error against `argument`; the reason keeps every
    problem with the field it names (e.g. "operations[0].interval: 'soon' is not ...")."""
    problems = list(exc.problems) or [str(exc)]
    text = "; ".join(problems)
    if problems[0].startswith("no ") and " named " in problems[0]:
        return NotFound(method, argument, text)  # the thing the call names is missing
    return InvalidArgument(method, argument, text)


def invalid_config(change: Change, exc: ConfigError) -> InvalidArgument:
    """A ConfigError raised while making or checking `change`, as the admin error."""
    return _invalid(change.kind, exc, main_argument(change))


def error_fields(exc: PyhaError) -> dict[str, Any]:
    """A refused change's error for the node-to-node channel."""
    if isinstance(exc, InvalidArgument):
        return {"type": "NotFound" if isinstance(exc, NotFound) else "InvalidArgument",
                "method": exc.method, "argument": exc.argument, "reason": exc.reason}
    return {"type": "AdminError", "message": str(exc)}


def error_from_fields(method: str, data: Any) -> PyhaError:
    """The error `error_fields` described, rebuilt on the node the admin called."""
    if not isinstance(data, dict):
        return AdminError(f"{method}: the coordinator refused the change without a reason")
    if data.get("type") in ("InvalidArgument", "NotFound"):
        cls = NotFound if data["type"] == "NotFound" else InvalidArgument
        return cls(str(data.get("method", method)), str(data.get("argument", "")),
                   str(data.get("reason", "")))
    return AdminError(str(data.get("message", f"{method}: refused by the coordinator")))


def _merged(method: str, old: BaseModel, fields: dict[str, Any], key: str = "name") -> \
        dict[str, Any]:
    if key in fields and fields[key] != getattr(old, key):
        raise InvalidArgument(method, "fields", f"{key}: cannot be changed; remove it and "
                                                "add it under the new name")
    data = old.model_dump(mode="json", exclude_unset=False)
    data.update(fields)
    return data


# -- the changes ------------------------------------------------------------------------------

Handler = Callable[[ClusterConfig, str, Mapping[str, Any]], ClusterConfig]


def _resource_add(c: ClusterConfig, m: str, a: Mapping[str, Any]) -> ClusterConfig:
    group = name_arg(m, a, "group")
    resource = _model(m, "resource", Resource, mapping_arg(m, a, "resource"))
    return edits.add_resource(group, resource, position_arg(m, a))(c)


def _changed_fields(m: str, a: Mapping[str, Any], items: Iterable[BaseModel], what: str,
                    key: str = "name") -> dict[str, Any]:
    """The item named by the `key` argument, with the `fields` argument laid over it;
    NotFound when there is no such item."""
    name = name_arg(m, a, key)
    old = next((i for i in items if getattr(i, key) == name), None)
    if old is None:
        raise NotFound(m, key, f"no {what} named {name!r}")
    return _merged(m, old, mapping_arg(m, a, "fields"), key)


def _resource_update(c: ClusterConfig, m: str, a: Mapping[str, Any]) -> ClusterConfig:
    data = _changed_fields(m, a, (r for _, r in c.resources()), "resource")
    return edits.update_resource(_model(m, "fields", Resource, data))(c)


def _resource_remove(c: ClusterConfig, m: str, a: Mapping[str, Any]) -> ClusterConfig:
    return edits.remove_resource(name_arg(m, a, "name"))(c)


def _group_add(c: ClusterConfig, m: str, a: Mapping[str, Any]) -> ClusterConfig:
    group = _model(m, "group", Group, mapping_arg(m, a, "group"))
    return edits.add_group(group, position_arg(m, a))(c)


def _group_update(c: ClusterConfig, m: str, a: Mapping[str, Any]) -> ClusterConfig:
    data = _changed_fields(m, a, c.groups, "group")
    return edits.update_group(_model(m, "fields", Group, data))(c)


def _group_remove(c: ClusterConfig, m: str, a: Mapping[str, Any]) -> ClusterConfig:
    return edits.remove_group(name_arg(m, a, "name"))(c)


_CONSTRAINT: TypeAdapter[Constraint] = TypeAdapter(
    Annotated[LocationConstraint | ColocationConstraint | OrderConstraint,
              Field(discriminator="kind")])
"""One constraint, parsed by its `kind` as the configuration parses its list."""


def _constraint(m: str, data: dict[str, Any], argument: str) -> Constraint:
    try:
        return _CONSTRAINT.validate_python(data)
    except ValidationError as exc:
        raise _invalid(m, config_error(exc, argument), argument) from None


def _constraint_add(c: ClusterConfig, m: str, a: Mapping[str, Any]) -> ClusterConfig:
    return edits.add_constraint(_constraint(m, mapping_arg(m, a, "constraint"), "constraint"))(c)


def _constraint_update(c: ClusterConfig, m: str, a: Mapping[str, Any]) -> ClusterConfig:
    data = _changed_fields(m, a, c.constraints, "constraint", key="id")
    return edits.update_constraint(_constraint(m, data, "fields"))(c)


def _constraint_remove(c: ClusterConfig, m: str, a: Mapping[str, Any]) -> ClusterConfig:
    return edits.remove_constraint(name_arg(m, a, "id"))(c)


def _type_add(c: ClusterConfig, m: str, a: Mapping[str, Any]) -> ClusterConfig:
    rtype = _model(m, "resource_type", ResourceType, mapping_arg(m, a, "resource_type"))
    return edits.add_resource_type(rtype)(c)


def _type_remove(c: ClusterConfig, m: str, a: Mapping[str, Any]) -> ClusterConfig:
    return edits.remove_resource_type(name_arg(m, a, "name"))(c)


def _node_add(c: ClusterConfig, m: str, a: Mapping[str, Any]) -> ClusterConfig:
    node = _model(m, "node", Node, mapping_arg(m, a, "node"))
    return edits.add_node(node)(c)


def _node_update(c: ClusterConfig, m: str, a: Mapping[str, Any]) -> ClusterConfig:
    data = _changed_fields(m, a, c.nodes, "node")
    return edits.update_node(_model(m, "fields", Node, data))(c)


def _node_remove(c: ClusterConfig, m: str, a: Mapping[str, Any]) -> ClusterConfig:
    return edits.remove_node(name_arg(m, a, "name"))(c)


def _standby(c: ClusterConfig, m: str, a: Mapping[str, Any]) -> ClusterConfig:
    name, on = name_arg(m, a, "node"), bool_arg(m, a, "on")
    old = next((n for n in c.nodes if n.name == name), None)
    if old is None:
        raise NotFound(m, "node", f"no node named {name!r}")
    return edits.update_node(old.model_copy(update={"standby": on}))(c)


def _maintenance(c: ClusterConfig, m: str, a: Mapping[str, Any]) -> ClusterConfig:
    on = bool_arg(m, a, "on")
    return edits.rebuild(c, "maintenance",
                         cluster=c.cluster.model_copy(update={"maintenance": on}))


def _options_update(c: ClusterConfig, m: str, a: Mapping[str, Any]) -> ClusterConfig:
    data = _merged(m, c.cluster, mapping_arg(m, a, "fields"))
    return edits.set_options(_model(m, "fields", ClusterOptions, data))(c)


def _move(c: ClusterConfig, m: str, a: Mapping[str, Any]) -> ClusterConfig:
    group, node = name_arg(m, a, "group"), name_arg(m, a, "node")
    if group not in {g.name for g in c.groups}:
        raise NotFound(m, "group", f"no group named {group!r}")
    if node not in {n.name for n in c.nodes}:
        raise NotFound(m, "node", f"no node named {node!r}")
    expires = a.get("expires")
    if expires is not None and (isinstance(expires, bool)
                                or not isinstance(expires, int | float)):
        raise InvalidArgument(m, "lifetime", "must be a number of seconds")
    moved = moves.move(c, group, node, None, 0.0)
    if expires is not None:
        constraints = tuple(k.model_copy(update={"expires": float(expires)})
                            if k.id == moves.move_id(group) else k for k in moved.constraints)
        moved = moved.model_copy(update={"constraints": constraints})
    return edits.rebuild(moved, "move")


def _unmove(c: ClusterConfig, m: str, a: Mapping[str, Any]) -> ClusterConfig:
    group = name_arg(m, a, "group")
    if group not in {g.name for g in c.groups}:
        raise NotFound(m, "group", f"no group named {group!r}")
    return moves.unmove(c, group)


_HANDLERS: dict[str, Handler] = {
    "resource_add": _resource_add, "resource_update": _resource_update,
    "resource_remove": _resource_remove,
    "group_add": _group_add, "group_update": _group_update, "group_remove": _group_remove,
    "constraint_add": _constraint_add, "constraint_update": _constraint_update,
    "constraint_remove": _constraint_remove,
    "resource_type_add": _type_add, "resource_type_remove": _type_remove,
    "node_add": _node_add, "node_update": _node_update, "node_remove": _node_remove,
    "standby": _standby, "maintenance": _maintenance, "options_update": _options_update,
    "move": _move, "unmove": _unmove,
}
KINDS = frozenset(_HANDLERS)
"""Every change an admin may ask for."""
