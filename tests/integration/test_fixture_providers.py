"""The fixture layer for real: the session's provider, the pytest plugin, and the container
images' own programs (OpenLDAP entry point, Tomcat JMX settings, fence, health check) run
here on local processes; tests marked `containers` need a Docker engine."""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pyha.directory import slapd as slapd_mod
from pyha.fencing.command import CommandFence
from pyha.membership.keys import generate_key
from pyha.membership.rpc import RpcServer
from pyha.ports import free_port
from pyha.testing.fixtures import (
    NO_ENGINE,
    ContainerProvider,
    LdapEndpoint,
    PgEndpoint,
    Provider,
    TomcatEndpoint,
)
from pyha.testing.fixtures.local import jmx_options, stop_group
from pyha.testing.fixtures.probes import http_status, ldap_bind_ok, pg_answers, port_open, wait_for

REPO = Path(__file__).resolve().parents[2]
CONTAINERS = REPO / "containers"
PYTHON = sys.executable


# -- the session's provider (local here; containers where Docker runs) -------------------------


def _ldap(endpoint: LdapEndpoint) -> Any:
    from pyha.directory.ldap3compat import ldap3

    module = ldap3()
    server = module.Server(endpoint.host, port=endpoint.port, get_info="NO_INFO")
    conn = module.Connection(server, endpoint.bind_dn, endpoint.password, auto_bind=True)
    return conn


def test_ldap_server_has_pyhas_schema_and_only_the_suffix(ldap_server: LdapEndpoint) -> None:
    from pyha.directory.ldap3compat import discard

    assert ldap_bind_ok(ldap_server)
    conn = _ldap(ldap_server)
    try:
        assert conn.search(ldap_server.base_dn, "(objectClass=*)", search_scope="LEVEL") is False
        dn = f"cn=fx-schema,{ldap_server.base_dn}"
        assert conn.add(dn, ["pyhaCluster"], {"cn": "fx-schema", "pyhaEpoch": 0}), conn.result
        assert conn.search(dn, "(objectClass=pyhaCluster)", attributes=["pyhaEpoch"])
        assert str(conn.entries[0].pyhaEpoch.value) == "0"
        assert conn.delete(dn)
    finally:
        discard(conn)


def test_a_wrong_password_is_refused(ldap_server: LdapEndpoint) -> None:
    wrong = LdapEndpoint(ldap_server.url, ldap_server.base_dn, ldap_server.bind_dn, "wrong")
    assert not ldap_bind_ok(wrong)


@pytest.mark.slow
def test_tomcat_server_serves_its_page_and_jmx(tomcat_server: TomcatEndpoint) -> None:
    import urllib.request

    with urllib.request.urlopen(tomcat_server.http_url, timeout=5) as answer:  # noqa: S310
        assert answer.read().decode() == tomcat_server.page
    assert http_status(tomcat_server.http_url + "missing") == 404
    assert port_open(tomcat_server.jmx_host, tomcat_server.jmx_port)


def test_pg_server_answers(pg_server: PgEndpoint, provider: Provider) -> None:
    assert pg_answers(pg_server.host, pg_server.port)
    psql = shutil.which("psql")
    if psql is None or provider.name != "local":
        return
    env = {**os.environ, "PGPASSWORD": pg_server.password or ""}
    done = subprocess.run([psql, "-X", "-At", "-h", pg_server.host, "-p", str(pg_server.port),
                           "-U", pg_server.user, "-d", pg_server.database, "-c", "SELECT 6*7"],
                          capture_output=True, text=True, timeout=30, env=env, check=False)
    assert done.stdout.strip() == "42", done.stderr


def test_leaving_a_context_removes_everything(provider: Provider) -> None:
    if provider.name != "local" or provider.unavailable("slapd"):
        pytest.skip("local provider with slapd only")
    with provider.slapd() as endpoint:
        folder = endpoint.directory
        assert folder is not None and folder.exists()
        pid = slapd_mod.Slapd(slapd_mod.SlapdConfig(folder, endpoint.port)).pid()
        assert pid is not None
    assert not folder.parent.exists()
    assert not port_open(endpoint.host, endpoint.port)


# -- the pytest plugin, in a pytest of its own -----------------------------------------------------

PLUGIN_TESTS = '''
import pytest

@pytest.mark.containers
def test_needs_docker():
    raise AssertionError("must not run without an engine")

def test_plain(provider):
    assert provider.name in ("local", "containers")
'''


