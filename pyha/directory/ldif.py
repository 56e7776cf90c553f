"""LDIF (RFC 2849) content records: read them into entries, write entries as LDIF (pure)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator

from pyha.directory.tree import Entry, canonical, entries_sorted
from pyha.errors import ConfigError

_WIDTH = 76


class LdifError(ConfigError):
    """An LDIF file that cannot be read; names the file, the line and the reason."""


def _logical_lines(text: str, source: str) -> Iterator[tuple[int, str]]:
    """(first line number, unfolded line); comments dropped, blank lines kept as ""."""
    current: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.startswith(" ") and current:
            current.append(raw[1:])
            continue
        if current:
            yield start, "".join(current)
            current = []
        if raw.startswith("#"):
            continue
        if raw.startswith(" "):
            raise LdifError(f"{source}:{number}: a continuation line with nothing to continue")
        if not raw.strip():
            yield number, ""
            continue
        current, start = [raw], number
    if current:
        yield start, "".join(current)


def _value(line: str, number: int, source: str) -> tuple[str, str]:
    name, sep, rest = line.partition(":")
    if not sep or not name.strip():
        raise LdifError(f"{source}:{number}: expected 'attribute: value', got {line!r}")
    if rest.startswith(":"):
        try:
            return name.strip(), base64.b64decode(rest[1:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise LdifError(f"{source}:{number}: {name}: bad base64 value") from None
    if rest.startswith("<"):
        raise LdifError(f"{source}:{number}: {name}: values read from URLs are not accepted")
    return name.strip(), rest.lstrip(" ")


def parse_ldif(text: str, source: str = "LDIF") -> list[tuple[int, Entry]]:
    """Entries with the line each starts on; only content records (or changetype: add)."""
    records: list[tuple[int, Entry]] = []
    dn, start, attrs = None, 0, {}  # type: ignore[var-annotated]
    for number, line in [*_logical_lines(text, source), (0, "")]:
        if not line:
            if dn is not None:
                records.append((start, Entry.of(dn, attrs)))
            dn, attrs = None, {}
            continue
        name, value = _value(line, number, source)
        key = name.lower()
        if dn is None:
            if key == "version":
                continue
            if key != "dn":
                raise LdifError(f"{source}:{number}: a record must start with dn:, not {name}:")
            dn, start = value, number
        elif key == "changetype":
            if value.strip().lower() != "add":
                raise LdifError(f"{source}:{number}: changetype {value} is not supported; "
                                "give entries as they should be")
        else:
            attrs.setdefault(name, []).append(value)
    return records


def _safe(value: str) -> bool:
    if not value:
        return True
    if value[0] in " :<" or value[-1] == " ":
        return False
    return all(32 <= ord(c) < 127 for c in value)


def _line(name: str, value: str) -> str:
    if _safe(value):
        return f"{name}: {value}"
    return f"{name}:: {base64.b64encode(value.encode()).decode()}"


def _fold(line: str) -> list[str]:
    out = [line[:_WIDTH]]
    rest = line[_WIDTH:]
    while rest:
        out.append(" " + rest[:_WIDTH - 1])
        rest = rest[_WIDTH - 1:]
    return out


def write_ldif(entries: Iterable[Entry], header: str = "") -> str:
    """Entries as LDIF, parents first; objectClass and cn lead each record."""
    lines = [f"# {h}" for h in header.splitlines()] if header else []
    lines.append("version: 1")
    for entry in entries_sorted(entries):
        lines.append("")
        lines += _fold(_line("dn", entry.dn))
        names = sorted(entry.attrs, key=lambda n: (n != "objectclass", n != "cn", n))
        for name in names:
            for value in entry.values(name):
                lines += _fold(_line(canonical(name), value))
    return "\n".join(lines) + "\n"
