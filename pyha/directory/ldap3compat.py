"""The one place pyha imports ldap3 (it pulls in pyasn1, whose import warns on new releases)."""

from __future__ import annotations

import warnings
from typing import Any


def ldap3() -> Any:
    """The ldap3 module, imported without pyasn1's tagMap/typeMap deprecation warnings."""
    with warnings.catch_warnings():
        # ldap3 2.9 uses names pyasn1 0.6 deprecated; nothing for pyha to act on.
        warnings.filterwarnings("ignore", message=r"(tagMap|typeMap) is deprecated",
                                category=DeprecationWarning)
        import ldap3 as module
        import ldap3.utils.conv
    return module


def escape_filter_chars(text: str) -> str:
    """A value made safe inside an LDAP filter (RFC 4515), by ldap3."""
    return str(ldap3().utils.conv.escape_filter_chars(text))
