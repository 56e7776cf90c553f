"""The postgresql plugin against Debian's PostgreSQL: initdb, start, kill -9, recover, stop."""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pyha.clock import MonotonicClock
from pyha.executor.command import run_command
from pyha.ports import free_port
from pyha.resources.spi import OcfCode, OperationContext

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugins" / "postgresql"
LOG = logging.getLogger("pyha.test.postgresql")
CLOCK = MonotonicClock()
OS_USER = "postgres"
TIMEOUT = 30.0


def _load_plugin_package() -> ModuleType:
    """Import plugins/postgresql as a package, the way bundled plugin folders are imported."""
    name = "_pyha_test_bundled_postgresql"
    if f"{name}.plugin" in sys.modules:
        return sys.modules[f"{name}.plugin"]
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    package = importlib.util.module_from_spec(spec)
    package.__path__ = [str(PLUGIN_DIR)]
    sys.modules[name] = package
    return importlib.import_module(f"{name}.plugin")


plugin_module = _load_plugin_package()
server_module = sys.modules["_pyha_test_bundled_postgresql.server"]
settings_module = sys.modules["_pyha_test_bundled_postgresql.settings"]
PostgresqlPlugin = plugin_module.PostgresqlPlugin
BIN_DIR: Path | None = settings_module.newest_bin_dir()


def _why_skip() -> str | None:
    if os.geteuid() != 0:
        return "needs root to run PostgreSQL as the postgres OS user"
    if BIN_DIR is None or not (BIN_DIR / "initdb").is_file():
        return "PostgreSQL binaries are absent (Debian package postgresql)"
    try:
        pwd.getpwnam(OS_USER)
    except KeyError:
        return f"no {OS_USER} OS user (Debian package postgresql creates it)"
    return None


pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(_why_skip() is not None, reason=_why_skip() or ""),
]


