"""Reading `tmadmin psr` output and judging a Tuxedo domain's health from it (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "ADMIN_SERVER",
    "Health",
    "PsrReport",
    "ServerRow",
    "assess",
    "parse_psr",
]

ADMIN_SERVER = "BBL"
"""The bulletin board liaison: without it there is no running domain on this machine."""
NO_BULLETIN_BOARD = "No bulletin board exists"
_CATALOG = re.compile(r"\b[A-Z][A-Z0-9]*_CAT:\d+:")
_PROMPT = re.compile(r"^(?:>\s?)+")
_ROW = re.compile(
    r"^(?P<prog>\S+)\s+(?P<queue>\S+)\s+(?P<group>\S+)\s+(?P<id>\d+)\s+"
    r"(?P<rqdone>\S+)\s+(?P<load>\S+)\s+\(\s*(?P<service>.*?)\s*\)\s*$"
)
_NOT_RUNNING_STATES = frozenset({"DEAD", "RESTARTING", "CLEANING"})
"""Current Service values of a server slot whose process does not serve."""


@dataclass(frozen=True)
class ServerRow:
    """One row of the psr table (tmadmin's terse format)."""

    prog_name: str
    queue_name: str
    group: str
    server_id: int
    requests_done: str
    load_done: str
    current_service: str
    """IDLE, the service being run, or a state such as DEAD."""

    @property
    def running(self) -> bool:
        """True unless the row says the server's process is dead or being restarted."""
        return self.current_service.upper() not in _NOT_RUNNING_STATES

    def is_named(self, name: str) -> bool:
        """True for `name`; tmadmin cuts long names to the column and marks them with '+'."""
        prog = self.prog_name.rsplit("/", 1)[-1]
        if prog.endswith("+"):
            return name.startswith(prog[:-1])
        return prog == name


@dataclass(frozen=True)
class PsrReport:
    """What one `tmadmin psr` run said.

    Invariant: `table` is True only when the psr header was seen; `servers` holds the
    rows under it; `messages` holds catalog messages (TMADMIN_CAT:...) and the
    no-bulletin-board notice, in order.
    """

    table: bool
    servers: tuple[ServerRow, ...]
    messages: tuple[str, ...]
    no_bulletin_board: bool

    @property
    def running(self) -> tuple[ServerRow, ...]:
        """The rows of servers whose process serves."""
        return tuple(row for row in self.servers if row.running)


def parse_psr(output: str) -> PsrReport:
    """Parse tmadmin's output for `psr` (prompts, banner and blank lines are skipped)."""
    table, in_table = False, False
    rows: list[ServerRow] = []
    messages: list[str] = []
    for raw in output.splitlines():
        prompted = _PROMPT.match(raw) is not None
        line = _PROMPT.sub("", raw).strip()
        if NO_BULLETIN_BOARD in line or _CATALOG.search(line):
            messages.append(line)
            in_table = False
        elif line.startswith("Prog Name"):
            table = in_table = True
        elif not line or (prompted and in_table):
            in_table = False
        elif in_table and not set(line) <= {"-", " "}:
            row = _row(line)
            if row is not None:
                rows.append(row)
    no_board = any(NO_BULLETIN_BOARD in message for message in messages)
    return PsrReport(table, tuple(rows), tuple(messages), no_board)


def _row(line: str) -> ServerRow | None:
    match = _ROW.match(line)
    if match is None:
        return None
    return ServerRow(
        prog_name=match["prog"],
        queue_name=match["queue"],
        group=match["group"],
        server_id=int(match["id"]),
        requests_done=match["rqdone"],
        load_done=match["load"],
        current_service=match["service"],
    )


@dataclass(frozen=True)
class Health:
    """A verdict on the domain: an OCF code (0 running, 1 failed, 7 stopped) and why."""

    code: int
    message: str
    missing: tuple[str, ...] = ()
    """Required servers that do not run (only when code is 1)."""


def required_names(required: Iterable[str]) -> tuple[str, ...]:
    """The BBL first, then the other required servers, each once."""
    names = [ADMIN_SERVER]
    for name in required:
        if name not in names:
            names.append(name)
    return tuple(names)


def assess(report: PsrReport, required: Sequence[str]) -> Health:
    """0 when the BBL and every required server run, 7 when nothing runs, else 1.

    A domain whose BBL is gone while application servers still run is failed (1),
    not stopped: those servers still serve, so the domain is active here.
    """
    if not report.table:
        if report.messages:
            return Health(7, "no bulletin board: " + " / ".join(report.messages))
        return Health(1, "tmadmin printed no server table and no message pyha knows")
    running = report.running
    if not running:
        return Health(7, "the server table lists no running server (no BBL)")
    missing = tuple(
        name for name in required_names(required) if not any(r.is_named(name) for r in running)
    )
    shown = _describe(running)
    if missing:
        return Health(1, f"not running: {', '.join(missing)} (running: {shown})", missing)
    return Health(0, f"running: {shown}")


def _describe(rows: Sequence[ServerRow]) -> str:
    return ", ".join(f"{row.prog_name}({row.server_id})" for row in rows)
