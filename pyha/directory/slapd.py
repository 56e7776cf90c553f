"""A private OpenLDAP slapd for one cluster: its own cn=config, mdb and loopback port."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyha.directory import ldapschema
from pyha.errors import DirectoryError

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
MODULE_PATH = "/usr/lib/ldap"
STOCK_SCHEMA = ("core", "cosine", "inetorgperson")
"""Debian ships these under /etc/ldap/schema; `organization` and `dcObject` come from them."""
SCHEMA_DIR = Path("/etc/ldap/schema")


def installed() -> str | None:
    """None when slapd can run here, else why not (for skips and clear CLI errors)."""
    for tool in (SLAPD, SLAPADD):
        if not os.access(tool, os.X_OK):
            return f"{tool} is not installed (Debian package slapd)"
    if not (SCHEMA_DIR / "core.ldif").exists():
        return f"{SCHEMA_DIR}/core.ldif is missing (Debian package slapd)"
    return None


def ssha(password: str) -> str:
    """The {SSHA} hash slapd accepts as olcRootPW, so no clear password sits in cn=config."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt, usedforsecurity=False).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def new_password() -> str:
    """A random admin password: 32 URL-safe characters."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class TlsFiles:
    """Certificate, key and CA for StartTLS/LDAPS (PEM files)."""

    cert: Path
    key: Path
    ca: Path


@dataclass(frozen=True)
class SlapdConfig:
    """What one private slapd instance looks like; `password` never appears in reprs."""

    directory: Path
    port: int
    suffix: str = "dc=pyha,dc=test"
    password: str = field(default="", repr=False)
    admin_dn: str = ""
    server_id: int = 1
    peers: tuple[str, ...] = ()
    """Provider URLs of the other multi-provider replicas."""
    nosync: bool = False
    """olcDbNoSync: no fsync per transaction (tests and benchmarks only)."""
    tls: TlsFiles | None = None
    ldaps_port: int | None = None
    host: str = "127.0.0.1"

    @property
    def bind_dn(self) -> str:
        """The rootDN of the data base."""
        return self.admin_dn or f"cn=admin,{self.suffix}"

    @property
    def url(self) -> str:
        """ldap:// URL of this instance."""
        return f"ldap://{self.host}:{self.port}"

    def listen_urls(self) -> str:
        """The -h argument of slapd."""
        urls = [f"{self.url}/"]
        if self.ldaps_port:
            urls.append(f"ldaps://{self.host}:{self.ldaps_port}/")
        return " ".join(urls)


INSTANCE_FILE = "instance.json"
"""Written by `create`: what `start` needs to run the instance again (no password)."""


def save_instance(cfg: SlapdConfig) -> None:
    """Record an instance's settings next to it."""
    data = {"port": cfg.port, "suffix": cfg.suffix, "admin_dn": cfg.bind_dn,
            "server_id": cfg.server_id, "peers": list(cfg.peers), "nosync": cfg.nosync,
            "ldaps_port": cfg.ldaps_port, "host": cfg.host,
            "tls": [str(cfg.tls.cert), str(cfg.tls.key), str(cfg.tls.ca)] if cfg.tls else None}
    (cfg.directory / INSTANCE_FILE).write_text(json.dumps(data, indent=2) + "\n")


