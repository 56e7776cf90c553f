"""PostgreSQL resource settings: defaults resolved, parameters checked, server options quoted."""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "PG_ROOT",
    "SOCKET_PATH_MAX",
    "Settings",
    "check_params",
    "is_root_user",
    "newest_bin_dir",
    "reserved_option",
]

PG_ROOT = Path("/usr/lib/postgresql")
"""Where Debian installs one bin/ per major version (/usr/lib/postgresql/15/bin)."""
SOCKET_PATH_MAX = 107
"""Bytes a Unix socket path may have (sun_path is 108 with the terminating NUL)."""
_SOCKET_NAME = "/.s.PGSQL.{port}"
_PROGRAMS = ("pg_ctl", "postgres")
_UNSAFE_IN_DOUBLE_QUOTES = frozenset('"$`\\\n\r\0')
"""pg_ctl pastes -D, -l and the server path into a /bin/sh line inside double quotes."""
_RESERVED_SETTINGS = frozenset({"port", "unix_socket_directories", "data_directory"})
_RESERVED_FLAGS = ("-p", "-k", "-D")
_VERSION = re.compile(r"^\d+(\.\d+)*$")


def newest_bin_dir(root: Path = PG_ROOT) -> Path | None:
    """The bin/ of the newest PostgreSQL major version under `root` that has pg_ctl."""
    try:
        entries = [e for e in root.iterdir() if _VERSION.match(e.name)]
    except OSError:
        return None
    found = [e / "bin" for e in entries if (e / "bin" / "pg_ctl").is_file()]
    if not found:
        return None
    return max(found, key=lambda b: tuple(int(p) for p in b.parent.name.split(".")))


@dataclass(frozen=True)
class Settings:
    """A resource's parameters, resolved: bin_dir and log_file defaulted, paths absolute.

    Invariant: built only from parameters that passed the declared types; whether the
    paths exist is checked by `check_params` (validate) and again before each start.
    """

    data_directory: Path
    bin_dir: Path
    port: int
    socket_dir: Path
    user: str
    database: str
    options: tuple[str, ...]
    log_file: Path

    @classmethod
    def from_params(cls, params: Mapping[str, Any], state_dir: Path, resource: str) -> Settings:
        """Settings from typed parameters; the log defaults to <state_dir>/postgresql/."""
        bin_dir = params.get("bin_dir")
        default_log = Path(state_dir) / "postgresql" / f"{resource}.log"
        return cls(
            data_directory=Path(params["data_directory"]),
            bin_dir=Path(bin_dir) if bin_dir else (newest_bin_dir() or PG_ROOT / "bin"),
            port=int(params.get("port", 5432)),
            socket_dir=Path(params.get("socket_dir") or "/var/run/postgresql"),
            user=str(params.get("user") or "postgres"),
            database=str(params.get("database") or "postgres"),
            options=tuple(params.get("options") or ()),
            log_file=Path(params.get("log_file") or default_log),
        )

    @property
    def pg_ctl(self) -> Path:
        """The pg_ctl program of this installation."""
        return self.bin_dir / "pg_ctl"

    @property
    def psql(self) -> str:
        """psql next to pg_ctl, else the one on PATH (Debian has both)."""
        local = self.bin_dir / "psql"
        if local.is_file():
            return str(local)
        return shutil.which("psql") or str(local)

    @property
    def pid_file(self) -> Path:
        """The postmaster's lock file in the data directory."""
        return self.data_directory / "postmaster.pid"

    @property
    def socket_lock(self) -> Path:
        """The lock file the server keeps next to its Unix socket."""
        return self.socket_dir / f".s.PGSQL.{self.port}.lock"

    def server_options(self) -> str:
        """The -o string for pg_ctl: port, socket dir, then the extra options.

        pg_ctl runs the server through /bin/sh with this string pasted unquoted into
        the command line, so every word is quoted the way a POSIX shell reads it.
        """
        words = ["-p", str(self.port), "-k", str(self.socket_dir), *self.options]
        return " ".join(shlex.quote(word) for word in words)

    def environment(self) -> dict[str, str]:
        """The environment of pg_ctl (and so of the server): none of pyha's own variables.

        No PG* variables: the server's own libpq connections (a standby's WAL receiver)
        would take them as defaults.
        """
        env = {
            "PATH": f"{self.bin_dir}:/usr/local/bin:/usr/bin:/bin",
            "LC_MESSAGES": "C",  # messages quoted in pyha's logs read the same everywhere
        }
        try:
            entry = pwd.getpwnam(self.user)
        except KeyError:
            return env
        env.update(HOME=entry.pw_dir, USER=self.user, LOGNAME=self.user)
        return env


# --- checks -------------------------------------------------------------------------


def check_params(params: Mapping[str, Any]) -> list[str]:
    """Every problem with typed parameters, each naming its parameter."""
    settings = Settings.from_params(params, Path("/run/pyha"), "check")
    return [
        *check_data_directory(settings.data_directory, settings.user),
        *check_bin_dir(settings.bin_dir, explicit=bool(params.get("bin_dir"))),
        *check_port(settings.port),
        *check_user(settings.user),
        *check_socket_dir(settings.socket_dir, settings.port),
        *check_options(settings.options),
        *check_database(settings.database),
        *check_log_file(params.get("log_file")),
    ]