def _pytest(folder: Path, **env: str) -> subprocess.CompletedProcess[str]:
    (folder / "test_plugin_probe.py").write_text(PLUGIN_TESTS)
    environ = {k: v for k, v in os.environ.items()
               if k not in ("PYHA_TEST_PROVIDER", "DOCKER_HOST")}
    environ.update(env)
    argv = [PYTHON, "-m", "pytest", "-p", "pyha.testing.fixtures.pytest_plugin", "-rs",
            "-p", "no:cacheprovider", str(folder)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=folder,
                          env=environ, check=False)


@pytest.mark.slow
def test_the_plugin_reports_skips_and_refuses(tmp_path: Path) -> None:
    no_engine = f"unix://{tmp_path}/docker.sock"
    ran = _pytest(tmp_path, DOCKER_HOST=no_engine)
    assert "pyha fixtures: local provider (no Docker engine reachable)" in ran.stdout
    assert re.search(r"SKIPPED \[1\] .*test_plugin_probe.py:\d+: no Docker engine reachable",
                     ran.stdout), ran.stdout
    assert "1 passed, 1 skipped" in ran.stdout
    forced = _pytest(tmp_path, DOCKER_HOST=no_engine, PYHA_TEST_PROVIDER="containers")
    assert forced.returncode == pytest.ExitCode.USAGE_ERROR
    assert ("PYHA_TEST_PROVIDER=containers, but no Docker engine reachable: "
            f"{tmp_path}/docker.sock does not exist") in forced.stderr


# -- containers/openldap's entry point on this machine's slapd ---------------------------------


@dataclass
class EntryPoint:
    """containers/openldap/entrypoint.sh run here, with the image's paths bent to a temp dir."""

    data: Path
    port: int
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "LDAP_DATA_DIR": str(self.data), "LDAP_PORT": str(self.port),
               "LDAP_SCHEMA_DIR": str(REPO / "jndi"), "LDAP_LISTEN_HOST": "127.0.0.1",
               "LDAP_NOSYNC": "1", **self.env}
        with (self.data.parent / "entrypoint.log").open("ab") as log:
            self.process = subprocess.Popen(["sh", str(CONTAINERS / "openldap/entrypoint.sh")],
                                            env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def endpoint(self, password: str) -> LdapEndpoint:
        return LdapEndpoint(f"ldap://127.0.0.1:{self.port}", "dc=pyha,dc=test",
                            "cn=admin,dc=pyha,dc=test", password)

    def wait(self, password: str) -> LdapEndpoint:
        endpoint = self.endpoint(password)
        assert self.process is not None
        log = self.data.parent / "entrypoint.log"
        assert wait_for(lambda: self.process is not None and self.process.poll() is None
                        and ldap_bind_ok(endpoint), looks=100, pause=0.1), log.read_text()
        return endpoint

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process, signal.SIGTERM)
            self.process = None


@pytest.fixture
def entrypoint(tmp_path: Path) -> Iterator[EntryPoint]:
    reason = slapd_mod.installed()
    if reason:
        pytest.skip(reason)
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    made = EntryPoint(data, free_port())
    try:
        yield made
    finally:
        made.stop()


def test_the_openldap_entry_point_loads_schema_and_base_tree(entrypoint: EntryPoint) -> None:
    from pyha.directory.ldap3compat import discard

    entrypoint.start()
    password = None
    for _ in range(100):  # the generated password appears before slapd starts
        if (entrypoint.data / "admin.password").exists():
            password = (entrypoint.data / "admin.password").read_text()
            break
        time.sleep(0.05)
    assert password and len(password) == 48
    assert oct((entrypoint.data / "admin.password").stat().st_mode & 0o777) == "0o600"
    endpoint = entrypoint.wait(password)
    conn = _ldap(endpoint)
    try:
        conn.search(endpoint.base_dn, "(objectClass=*)", attributes=["objectClass"])
        dns = {e.entry_dn for e in conn.entries}
        assert {"cn=pyha,dc=pyha,dc=test", "ou=nodes,cn=pyha,dc=pyha,dc=test",
                "ou=groups,cn=pyha,dc=pyha,dc=test"} <= dns
        assert conn.search("cn=pyha,dc=pyha,dc=test", "(objectClass=pyhaCluster)")
    finally:
        discard(conn)
    assert not list(entrypoint.data.glob("*.ldif")), "the config LDIF (with a hash) stays"
    assert not (entrypoint.data / ".admin.password.tmp").exists()

    # A second start keeps the data and the password; nothing is initialized again.
    entrypoint.stop()
    (entrypoint.data / "admin.password").unlink()
    entrypoint.start()
    entrypoint.wait(password)
    assert not (entrypoint.data / "admin.password").exists()


