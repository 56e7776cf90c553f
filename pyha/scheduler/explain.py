"""Explanations in plain words: the decision line, readable transitions, score tables,
and why each group is where it is (moves, bans from failures, constraints)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pyha.model.actions import Action, ActionKind, Note, Transition
from pyha.model.config import ColocationConstraint, LocationConstraint, OrderConstraint
from pyha.model.types import INFINITY, format_score
from pyha.scheduler.moves import is_move
from pyha.scheduler.scores import format_parts, format_time, signed

if TYPE_CHECKING:
    from pyha.scheduler import Plan
    from pyha.scheduler.index import Index
    from pyha.scheduler.placement import Placement

SHOWN = 8
"""How many targets or groups a decision line names before it says 'and N more'."""

_VERBS = ((ActionKind.FENCE, "fence"), (ActionKind.DEMOTE, "demote"), (ActionKind.STOP, "stop"),
          (ActionKind.MONITOR, "probe"), (ActionKind.START, "start"),
          (ActionKind.PROMOTE, "promote"))


# -- the decision line ------------------------------------------------------------------

def summary_line(actions: Sequence[Action], placements: dict[str, str | None],
                 notes: Sequence[Note]) -> str:
    """One line: what the transition does and its root cause, or where everything stays."""
    if not actions:
        return _idle_line(placements, notes)
    by_kind: dict[ActionKind, list[Action]] = {}
    for a in actions:
        by_kind.setdefault(a.kind, []).append(a)
    parts = [f"{verb} " + _capped([_target(a) for a in by_kind[kind][:SHOWN]],
                                  len(by_kind[kind]))
             for kind, verb in _VERBS if kind in by_kind]
    # The root cause reads best: skip the knock-on restarts of later group members.
    lead = next((a for a in actions if not _knock_on(a.reason)), actions[0])
    return "; ".join(parts) + f" ({lead.reason})"


def _knock_on(reason: str) -> bool:
    return reason.startswith("restart after") or "start in order)" in reason \
        or " before it in " in reason or ": it needs " in reason


def _idle_line(placements: dict[str, str | None], notes: Sequence[Note]) -> str:
    said: dict[str, list[str]] = {}
    for note in notes:
        said.setdefault(note.subject, []).append(note.text)
    groups = list(placements)
    if len(groups) > SHOWN:  # name the groups with something to say first
        groups.sort(key=lambda g: g not in said)
    where = [(f"{g} on {placements[g]}" if placements[g] else f"{g} stopped")
             + (" (" + "; ".join(said[g]) + ")" if g in said else "") for g in groups]
    return f"nothing to do: {_capped(where)}" if where else "nothing to do: no groups configured"


def _capped(items: list[str], total: int | None = None) -> str:
    total = len(items) if total is None else total
    shown = ", ".join(items[:SHOWN])
    return shown + (f" and {total - SHOWN} more" if total > SHOWN else "")


def _target(action: Action) -> str:
    return f"{action.resource} on {action.node}" if action.resource else action.node


# -- readable transitions ---------------------------------------------------------------

def format_actions(transition: Transition) -> list[str]:
    """Each action on a line with what it waits for, its reason on the next."""
    if not transition.actions:
        return ["actions: none"]
    lines = [f"actions ({len(transition.actions)}):"]
    for a in transition.actions:
        after = f"  [after {', '.join(map(str, a.after))}]" if a.after else ""
        lines += [f"  {a.id}. {a.describe()}{after}", f"       because {a.reason}"]
    return lines


def format_plan(plan: Plan) -> str:
    """The decision line, the actions in order, each group's placement and the notes."""
    t = plan.transition
    lines = [f"decision: {t.summary}", *format_actions(t), "placements:"]
    for name, node in t.placement.items():
        p = plan.placements.get(name)
        lines.append(f"  {name} -> {_where(node, p)}" + (f": {p.why}" if p else ""))
    lines.append("notes:" if t.notes else "notes: none")
    lines += [f"  {n.subject}: {n.text}" for n in t.notes]
    return "\n".join(lines) + "\n"


def _where(node: str | None, p: Placement | None) -> str:
    # An unmanaged placement's reason already starts with "left as it is" or "left alone".
    return node or "stopped"


# -- score tables -----------------------------------------------------------------------

def format_scores(plan: Plan) -> str:
    """Group by node: each total with the contributions that made it; * marks the choice."""
    blocks = [_score_block(p) for p in plan.placements.values()]
    return "\n".join(blocks) + "\n" if blocks else "no groups\n"


def _score_block(p: Placement) -> str:
    head = f"{p.group} -> {_where(p.node, p)}"
    if p.scores is None:
        return f"{head}\n  not scored: {p.why}"
    rows = p.scores.rows()
    width = max(len(r.node) for r in rows)
    lines = [head]
    for row in rows:
        mark = "*" if row.node == p.node else " "
        lines.append(f"  {mark} {row.node:<{width}}  {format_score(row.score):>9}  "
                     f"{format_parts(row.parts)}")
    return "\n".join(lines)


# -- explain ----------------------------------------------------------------------------

