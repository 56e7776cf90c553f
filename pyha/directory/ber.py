"""Reading LDAP SearchResultEntry messages straight from their BER bytes (pure).

The bulk read of a configuration is mostly entries; decoding them here instead of
through ldap3's generic decoder (which builds every element as a dict and formats every
value) makes a load of 10,000 resources markedly faster. Anything that is not a
well-formed entry gives None and goes through ldap3 as usual.
"""

from __future__ import annotations

from pyha.directory.tree import Entry

_SEQUENCE = 0x30
_INTEGER = 0x02
_SEARCH_RESULT_ENTRY = 0x64  # [APPLICATION 4], constructed
_OCTET_STRING = 0x04
_SET = 0x31


def _header(buf: bytes, at: int, tag: int) -> tuple[int, int]:
    """(length, start of contents) of the element at `at`; ValueError if `tag` differs."""
    if buf[at] != tag:
        raise ValueError(f"tag {buf[at]:#x} where {tag:#x} was expected")
    first = buf[at + 1]
    if first < 0x80:
        return first, at + 2
    count = first & 0x7F
    if not 0 < count <= 4:
        raise ValueError("unsupported length")
    return int.from_bytes(buf[at + 2:at + 2 + count], "big"), at + 2 + count


def _values(buf: bytes, at: int, end: int) -> tuple[str, ...]:
    values = []
    while at < end:
        size, at = _header(buf, at, _OCTET_STRING)
        values.append(buf[at:at + size].decode("utf-8", "replace"))
        at += size
    return tuple(values)


def read_search_entry(raw: bytes) -> Entry | None:
    """The entry in one complete LDAPMessage, or None if it holds something else."""
    try:
        _, at = _header(raw, 0, _SEQUENCE)
        size, at = _header(raw, at, _INTEGER)
        if raw[at + size] != _SEARCH_RESULT_ENTRY:
            return None
        _, at = _header(raw, at + size, _SEARCH_RESULT_ENTRY)
        size, at = _header(raw, at, _OCTET_STRING)
        dn = raw[at:at + size].decode("utf-8")
        size, at = _header(raw, at + size, _SEQUENCE)
        end = at + size
        attrs: dict[str, tuple[str, ...]] = {}
        while at < end:
            size, at = _header(raw, at, _SEQUENCE)
            next_attribute = at + size
            size, at = _header(raw, at, _OCTET_STRING)
            name = raw[at:at + size].decode("ascii").lower()
            size, at = _header(raw, at + size, _SET)
            values = _values(raw, at, at + size)
            if values:
                attrs[name] = values
            at = next_attribute
    except (IndexError, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    return Entry(dn, attrs)