def _wait_for(predicate: Any, looks: int = 100, pause: float = 0.05) -> bool:
    """Up to `looks` checks, `pause` apart; True as soon as `predicate()` holds."""
    for _ in range(looks):
        if predicate():
            return True
        time.sleep(pause)
    return bool(predicate())


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    """Live processes whose parent is `pid`."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] not in (b"Z", b"X"):
            found.append(int(name))
    return found


class Cluster:
    """One initdb'd data directory in a world-traversable temp dir, run by the postgres user."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "data"
        self.socket_dir = base / "sock"
        self.state_dir = base / "state"
        self.port = free_port()
        self.plugin = PostgresqlPlugin()

    def initdb(self) -> None:
        assert BIN_DIR is not None
        self.data.mkdir(mode=0o700)
        entry = pwd.getpwnam(OS_USER)
        os.chown(self.data, entry.pw_uid, entry.pw_gid)
        argv = [
            str(BIN_DIR / "initdb"), "-D", str(self.data), "-U", OS_USER, "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        ]  # fmt: skip
        result = run_command(argv, deadline=CLOCK.now() + 120, clock=CLOCK, user=OS_USER, cwd="/")
        assert result.ok, result.stdout + result.stderr

    def params(self, **overrides: Any) -> dict[str, Any]:
        given: dict[str, Any] = {
            "data_directory": str(self.data),
            "bin_dir": str(BIN_DIR),
            "port": self.port,
            "socket_dir": str(self.socket_dir),
            "user": OS_USER,
            "options": ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
        }
        given.update(overrides)
        return given

    def ctx(self, op: str, timeout: float = TIMEOUT, **overrides: Any) -> OperationContext:
        coerced, problems = self.plugin.meta_data().check(self.params(**overrides))
        assert problems == ()
        return OperationContext(
            resource="db",
            operation=op,
            params=coerced,
            deadline=time.monotonic() + timeout,
            state_dir=self.state_dir,
            log=LOG,
        )

    def run(self, op: str, timeout: float = TIMEOUT, **overrides: Any) -> int:
        return int(getattr(self.plugin, op)(self.ctx(op, timeout, **overrides)))

    def postmaster(self) -> int:
        pid_file = server_module.PidFile.read(self.data / "postmaster.pid")
        assert pid_file is not None
        return int(pid_file.pid)

    def processes(self) -> list[int]:
        return list(server_module.server_processes(self.data))

    def query(self, sql: str) -> str:
        argv = [
            str(BIN_DIR / "psql"), "-X", "-At", "-h", str(self.socket_dir), "-p", str(self.port),
            "-U", OS_USER, "-d", "postgres", "-c", sql,
        ]  # fmt: skip
        result = run_command(argv, deadline=CLOCK.now() + 10, clock=CLOCK, user=OS_USER, cwd="/")
        assert result.ok, result.stderr
        return result.stdout.strip()

    def cleanup(self) -> None:
        """Immediate stop, then SIGKILL whatever of the data directory still runs."""
        assert BIN_DIR is not None
        if (self.data / "postmaster.pid").exists():
            argv = [str(BIN_DIR / "pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate"]
            run_command(argv, deadline=CLOCK.now() + 10, clock=CLOCK, user=OS_USER, cwd="/")
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _wait_for(lambda: not self.processes())


@pytest.fixture(scope="module")
def template() -> Iterator[Path]:
    """One initdb per module (it takes seconds); tests copy it."""
    base = Path(tempfile.mkdtemp(prefix="pyha-pg-", dir="/tmp"))
    try:
        base.chmod(0o755)  # the postgres user must reach the data dir and socket below
        cluster = Cluster(base)
        cluster.initdb()
        yield cluster.data
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def cluster(template: Path) -> Iterator[Cluster]:
    base = Path(tempfile.mkdtemp(prefix="pyha-pg-", dir="/tmp"))
    base.chmod(0o755)
    made = Cluster(base)
    try:
        shutil.copytree(template, made.data, symlinks=True)
        entry = pwd.getpwnam(OS_USER)
        for path in (made.data, *made.data.rglob("*")):
            os.lchown(path, entry.pw_uid, entry.pw_gid)
        made.data.chmod(0o700)
        yield made
    finally:
        made.cleanup()
        shutil.rmtree(base, ignore_errors=True)


# --- the life of a server -----------------------------------------------------------


def test_start_monitor_kill_recover_stop(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOG.name)
    assert cluster.run("monitor") == OcfCode.NOT_RUNNING
    assert cluster.run("start") == OcfCode.SUCCESS
    first = cluster.postmaster()
    assert cluster.query("SELECT current_setting('port')") == str(cluster.port)
    assert cluster.query("SELECT pg_is_in_recovery()") == "f"
    # The server runs as the postgres user in the postgres group, never as root.
    status = Path(f"/proc/{first}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1] == str(pwd.getpwnam(OS_USER).pw_uid)

    caplog.clear()
    assert cluster.run("monitor") == OcfCode.SUCCESS
    assert "a primary (read-write)" in caplog.text

    assert cluster.run("start") == OcfCode.SUCCESS
    assert cluster.postmaster() == first, "a second start must not start another server"

    os.kill(first, signal.SIGKILL)
    assert _wait_for(lambda: not _alive(first))
    # The children notice their postmaster died and exit on their own; until they
    # have, monitor says failed (1), because they still hold the data directory.
    seen = []
    for _ in range(100):
        seen.append(cluster.run("monitor"))
        if seen[-1] == OcfCode.NOT_RUNNING:
            break
        time.sleep(0.05)
    assert seen[-1] == OcfCode.NOT_RUNNING
    assert set(seen) <= {OcfCode.ERR_GENERIC, OcfCode.NOT_RUNNING}

    assert cluster.run("start") == OcfCode.SUCCESS
    second = cluster.postmaster()
    assert second != first
    assert cluster.run("monitor") == OcfCode.SUCCESS

    assert cluster.run("stop") == OcfCode.SUCCESS
    assert not _alive(second)
    assert cluster.processes() == []
    assert cluster.run("monitor") == OcfCode.NOT_RUNNING
    assert cluster.run("stop") == OcfCode.SUCCESS


def test_children_left_by_a_killed_postmaster(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """A stopped child cannot notice its postmaster died: monitor fails (1), start clears it."""
    assert cluster.run("start") == OcfCode.SUCCESS
    postmaster = cluster.postmaster()
    child = _children(postmaster)[0]
    os.kill(child, signal.SIGSTOP)
    os.kill(postmaster, signal.SIGKILL)
    assert _wait_for(lambda: not _alive(postmaster))

    caplog.clear()
    assert cluster.run("monitor") == OcfCode.ERR_GENERIC
    assert f"server processes {child}" in caplog.text
    assert "no postmaster" in caplog.text

    assert cluster.run("start") == OcfCode.SUCCESS
    assert not _alive(child)
    assert cluster.run("monitor") == OcfCode.SUCCESS


def test_stop_escalates_to_sigkill_when_the_postmaster_hangs(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """A stopped (SIGSTOP) postmaster ignores pg_ctl stop; stop kills it before its deadline."""
    assert cluster.run("start") == OcfCode.SUCCESS
    postmaster = cluster.postmaster()
    os.kill(postmaster, signal.SIGSTOP)
    caplog.clear()
    assert cluster.run("stop", timeout=6.0) == OcfCode.SUCCESS
    assert "pg_ctl stop -m fast failed" in caplog.text
    assert "pg_ctl stop -m immediate failed" in caplog.text
    assert "sending SIGKILL" in caplog.text
    assert not _alive(postmaster)
    assert _wait_for(lambda: not cluster.processes())
    assert cluster.run("monitor") == OcfCode.NOT_RUNNING


def test_stop_when_never_started_and_with_a_stale_pid_file(cluster: Cluster) -> None:
    assert cluster.run("stop") == OcfCode.SUCCESS
    (cluster.data / "postmaster.pid").write_text(f"{2**22 - 1}\n{cluster.data}\n")
    assert cluster.run("monitor") == OcfCode.NOT_RUNNING
    assert cluster.run("stop") == OcfCode.SUCCESS


def test_port_in_use_fails_start_with_pg_ctl_message(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", cluster.port))
        taken.listen()
        caplog.clear()
        assert cluster.run("start") == OcfCode.ERR_GENERIC
    assert "pg_ctl start failed" in caplog.text
    assert "could not start server" in caplog.text
    assert "Address already in use" in caplog.text
    assert cluster.processes() == []


def test_monitor_fails_with_the_error_when_the_query_fails(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    assert cluster.run("start") == OcfCode.SUCCESS
    caplog.clear()
    assert cluster.run("monitor", database="pyha_no_such_db") == OcfCode.ERR_GENERIC
    assert "runs but the monitor query failed" in caplog.text
    assert 'database "pyha_no_such_db" does not exist' in caplog.text


def test_a_server_on_another_port_is_not_this_resource(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    assert cluster.run("start") == OcfCode.SUCCESS
    other = free_port()
    caplog.clear()
    assert cluster.run("start", port=other) == OcfCode.ERR_GENERIC
    assert f"not on port {other}" in caplog.text


# --- validate and preflight ---------------------------------------------------------


def test_validate_accepts_the_cluster(cluster: Cluster) -> None:
    coerced, problems = cluster.plugin.meta_data().check(cluster.params())
    assert problems == ()
    assert cluster.plugin.validate(coerced) == []


def test_validate_names_a_bad_data_directory(cluster: Cluster) -> None:
    meta = cluster.plugin.meta_data()
    missing, _ = meta.check(cluster.params(data_directory=str(cluster.base / "nope")))
    assert any(
        p.startswith("data_directory:") and "does not exist" in p
        for p in cluster.plugin.validate(missing)
    )
    empty_dir = cluster.base / "empty"
    empty_dir.mkdir()
    empty, _ = meta.check(cluster.params(data_directory=str(empty_dir)))
    assert any("no PG_VERSION" in p for p in cluster.plugin.validate(empty))


def test_start_on_a_node_without_the_data_directory_is_not_installed(cluster: Cluster) -> None:
    assert cluster.run("start", data_directory=str(cluster.base / "nope")) == 5
    assert cluster.run("monitor", data_directory=str(cluster.base / "nope")) == 7
