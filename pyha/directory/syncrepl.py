"""RFC 4533 (LDAP Content Synchronization) messages: the request control and what comes back.

Pure: encode the request, decode each response ldap3 hands over into a `SyncEvent`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyasn1.codec.ber import decoder, encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import namedtype, namedval, tag, univ

REQUEST_OID = "1.3.6.1.4.1.4203.1.9.1.1"
STATE_OID = "1.3.6.1.4.1.4203.1.9.1.2"
DONE_OID = "1.3.6.1.4.1.4203.1.9.1.3"
INFO_OID = "1.3.6.1.4.1.4203.1.9.1.4"
REFRESH_REQUIRED = 4096
"""e-syncRefreshRequired: the cookie is too old; start again without it."""


class _SyncRequest(univ.Sequence):  # type: ignore[misc]  # pyasn1 is untyped
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("mode", univ.Enumerated(namedValues=namedval.NamedValues(
            ("refreshOnly", 1), ("refreshAndPersist", 3)))),
        namedtype.OptionalNamedType("cookie", univ.OctetString()),
        namedtype.DefaultedNamedType("reloadHint", univ.Boolean(False)),
    )


class _SyncState(univ.Sequence):  # type: ignore[misc]  # pyasn1 is untyped
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("state", univ.Enumerated(namedValues=namedval.NamedValues(
            ("present", 0), ("add", 1), ("modify", 2), ("delete", 3)))),
        namedtype.NamedType("entryUUID", univ.OctetString()),
        namedtype.OptionalNamedType("cookie", univ.OctetString()),
    )


class _SyncDone(univ.Sequence):  # type: ignore[misc]  # pyasn1 is untyped
    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("cookie", univ.OctetString()),
        namedtype.DefaultedNamedType("refreshDeletes", univ.Boolean(False)),
    )


class _Refresh(univ.Sequence):  # type: ignore[misc]  # pyasn1 is untyped
    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("cookie", univ.OctetString()),
        namedtype.DefaultedNamedType("refreshDone", univ.Boolean(True)),
    )


class _IdSet(univ.Sequence):  # type: ignore[misc]  # pyasn1 is untyped
    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("cookie", univ.OctetString()),
        namedtype.DefaultedNamedType("refreshDeletes", univ.Boolean(False)),
        namedtype.NamedType("syncUUIDs", univ.SetOf(componentType=univ.OctetString())),
    )


def _context(number: int, constructed: bool) -> tag.Tag:
    fmt = tag.tagFormatConstructed if constructed else tag.tagFormatSimple
    return tag.Tag(tag.tagClassContext, fmt, number)


class _SyncInfo(univ.Choice):  # type: ignore[misc]  # pyasn1 is untyped
    # RFC 4533's module uses IMPLICIT TAGS.
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("newcookie", univ.OctetString().subtype(
            implicitTag=_context(0, False))),
        namedtype.NamedType("refreshDelete", _Refresh().subtype(implicitTag=_context(1, True))),
        namedtype.NamedType("refreshPresent", _Refresh().subtype(implicitTag=_context(2, True))),
        namedtype.NamedType("syncIdSet", _IdSet().subtype(implicitTag=_context(3, True))),
    )


def request_control(cookie: bytes | None = None) -> tuple[str, bool, bytes]:
    """The critical Sync Request control for refreshAndPersist, resuming from `cookie`."""
    value = _SyncRequest()
    value["mode"] = "refreshAndPersist"
    if cookie:
        value["cookie"] = cookie
    return (REQUEST_OID, True, encoder.encode(value))


@dataclass(frozen=True)
class SyncEvent:
    """One message of a sync session, as far as a watcher cares.

    kind: `entry` (an entry was added, modified, deleted or is present), `info` (a
    cookie, the end of the refresh phase, or a set of deleted/present UUIDs), `done`
    (the search ended: the server stopped or refused the session), `other`.
    """

    kind: str
    state: str = ""
    dn: str = ""
    entry_uuid: str = ""
    cookie: bytes | None = None
    refresh_done: bool = False
    deletes: bool = False
    """Entries were deleted, known only by UUID (refreshDelete or syncIdSet)."""
    result: int = 0
    message: str = ""
    attributes: Mapping[str, tuple[str, ...]] | None = None
    """For add and modify: the entry's attributes as sent (names in lower case)."""


def _cookie(value: Any) -> bytes | None:
    return bytes(value) if value.isValue else None


def _control_value(message: Mapping[str, Any], oid: str) -> bytes | None:
    control = (message.get("controls") or {}).get(oid)
    return bytes(control["value"]) if control and control.get("value") is not None else None


def decode(message: Mapping[str, Any]) -> SyncEvent:
    """Turn one ldap3 response dict of a sync search into a SyncEvent."""
    kind = message.get("type")
    try:
        if kind == "searchResEntry":
            return _entry(message)
        if kind == "intermediateResponse" and message.get("responseName") == INFO_OID:
            return _info(bytes(message.get("responseValue") or b""))
        if kind == "searchResDone":
            return _done(message)
    except PyAsn1Error as exc:
        return SyncEvent("other", message=f"undecodable sync message: {exc}")
    return SyncEvent("other", message=str(kind))


def _entry(message: Mapping[str, Any]) -> SyncEvent:
    control = _control_value(message, STATE_OID)
    if control is None:
        return SyncEvent("entry", state="unknown", dn=str(message.get("dn", "")))
    value, _ = decoder.decode(control, asn1Spec=_SyncState())
    ident = bytes(value["entryUUID"])
    text = str(uuid.UUID(bytes=ident)) if len(ident) == 16 else ident.hex()
    raw = message.get("raw_attributes") or {}
    attrs = {k.lower(): tuple(bytes(v).decode("utf-8", "replace") for v in vals)
             for k, vals in raw.items() if vals}
    return SyncEvent("entry", state=str(value["state"]), dn=str(message.get("dn", "")),
                     entry_uuid=text, cookie=_cookie(value["cookie"]), attributes=attrs)


def _info(raw: bytes) -> SyncEvent:
    value, _ = decoder.decode(raw, asn1Spec=_SyncInfo())
    name = value.getName()
    part = value.getComponent()
    if name == "newcookie":
        return SyncEvent("info", cookie=bytes(part))
    if name in ("refreshDelete", "refreshPresent"):
        return SyncEvent("info", cookie=_cookie(part["cookie"]),
                         refresh_done=bool(part["refreshDone"]),
                         deletes=name == "refreshDelete")
    return SyncEvent("info", cookie=_cookie(part["cookie"]),
                     deletes=bool(part["refreshDeletes"]) or name == "syncIdSet")


def _done(message: Mapping[str, Any]) -> SyncEvent:
    raw = _control_value(message, DONE_OID)
    cookie = None
    if raw:
        value, _ = decoder.decode(raw, asn1Spec=_SyncDone())
        cookie = _cookie(value["cookie"])
    return SyncEvent("done", cookie=cookie, result=int(message.get("result", 0)),
                     message=str(message.get("message") or message.get("description") or ""))


def cookie_csns(cookie: bytes | None) -> frozenset[str]:
    """The CSNs in a cookie like `rid=000,sid=001,csn=2026...#000000#001#000000;...`."""
    if not cookie:
        return frozenset()
    text = cookie.decode("ascii", "replace")
    for part in text.split(","):
        if part.startswith("csn="):
            return frozenset(c for c in part[4:].split(";") if c)
    return frozenset()
