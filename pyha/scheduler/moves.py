"""Moves: an admin's move of a group is a visible location preference, never a hidden ban."""

from __future__ import annotations

from pydantic import ValidationError

from pyha.errors import ConfigError
from pyha.model.config import ClusterConfig, LocationConstraint
from pyha.model.types import INFINITY

MOVE_PREFIX = "move-"


def move_id(group: str) -> str:
    """The id of the constraint that moves `group`: 'move-<group>'."""
    return f"{MOVE_PREFIX}{group}"


def move(config: ClusterConfig, group: str, node: str, lifetime: float | None,
         now: float) -> ClusterConfig:
    """`config` with `group` moved to `node`: a location constraint `move-<group>` scoring
    INFINITY there, which expires `lifetime` seconds after `now` (never if None).

    It replaces an earlier move of the same group. A node that is down, in standby or
    banned for the group still wins over it (-INFINITY beats INFINITY), and the group
    then stays where it is; `pyha explain` shows the constraint either way.
    """
    names = {g.name for g in config.groups}
    if group not in names:
        raise ConfigError(f"move: no group named {group!r}")
    if node not in {n.name for n in config.nodes}:
        raise ConfigError(f"move: no node named {node!r}")
    if lifetime is not None and lifetime <= 0:
        raise ConfigError("move: the lifetime must be greater than 0")
    try:
        constraint = LocationConstraint.model_validate({
            "id": move_id(group), "group": group, "node": node, "score": INFINITY,
            "expires": None if lifetime is None else now + lifetime,
        })
    except ValidationError:
        raise ConfigError(f"move: {move_id(group)!r} is too long for a constraint id; "
                          "add a location constraint by hand") from None
    kept = tuple(c for c in config.constraints if c.id != constraint.id)
    return config.model_copy(update={"constraints": (*kept, constraint)})


def unmove(config: ClusterConfig, group: str) -> ClusterConfig:
    """`config` without the move of `group` (unchanged if there is none)."""
    if group not in {g.name for g in config.groups}:
        raise ConfigError(f"unmove: no group named {group!r}")
    kept = tuple(c for c in config.constraints if c.id != move_id(group))
    return config.model_copy(update={"constraints": kept})


def is_move(constraint: LocationConstraint) -> bool:
    """True for the constraint a `move` made."""
    return constraint.id == move_id(constraint.group)
