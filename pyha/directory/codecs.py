"""How model values are written as LDAP attribute values and read back (pure)."""

from __future__ import annotations

import calendar
import json
import math
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pyha.model.types import format_duration, format_score, parse_duration


class Codec:
    """How a model value is written as LDAP values and read back."""

    multi = False

    def encode(self, value: Any) -> list[str]:
        """LDAP values for `value`."""
        return [str(value)]

    def decode(self, values: tuple[str, ...]) -> Any:
        """The model value from LDAP values (str values the model parses are passed on)."""
        return values[0]


class _Integer(Codec):
    def decode(self, values: tuple[str, ...]) -> Any:
        try:
            return int(values[0])
        except ValueError:
            raise ValueError(f"{values[0]!r} is not an integer") from None


class _Boolean(Codec):
    def encode(self, value: Any) -> list[str]:
        return ["TRUE" if value else "FALSE"]

    def decode(self, values: tuple[str, ...]) -> Any:
        text = values[0].strip().upper()
        if text not in ("TRUE", "FALSE"):
            raise ValueError(f"{values[0]!r} is not TRUE or FALSE")
        return text == "TRUE"


class _Float(Codec):
    def encode(self, value: Any) -> list[str]:
        return [repr(float(value))]

    def decode(self, values: tuple[str, ...]) -> Any:
        try:
            number = float(values[0])
        except ValueError:
            raise ValueError(f"{values[0]!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{values[0]!r} is not a finite number")
        return number


class _Duration(Codec):
    def encode(self, value: Any) -> list[str]:
        text = format_duration(float(value))
        return [text if parse_duration(text) == value else repr(float(value))]


class _Score(Codec):
    def encode(self, value: Any) -> list[str]:
        return [format_score(int(value))]


class _Enum(Codec):
    def encode(self, value: Any) -> list[str]:
        return [str(getattr(value, "value", value))]


_POSITION = re.compile(r"^\{(\d+)\}(.*)$", re.DOTALL)


class _Ordered(Codec):
    """A list kept in order as `{position}value` values (LDAP values are unordered)."""

    multi = True

    def encode(self, value: Any) -> list[str]:
        return [f"{{{i}}}{v}" for i, v in enumerate(value)]

    def decode(self, values: tuple[str, ...]) -> Any:
        matches = [_POSITION.match(v) for v in values]
        if not any(matches):
            if len(values) > 1:
                raise ValueError("several values need {position} prefixes to keep their order")
            return list(values)
        if not all(matches):
            raise ValueError("either every value has a {position} prefix or none does")
        pairs = sorted((int(m.group(1)), m.group(2)) for m in matches if m)
        positions = [p for p, _ in pairs]
        if len(set(positions)) != len(positions):
            raise ValueError("two values have the same {position}")
        return [v for _, v in pairs]


def _pairs(values: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    seen: set[str] = set()
    for value in values:
        name, sep, text = value.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"{value!r} is not name=value")
        if name in seen:
            raise ValueError(f"{name} is given twice")
        seen.add(name)
        yield name, text


class _Pairs(Codec):
    """A string mapping as `name=value` values."""

    multi = True

    def encode(self, value: Any) -> list[str]:
        return [f"{k}={v}" for k, v in value.items()]

    def decode(self, values: tuple[str, ...]) -> Any:
        return dict(_pairs(values))


