"""Constraints between groups: the colocation and order graphs, with cycles rejected."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from pyha.model.actions import Note
from pyha.model.config import ColocationConstraint, OrderConstraint
from pyha.scheduler.graph import cycle_path, cycles, topological
from pyha.scheduler.index import Index

C = TypeVar("C", ColocationConstraint, OrderConstraint)
Ends = Callable[[C], tuple[str, str]]


@dataclass
class Constraints:
    """The colocation and order constraints the scheduler applies, and the group orders
    they give.

    Invariant: neither graph has a cycle: every constraint inside one is left out and a
    note names the cycle; `place_order` puts each `with_group` before the groups placed
    relative to it, and `plan_order` puts each order's `first` before its `then`.
    """

    colocations: dict[str, list[ColocationConstraint]] = field(default_factory=dict)
    """Group -> the colocations that place it relative to another group."""
    orders: list[OrderConstraint] = field(default_factory=list)
    orders_into: dict[str, list[OrderConstraint]] = field(default_factory=dict)
    """Group -> the orders in which it is `then`."""
    place_order: list[str] = field(default_factory=list)
    plan_order: list[str] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)


def check(ix: Index) -> Constraints:
    """Build both graphs, drop the constraints that form cycles, and order the groups."""
    out = Constraints()
    names = list(ix.groups)
    # A colocation cycle reads best as "a -> b": a is placed with (or apart from) b.
    colocations = _acyclic(names, ix.colocations, "colocation", out.notes,
                           lambda c: (c.group, c.with_group))
    orders = _acyclic(names, ix.orders, "order", out.notes, lambda c: (c.first, c.then))
    for c in colocations:
        out.colocations.setdefault(c.group, []).append(c)
    out.orders = orders
    for o in orders:
        out.orders_into.setdefault(o.then, []).append(o)
    # Running groups are placed first, so the load that breaks ties counts them.
    running = sorted(names, key=lambda g: not _active(ix, g))
    out.place_order = topological(running, _edges(colocations, lambda c: (c.with_group, c.group)))
    out.plan_order = topological(names, _edges(orders, lambda c: (c.first, c.then)))
    return out


def _active(ix: Index, group: str) -> bool:
    return any(ix.active(r.name) for r in ix.groups[group].resources)


def _edges(constraints: Sequence[C], ends: Ends[C]) -> dict[str, list[str]]:
    edges: dict[str, list[str]] = {}
    for c in constraints:
        src, dst = ends(c)
        edges.setdefault(src, []).append(dst)
    return edges


def _acyclic(
    names: list[str], constraints: Sequence[C], kind: str, notes: list[Note], ends: Ends[C],
) -> list[C]:
    """The constraints outside any cycle; a note on each group of a cycle names it."""
    edges = _edges(constraints, ends)
    dropped: set[str] = set()
    for component in cycles(names, edges):
        inside = set(component)
        ids = [c.id for c in constraints if ends(c)[0] in inside and ends(c)[1] in inside]
        dropped.update(ids)
        path = " -> ".join(cycle_path(component, edges))
        text = (f"{kind} constraints form a cycle ({path}): {', '.join(ids)} ignored; "
                "fix the configuration")
        notes.extend(Note(subject=g, text=text) for g in component)
    return [c for c in constraints if c.id not in dropped]