def _unsafe_path(name: str, path: Path) -> list[str]:
    text = str(path)
    bad = sorted(set(text) & _UNSAFE_IN_DOUBLE_QUOTES)
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        return [f"{name}: {text!r} holds {shown}, which pg_ctl cannot pass to the server"]
    return []


def check_data_directory(path: Path, user: str) -> list[str]:
    """Absolute, a directory, initialised (PG_VERSION), owned by the server's user."""
    name = "data_directory"
    if not path.is_absolute():
        return [f"{name}: must be an absolute path, got {str(path)!r}"]
    problems = _unsafe_path(name, path)
    if not path.exists():
        return [*problems, f"{name}: {str(path)!r} does not exist"]
    if not path.is_dir():
        return [*problems, f"{name}: {str(path)!r} is not a directory"]
    if not (path / "PG_VERSION").is_file():
        return [
            *problems,
            f"{name}: {str(path)!r} has no PG_VERSION file; it is not a PostgreSQL data "
            "directory (create one with initdb)",
        ]
    return problems + _check_owner(name, path, user)


def _check_owner(name: str, path: Path, user: str) -> list[str]:
    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        return []  # check_user says so
    owner = path.stat().st_uid
    if owner != uid:
        return [f"{name}: {str(path)!r} belongs to uid {owner}, not to user {user!r} (uid {uid})"]
    return []


def check_bin_dir(path: Path, explicit: bool) -> list[str]:
    """pg_ctl and postgres are executables there."""
    if not explicit and not path.is_dir():
        return [f"bin_dir: no PostgreSQL found under {PG_ROOT}; set bin_dir"]
    if not path.is_absolute():
        return [f"bin_dir: must be an absolute path, got {str(path)!r}"]
    problems = _unsafe_path("bin_dir", path)
    for program in _PROGRAMS:
        full = path / program
        if not full.is_file():
            problems.append(f"bin_dir: {str(path)!r} has no {program}")
        elif not os.access(full, os.X_OK):
            problems.append(f"bin_dir: {str(full)!r} is not executable")
    return problems


def check_port(port: int) -> list[str]:
    """A TCP port number."""
    return [] if 1 <= port <= 65535 else [f"port: must be 1-65535, got {port}"]


def is_root_user(user: str) -> bool:
    """True when `user` exists and is uid 0."""
    try:
        return pwd.getpwnam(user).pw_uid == 0
    except KeyError:
        return False


def check_user(user: str) -> list[str]:
    """An existing OS user other than root (PostgreSQL refuses to run as root)."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return [f"user: no such OS user {user!r}"]
    if entry.pw_uid == 0:
        return [f"user: {user!r} is root; the server must run as an unprivileged user"]
    if os.geteuid() != 0 and entry.pw_uid != os.geteuid():
        return [f"user: running as {user!r} needs root (pyha runs as uid {os.geteuid()})"]
    return []


def check_socket_dir(path: Path, port: int) -> list[str]:
    """Absolute, short enough for a socket, one directory, existing or creatable."""
    name = "socket_dir"
    text = str(path)
    if not path.is_absolute():
        return [f"{name}: must be an absolute path, got {text!r}"]
    if set(text) & set(',"\n\r\0') or text != text.strip():
        return [f"{name}: {text!r} must not hold commas, quotes or surrounding spaces"]
    problems = []
    socket = text.rstrip("/") + _SOCKET_NAME.format(port=port)
    if len(socket.encode()) > SOCKET_PATH_MAX:
        problems.append(
            f"{name}: the socket path {socket!r} is longer than {SOCKET_PATH_MAX} bytes"
        )
    if path.exists():
        if not path.is_dir():
            problems.append(f"{name}: {text!r} is not a directory")
        return problems
    parent = _existing_ancestor(path)
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        problems.append(f"{name}: {text!r} does not exist and cannot be created in {parent}")
    return problems


def _existing_ancestor(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path("/")


def reserved_option(words: tuple[str, ...]) -> str | None:
    """The first option word that would override port, socket_dir or data_directory."""
    after_c = False
    for word in words:
        setting = None
        if after_c:
            setting = word
        elif word.startswith("--") or (word.startswith("-c") and len(word) > 2):
            setting = word[2:]
        elif word.startswith(_RESERVED_FLAGS):
            return word
        after_c = word == "-c"
        if setting is not None:
            key = setting.split("=", 1)[0].strip().lower().replace("-", "_")
            if key in _RESERVED_SETTINGS:
                return word
    return None


def check_options(options: tuple[str, ...]) -> list[str]:
    """Printable words that do not override what pyha sets itself."""
    problems = [
        f"options: {word!r} holds a line break or NUL"
        for word in options
        if set(word) & set("\n\r\0")
    ]
    reserved = reserved_option(options)
    if reserved is not None:
        problems.append(
            f"options: {reserved!r} would override port, socket_dir or data_directory; "
            "set those parameters instead"
        )
    return problems


def check_database(database: str) -> list[str]:
    """A database name psql can be given."""
    if not database or "\0" in database:
        return [f"database: {database!r} is not a database name"]
    return []


def check_log_file(value: str | None) -> list[str]:
    """Absolute, not a directory, safe for pg_ctl's shell line."""
    if value is None:
        return []
    path = Path(value)
    if not path.is_absolute():
        return [f"log_file: must be an absolute path, got {value!r}"]
    if path.is_dir():
        return [f"log_file: {value!r} is a directory"]
    return _unsafe_path("log_file", path)
