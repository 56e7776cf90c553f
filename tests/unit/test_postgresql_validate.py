"""The postgresql plugin's pure parts: parameter checks, -o quoting, pid file and probe parsing."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import pwd
import shlex
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pyha.resources.registry import Registry

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugins" / "postgresql"
PACKAGE = "_pyha_test_unit_postgresql"


def _load(module: str) -> ModuleType:
    """Import a module of plugins/postgresql as part of a package, as the registry does."""
    if PACKAGE not in sys.modules:
        spec = importlib.machinery.ModuleSpec(PACKAGE, None, is_package=True)
        package = importlib.util.module_from_spec(spec)
        package.__path__ = [str(PLUGIN_DIR)]
        sys.modules[PACKAGE] = package
    return importlib.import_module(f"{PACKAGE}.{module}")


plugin = _load("plugin")
settings = _load("settings")
server = _load("server")
META = plugin.PostgresqlPlugin().meta_data()


def _user_owning(path: Path) -> str:
    """An unprivileged user that owns `path` (chowned to nobody when running as root)."""
    if os.geteuid() == 0:
        entry = pwd.getpwnam("nobody")
        os.chown(path, entry.pw_uid, entry.pw_gid)
        return "nobody"
    return pwd.getpwuid(os.geteuid()).pw_name


@pytest.fixture
def install(tmp_path: Path) -> dict[str, Any]:
    """A fake bin dir with pg_ctl and postgres, an initialised-looking data dir."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("pg_ctl", "postgres"):
        (bin_dir / program).write_text("#!/bin/sh\n")
        (bin_dir / program).chmod(0o755)
    data = tmp_path / "data"
    data.mkdir()
    (data / "PG_VERSION").write_text("15\n")
    return {
        "data_directory": str(data),
        "bin_dir": str(bin_dir),
        "socket_dir": str(tmp_path / "sock"),
        "user": _user_owning(data),
    }


def _problems(**params: Any) -> list[str]:
    coerced, problems = META.check(params)
    assert problems == ()
    return list(plugin.PostgresqlPlugin().validate(coerced))


# --- validate -----------------------------------------------------------------------


def test_a_good_installation_passes(install: dict[str, Any]) -> None:
    assert _problems(**install) == []


def test_missing_data_directory(install: dict[str, Any], tmp_path: Path) -> None:
    install["data_directory"] = str(tmp_path / "nope")
    assert _problems(**install) == [f"data_directory: {str(tmp_path / 'nope')!r} does not exist"]


def test_data_directory_without_pg_version(install: dict[str, Any]) -> None:
    (Path(install["data_directory"]) / "PG_VERSION").unlink()
    [problem] = _problems(**install)
    assert problem.startswith("data_directory:")
    assert "no PG_VERSION" in problem
    assert "initdb" in problem


def test_data_directory_must_be_absolute_and_safe_for_pg_ctl(install: dict[str, Any]) -> None:
    assert _problems(**{**install, "data_directory": "data"}) == [
        "data_directory: must be an absolute path, got 'data'"
    ]
    [problem, *_] = _problems(**{**install, "data_directory": "/srv/$(reboot)"})
    assert "'$'" in problem
    assert "pg_ctl cannot pass" in problem


def test_data_directory_owned_by_another_user(install: dict[str, Any]) -> None:
    other = "daemon" if install["user"] != "daemon" else "bin"
    problems = _problems(**{**install, "user": other})
    assert any(p.startswith("data_directory:") and "belongs to uid" in p for p in problems)


def test_bin_dir_needs_pg_ctl_and_an_executable_postgres(install: dict[str, Any]) -> None:
    bin_dir = Path(install["bin_dir"])
    (bin_dir / "pg_ctl").unlink()
    (bin_dir / "postgres").chmod(0o644)
    assert _problems(**install) == [
        f"bin_dir: {str(bin_dir)!r} has no pg_ctl",
        f"bin_dir: {str(bin_dir / 'postgres')!r} is not executable",
    ]


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_port_out_of_range(install: dict[str, Any], port: int) -> None:
    assert _problems(**install, port=port) == [f"port: must be 1-65535, got {port}"]


def test_unknown_user(install: dict[str, Any]) -> None:
    problems = _problems(**{**install, "user": "pyha-no-such-user"})
    assert "user: no such OS user 'pyha-no-such-user'" in problems


def test_root_is_refused(install: dict[str, Any]) -> None:
    problems = _problems(**{**install, "user": "root"})
    assert "user: 'root' is root; the server must run as an unprivileged user" in problems


def test_socket_dir_must_be_absolute(install: dict[str, Any]) -> None:
    assert _problems(**{**install, "socket_dir": "run/pg"}) == [
        "socket_dir: must be an absolute path, got 'run/pg'"
    ]


