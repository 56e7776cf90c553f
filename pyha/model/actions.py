"""Transitions: what the scheduler decided, as actions bound to nodes, each with a reason."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class ActionKind(StrEnum):
    """The operations a transition can ask for, plus fencing a node."""

    START = "start"
    STOP = "stop"
    MONITOR = "monitor"
    PROMOTE = "promote"
    DEMOTE = "demote"
    FENCE = "fence"


class Action(BaseModel):
    """An operation bound to a node; runs only after every action in `after` succeeded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    kind: ActionKind
    node: str
    resource: str | None = None
    """None for node actions (fence)."""
    reason: str
    after: tuple[int, ...] = ()

    def describe(self) -> str:
        """'start web1 on n1' or 'fence n2'."""
        target = f"{self.resource} on {self.node}" if self.resource else self.node
        return f"{self.kind.value} {target}"


class Note(BaseModel):
    """Why a group or resource is left as it is."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str
    text: str


class Transition(BaseModel):
    """The scheduler's output: actions with dependencies, where each group goes, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    actions: tuple[Action, ...] = ()
    placement: dict[str, str | None] = {}
    """Group name -> node it should run on, or None when it stays stopped."""
    notes: tuple[Note, ...] = ()
    summary: str = ""
    """One line for the log: what this transition does and why."""

    def is_empty(self) -> bool:
        """True when there is nothing to do."""
        return not self.actions

    def ready(self, done: set[int]) -> tuple[Action, ...]:
        """Actions not yet done whose dependencies are all done."""
        return tuple(
            a for a in self.actions if a.id not in done and all(d in done for d in a.after)
        )