def load_instance(directory: Path, password: str) -> SlapdConfig:
    """The settings `create` recorded for the instance in `directory`."""
    try:
        data = json.loads((directory / INSTANCE_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise DirectoryError(f"{directory}: no slapd instance here ({exc})") from None
    tls = TlsFiles(*map(Path, data["tls"])) if data.get("tls") else None
    return SlapdConfig(directory=directory, port=data["port"], suffix=data["suffix"],
                       password=password, admin_dn=data["admin_dn"],
                       server_id=data["server_id"], peers=tuple(data["peers"]),
                       nosync=data["nosync"], tls=tls, ldaps_port=data.get("ldaps_port"),
                       host=data.get("host", "127.0.0.1"))


def config_ldif(cfg: SlapdConfig, schema_file: Path) -> str:
    """The cn=config LDIF of an instance (pure: paths and settings in, text out)."""
    d = cfg.directory
    parts = [_global(cfg), _modules(cfg), _schema(schema_file), _frontend(),
             _config_db(cfg), _mdb(cfg, d / "db"), _syncprov()]
    return "\n".join(parts)


def _global(cfg: SlapdConfig) -> str:
    d = cfg.directory
    lines = ["dn: cn=config", "objectClass: olcGlobal", "cn: config",
             f"olcServerID: {cfg.server_id}", f"olcPidFile: {d / 'slapd.pid'}",
             f"olcArgsFile: {d / 'slapd.args'}", "olcLogLevel: none"]
    if cfg.tls:
        lines += [f"olcTLSCertificateFile: {cfg.tls.cert}",
                  f"olcTLSCertificateKeyFile: {cfg.tls.key}",
                  f"olcTLSCACertificateFile: {cfg.tls.ca}"]
    return "\n".join(lines) + "\n"


def _modules(cfg: SlapdConfig) -> str:
    return ("dn: cn=module{0},cn=config\nobjectClass: olcModuleList\ncn: module{0}\n"
            f"olcModulePath: {MODULE_PATH}\nolcModuleLoad: back_mdb\nolcModuleLoad: syncprov\n")


def _schema(schema_file: Path) -> str:
    includes = [f"include: file://{SCHEMA_DIR / name}.ldif" for name in STOCK_SCHEMA]
    includes.append(f"include: file://{schema_file}")
    return ("dn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n\n"
            + "\n\n".join(includes) + "\n")


def _frontend() -> str:
    return ("dn: olcDatabase={-1}frontend,cn=config\nobjectClass: olcDatabaseConfig\n"
            "objectClass: olcFrontendConfig\nolcDatabase: {-1}frontend\n"
            "olcSizeLimit: unlimited\n")


def _config_db(cfg: SlapdConfig) -> str:
    return ("dn: olcDatabase={0}config,cn=config\nobjectClass: olcDatabaseConfig\n"
            f"olcDatabase: {{0}}config\nolcRootDN: cn=admin,cn=config\n"
            f"olcRootPW: {ssha(cfg.password)}\n")


def _mdb(cfg: SlapdConfig, db: Path) -> str:
    lines = ["dn: olcDatabase={1}mdb,cn=config", "objectClass: olcDatabaseConfig",
             "objectClass: olcMdbConfig", "olcDatabase: {1}mdb", f"olcSuffix: {cfg.suffix}",
             f"olcDbDirectory: {db}", "olcDbMaxSize: 1073741824",
             f"olcRootDN: {cfg.bind_dn}", f"olcRootPW: {ssha(cfg.password)}",
             "olcDbIndex: objectClass eq", "olcDbIndex: cn eq",
             "olcDbIndex: pyhaType,pyhaNodeName,pyhaGroupName eq",
             "olcDbIndex: entryCSN,entryUUID eq",
             f'olcAccess: to * by dn.exact="{cfg.bind_dn}" manage by users read by * auth',
             f'olcLimits: dn.exact="{cfg.bind_dn}" size=unlimited time=unlimited']
    if cfg.nosync:
        lines.append("olcDbNoSync: TRUE")
    for rid, peer in enumerate(cfg.peers, start=1):
        lines.append(
            f"olcSyncrepl: rid={rid:03d} provider={peer} bindmethod=simple"
            f' binddn="{cfg.bind_dn}" credentials={cfg.password} searchbase="{cfg.suffix}"'
            ' type=refreshAndPersist retry="1 +" timeout=3 network-timeout=3')
    if cfg.peers:
        lines.append("olcMultiProvider: TRUE")
    return "\n".join(lines) + "\n"


def _syncprov() -> str:
    # The session log lets a watcher that resumes from a cookie learn about deletes.
    return ("dn: olcOverlay={0}syncprov,olcDatabase={1}mdb,cn=config\n"
            "objectClass: olcOverlayConfig\nobjectClass: olcSyncProvConfig\n"
            "olcOverlay: {0}syncprov\nolcSpCheckpoint: 100 1\nolcSpSessionlog: 10000\n")


class Slapd:
    """One private slapd process.

    Invariant: the instance lives entirely inside `cfg.directory` (cn=config, mdb, pid
    and log files); `start` returns only once a bind is accepted, and `stop` leaves no
    process behind.
    """

    def __init__(self, cfg: SlapdConfig) -> None:
        self.cfg = cfg
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def config_dir(self) -> Path:
        """slapd's cn=config directory (-F)."""
        return self.cfg.directory / "slapd.d"

    @property
    def log_file(self) -> Path:
        """slapd's stderr: its banner and fatal errors."""
        return self.cfg.directory / "slapd.log"

    def create(self) -> None:
        """Write cn=config with slapadd and an empty mdb; refuses an existing instance."""
        if self.config_dir.exists():
            raise DirectoryError(f"{self.config_dir} exists: an instance is already there")
        (self.cfg.directory / "db").mkdir(parents=True, exist_ok=True)
        self.config_dir.mkdir()
        schema = self.cfg.directory / "pyha-schema.ldif"
        schema.write_text(ldapschema.render_ldif())
        ldif = self.cfg.directory / "config.ldif"
        ldif.write_text(config_ldif(self.cfg, schema))
        ldif.chmod(0o600)  # it holds the replication credentials
        done = subprocess.run([SLAPADD, "-n0", "-F", str(self.config_dir), "-l", str(ldif)],
                              capture_output=True, text=True, check=False, timeout=60)
        if done.returncode != 0:
            raise DirectoryError(f"slapadd of cn=config failed: {done.stderr.strip()}")
        save_instance(self.cfg)

    def start(self, timeout: float = 10.0, *, detach: bool = False) -> None:
        """Run slapd in the foreground as a child; wait until it accepts a bind."""
        argv = [SLAPD, "-d", "none", "-F", str(self.config_dir), "-h", self.cfg.listen_urls()]
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=detach)
        try:
            self._wait_ready(timeout)
        except DirectoryError:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`; works for an instance another process began."""
        if self.process is not None:
            _terminate(self.process, timeout)
            self.process = None
            return
        pid = self.pid()
        if pid is not None:
            _terminate_pid(pid, timeout)

    def kill(self) -> None:
        """SIGKILL: the directory server vanishes as in a crash."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def pid(self) -> int | None:
        """The pid of a running slapd of this instance, from its pid file."""
        try:
            pid = int((self.cfg.directory / "slapd.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) and _is_slapd(pid) else None

    def running(self) -> bool:
        """Whether a slapd of this instance runs."""
        if self.process is not None:
            return self.process.poll() is None
        return self.pid() is not None

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise DirectoryError(f"slapd exited with {self.process.returncode}: "
                                     f"{self._log_tail()}")
            if _bind_works(self.cfg):
                return
            time.sleep(0.01)
        raise DirectoryError(f"slapd did not accept a bind within {timeout:g}s: "
                             f"{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-5:]) or "(empty log)"


def _bind_works(cfg: SlapdConfig) -> bool:
    from pyha.directory.ldap3compat import discard, ldap3

    module = ldap3()
    # A new Server each try: ldap3 remembers a refused address for a while.
    server = module.Server(cfg.host, port=cfg.port, get_info="NO_INFO", connect_timeout=1)
    conn = module.Connection(server, cfg.bind_dn, cfg.password, receive_timeout=2)
    try:
        return bool(conn.bind())
    except module.core.exceptions.LDAPException:
        return False
    finally:
        discard(conn)


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_slapd(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "slapd"
    except OSError:
        return False


def _terminate_pid(pid: int, timeout: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.02)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def remove(directory: Path) -> None:
    """Delete an instance's files (after it stopped)."""
    shutil.rmtree(directory, ignore_errors=True)