def test_socket_dir_that_cannot_be_created(install: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    [problem] = _problems(**{**install, "socket_dir": str(tmp_path / "file" / "sock")})
    assert problem.startswith("socket_dir:")
    assert "cannot be created" in problem


def test_socket_path_too_long(install: dict[str, Any]) -> None:
    long_dir = "/tmp/" + "s" * 100
    [problem] = _problems(**{**install, "socket_dir": long_dir})
    assert "longer than 107 bytes" in problem


def test_socket_dir_with_a_comma(install: dict[str, Any]) -> None:
    [problem] = _problems(**{**install, "socket_dir": "/tmp/a,b"})
    assert "commas" in problem


@pytest.mark.parametrize(
    "options",
    [
        ["-p", "5433"],
        ["-p5433"],
        ["-k", "/tmp"],
        ["-D", "/srv/other"],
        ["-c", "port=5433"],
        ["-cport=5433"],
        ["--port=5433"],
        ["-c", "unix-socket-directories=/tmp"],
        ["-c", "data_directory=/srv/other"],
    ],
)
def test_options_may_not_override_what_pyha_sets(
    install: dict[str, Any], options: list[str]
) -> None:
    [problem] = _problems(**install, options=options)
    assert problem.startswith("options:")
    assert "would override" in problem


def test_options_that_are_fine(install: dict[str, Any]) -> None:
    options = ["-c", "listen_addresses=127.0.0.1", "-c", "shared_buffers=16MB", "-N", "20"]
    assert _problems(**install, options=options) == []


def test_options_with_a_line_break(install: dict[str, Any]) -> None:
    [problem] = _problems(**install, options=["-c", "work_mem=4MB\nx"])
    assert "line break" in problem


def test_log_file_must_be_absolute(install: dict[str, Any]) -> None:
    assert _problems(**install, log_file="pg.log") == [
        "log_file: must be an absolute path, got 'pg.log'"
    ]


# --- settings -----------------------------------------------------------------------


def test_defaults() -> None:
    coerced, problems = META.check({"data_directory": "/srv/pg"})
    assert problems == ()
    made = settings.Settings.from_params(coerced, Path("/run/pyha"), "db1")
    assert made.port == 5432
    assert made.socket_dir == Path("/var/run/postgresql")
    assert made.user == "postgres"
    assert made.database == "postgres"
    assert made.options == ()
    assert made.log_file == Path("/run/pyha/postgresql/db1.log")
    assert made.pid_file == Path("/srv/pg/postmaster.pid")
    assert made.socket_lock == Path("/var/run/postgresql/.s.PGSQL.5432.lock")


def test_every_operation_has_a_timeout() -> None:
    assert {op.name for op in META.operations} == {"start", "stop", "monitor"}
    assert META.timeout("start") >= 60
    assert META.operation("monitor").interval > 0


def test_newest_bin_dir_compares_versions_as_numbers(tmp_path: Path) -> None:
    for version, has_pg_ctl in (("9.6", True), ("10", True), ("15", True), ("16", False)):
        bin_dir = tmp_path / version / "bin"
        bin_dir.mkdir(parents=True)
        if has_pg_ctl:
            (bin_dir / "pg_ctl").write_text("")
    (tmp_path / "common").mkdir()
    assert settings.newest_bin_dir(tmp_path) == tmp_path / "15" / "bin"
    assert settings.newest_bin_dir(tmp_path / "absent") is None


def test_server_options_survive_the_shell_pg_ctl_runs() -> None:
    made = settings.Settings(
        data_directory=Path("/srv/pg"),
        bin_dir=Path("/usr/lib/postgresql/15/bin"),
        port=5433,
        socket_dir=Path("/run/pg sockets"),
        user="postgres",
        database="postgres",
        options=("-c", "application_name=it's $(reboot) `x`", "-c", "work_mem=4MB"),
        log_file=Path("/run/pyha/postgresql/db.log"),
    )
    words = shlex.split(made.server_options())
    assert words == [
        "-p", "5433", "-k", "/run/pg sockets",
        "-c", "application_name=it's $(reboot) `x`", "-c", "work_mem=4MB",
    ]  # fmt: skip


def test_reserved_option_finds_the_first_override() -> None:
    assert settings.reserved_option(("-c", "listen_addresses=*", "-c", "Port = 1")) == "Port = 1"
    assert settings.reserved_option(("-c", "listen_addresses=*")) is None


# --- pid file and probe -------------------------------------------------------------


def test_pid_file_parse() -> None:
    text = (
        "4242\n/srv/pg\n1767225600\n5433\n/var/run/postgresql\n127.0.0.1\n"
        "  5433001     32768\nready   \n"
    )
    parsed = server.PidFile.parse(text)
    assert parsed == server.PidFile(
        pid=4242,
        data_directory="/srv/pg",
        port=5433,
        socket_dir="/var/run/postgresql",
        status="ready",
    )


def test_pid_file_parse_partial_and_torn() -> None:
    partial = server.PidFile.parse("4242\n/srv/pg\n")
    assert partial is not None
    assert partial.port is None
    assert partial.status == ""
    assert server.PidFile.parse("") is None
    assert server.PidFile.parse("garbage\n") is None


def test_pid_file_read_absent(tmp_path: Path) -> None:
    assert server.PidFile.read(tmp_path / "postmaster.pid") is None


@pytest.mark.parametrize(
    ("output", "expected"),
    [("1|f\n", False), ("1|t\n", True), ("", None), ("0|f\n", None), ("1|f\n1|f\n", None)],
)
def test_parse_probe(output: str, expected: bool | None) -> None:
    assert server.parse_probe(output) is expected


def test_registers_as_a_bundled_plugin() -> None:
    registry = Registry()
    registry.load_folder(PLUGIN_DIR, "bundled", default_provider="pyha")
    assert registry.errors == []
    agent = registry.resolve("python:pyha:postgresql")
    assert agent.meta.name == "postgresql"
    assert agent.supports("monitor")
