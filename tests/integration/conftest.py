"""Fixtures for integration tests that need real components."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pyha.clock import MonotonicClock
from pyha.executor.runner import Executor
from pyha.resources.java import java_runtime
from pyha.resources.registry import Registry

# -- a private OpenLDAP slapd (pyha.directory) ------------------------------------------------
# The session's slapd is shared: each test works in its own cluster (cn=<unique>), so tests
# never see each other's entries. Tests that kill slapd start their own with `new_slapd`.

_names = itertools.count(1)


@dataclass
class SlapdServer:
    """A running private slapd and how to reach it (password file without newline)."""

    instance: Any
    password_file: Path
    ca_file: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return str(self.instance.cfg.url)

    @property
    def ldaps_url(self) -> str | None:
        port = self.instance.cfg.ldaps_port
        return f"ldaps://127.0.0.1:{port}" if port else None

    @property
    def suffix(self) -> str:
        return str(self.instance.cfg.suffix)

    @property
    def bind_dn(self) -> str:
        return str(self.instance.cfg.bind_dn)

    @property
    def password(self) -> str:
        return str(self.instance.cfg.password)

    def settings(self, cluster: str | None = None, **changes: Any) -> Any:
        """DirectorySettings for this server and `cluster`."""
        from pydantic import SecretStr

        from pyha.directory.bootstrap import DirectorySettings

        data: dict[str, Any] = {"urls": (self.url,), "base_dn": self.suffix,
                                "bind_dn": self.bind_dn, "password": SecretStr(self.password),
                                "cluster": cluster, "timeout": 3.0}
        data.update(changes)
        return DirectorySettings(**data)

    def ldap_tool(self, tool: str, *args: str, text: str | None = None,
                  check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run an ldap-utils command (ldapmodify, ldapadd, ldapsearch, ldapdelete) here."""
        argv = [tool, "-x", "-H", self.url, "-D", self.bind_dn, "-y", str(self.password_file),
                *args]
        return subprocess.run(argv, input=text, capture_output=True, text=True, timeout=30,
                              check=check)

    def modify(self, ldif: str) -> subprocess.CompletedProcess[str]:
        """ldapmodify with an LDIF change record."""
        return self.ldap_tool("ldapmodify", text=ldif)


def _tls_files(folder: Path) -> Any:
    """A CA and a server certificate for 127.0.0.1, made with openssl (None without it)."""
    from pyha.directory.slapd import TlsFiles

    if shutil.which("openssl") is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / "ca.crt", folder / "ca.key"
    key, csr, cert = folder / "server.key", folder / "server.csr", folder / "server.crt"
    ext = folder / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
                   "basicConstraints=critical,CA:FALSE\n")
    steps = [
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key),
         "-out", str(ca), "-days", "2", "-subj", "/CN=pyha-test-ca"],
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
         str(csr), "-subj", "/CN=127.0.0.1"],
        ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
         "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext)],
    ]
    for argv in steps:
        subprocess.run(argv, capture_output=True, check=True, timeout=60)
    return TlsFiles(cert=cert, key=key, ca=ca)


def start_slapd(root: Path, *, tls: bool = False, port: int = 0) -> SlapdServer:
    """Create and start a slapd in `root` (olcDbNoSync: tests need no fsync)."""
    from pyha.directory.slapd import Slapd, SlapdConfig
    from pyha.ports import free_port

    password = "test-secret"
    password_file = root / "admin.password"
    root.mkdir(parents=True, exist_ok=True)
    password_file.write_text(password)
    password_file.chmod(0o600)
    files = _tls_files(root / "tls") if tls else None
    cfg = SlapdConfig(directory=root / "slapd", port=port or free_port(), password=password,
                      nosync=True, tls=files, ldaps_port=free_port() if files else None)
    instance = Slapd(cfg)
    instance.create()
    instance.start()
    server = SlapdServer(instance, password_file, files.ca if files else None)
    server.ldap_tool("ldapadd", text=f"dn: {cfg.suffix}\nobjectClass: dcObject\n"
                     "objectClass: organization\ndc: pyha\no: pyha\n")
    return server


def _skip_without_slapd() -> None:
    from pyha.directory.slapd import installed

    reason = installed() or (None if shutil.which("ldapmodify") else
                             "ldapmodify is not installed (Debian package ldap-utils)")
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def slapd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlapdServer]:
    """One slapd for the whole session, with StartTLS (a test CA) when openssl exists."""
    _skip_without_slapd()
    server = start_slapd(tmp_path_factory.mktemp("slapd"), tls=True)
    try:
        yield server
    finally:
        server.instance.stop()


@pytest.fixture
def new_slapd(tmp_path: Path) -> Iterator[Callable[..., SlapdServer]]:
    """Start a private slapd for one test (for tests that kill or restart it)."""
    _skip_without_slapd()
    started: list[SlapdServer] = []

    def make(**kwargs: Any) -> SlapdServer:
        server = start_slapd(tmp_path / f"slapd{len(started)}", **kwargs)
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in started:
            server.instance.stop()


@pytest.fixture
def cluster_name() -> str:
    """A cluster name no other test of this session uses."""
    return f"t{next(_names)}"


@pytest.fixture
def registry(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    """The bundled plugins (the Java ones built into the session's shared Java cache);
    the JVM host they start is stopped afterwards. Modules may define their own."""
    cache = tmp_path_factory.getbasetemp() / "pyha-java-cache"
    cache.mkdir(exist_ok=True)
    monkeypatch.setenv("PYHA_JAVA_CACHE", str(cache))
    monkeypatch.delenv("PYHA_JAVA_PLUGIN_PATH", raising=False)
    yield from closing_runtime(Registry.discover(entry_points=False,
                                                 ocf_root=tmp_path / "no-ocf"))


def closing_runtime(found: Registry) -> Iterator[Registry]:
    """For registry fixtures (`yield from`): hand `found` over, then stop the JVM host
    its Java plugins started, if any."""
    yield found
    runtime = java_runtime(found.agents())
    if runtime is not None:
        runtime.close()


@pytest.fixture
def executor(tmp_path: Path) -> Executor:
    """An executor for node n1 on the real clock, with its state under tmp_path."""
    return Executor(node="n1", clock=MonotonicClock(), state_dir=tmp_path / "state")
