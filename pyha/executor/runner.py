"""Run one operation of a resource under a deadline, one at a time per resource."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyha.clock import Clock
from pyha.executor.history import OperationHistory
from pyha.model.types import format_duration
from pyha.resources.agent import Agent
from pyha.resources.spi import CallStatus, OcfCode, OperationContext, OperationResult, Outcome

_REPR_LIMIT = 80


@dataclass(eq=False)
class _Slot:
    """The right to run an operation on one resource; `busy` and `waiters` use the guard."""

    busy: bool = False
    waiters: list[_Call] = field(default_factory=list)


@dataclass(eq=False)
class _Call:
    """One operation in flight; `finished` and `abandoned` change only under `lock`."""

    agent: Agent
    ctx: OperationContext
    timeout: float
    slot: _Slot
    turn: threading.Event = field(default_factory=threading.Event)
    """Set when the slot is released or the server cancels: a waiter looks again."""
    wake: threading.Event = field(default_factory=threading.Event)
    """Set when the worker finished or the server cancels: the caller looks again."""
    done: threading.Event = field(default_factory=threading.Event)
    """Set when the worker finished, and only then."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    finished: bool = False
    abandoned: bool = False
    by_server: bool = False
    """cancel_all() cancelled it (as opposed to its deadline)."""
    outcome: Outcome | None = None
    error: Exception | None = None

    def label(self) -> str:
        """'python:pyha:dummy start web1', how log lines name the call."""
        return f"{self.agent.name} {self.ctx.operation} {self.ctx.resource}"


