"""The one place pyha imports ldap3 (it pulls in pyasn1, whose import warns on new releases)."""

from __future__ import annotations

import ssl
import warnings
from functools import cache
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


@cache
def _tls_class() -> Any:
    base: Any = ldap3().Tls

    class Tls(base):  # type: ignore[misc]  # ldap3 is untyped
        """TLS with the standard library's own certificate and host name checks.

        ldap3 turns the context's host name check off and calls ssl.match_hostname
        itself, which is deprecated since Python 3.7 and gone in 3.12.
        """

        def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
            context = ssl.create_default_context(cafile=self.ca_certs_file)
            connection.socket = context.wrap_socket(
                connection.socket, server_hostname=connection.server.host,
                do_handshake_on_connect=do_handshake)

    return Tls


def tls(ca_file: str | None) -> Any:
    """An ldap3 Tls that verifies the server's certificate and name against `ca_file`."""
    return _tls_class()(validate=ssl.CERT_REQUIRED, ca_certs_file=ca_file)


def discard(conn: Any) -> None:
    """Unbind a connection and close its socket even if it never connected.

    ldap3 leaves the socket of a failed connect open (its `closed` flag is already set,
    so unbind skips it).
    """
    import contextlib

    with contextlib.suppress(Exception):
        conn.unbind()
    sock = getattr(conn, "socket", None)
    if sock is not None:
        with contextlib.suppress(Exception):
            sock.close()