def explain(plan: Plan, group: str | None = None) -> str:
    """Why each group (or only `group`) is where it is: its placement, scores, moves,
    bans from failures with when they expire, its constraints and its actions."""
    names = [group] if group else list(plan.placements)
    blocks = []
    head = [f"fence {a.node}: {a.reason}" for a in plan.transition.actions
            if a.kind is ActionKind.FENCE]
    head += [f"{n.subject}: {n.text}" for n in plan.transition.notes
             if plan.index is None or n.subject in plan.index.nodes]
    if head and not group:
        blocks.append("\n".join(head))
    blocks += [_explain_group(plan, name) for name in names]
    return "\n\n".join(blocks) + "\n"


def _explain_group(plan: Plan, name: str) -> str:
    p = plan.placements[name]
    ix = plan.index
    lines = [f"{name}: {_state(ix, p)}", f"  why: {p.why}"]
    if p.scores is not None:
        lines.append("  scores:")
        lines += ["  " + line for line in _score_block(p).splitlines()[1:]]
    if ix is not None:
        lines += _moves(ix, name) + _failures(ix, name) + _constraints(ix, name)
    mine = [a for a in plan.transition.actions
            if a.resource in {r for r in _members(ix, name)}]
    if mine:
        lines.append("  actions: " + ", ".join(a.describe() for a in mine))
    lines += [f"  note: {n.text}" for n in plan.transition.notes
              if n.subject == name or n.subject in _members(ix, name)]
    return "\n".join(lines)


def _members(ix: Index | None, group: str) -> list[str]:
    return [r.name for r in ix.groups[group].resources] if ix else []


def _state(ix: Index | None, p: Placement) -> str:
    if not p.managed:
        return f"left as it is on {p.node}" if p.node else "left as it is (stopped)"
    was = {node for r in _members(ix, p.group) for node, _ in (ix.active_raw(r) if ix else [])}
    if p.node is None:
        return "stops" if was else "stays stopped"
    if was == {p.node}:
        return f"runs on {p.node}"
    return f"goes to {p.node}" + (f" from {', '.join(sorted(was - {p.node}))}"
                                  if was - {p.node} else "")


def _moves(ix: Index, group: str) -> list[str]:
    lines = []
    for c in ix.locations.get(group, ()):
        if not is_move(c):
            continue
        if c.expires is None:
            life = "no expiry; unmove removes it"
        elif c.expires <= ix.now:
            life = f"expired at {format_time(c.expires)}, no longer applies; unmove removes it"
        else:
            life = f"until {format_time(c.expires)} (in {span(c.expires - ix.now)})"
        lines.append(f"  move: {c.id} prefers {c.node} ({signed(c.score)}), {life}")
    return lines


def _failures(ix: Index, group: str) -> list[str]:
    lines = []
    for name in _members(ix, group):
        threshold = ix.resources[name].meta.migration_threshold
        timeout = ix.resources[name].meta.failure_timeout
        for node in ix.failed_on.get(name, ()):
            record, count = ix.records[(name, node)], ix.failures[(name, node)]
            if count >= INFINITY:
                what, until = "a fatal failure: banned there", "until a cleanup"
            else:
                banned = count >= threshold
                what = f"{count} of {threshold} failures" + (": banned there" if banned else "")
                until = _expiry(record.last_failure, timeout, ix.now)
            lines.append(f"  failures: {name} on {node}: {what} {until}")
    return lines


def _expiry(last: float, timeout: float, now: float) -> str:
    if not timeout:
        return "until a cleanup (failures never expire)"
    return f"until {format_time(last + timeout)} (in {span(last + timeout - now)})"


def _constraints(ix: Index, group: str) -> list[str]:
    lines = []
    for c in ix.config.constraints:
        if isinstance(c, LocationConstraint) and c.group == group and not is_move(c):
            lines.append(f"  constraint: location {c.id}: {signed(c.score)} on {c.node}")
        elif isinstance(c, ColocationConstraint) and group in (c.group, c.with_group):
            lines.append(f"  constraint: colocation {c.id}: {c.group} "
                         f"{'with' if c.score > 0 else 'apart from'} {c.with_group} "
                         f"({signed(c.score)})")
        elif isinstance(c, OrderConstraint) and group in (c.first, c.then):
            kind = "mandatory" if c.mandatory else "optional"
            sym = ", symmetrical" if c.symmetrical else ""
            lines.append(f"  constraint: order {c.id}: {c.first} then {c.then} ({kind}{sym})")
    return lines


def span(seconds: float) -> str:
    """A duration for people: '45s', '4m10s', '2h5m'."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


# -- machine output ---------------------------------------------------------------------

def plan_json(plan: Plan) -> dict[str, Any]:
    """The transition, placements with their reasons, and the scores, as JSON-ready data."""
    scores: dict[str, dict[str, Any]] = {}
    for name, p in plan.placements.items():
        if p.scores is not None:
            scores[name] = {row.node: {"score": row.score,
                                       "parts": [[v, why] for v, why in row.parts]}
                            for row in p.scores.rows()}
    return {
        "transition": plan.transition.model_dump(mode="json"),
        "placements": {name: {"node": p.node, "why": p.why, "managed": p.managed}
                       for name, p in plan.placements.items()},
        "scores": scores,
    }
