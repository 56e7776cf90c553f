"""Reading a Tuxedo environment file of NAME=value lines without a shell (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["EnvFile", "parse_env_file"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REFERENCE = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


@dataclass(frozen=True)
class EnvFile:
    """What an environment file sets, what is wrong in it, and what it uses but is unset.

    Invariant: `variables` holds every well-formed line, expanded; lines in `problems`
    set nothing; an unset reference expands to "" (as a shell does) and is listed.
    """

    variables: dict[str, str]
    problems: tuple[str, ...]
    unset: tuple[str, ...]


def parse_env_file(text: str, base: Mapping[str, str]) -> EnvFile:
    """The variables the file sets, its problems and unset references (each naming the line).

    Lines are `NAME=value`, optionally after `export `; blank lines and lines starting
    with # are skipped. A value in single quotes is taken as written; otherwise quotes
    around it are removed and $NAME or ${NAME} is replaced by the value set earlier
    in the file or in `base` (as in Tuxedo's ENVFILE, e.g. PATH=${TUXDIR}/bin:${PATH}).
    """
    found: dict[str, str] = {}
    problems: list[str] = []
    unset: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parsed = _assignment(line.removeprefix("export ").lstrip())
        if isinstance(parsed, str):
            problems.append(f"line {number}: {parsed}")
            continue
        name, value, literal = parsed
        if not literal:
            value, missing = _expand(value, {**base, **found})
            unset += [f"line {number}: ${{{ref}}} is not set" for ref in missing]
        found[name] = value
    return EnvFile(found, tuple(problems), tuple(unset))


def _assignment(line: str) -> tuple[str, str, bool] | str:
    """(name, value, literal) or what is wrong with the line."""
    name, sep, value = line.partition("=")
    name = name.strip()
    if not sep:
        return f"expected NAME=value, got {line!r}"
    if not _NAME.match(name):
        return f"{name!r} is not a variable name"
    if "\0" in value:
        return f"the value of {name} holds a NUL character"
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return name, value[1:-1], value[0] == "'"
    return name, value, False


def _expand(value: str, known: Mapping[str, str]) -> tuple[str, list[str]]:
    unset: list[str] = []

    def replace(match: re.Match[str]) -> str:
        ref = match["braced"] or match["plain"]
        if ref not in known:
            unset.append(ref)
            return ""
        return known[ref]

    return _REFERENCE.sub(replace, value), unset
