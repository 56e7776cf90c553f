"""Who calls the admin endpoint: roles, the identity in a verified client certificate,
and the mutual-TLS contexts of both ends."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pyha.admin.errors import CertificateError

ROLE_FIELD = "organizationalUnitName"
"""The subject field that carries the role: a certificate says `OU=viewer`, `OU=operator`
or `OU=admin`; the CA puts exactly one there, and the server trusts only the CA."""


class AdminRole(StrEnum):
    """What a certificate may do; each role may do everything the ones before it may."""

    VIEWER = "viewer"
    """Read: status, explain, history, audit."""
    OPERATOR = "operator"
    """Also act on the running cluster: cleanup, standby/online, maintenance, move."""
    ADMIN = "admin"
    """Also change the configuration."""

    @property
    def rank(self) -> int:
        """0 for viewer, 1 for operator, 2 for admin."""
        return list(AdminRole).index(self)

    def allows(self, needed: AdminRole) -> bool:
        """True when this role may call a method that needs `needed`."""
        return self.rank >= needed.rank


@dataclass(frozen=True)
class Identity:
    """The caller as its verified certificate names it."""

    name: str
    """The certificate's common name (CN)."""
    role: AdminRole

    def __str__(self) -> str:
        return f"{self.name} ({self.role.value})"


def identity_from_certificate(cert: dict[str, Any] | None) -> Identity:
    """The CN and role of a certificate as `SSLSocket.getpeercert()` gives it.

    CertificateError when there is no certificate, no CN, or not exactly one known role.
    """
    if not cert:
        raise CertificateError("no client certificate")
    fields: dict[str, list[str]] = {}
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            fields.setdefault(str(key), []).append(str(value))
    names = fields.get("commonName", [])
    if len(names) != 1 or not names[0]:
        raise CertificateError("the client certificate must carry exactly one CN")
    roles = fields.get(ROLE_FIELD, [])
    if len(roles) != 1 or roles[0] not in {r.value for r in AdminRole}:
        known = ", ".join(r.value for r in AdminRole)
        raise CertificateError(f"certificate {names[0]}: its OU must be one role of {known}")
    return Identity(names[0], AdminRole(roles[0]))


def server_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """The admin daemon's TLS: its own certificate, and every client must present one
    signed by the cluster CA (ssl.CERT_REQUIRED). Only the cluster CA is trusted: never
    the system's public CAs, which would vouch for certificates pyha never issued."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load(context, ca, cert, key)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """A client's TLS: trust only the cluster CA (not the system's), check the server's
    name, and present the client's own certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load(context, ca, cert, key)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _load(context: ssl.SSLContext, ca: Path, cert: Path, key: Path) -> None:
    for what, path in (("CA certificate", ca), ("certificate", cert), ("key", key)):
        if not Path(path).is_file():
            raise CertificateError(f"{path}: no such {what} file")
    try:
        context.load_verify_locations(cafile=str(ca))
    except (ssl.SSLError, OSError) as exc:
        raise CertificateError(f"{ca}: not a CA certificate ({_reason(exc)})") from None
    try:
        context.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as exc:
        raise CertificateError(f"{cert} with {key}: cannot use them ({_reason(exc)})") \
            from None


def _reason(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).lower().replace("_", " ")
    return str(exc)
