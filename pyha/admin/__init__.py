"""Remote administration: each cluster server's admin endpoint (Pyro5 over mutual TLS),
the typed client, and the cluster's certificate authority."""

from pyha.admin.auth import AdminRole, Identity
from pyha.admin.client import AdminClient, ClientSettings
from pyha.admin.errors import (
    AdminUnreachable,
    CertificateError,
    ConnectionRefused,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)

__all__ = [
    "AdminClient",
    "AdminRole",
    "AdminUnreachable",
    "CertificateError",
    "ClientSettings",
    "ConnectionRefused",
    "Identity",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
]
