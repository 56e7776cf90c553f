"""The process plugin with real processes: health checks, kills, pid reuse, users."""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import json
import logging
import os
import pwd
import signal
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pyha.ports import free_port
from pyha.resources.spi import OcfCode, OperationContext

PY = sys.executable
PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugins" / "process"
LOG = logging.getLogger("pyha.test.process")


def _load_plugin_package() -> ModuleType:
    """Import plugins/process as a package, the way bundled plugin folders are imported."""
    name = "_pyha_test_bundled_process"
    if f"{name}.plugin" in sys.modules:
        return sys.modules[f"{name}.plugin"]
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    package = importlib.util.module_from_spec(spec)
    package.__path__ = [str(PLUGIN_DIR)]
    sys.modules[name] = package
    return importlib.import_module(f"{name}.plugin")


plugin_module = _load_plugin_package()
ProcessPlugin = plugin_module.ProcessPlugin


# --- looking at processes independently of the plugin ------------------------------


def _stat(pid: int) -> list[bytes] | None:
    """Fields of /proc/<pid>/stat after the command name, or None if there is no such pid."""
    return _stat_of(f"/proc/{pid}/stat")


def _live_in_group(pgid: int) -> list[int]:
    """Pids of live (not zombie) processes in group `pgid`."""
    found = []
    for name in os.listdir("/proc"):
        fields = _stat(int(name)) if name.isdigit() else None
        if fields is not None and int(fields[2]) == pgid and fields[0] != b"Z":
            found.append(int(name))
    return found


def _with_token(token: str) -> list[int]:
    """Pids of live processes whose environment carries this test's token."""
    needle = f"PYHA_TEST_TOKEN={token}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = _stat(int(name))
        if needle in environ and fields is not None and fields[0] != b"Z":
            found.append(int(name))
    return found


def _wait_for(predicate: Any, looks: int = 100, pause: float = 0.05) -> bool:
    """Up to `looks` checks, `pause` apart; True as soon as `predicate()` holds."""
    for _ in range(looks):
        if predicate():
            return True
        time.sleep(pause)
    return bool(predicate())


