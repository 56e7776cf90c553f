"""Value types shared by the models: durations, scores and names, with their parsers."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

INFINITY = 1_000_000
"""A score at or beyond this is absolute: "must" (+) or "never" (-), as in Pacemaker."""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string like "500ms", "10s", "2m", "1h"."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '10s', not a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration; write e.g. 500ms, 10s, 2m, 1h")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(f"a duration is a number of seconds or a string like '10s', got {value!r}")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest readable form: 0.5 -> '500ms', 10 -> '10s', 120 -> '2m'."""
    if seconds and seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def parse_score(value: Any) -> int:
    """An integer score; "INFINITY"/"must" and "-INFINITY"/"never" are the absolutes."""
    if isinstance(value, bool):
        raise ValueError("a score is an integer or INFINITY/-INFINITY, not a boolean")
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("infinity", "+infinity", "inf", "+inf", "must"):
            return INFINITY
        if text in ("-infinity", "-inf", "never"):
            return -INFINITY
        try:
            value = int(text)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a score; write an integer, INFINITY or -INFINITY"
            ) from None
    if not isinstance(value, int):
        raise ValueError(f"a score is an integer or INFINITY/-INFINITY, got {value!r}")
    return max(-INFINITY, min(INFINITY, value))


def format_score(score: int) -> str:
    """Scores as people write them: INFINITY, -INFINITY or the integer."""
    if score >= INFINITY:
        return "INFINITY"
    if score <= -INFINITY:
        return "-INFINITY"
    return str(score)


def add_scores(*scores: int) -> int:
    """Pacemaker's score arithmetic: -INFINITY wins over INFINITY, results saturate."""
    if any(s <= -INFINITY for s in scores):
        return -INFINITY
    if any(s >= INFINITY for s in scores):
        return INFINITY
    return max(-INFINITY, min(INFINITY, sum(scores)))


_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,62}$")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            f"{value!r} is not a valid name: start with a letter, then letters, digits, "
            "'_', '.' or '-', at most 63 characters"
        )
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
Score = Annotated[int, BeforeValidator(parse_score)]
Name = Annotated[str, AfterValidator(_check_name)]
