"""What travels between admin clients and the admin daemon, set in this one place: the
serializer (json, or msgpack when installed; never pickle, marshal or serpent) and pyha's
own exceptions, registered with Pyro5 so that a remote error arrives as its pyha type."""

from __future__ import annotations

import json
from typing import Any

from Pyro5 import serializers

from pyha import errors
from pyha.admin import errors as admin_errors

SERIALIZER = "json"
"""What pyha's clients send: JSON is the one the Java console speaks too, and it is fast
enough (about 0.6 ms for 100 resources); never serpent for bulk data, never pickle."""

ACCEPTED = frozenset({3})
"""Pyro5 serializer ids the daemon accepts (3: json, read by `PlainCallJson`); a message
in any other serializer closes the connection before its payload is read."""

MAX_REQUEST = 4 * 1024 * 1024
"""The largest request (payload and annotations) the daemon reads."""

WIRE_ERRORS: tuple[type[errors.PyhaError], ...] = (
    errors.PyhaError, errors.ConfigError, errors.DirectoryError, errors.PluginError,
    errors.UnknownResourceType, errors.ValidationFailed, errors.OperationError,
    errors.QuorumError, errors.AdminError, admin_errors.PermissionDenied,
    admin_errors.InvalidArgument, admin_errors.NotFound, admin_errors.CertificateError,
    admin_errors.ConnectionRefused, admin_errors.AdminUnreachable,
)
"""The exception types both ends rebuild by name; any other pyha error travels as the
nearest of these it derives from, with its own message."""

_BY_NAME = {f"{t.__module__}.{t.__qualname__}": t for t in WIRE_ERRORS}
_TUPLES = {"problems"}
"""Attributes that pyha keeps as tuples; JSON turns them into lists."""
_CLASS_KEY = b'"__class__"'
"""The key of a mapping Pyro5 rebuilds as an object, as JSON spells it without escapes."""
_registered: list[bool] = []
"""Non-empty once register() ran."""


def wire_name(exc: errors.PyhaError) -> str:
    """The registered class name `exc` travels as: its own, or its nearest ancestor's."""
    for cls in type(exc).__mro__:
        name = f"{cls.__module__}.{cls.__qualname__}"
        if name in _BY_NAME:
            return name
    return "pyha.errors.PyhaError"


def error_to_dict(exc: errors.PyhaError) -> dict[str, Any]:
    """The wire form of a pyha error: class, message arguments and its public attributes
    (never Pyro5's remote traceback: the server's code paths are not the caller's)."""
    attributes = {k: v for k, v in vars(exc).items() if not k.startswith("_") and _plain(v)}
    return {"__class__": wire_name(exc), "__exception__": True,
            "args": [str(a) if not _plain(a) else a for a in exc.args],
            "attributes": attributes}


def error_from_dict(classname: str, data: dict[str, Any]) -> errors.PyhaError:
    """Rebuild a pyha error from its wire form (only the registered types)."""
    cls = _BY_NAME[classname]
    exc = cls.__new__(cls)
    exc.args = tuple(data.get("args") or ())
    for key, value in dict(data.get("attributes") or {}).items():
        if isinstance(key, str) and not key.startswith("_"):
            setattr(exc, key, tuple(value) if key in _TUPLES and isinstance(value, list)
                    else value)
    return exc


class PlainCallJson(serializers.JsonSerializer):  # type: ignore[misc]
    """Pyro5's json serializer, except that the arguments of a call stay plain JSON.

    Pyro5 turns any mapping with a "__class__" key into an object (exceptions, URIs,
    proxies) before the method runs; an admin call's arguments are data, so such a
    mapping reaches the method as the mapping it is, and the method's own checks refuse
    it with an error that names the argument. Answers (`loads`) still rebuild pyha's
    registered errors on the client.
    """

    def loadsCall(self, data: Any) -> tuple[Any, Any, Any, Any]:
        call = json.loads(self._convertToBytes(data).decode("utf-8"))
        return call["object"], call["method"], call["params"], call["kwargs"]

    def loads(self, data: Any) -> Any:
        """An answer: Pyro5's own decoding (which rebuilds objects from the mappings with
        a "__class__" key) when the text may hold that key (spelt out, or with a \\u
        escape), else plain JSON: the same result, without Pyro5's look at every mapping
        of a large answer."""
        raw = self._convertToBytes(data)
        if _CLASS_KEY in raw or b"\\u" in raw:
            return super().loads(raw)
        return json.loads(raw.decode("utf-8"))


def register() -> None:
    """Teach Pyro5's serializers pyha's errors and plain call arguments (idempotent; both
    ends call it)."""
    if _registered:
        return
    plain_json = PlainCallJson()
    serializers.serializers["json"] = plain_json
    serializers.serializers_by_id[plain_json.serializer_id] = plain_json
    serializers.SerializerBase.register_class_to_dict(errors.PyhaError, error_to_dict,
                                                      serpent_too=False)
    for name in _BY_NAME:
        serializers.SerializerBase.register_dict_to_class(name, error_from_dict)
    _registered.append(True)


def _plain(value: Any) -> bool:
    """True for values every serializer carries unchanged (JSON's types)."""
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False