def _dead(pid: int) -> bool:
    """True when no thread of `pid` runs any more (it may wait to be reaped)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return True
    states = [_stat_of(f"/proc/{pid}/task/{tid}/stat") for tid in tids]
    return all(state is None or state[0] in (b"Z", b"X") for state in states)


def _stat_of(path: str) -> list[bytes] | None:
    try:
        with open(path, "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


# --- the harness --------------------------------------------------------------------


class Harness:
    """Runs process plugin operations on resources whose processes carry a test token."""

    def __init__(self, state_dir: Path) -> None:
        self.plugin = ProcessPlugin()
        self.state_dir = state_dir
        self.token = uuid.uuid4().hex
        self.params: dict[str, dict[str, Any]] = {}

    def ctx(self, op: str, resource: str, timeout: float | None, **params: Any) -> OperationContext:
        if params:
            self.params[resource] = params
        given = dict(self.params[resource])
        given["env"] = [*given.get("env", []), f"PYHA_TEST_TOKEN={self.token}"]
        meta = self.plugin.meta_data()
        coerced, problems = meta.check(given)
        assert problems == ()
        return OperationContext(
            resource=resource,
            operation=op,
            params=coerced,
            deadline=time.monotonic() + (timeout or meta.timeout(op)),
            state_dir=self.state_dir,
            log=LOG,
        )

    def run(
        self, op: str, resource: str = "app", timeout: float | None = None, **params: Any
    ) -> int:
        return int(getattr(self.plugin, op)(self.ctx(op, resource, timeout, **params)))

    def pid_file(self, resource: str = "app") -> Path:
        return self.state_dir / "process" / f"{resource}.pid"

    def pid(self, resource: str = "app") -> int:
        return int(json.loads(self.pid_file(resource).read_text())["pid"])

    def cleanup(self) -> None:
        """Stop every resource, then kill and reap whatever still carries the token."""
        for resource in self.params:
            with contextlib.suppress(Exception):
                self.run("stop", resource, timeout=5.0, stop_grace="0.1s")
        for pid in _with_token(self.token):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # Reap children the plugin still holds, so none is left a zombie or warns.
        for proc in list(self.plugin._children.values()):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=10)
        _wait_for(lambda: not _with_token(self.token))


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    try:
        yield h
    finally:
        h.cleanup()


def _http_server(port: int) -> list[str]:
    return [PY, "-m", "http.server", "--bind", "127.0.0.1", str(port)]


def _slow_http_server(port: int) -> list[str]:
    """python3 -m http.server, but it binds its port only after a second."""
    code = (
        "import runpy, sys, time; time.sleep(1); "
        f"sys.argv = ['http.server', '--bind', '127.0.0.1', '{port}']; "
        "runpy.run_module('http.server', run_name='__main__', alter_sys=True)"
    )
    return [PY, "-c", code]


# --- start, monitor, kill, stop -----------------------------------------------------


@pytest.mark.parametrize("health", ["http", "tcp"])
def test_http_server_lifecycle(harness: Harness, health: str) -> None:
    port = free_port()
    target = {"http": f"http://127.0.0.1:{port}/", "tcp": f"127.0.0.1:{port}"}[health]
    params = {"command": _slow_http_server(port), "health": health, f"health_{health}": target}
    assert harness.run("start", **params) == OcfCode.SUCCESS
    # start answered success only once the port answered, a second after the spawn.
    assert _port_answers(port)
    assert harness.run("monitor") == OcfCode.SUCCESS

    first = harness.pid()
    os.kill(first, signal.SIGKILL)
    assert _wait_for(lambda: _dead(first))
    assert harness.run("monitor") == OcfCode.NOT_RUNNING
    # A zombie whose other threads still exit cannot be reaped yet; a later look does it.
    assert _wait_for(lambda: harness.run("monitor") == 7 and _stat(first) is None, looks=20)

    harness.params["app"]["command"] = _http_server(port)
    assert harness.run("start") == OcfCode.SUCCESS
    second = harness.pid()
    assert second != first
    assert _port_answers(port)
    assert harness.run("monitor") == OcfCode.SUCCESS
    assert harness.run("stop") == OcfCode.SUCCESS
    assert not _port_answers(port)
    assert _live_in_group(second) == []
    assert _with_token(harness.token) == []
    assert not harness.pid_file().exists()
    assert harness.run("monitor") == OcfCode.NOT_RUNNING


def test_start_and_stop_are_idempotent(harness: Harness) -> None:
    assert harness.run("stop", command="sleep 1000") == OcfCode.SUCCESS
    assert harness.run("start") == OcfCode.SUCCESS
    pid = harness.pid()
    assert harness.run("start") == OcfCode.SUCCESS
    assert harness.pid() == pid
    assert _with_token(harness.token) == [pid]
    assert harness.run("stop") == OcfCode.SUCCESS
    assert harness.run("stop") == OcfCode.SUCCESS
    assert _with_token(harness.token) == []


def test_output_goes_to_the_log_file(harness: Harness, tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "app.log"
    code = (
        "import sys, time; print('to out', flush=True); print('to err', file=sys.stderr); "
        "time.sleep(1000)"
    )
    assert harness.run("start", command=[PY, "-c", code], log_file=str(log_file)) == 0
    assert _wait_for(lambda: "to err" in log_file.read_text())
    assert "to out" in log_file.read_text()


def test_env_and_cwd_reach_the_app(harness: Harness, tmp_path: Path) -> None:
    out = tmp_path / "seen.json"
    code = (
        "import json, os, sys, time; "
        f"json.dump({{'cwd': os.getcwd(), 'env': dict(os.environ), 'stdin': sys.stdin.read()}}, "
        f"open({str(out)!r}, 'w')); time.sleep(1000)"
    )
    params = {"command": [PY, "-c", code], "cwd": str(tmp_path), "env": ["GREETING=hello world"]}
    assert harness.run("start", **params) == OcfCode.SUCCESS
    assert _wait_for(lambda: out.exists() and out.stat().st_size > 0)
    seen = json.loads(out.read_text())
    assert seen["cwd"] == str(tmp_path)
    assert seen["env"]["GREETING"] == "hello world"
    assert seen["env"]["PATH"] == os.environ["PATH"]
    assert seen["stdin"] == ""
    # Only PATH and the given variables: the server's own environment stays out.
    assert set(seen["env"]) <= {"PATH", "GREETING", "PYHA_TEST_TOKEN", "LC_CTYPE"}


def test_health_command_decides_monitor(harness: Harness, tmp_path: Path) -> None:
    flag = tmp_path / "healthy"
    flag.touch()
    params = {
        "command": "sleep 1000",
        "health": "command",
        "health_command": ["test", "-e", str(flag)],
    }
    assert harness.run("start", **params) == OcfCode.SUCCESS
    assert harness.run("monitor") == OcfCode.SUCCESS
    flag.unlink()
    assert harness.run("monitor") == OcfCode.ERR_GENERIC
    flag.touch()
    assert harness.run("monitor") == OcfCode.SUCCESS


def test_unhealthy_http_monitor_says_why(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    params = {
        "command": _http_server(port),
        "health": "http",
        "health_http": f"http://127.0.0.1:{port}/",
    }
    assert harness.run("start", **params) == OcfCode.SUCCESS
    harness.params["app"]["health_http"] = f"http://127.0.0.1:{port}/no-such-page"
    with caplog.at_level(logging.ERROR, logger=LOG.name):
        assert harness.run("monitor") == OcfCode.ERR_GENERIC
    assert "answered 404" in caplog.text


# --- failing starts -----------------------------------------------------------------


def test_command_that_exits_at_once_fails_start_with_its_output(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    code = "import sys; print('boom: no config file', flush=True); sys.exit(3)"
    with caplog.at_level(logging.ERROR, logger=LOG.name):
        assert harness.run("start", command=[PY, "-c", code]) == OcfCode.ERR_GENERIC
    assert "exited with status 3" in caplog.text
    assert "boom: no config file" in caplog.text
    assert not harness.pid_file().exists()
    assert harness.run("monitor") == OcfCode.NOT_RUNNING


def test_the_message_shows_only_this_starts_output(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.run("start", command=[PY, "-c", "print('first run'); raise SystemExit(1)"])
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger=LOG.name):
        harness.run("start", command=[PY, "-c", "print('second run'); raise SystemExit(2)"])
    assert "second run" in caplog.text
    assert "first run" not in caplog.text


def test_command_that_never_becomes_healthy_is_killed_at_the_timeout(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    # The app starts a child too: the whole group must go.
    code = "import subprocess, time; subprocess.Popen(['sleep', '1000']); time.sleep(1000)"
    params = {"command": [PY, "-c", code], "health": "tcp", "health_tcp": f"127.0.0.1:{port}"}
    with caplog.at_level(logging.ERROR, logger=LOG.name):
        assert harness.run("start", timeout=2.0, **params) == OcfCode.ERR_GENERIC
    assert "timed out" in caplog.text
    assert f"127.0.0.1:{port}" in caplog.text
    assert _with_token(harness.token) == []
    assert not harness.pid_file().exists()


def test_missing_program_is_not_installed(harness: Harness) -> None:
    code = harness.run("start", command="/nonexistent/pyha-test-program")
    assert code == OcfCode.ERR_INSTALLED
    assert not harness.pid_file().exists()


# --- stopping -----------------------------------------------------------------------


def test_app_ignoring_sigterm_is_killed_after_stop_grace(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(1000)"
    )
    log_file = harness.state_dir / "process" / "app.log"
    assert harness.run("start", command=[PY, "-c", code], stop_grace="0.5s") == OcfCode.SUCCESS
    # Stop only once SIGTERM is really ignored.
    assert _wait_for(lambda: "ready" in log_file.read_text())
    pid = harness.pid()
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        assert harness.run("stop") == OcfCode.SUCCESS
    assert "sending SIGKILL" in caplog.text
    assert _live_in_group(pid) == []
    assert _stat(pid) is None


def test_app_that_honours_sigterm_is_not_killed(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    assert harness.run("start", command="sleep 1000") == OcfCode.SUCCESS
    pid = harness.pid()
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        assert harness.run("stop") == OcfCode.SUCCESS
    assert "SIGKILL" not in caplog.text
    assert _live_in_group(pid) == []


def test_stop_ends_children_left_by_a_dead_leader(harness: Harness) -> None:
    code = "import subprocess, time; subprocess.Popen(['sleep', '1000']); time.sleep(1000)"
    assert harness.run("start", command=[PY, "-c", code]) == OcfCode.SUCCESS
    leader = harness.pid()
    assert _wait_for(lambda: len(_live_in_group(leader)) == 2)
    os.kill(leader, signal.SIGKILL)
    assert _wait_for(lambda: _dead(leader))
    assert harness.run("monitor") == OcfCode.NOT_RUNNING
    assert len(_live_in_group(leader)) == 1
    assert harness.run("stop") == OcfCode.SUCCESS
    assert _live_in_group(leader) == []


# --- who is running -----------------------------------------------------------------


def _boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def _write_record(path: Path, pid: int, start_time: int, boot: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "start_time": start_time, "boot": boot}))


def test_a_reused_pid_is_not_taken_for_the_app(harness: Harness) -> None:
    me = os.getpid()
    my_fields = _stat(me)
    assert my_fields is not None
    wrong_start = int(my_fields[19]) + 1
    harness.params["app"] = {"command": "sleep 1000"}
    _write_record(harness.pid_file(), me, wrong_start, _boot_id())
    assert harness.run("monitor") == OcfCode.NOT_RUNNING
    assert harness.run("stop") == OcfCode.SUCCESS
    assert not harness.pid_file().exists()

    _write_record(harness.pid_file(), me, wrong_start, _boot_id())
    assert harness.run("start") == OcfCode.SUCCESS
    assert harness.pid() != me
    assert harness.run("monitor") == OcfCode.SUCCESS
    assert harness.run("stop") == OcfCode.SUCCESS


def test_a_record_from_another_boot_is_not_taken_for_the_app(harness: Harness) -> None:
    me = os.getpid()
    my_fields = _stat(me)
    assert my_fields is not None
    harness.params["app"] = {"command": "sleep 1000"}
    _write_record(harness.pid_file(), me, int(my_fields[19]), "another-boot")
    assert harness.run("monitor") == OcfCode.NOT_RUNNING
    assert harness.run("stop") == OcfCode.SUCCESS


def test_a_garbled_pid_file_means_not_running(harness: Harness) -> None:
    harness.params["app"] = {"command": "sleep 1000"}
    harness.pid_file().parent.mkdir(parents=True)
    harness.pid_file().write_text(str(os.getpid()))
    assert harness.run("monitor") == OcfCode.NOT_RUNNING


def test_a_new_plugin_instance_reaps_a_killed_child(harness: Harness) -> None:
    """After the Popen object is gone (a new plugin instance), a zombie still reads as gone."""
    assert harness.run("start", command="sleep 1000") == OcfCode.SUCCESS
    pid = harness.pid()
    fresh = ProcessPlugin()
    ctx = harness.ctx("monitor", "app", None)
    assert fresh.monitor(ctx) == OcfCode.SUCCESS
    os.kill(pid, signal.SIGKILL)
    assert _wait_for(lambda: _dead(pid))
    assert fresh.monitor(harness.ctx("monitor", "app", None)) == OcfCode.NOT_RUNNING
    assert _stat(pid) is None


@pytest.mark.root
def test_runs_as_another_user(harness: Harness) -> None:
    if os.geteuid() != 0:
        pytest.skip("switching users needs root")
    nobody = pwd.getpwnam("nobody")
    assert harness.run("start", command="sleep 1000", user="nobody", cwd="/") == 0
    status = Path(f"/proc/{harness.pid()}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == [str(nobody.pw_uid)] * 4
    environ = Path(f"/proc/{harness.pid()}/environ").read_bytes().split(b"\0")
    assert b"USER=nobody" in environ
    assert harness.run("stop") == OcfCode.SUCCESS


# --- validate and meta data ---------------------------------------------------------


@pytest.fixture
def not_executable(tmp_path: Path) -> str:
    path = tmp_path / "script"
    path.write_text("#!/bin/sh\n")
    path.chmod(0o644)
    return str(path)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, "command: required parameter is missing"),
        ({"command": ""}, "command: must name a program"),
        ({"command": "no-such-program-pyha"}, "command: program 'no-such-program-pyha' not found"),
        ({"command": "/nonexistent/prog"}, "command: '/nonexistent/prog' does not exist"),
        ({"command": "NOT_EXECUTABLE"}, "command: 'NOT_EXECUTABLE' is not executable"),
        ({"cwd": "relative/dir"}, "cwd: must be an absolute path"),
        ({"cwd": "/nonexistent/dir"}, "cwd: '/nonexistent/dir' does not exist"),
        ({"cwd": "/etc/hostname"}, "cwd: '/etc/hostname' is not a directory"),
        ({"env": ["JUSTNAME"]}, "env: 'JUSTNAME' is not NAME=value"),
        ({"env": ["1ST=x"]}, "env: '1ST' is not a variable name"),
        ({"env": "'A B=1'"}, "env: 'A B' is not a variable name"),
        ({"user": "no-such-user-pyha"}, "user: no such user 'no-such-user-pyha'"),
        ({"health": "ping"}, "health: must be one of none, tcp, http, command"),
        ({"health": "tcp"}, "health_tcp: required when health=tcp"),
        ({"health": "tcp", "health_tcp": "localhost"}, "health_tcp: 'localhost' is not host:port"),
        ({"health": "tcp", "health_tcp": "localhost:0"}, "health_tcp: 'localhost:0': port '0'"),
        ({"health": "tcp", "health_tcp": "h:70000"}, "health_tcp: 'h:70000': port '70000'"),
        ({"health": "tcp", "health_tcp": "h:http"}, "health_tcp: 'h:http': port 'http'"),
        ({"health": "tcp", "health_tcp": "::1:80"}, "health_tcp: '::1:80': write an IPv6"),
        ({"health": "http"}, "health_http: required when health=http"),
        ({"health": "http", "health_http": "ftp://h/"}, "health_http: 'ftp://h/' is not an http"),
        ({"health": "http", "health_http": "http:///x"}, "health_http: 'http:///x' has no host"),
        ({"health": "http", "health_http": "http://h:99999/"}, "health_http: 'http://h:99999/'"),
        ({"health": "http", "health_http": "http://u:pw@h/"}, "health_http: credentials"),
        ({"health": "command"}, "health_command: required when health=command"),
        (
            {"health": "command", "health_command": "no-such-check-pyha"},
            "health_command: program 'no-such-check-pyha' not found",
        ),
        ({"health_tcp": "h:80"}, "health_tcp: is set, but health is none"),
        (
            {"health": "tcp", "health_tcp": "h:80", "health_http": "http://h/"},
            "health_http: is set",
        ),
        ({"health_timeout": 0}, "health_timeout: must be more than 0"),
        ({"health_timeout": "soon"}, "health_timeout: 'soon' is not a duration"),
        ({"stop_grace": "-1s"}, "stop_grace: "),
        ({"pid_file": "app.pid"}, "pid_file: must be an absolute path"),
        ({"log_file": "/tmp"}, "log_file: '/tmp' is a directory"),
        ({"pid_file": "/run/x", "log_file": "/run/x"}, "log_file: must differ from pid_file"),
        ({"colour": "blue"}, "colour: unknown parameter"),
    ],
)
def test_validate_names_the_parameter(
    params: dict[str, Any], expected: str, not_executable: str
) -> None:
    given = {"command": "sleep 1", **params}
    if given["command"] == "NOT_EXECUTABLE":
        given["command"] = [not_executable]
        expected = expected.replace("NOT_EXECUTABLE", not_executable)
    if params == {}:
        del given["command"]
    problems = ProcessPlugin().validate(given)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems


@pytest.mark.parametrize(
    "params",
    [
        {"command": "sleep 1"},
        {"command": ["sleep", "1"], "cwd": "/", "env": ["A=1", "B="], "user": "root"},
        {"command": "sleep 1", "health": "tcp", "health_tcp": "[::1]:8080"},
        {"command": "sleep 1", "health": "http", "health_http": "https://example.org:8443/x?y"},
        {"command": "sleep 1", "health": "command", "health_command": "true"},
        {"command": "sleep 1", "pid_file": "/run/a.pid", "log_file": "/var/log/a.log"},
    ],
)
def test_validate_accepts_good_parameters(params: dict[str, Any]) -> None:
    if "user" in params and os.geteuid() != 0:
        params = {**params, "user": pwd.getpwuid(os.geteuid()).pw_name}
    assert ProcessPlugin().validate(params) == []


def test_meta_data_describes_every_parameter_and_operation() -> None:
    meta = ProcessPlugin().meta_data()
    params = {p.name: p for p in meta.parameters}
    assert set(params) == {
        "command",
        "cwd",
        "env",
        "user",
        "health",
        "health_tcp",
        "health_http",
        "health_command",
        "health_timeout",
        "stop_grace",
        "pid_file",
        "log_file",
    }
    assert all(p.description for p in meta.parameters)
    assert params["command"].required
    assert params["health"].default == "none"
    assert params["health"].options == ("none", "tcp", "http", "command")
    assert params["health_timeout"].type == "duration"
    assert params["stop_grace"].default == "10s"
    ops = {o.name: o for o in meta.operations}
    assert set(ops) == {"start", "stop", "monitor"}
    assert ops["start"].timeout == ops["stop"].timeout == 30.0
    assert (ops["monitor"].timeout, ops["monitor"].interval) == (10.0, 10.0)