def decode_param(text: str) -> Any:
    """A parameter value: a JSON number, boolean, string or list of strings, else the text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return text


def encode_param(value: Any) -> str:
    """The text of a parameter value; strings that would read as something else are quoted."""
    if isinstance(value, str):
        decoded = decode_param(value)
        same = isinstance(decoded, str) and decoded == value
        return value if same else json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False)


class _Params(Codec):
    """Resource parameters as `name=value`; numbers, booleans and lists are JSON."""

    multi = True

    def encode(self, value: Any) -> list[str]:
        return [f"{k}={encode_param(v)}" for k, v in value.items()]

    def decode(self, values: tuple[str, ...]) -> Any:
        return {name: decode_param(text) for name, text in _pairs(values)}


_OP_KEYS = ("interval", "timeout", "on_fail", "role")


class _Operations(Codec):
    """Operations as `name key=value ...`, e.g. `monitor interval=10s timeout=20s`.

    Written in a canonical order (one-shot operations by name, then monitors by
    interval) without prefixes; any other order is kept with `{position}` prefixes.
    """

    multi = True

    def encode(self, value: Any) -> list[str]:
        ops = [dict(op) for op in value]
        texts = [_encode_operation(op) for op in ops]
        if ops == sorted(ops, key=_op_order):
            return texts
        return _Ordered().encode(texts)

    def decode(self, values: tuple[str, ...]) -> Any:
        if any(_POSITION.match(v) for v in values):
            return [_decode_operation(v) for v in _Ordered().decode(values)]
        return sorted((_decode_operation(v) for v in values), key=_op_order)


def _op_order(op: Mapping[str, Any]) -> tuple[bool, float, str]:
    try:
        interval = parse_duration(op.get("interval", 0))
    except ValueError:
        interval = 0.0
    return (op.get("name") == "monitor", interval, str(op.get("name")))


def _encode_operation(op: Mapping[str, Any]) -> str:
    parts = [str(op["name"])]
    for key in _OP_KEYS:
        value = op.get(key)
        if value is None or (key == "interval" and not value):
            continue
        if key in ("interval", "timeout"):
            value = _Duration().encode(value)[0]
        parts.append(f"{key}={getattr(value, 'value', value)}")
    return " ".join(parts)


def _decode_operation(text: str) -> dict[str, Any]:
    name, *rest = text.split() or [""]
    if not name or "=" in name:
        raise ValueError(f"{text!r}: start with the operation name, e.g. 'monitor interval=10s'")
    op: dict[str, Any] = {"name": name}
    for token in rest:
        key, sep, value = token.partition("=")
        if not sep:
            raise ValueError(f"{text!r}: {token!r} is not key=value")
        op[key.replace("-", "_")] = value
    return op


_TIME_FORMAT = "%Y%m%d%H%M%S"


def format_time(seconds: float) -> str:
    """GeneralizedTime in UTC with microseconds: 20260101120000.250000Z."""
    whole = math.floor(seconds)
    micros = round((seconds - whole) * 1_000_000)
    if micros == 1_000_000:
        whole, micros = whole + 1, 0
    return time.strftime(_TIME_FORMAT, time.gmtime(whole)) + f".{micros:06d}Z"


def parse_time(text: str) -> float:
    """Wall-clock seconds from GeneralizedTime (with or without fraction)."""
    m = re.match(r"^(\d{14})(?:[.,](\d+))?Z$", text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a GeneralizedTime like 20260101120000Z")
    whole = calendar.timegm(time.strptime(m.group(1), _TIME_FORMAT))
    fraction = float("0." + m.group(2)) if m.group(2) else 0.0
    return whole + fraction


class _Time(Codec):
    def encode(self, value: Any) -> list[str]:
        return [format_time(float(value))]

    def decode(self, values: tuple[str, ...]) -> Any:
        return parse_time(values[0])


class _Json(Codec):
    """A structured value (a nested model) as one JSON text."""

    def encode(self, value: Any) -> list[str]:
        return [json.dumps(value, ensure_ascii=False, default=str)]

    def decode(self, values: tuple[str, ...]) -> Any:
        try:
            return json.loads(values[0])
        except ValueError as exc:
            raise ValueError(f"{values[0]!r} is not JSON: {exc}") from None


class _Extra(Codec):
    """Model fields without an attribute of their own, as `path=JSON` values."""

    multi = True

    def encode(self, value: Any) -> list[str]:
        return [f"{k}={json.dumps(v, ensure_ascii=False, default=str)}" for k, v in value.items()]

    def decode(self, values: tuple[str, ...]) -> Any:
        out = {}
        for name, text in _pairs(values):
            try:
                out[name] = json.loads(text)
            except ValueError:
                raise ValueError(f"{name}: {text!r} is not JSON") from None
        return out


TEXT, INTEGER, BOOLEAN, FLOAT = Codec(), _Integer(), _Boolean(), _Float()
JSON, EXTRA = _Json(), _Extra()
DURATION, SCORE, ENUM, ORDERED = _Duration(), _Score(), _Enum(), _Ordered()
PAIRS, PARAMS, OPERATIONS, TIME = _Pairs(), _Params(), _Operations(), _Time()


@dataclass(frozen=True)
class Attr:
    """One model field (dotted path) stored in one LDAP attribute with a codec."""

    field: str
    name: str
    codec: Codec = TEXT
