"""The cluster's own certificate authority: a CA key and certificate, and certificates it
signs for admin clients (with their role) and for the nodes' admin endpoints.

Made with the `openssl` command (argv, never a shell), so no extra Python package is
needed. Keys are EC P-256 and written readable by their owner only (mode 0600).
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pyha.admin.auth import ROLE_FIELD, AdminRole
from pyha.admin.errors import CertificateError

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
CA_DAYS = 3650
CERT_DAYS = 825
"""Issued certificates last a little over two years (what browsers accept, as a habit)."""
OPENSSL_TIMEOUT = 60.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_KEY_ARGS = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
_ROLE_ATTRIBUTE = {"organizationalUnitName": "OU"}[ROLE_FIELD]


@dataclass(frozen=True)
class Issued:
    """A certificate the CA signed, its key, and the CA certificate that verifies it."""

    cert: Path
    key: Path
    ca: Path


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA kept in one directory as `ca.crt` and `ca.key`.

    Invariant: both files exist and the key is readable by its owner only.
    """

    directory: Path

    @property
    def cert(self) -> Path:
        """The CA certificate: give it to every node and every client."""
        return self.directory / CA_CERT

    @property
    def key(self) -> Path:
        """The CA key: keep it off the nodes if you can."""
        return self.directory / CA_KEY

    @classmethod
    def init(cls, directory: Path, name: str = "pyha cluster CA",
             days: int = CA_DAYS) -> CertificateAuthority:
        """Make a new CA in `directory`; refuses to replace one that is there."""
        if (directory / CA_KEY).exists() or (directory / CA_CERT).exists():
            raise CertificateError(f"{directory}: a CA is already there")
        if not re.fullmatch(r"[A-Za-z0-9 ._@-]{1,64}", name):
            raise CertificateError(f"CA name {name!r}: letters, digits, space and ._@- only")
        directory.mkdir(parents=True, exist_ok=True)
        _openssl("req", "-x509", *_KEY_ARGS, "-keyout", str(directory / CA_KEY),
                 "-out", str(directory / CA_CERT), "-days", str(_days(days)),
                 "-subj", f"/O=pyha/CN={name}",
                 "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        _private(directory / CA_KEY)
        _public(directory / CA_CERT)
        return cls(directory)

    @classmethod
    def open(cls, directory: Path) -> CertificateAuthority:
        """The CA in `directory`; CertificateError if it is not there."""
        for name in (CA_CERT, CA_KEY):
            if not (directory / name).is_file():
                raise CertificateError(f"{directory}: no {name} here; make a CA with "
                                       "`pyha ca init`")
        return cls(directory)

    def issue(self, name: str, role: AdminRole, *, server: bool = False,
              hosts: tuple[str, ...] = (), days: int = CERT_DAYS,
              out: Path | None = None) -> Issued:
        """Sign a certificate for `name` carrying `role`; `server` makes it fit for an
        admin endpoint too (serverAuth, and the names `hosts`, `name`, localhost and
        127.0.0.1 as subject alternative names). Writes `<name>.crt` and `<name>.key`
        to `out` (default: the CA directory), and a copy of `ca.crt` when it lacks one.
        """
        if not _NAME.match(name):
            raise CertificateError(f"name {name!r}: 1 to 64 letters, digits and ._@- only, "
                                   "starting with a letter or digit")
        out = out or self.directory
        out.mkdir(parents=True, exist_ok=True)
        cert, key = out / f"{name}.crt", out / f"{name}.key"
        with tempfile.TemporaryDirectory(prefix="pyha-ca-") as work:
            request = Path(work) / "request.csr"
            extensions = Path(work) / "extensions.cnf"
            extensions.write_text(_extensions(name, server, hosts))
            _openssl("req", "-new", *_KEY_ARGS, "-keyout", str(key), "-out", str(request),
                     "-subj", f"/O=pyha/{_ROLE_ATTRIBUTE}={role.value}/CN={name}")
            _private(key)
            _openssl("x509", "-req", "-in", str(request), "-CA", str(self.cert),
                     "-CAkey", str(self.key), "-set_serial", f"0x{secrets.token_hex(16)}",
                     "-days", str(_days(days)), "-extfile", str(extensions),
                     "-out", str(cert))
        _public(cert)
        if not (out / CA_CERT).exists():
            shutil.copyfile(self.cert, out / CA_CERT)
            _public(out / CA_CERT)
        return Issued(cert, key, out / CA_CERT)


def _days(days: int) -> int:
    # Negative values are allowed on purpose: tests need certificates already expired.
    if not -3650 <= days <= 36500:
        raise CertificateError(f"days {days}: out of range")
    return days


def _extensions(name: str, server: bool, hosts: tuple[str, ...]) -> str:
    usage = "serverAuth,clientAuth" if server else "clientAuth"
    lines = ["basicConstraints=critical,CA:FALSE",
             "keyUsage=critical,digitalSignature,keyEncipherment",
             f"extendedKeyUsage={usage}"]
    if server:
        names = dict.fromkeys(["localhost", "127.0.0.1", name, *hosts])
        lines.append("subjectAltName=" + ",".join(_alt_name(h) for h in names))
    return "\n".join(lines) + "\n"


def _alt_name(host: str) -> str:
    try:
        return f"IP:{ipaddress.ip_address(host)}"
    except ValueError:
        pass
    if not re.fullmatch(r"[A-Za-z0-9*]([A-Za-z0-9.-]{0,252})", host):
        raise CertificateError(f"host {host!r}: not an IP address or a DNS name")
    return f"DNS:{host}"


def _private(path: Path) -> None:
    os.chmod(path, 0o600)


def _public(path: Path) -> None:
    # Certificates are public; openssl ran under umask 077, so open them for reading.
    os.chmod(path, 0o644)


def _openssl(*args: str) -> None:
    program = shutil.which("openssl")
    if program is None:
        raise CertificateError("the openssl command is missing (Debian: apt-get install "
                               "openssl)")
    try:
        done = subprocess.run([program, *args], capture_output=True, text=True,
                              timeout=OPENSSL_TIMEOUT, umask=0o077, check=False)
    except subprocess.TimeoutExpired:
        raise CertificateError(f"openssl {args[0]} took more than {OPENSSL_TIMEOUT:g}s") \
            from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise CertificateError(f"openssl {args[0]} failed: {lines[-1] if lines else '?'}")