def test_the_openldap_entry_point_takes_a_password_file(entrypoint: EntryPoint,
                                                        tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("given-secret\n")  # a trailing newline, as editors leave it
    entrypoint.env = {"LDAP_ADMIN_PASSWORD_FILE": str(secret), "LDAP_BASE_TREE": "suffix"}
    entrypoint.start()
    endpoint = entrypoint.wait("given-secret")
    conn = _ldap(endpoint)
    try:
        assert conn.search(endpoint.base_dn, "(objectClass=*)", search_scope="LEVEL") is False
    finally:
        conn.unbind()
    assert not (entrypoint.data / "admin.password").exists()


# -- containers/tomcat's JMX settings are the local provider's ---------------------------------


def test_setenv_makes_the_same_jmx_options_as_the_local_provider() -> None:
    script = shlex.quote(str(CONTAINERS / "tomcat" / "setenv.sh"))
    env = {"PATH": os.environ.get("PATH", ""), "JMX_PORT": "41234",
           "JMX_HOSTNAME": "198.18.30.99", "JMX_BIND": "127.0.0.1"}
    done = subprocess.run(["sh", "-c", f'. {script}; printf "%s" "$CATALINA_OPTS"'], env=env,
                          capture_output=True, text=True, timeout=10, check=True)
    assert done.stdout.split() == jmx_options(41234, "198.18.30.99", bind="127.0.0.1")
    plain = subprocess.run(["sh", "-c", f'. {script}; printf "%s" "$CATALINA_OPTS"'],
                           env={"PATH": env["PATH"]}, capture_output=True, text=True,
                           timeout=10, check=True)
    assert plain.stdout.split() == jmx_options(9010, "127.0.0.1")


# -- pyha-docker-fence against a stand-in Docker engine -------------------------------------------


class FakeEngine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Answers the two Docker API calls the fence makes, from a dict of container states."""

    daemon_threads = True

    def __init__(self, path: Path) -> None:
        self.containers: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []
        self.broken = False
        super().__init__(str(path), EngineHandler)


class EngineHandler(http.server.BaseHTTPRequestHandler):
    server: FakeEngine

    def _answer(self, code: int, body: dict[str, Any] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.server.requests.append(f"POST {self.path}")
        found = re.fullmatch(r"/v1\.41/containers/([^/]+)/kill\?signal=SIGKILL", self.path)
        state = self.server.containers.get(found.group(1)) if found else None
        if self.server.broken:
            self._answer(500, {"message": "engine on fire"})
        elif state is None:
            self._answer(404, {"message": "No such container"})
        elif not state["Running"]:
            self._answer(409, {"message": "Container x is not running"})
        else:
            state["Running"] = False
            self._answer(204)

    def do_GET(self) -> None:
        self.server.requests.append(f"GET {self.path}")
        found = re.fullmatch(r"/v1\.41/containers/([^/]+)/json", self.path)
        state = self.server.containers.get(found.group(1)) if found else None
        if state is None:
            self._answer(404, {"message": "No such container"})
        else:
            self._answer(200, {"State": dict(state)})

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def address_string(self) -> str:
        return "unix"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[FakeEngine]:
    made = FakeEngine(tmp_path / "docker.sock")
    thread = threading.Thread(target=made.serve_forever, daemon=True)
    thread.start()
    try:
        yield made
    finally:
        made.shutdown()
        made.server_close()
        thread.join(timeout=10)


def _fence(engine: FakeEngine, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"DOCKER_HOST": f"unix://{engine.server_address}", "PATH": os.environ["PATH"]}
    return subprocess.run([PYTHON, str(CONTAINERS / "pyha" / "docker_fence.py"), *args],
                          env=env, capture_output=True, text=True, timeout=30, check=False)


def test_the_docker_fence_kills_and_confirms(engine: FakeEngine) -> None:
    engine.containers["pyha-n2"] = {"Running": True, "Paused": False}
    assert _fence(engine, "status", "pyha-n2").stdout == "Status: ON (container pyha-n2)\n"
    off = _fence(engine, "off", "pyha-n2")
    assert (off.returncode, off.stdout) == (0, "killed container pyha-n2\n")
    assert "POST /v1.41/containers/pyha-n2/kill?signal=SIGKILL" in engine.requests
    assert _fence(engine, "status", "pyha-n2").stdout == "Status: OFF (container pyha-n2)\n"
    again = _fence(engine, "off", "pyha-n2")
    assert (again.returncode, again.stdout) == (0, "container pyha-n2 was not running: off\n")
    gone = _fence(engine, "off", "pyha-n9")
    assert (gone.returncode, gone.stdout) == (0, "container pyha-n9 does not exist: off\n")


def test_the_docker_fence_fails_loudly(engine: FakeEngine, tmp_path: Path) -> None:
    engine.containers["pyha-n2"] = {"Running": True}
    engine.broken = True
    failed = _fence(engine, "off", "pyha-n2")
    assert (failed.returncode, failed.stderr) == (1, "kill pyha-n2: HTTP 500: engine on fire\n")
    assert _fence(engine, "bogus", "x").returncode == 2
    env = {"DOCKER_HOST": f"unix://{tmp_path}/none.sock", "PATH": os.environ["PATH"]}
    lost = subprocess.run([PYTHON, str(CONTAINERS / "pyha" / "docker_fence.py"), "status", "x"],
                          env=env, capture_output=True, text=True, timeout=30, check=False)
    assert lost.returncode == 1 and "Docker engine unreachable" in lost.stderr


def test_pyhas_command_fence_drives_the_docker_fence(engine: FakeEngine) -> None:
    engine.containers["pyha-n2"] = {"Running": True}
    script = str(CONTAINERS / "pyha" / "docker_fence.py")
    fence = CommandFence({"n2": [PYTHON, script, "off", "pyha-n2"]},
                         {"n2": [PYTHON, script, "status", "pyha-n2"]}, poll_interval=0.1,
                         env={"DOCKER_HOST": f"unix://{engine.server_address}",
                              "PATH": os.environ["PATH"]})
    result = fence.fence("n2", time.monotonic() + 30)
    assert result.ok, result.message
    assert "off, confirmed by" in result.message
    assert engine.containers["pyha-n2"]["Running"] is False


# -- pyha-healthcheck against a node's RPC server -------------------------------------------------


@dataclass
class FakeNode:
    """A cluster file for one node whose RPC server and heartbeat socket run in this test."""

    config: Path
    key: Path
    rpc: RpcServer
    heartbeat: socket.socket


@pytest.fixture
def node(tmp_path: Path) -> Iterator[FakeNode]:
    key = tmp_path / "cluster.key"
    generate_key(key)
    heartbeat = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    heartbeat.bind(("127.0.0.1", 0))
    status = {"node": "n1", "term": 4, "role": "follower", "coordinator": "n2"}
    rpc = RpcServer(bytes.fromhex(key.read_text().strip()), "n1", ("127.0.0.1", 0),
                    {"status": lambda params, caller: status})
    rpc.start()
    host, port = rpc.address
    config = tmp_path / "cluster.toml"
    config.write_text(textwrap.dedent(f"""\
        [cluster]
        name = "hc"
        [[nodes]]
        name = "n1"
        addresses = ["127.0.0.1:{heartbeat.getsockname()[1]}"]
        rpc = "{host}:{port}"
        [[nodes]]
        name = "n2"
        addresses = ["127.0.0.1:9"]
        rpc = "127.0.0.1:9"
        """))
    made = FakeNode(config, key, rpc, heartbeat)
    try:
        yield made
    finally:
        rpc.close()
        heartbeat.close()


def _healthcheck(node: FakeNode, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {"PATH": os.environ["PATH"], "PYHA_CONFIG": str(node.config), "PYHA_NODE": "n1",
               "PYHA_KEY_FILE": str(node.key), "PYHA_HEALTH_ADMIN": "0", **env}
    return subprocess.run([PYTHON, str(CONTAINERS / "pyha" / "healthcheck.py")], env=environ,
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_health_check_asks_the_node_with_the_key(node: FakeNode, tmp_path: Path) -> None:
    ran = _healthcheck(node)
    assert (ran.returncode, ran.stdout) == (
        0, "healthy: node n1 answered: term 4, role follower, coordinator n2\n"), ran.stderr
    other = tmp_path / "other.key"
    generate_key(other)
    refused = _healthcheck(node, PYHA_KEY_FILE=str(other))
    assert refused.returncode == 1
    assert refused.stdout.startswith("unhealthy: rpc status of n1 failed:")


def test_without_a_key_the_health_check_looks_at_the_ports(node: FakeNode,
                                                           tmp_path: Path) -> None:
    ran = _healthcheck(node, PYHA_KEY_FILE=str(tmp_path / "none.key"))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.startswith("healthy: rpc port open and heartbeat sockets bound for n1 "
                                 "(rpc: ")
    node.heartbeat.close()
    lost = _healthcheck(node, PYHA_KEY_FILE=str(tmp_path / "none.key"))
    assert lost.returncode == 1 and "no heartbeat socket on 127.0.0.1:" in lost.stdout
    node.rpc.close()
    closed = _healthcheck(node, PYHA_KEY_FILE=str(tmp_path / "none.key"))
    assert closed.returncode == 1 and "is closed" in closed.stdout


def test_the_health_check_asks_the_admin_command_first(node: FakeNode, tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    pyha = fake / "pyha"
    pyha.write_text("#!/bin/sh\necho \"Error: No such command 'status'.\" >&2\nexit 2\n")
    pyha.chmod(0o755)
    path = f"{fake}:{os.environ['PATH']}"
    ran = _healthcheck(node, PATH=path, PYHA_HEALTH_ADMIN="1")
    assert ran.returncode == 0
    assert ran.stdout.endswith("(admin: this pyha has no status command)\n")
    pyha.write_text("#!/bin/sh\necho '{\"nodes\": []}'\nexit 0\n")
    admin = _healthcheck(node, PATH=path, PYHA_HEALTH_ADMIN="1")
    assert admin.stdout == "healthy: admin endpoint answered pyha status\n"


# -- with a Docker engine only ------------------------------------------------------------------


@pytest.mark.containers
@pytest.mark.slow
def test_the_containers_provider_starts_every_component(
        container_provider: ContainerProvider) -> None:
    with container_provider.slapd() as ldap:
        assert ldap.container and ldap_bind_ok(ldap)
        test_ldap_server_has_pyhas_schema_and_only_the_suffix(ldap)
    with container_provider.tomcat() as tomcat:
        test_tomcat_server_serves_its_page_and_jmx(tomcat)
    with container_provider.postgresql() as pg:
        assert pg.password and pg_answers(pg.host, pg.port)


@pytest.mark.containers
@pytest.mark.slow
def test_the_server_image_builds_and_runs() -> None:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.image import DockerImage

    with DockerImage(path=str(REPO), tag="pyha/server:pyha-test",
                     dockerfile_path="containers/pyha/Dockerfile",
                     target="server") as image:
        box = DockerContainer(str(image.tag)).with_command(["--version"])
        box.start()
        try:
            assert box.wait() == 0
            stdout, _ = box.get_logs()
            assert stdout.decode().startswith("pyha ")
            assert box.exec(["id", "-un"]).output.decode().strip() == "pyha"  # type: ignore[union-attr]
        finally:
            box.stop()


def test_container_tests_skip_with_the_reason_here(request: pytest.FixtureRequest) -> None:
    from pyha.testing.fixtures.pytest_plugin import ENGINE

    if request.config.stash[ENGINE].reachable:
        pytest.skip("a Docker engine is reachable here")
    marked = [i for i in request.session.items if "containers" in i.keywords]
    for item in marked:
        skips = [m for m in item.iter_markers("skip")]
        assert [m.kwargs.get("reason") for m in skips] == [NO_ENGINE], item.nodeid


def test_init_key_makes_the_key_once(tmp_path: Path) -> None:
    script = str(CONTAINERS / "pyha" / "init_key.py")
    key = tmp_path / "keys" / "cluster.key"
    first = subprocess.run([PYTHON, script, str(key)], capture_output=True, text=True,
                           timeout=60, check=False)
    assert (first.returncode, first.stdout) == (0, f"made a new cluster key at {key}\n")
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    made = key.read_text()
    second = subprocess.run([PYTHON, script, str(key)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert (second.returncode, second.stdout) == (0, f"kept the cluster key at {key}\n")
    assert key.read_text() == made
    key.chmod(0o644)
    loose = subprocess.run([PYTHON, script, str(key)], capture_output=True, text=True,
                           timeout=60, check=False)
    assert loose.returncode == 1 and "readable by its owner only" in loose.stderr