class Executor:
    """Runs operations of resources on this node, each under a deadline, and records them.

    Invariant: at most one operation per resource is inside a plugin at any time. A
    call abandoned at its deadline keeps its resource busy until the plugin returns,
    because the plugin may still be acting on the resource.
    """

    def __init__(
        self,
        *,
        node: str,
        clock: Clock,
        state_dir: Path,
        history: OperationHistory | None = None,
        inline: bool = False,
        log: logging.Logger | None = None,
        abandon_grace: float = 1.0,
    ) -> None:
        self.node = node
        self.history = history if history is not None else OperationHistory()
        self._clock = clock
        self._state_dir = state_dir
        self._inline = inline
        self._log = log or logging.getLogger("pyha.executor")
        self._grace = abandon_grace
        self._guard = threading.Lock()
        self._slots: dict[str, _Slot] = {}
        self._calls: set[_Call] = set()

    def run(
        self,
        agent: Agent,
        resource: str,
        operation: str,
        params: Mapping[str, Any],
        *,
        timeout: float | None = None,
        interval: float = 0.0,
        meta: Mapping[str, Any] | None = None,
    ) -> OperationResult:
        """Run `operation` of `resource` through `agent`; never raises for plugin failures.

        `timeout` is the resource's configured one; None means the plugin's default.
        """
        started, begun = self._clock.wall(), self._clock.now()
        limit = timeout if timeout is not None else agent.meta.timeout(operation)
        call: _Call | None = None
        if agent.supports(operation):
            ctx = self._context(
                resource, operation, params, deadline=begun + limit, interval=interval, meta=meta
            )
            call = _Call(agent, ctx, limit, self._slot(resource))
            outcome = self._run_exclusive(call)
        else:
            outcome = Outcome(
                OcfCode.ERR_UNIMPLEMENTED, message=f"{agent.name} does not implement {operation}"
            )
        result = OperationResult(
            resource=resource,
            operation=operation,
            node=self.node,
            status=outcome.status,
            code=outcome.code,
            message=outcome.message,
            started=started,
            duration=self._clock.now() - begun,
            interval=interval,
        )
        self.history.record(result)
        self._log_result(agent, result, call.error if call else None)
        return result

    def cancel_all(self) -> int:
        """Cancel every call running or waiting for its turn (shutdown); how many there were."""
        with self._guard:
            calls = list(self._calls)
            for call in calls:
                call.by_server = True
                call.ctx.cancelled.set()
                call.turn.set()
                call.wake.set()
        if calls:
            self._log.info("cancelled %d running operation(s)", len(calls))
        return len(calls)

    def busy(self, resource: str) -> bool:
        """True while an operation of `resource` runs (or an abandoned one has not returned)."""
        with self._guard:
            slot = self._slots.get(resource)
            return slot is not None and slot.busy

    def queued(self, resource: str) -> int:
        """How many callers wait for their turn on `resource`."""
        with self._guard:
            slot = self._slots.get(resource)
            return len(slot.waiters) if slot else 0

    # --- one call ------------------------------------------------------------------------

    def _context(
        self,
        resource: str,
        operation: str,
        params: Mapping[str, Any],
        *,
        deadline: float,
        interval: float,
        meta: Mapping[str, Any] | None,
    ) -> OperationContext:
        return OperationContext(
            resource=resource,
            operation=operation,
            params=params,
            deadline=deadline,
            node=self.node,
            interval=interval,
            state_dir=self._state_dir,
            log=logging.getLogger(f"pyha.resource.{resource}"),
            clock=self._clock,
            meta=dict(meta or {}),
        )

    def _slot(self, resource: str) -> _Slot:
        with self._guard:
            return self._slots.setdefault(resource, _Slot())

    def _run_exclusive(self, call: _Call) -> Outcome:
        with self._guard:
            self._calls.add(call)
        try:
            if not self._acquire(call):
                return self._not_started(call)
            try:
                return self._invoke(call)
            finally:
                self._release_unless_abandoned(call)
        finally:
            with self._guard:
                self._calls.discard(call)

    def _acquire(self, call: _Call) -> bool:
        """Wait for the resource's slot, but not past the deadline nor a cancel."""
        while True:
            with self._guard:
                if call.ctx.expired():
                    return False
                if not call.slot.busy:
                    call.slot.busy = True
                    return True
                call.turn.clear()
                call.slot.waiters.append(call)
            self._clock.wait(call.turn, call.ctx.remaining())
            with self._guard:
                if call in call.slot.waiters:
                    call.slot.waiters.remove(call)

    def _release(self, slot: _Slot) -> None:
        with self._guard:
            slot.busy = False
            for waiter in slot.waiters:
                waiter.turn.set()
            slot.waiters.clear()

    def _release_unless_abandoned(self, call: _Call) -> None:
        with call.lock:
            # An abandoned call's worker releases the slot when the plugin returns.
            if call.abandoned:
                return
        self._release(call.slot)

    def _not_started(self, call: _Call) -> Outcome:
        if call.by_server:
            return _cancelled("cancelled before it started")
        return Outcome(
            OcfCode.ERR_GENERIC,
            CallStatus.TIMEOUT,
            f"timed out after {format_duration(call.timeout)}: "
            f"another operation on {call.ctx.resource} was still running",
        )

    def _invoke(self, call: _Call) -> Outcome:
        if call.agent.enforces_deadline or self._inline:
            return self._invoke_inline(call)
        return self._invoke_threaded(call)

    # --- in the calling thread -----------------------------------------------------------

    def _invoke_inline(self, call: _Call) -> Outcome:
        outcome = self._call_plugin(call)
        if call.by_server:
            return _cancelled("cancelled while running")
        if self._inline and outcome.status is CallStatus.DONE and call.ctx.expired():
            # A fake clock cannot interrupt a plugin, so a hang shows up afterwards.
            return _timed_out(call, "")
        return outcome

    def _call_plugin(self, call: _Call) -> Outcome:
        said = _LastWarning()
        call.ctx.log.addHandler(said)
        try:
            outcome = _checked(call.agent.invoke(call.ctx))
        except Exception as exc:  # the plugin's bug must not become the server's
            call.error = exc
            return Outcome(OcfCode.ERR_GENERIC, CallStatus.ERROR, f"{type(exc).__name__}: {exc}")
        finally:
            call.ctx.log.removeHandler(said)
        if outcome.message or not said.text:
            return outcome
        # A plugin that returns a bare code explains itself in its log: keep that.
        return Outcome(outcome.code, outcome.status, said.text)

    # --- in a worker thread --------------------------------------------------------------

    def _invoke_threaded(self, call: _Call) -> Outcome:
        worker = threading.Thread(
            target=self._work, args=(call,), name=f"pyha {call.label()}", daemon=True
        )
        worker.start()
        self._clock.wait(call.wake, call.ctx.remaining())
        if not self._finished(call):
            call.ctx.cancelled.set()
            self._clock.wait(call.done, self._grace)
            if not self._finished_or_abandon(call):
                return self._abandoned(call)
            if not call.by_server:
                return _timed_out(call, "; cancelled, returned within the grace period")
        if call.by_server:
            return _cancelled("cancelled while running")
        return call.outcome or Outcome(
            OcfCode.ERR_GENERIC, CallStatus.ERROR, "the plugin call ended without an answer"
        )

    def _work(self, call: _Call) -> None:
        try:
            call.outcome = self._call_plugin(call)
        finally:
            with call.lock:
                call.finished = True
                late = call.abandoned
            call.done.set()
            call.wake.set()
            if late:
                self._release(call.slot)
                self._log.warning("%s: the abandoned call returned at last", call.label())

    def _finished(self, call: _Call) -> bool:
        with call.lock:
            return call.finished

    def _finished_or_abandon(self, call: _Call) -> bool:
        with call.lock:
            call.abandoned = not call.finished
            return call.finished

    def _abandoned(self, call: _Call) -> Outcome:
        grace = f"abandoned after {format_duration(self._grace)} grace"
        if call.by_server:
            return _cancelled(f"cancelled, {grace}")
        return _timed_out(call, f"; cancelled, {grace}")

    # --- reporting -----------------------------------------------------------------------

    def _log_result(self, agent: Agent, result: OperationResult, error: Exception | None) -> None:
        # Parameters are never logged: some are secrets.
        head = f"{agent.name} {result.operation} {result.resource}"
        if result.interval:
            head += f" (every {format_duration(result.interval)})"
        if result.status is CallStatus.DONE:
            text = f"{head}: {OcfCode.label(result.code)}"
            text += f": {result.message}" if result.message else ""
            text += f" in {format_duration(round(result.duration, 3))}"
        else:
            text = f"{head}: {result.message or result.status.value}"
        if not result.ok:
            self._log.warning("%s", text, exc_info=error)
        elif result.interval and result.status is CallStatus.DONE:
            # Recurring monitors that find nothing wrong would flood the log at INFO.
            self._log.debug("%s", text)
        else:
            self._log.info("%s", text)


class _LastWarning(logging.Handler):
    """Remembers the last warning or error a plugin logged during one operation."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.text = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.text = record.getMessage()[:500]


def _checked(answer: object) -> Outcome:
    """The adapter's outcome, or an ERROR outcome saying how it broke the interface."""
    if not isinstance(answer, Outcome):
        shown = repr(answer)[:_REPR_LIMIT]
        return Outcome(OcfCode.ERR_GENERIC, CallStatus.ERROR, f"returned {shown}, not an outcome")
    code: object = answer.code
    if isinstance(code, bool) or not isinstance(code, int):
        shown = repr(code)[:_REPR_LIMIT]
        return Outcome(
            OcfCode.ERR_GENERIC, CallStatus.ERROR, f"returned {shown}, not a result code"
        )
    return answer


def _timed_out(call: _Call, detail: str) -> Outcome:
    text = f"timed out after {format_duration(call.timeout)}{detail}"
    return Outcome(OcfCode.ERR_GENERIC, CallStatus.TIMEOUT, text)


def _cancelled(text: str) -> Outcome:
    return Outcome(OcfCode.ERR_GENERIC, CallStatus.CANCELLED, text)
