"""Tomcat fails over between two cluster servers: a group of the floating address and a
`tomcat` resource (java:pyha:tomcat) moves to the survivor, which serves the page again.

Each node is a machine of its own, as two servers would be:

- its own network: a `tests.netns` host (NetnsCluster), 198.18.20.<i> on a bridge;
- its own processes: its `pyha server` runs as process 1 of a new pid namespace with its
  own /proc, so the plugin, which finds its Tomcat in /proc by the command line, sees only
  the Tomcat of its own machine;
- its own disk at the same path: a new mount namespace in which the node's folder
  `<node>-srv` is mounted on `srv`. Every node runs the same resource, CATALINA_BASE
  `srv/tomcat`, as every server of a real cluster would, yet each Tomcat has its own
  instance (conf, logs, work) with a page naming its node.

pyha has no per-node resource parameters, and nodes that share one /proc and one file
system would see each other's Tomcat: hence the machines. They also rule out the
namespace fence (a node would see no process of another machine), so they are fenced
like servers, by a power switch outside them: the `command` fence runs `switch.py`, which
asks the test, over a Unix socket, to kill every process of the machine's network
namespace and pull its cable (a machine that is off answers no ARP for the floating
address either); `status` says "Status: OFF" once the namespace is empty.

Two nodes need a tiebreaker: the fence race. Tomcat listens on the floating address
(port 8080; 8005 and JMX 9010 on the machine's own loopback: ports inside a fresh
network namespace are free). A watcher scans the real /proc all along: Tomcat never runs
on two machines at once.

It runs with the default lease (dead_after 1 s) and with 10 s: a lone fence-race winner
renews its lease on a thread of its own, so a 3-4 s Tomcat start never outlasts it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyha.fencing.namespace import NETNS_DIR
from pyha.testing.fixtures.local import LocalProvider, make_catalina_base
from tests.cluster.netns_cluster import FLOATING, HTTP_PORT, NetnsCluster, kill_namespace, wait_for
from tests.integration.test_jvm_host import needs_jdk
from tests.netns import ROOT, netns_lab
from tests.procs import live_pids

PREFIX = "pyhatc"
TOMCAT = LocalProvider().unavailable("tomcat")
SKIP = ("needs root to create network namespaces" if os.geteuid() != 0
        else "needs the ip command (iproute2)" if shutil.which("ip") is None
        else "needs unshare (util-linux)" if shutil.which("unshare") is None
        else f"needs Tomcat: {TOMCAT}" if TOMCAT else "")
pytestmark = [pytest.mark.slow, pytest.mark.root, needs_jdk,
              pytest.mark.skipif(bool(SKIP), reason=SKIP or "runs")]

SETTLE = 90.0
"""Seconds the cluster gets to start Tomcat, or to move it after a fault."""
SHUTDOWN_PORT = 8005
JMX_PORT = 9010
MARKER = "pyha tomcat failover page from"
BOOTSTRAP = "org.apache.catalina.startup.Bootstrap"

SWITCH = """
import socket, sys
path, action, machine = sys.argv[1:4]
with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
    sock.settimeout(30)
    sock.connect(path)
    sock.sendall(f"{action} {machine}\\n".encode())
    answer = sock.makefile().readline().strip()
print(answer)
sys.exit(0 if answer.startswith("Status:") else 1)
"""
"""The power switch's client, the fence command; argv: socket off|status machine."""

MACHINE = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
"""Run inside the machine's new mount namespace: its disk on the common path, then the
server. A fixed script; the paths and the command come as arguments."""


@dataclass
class Machines(NetnsCluster):
    """NetnsCluster whose nodes are machines (own pid and mount namespaces), fenced by a
    power switch at `switch` (a Unix socket served by PowerSwitch)."""

    switch: Path = Path()

    @property
    def srv(self) -> Path:
        """The path where every machine sees its own disk."""
        return self.root / "srv"

    def disk(self, node: str) -> Path:
        """The folder mounted on `srv` in `node`'s machine."""
        return self.root / f"{node}-srv"

    def _launcher(self, node: str) -> list[str]:
        return ["unshare", "--pid", "--kill-child", "--mount-proc", "--",
                "/bin/sh", "-c", MACHINE, "machine", str(self.disk(node)), str(self.srv)]

    def _fence(self, node: str) -> str:
        switch = [sys.executable, str(self.root / "switch.py"), str(self.switch)]
        off, status = [*switch, "off", node], [*switch, "status", node]
        return f'{{ kind = "command", off = {json.dumps(off)}, status = {json.dumps(status)} }}'

    def tomcats(self) -> dict[str, list[int]]:
        """The Tomcat JVMs of `srv/tomcat` per machine, from the real /proc."""
        machines = {}
        for node, host in self.hosts.items():
            seen = os.stat(NETNS_DIR / host.name)
            machines[(seen.st_dev, seen.st_ino)] = node
        wanted = f"-Dcatalina.base={self.srv / 'tomcat'}".encode()
        found: dict[str, list[int]] = {}
        for pid in _tomcat_pids(wanted):
            try:
                seen = os.stat(f"/proc/{pid}/ns/net")
            except OSError:
                continue
            owner = machines.get((seen.st_dev, seen.st_ino))
            if owner is not None:
                found.setdefault(owner, []).append(pid)
        return found


def _tomcat_pids(wanted: bytes) -> list[int]:
    """Live Tomcat JVMs (not zombies) whose command line holds `wanted`."""
    return live_pids(lambda _, args: BOOTSTRAP.encode() in args and wanted in args)


class PowerSwitch(socketserver.ThreadingUnixStreamServer):
    """The machines' power switch, outside all of them: one line in ("off n1", "status n1"),
    one line out ("Status: OFF", "Status: ON" or "error: ...")."""

    daemon_threads = True

    def __init__(self, path: Path, cluster: Machines) -> None:
        self.cluster = cluster
        self.lock = threading.Lock()
        super().__init__(str(path), _SwitchHandler)

    def answer(self, line: str) -> str:
        action, _, node = line.strip().partition(" ")
        if node not in self.cluster.hosts:
            return f"error: no machine {node!r}"
        with self.lock:
            if action == "off":
                kill_namespace(self.cluster.hosts[node].name)
                self.cluster.unplug(node)
                return "Status: OFF"
            if action == "status":
                return "Status: OFF" if self.cluster.is_empty(node) else "Status: ON"
        return f"error: no action {action!r}"


class _SwitchHandler(socketserver.StreamRequestHandler):
    server: PowerSwitch

    def handle(self) -> None:
        line = self.rfile.readline(200).decode("utf-8", "replace")
        self.wfile.write((self.server.answer(line) + "\n").encode())


class Watcher(threading.Thread):
    """Scans for Tomcat every 50 ms until stopped; `both` holds every scan that found it on
    more than one machine."""

    def __init__(self, cluster: Machines) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.both: list[dict[str, list[int]]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.05):
            found = self.cluster.tomcats()
            if len(found) > 1:
                self.both.append(found)

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture
def java_cache(tmp_path_factory: pytest.TempPathFactory,
               monkeypatch: pytest.MonkeyPatch) -> Path:
    """The session's Java cache (shared with the plugin tests), with the tomcat plugin built,
    so the two servers do not build it at once when they start."""
    cache = tmp_path_factory.getbasetemp() / "pyha-java-cache"
    cache.mkdir(exist_ok=True)
    monkeypatch.setenv("PYHA_JAVA_CACHE", str(cache))
    monkeypatch.delenv("PYHA_JAVA_PLUGIN_PATH", raising=False)
    subprocess.run([sys.executable, "-m", "pyha.jvm.build", str(ROOT / "plugins" / "tomcat")],
                   check=True, capture_output=True, timeout=300, cwd=ROOT)
    return cache


@pytest.fixture(params=[
    pytest.param("10s", id="lease-10s"),
    pytest.param("1s", id="lease-1s"),
])
def machines(request: pytest.FixtureRequest, tmp_path: Path,
             java_cache: Path) -> Iterator[Machines]:
    """Two machines with their Tomcat instances and the power switch, dead_after (the
    coordinator's lease) from the parameter; the cluster file is written, no server
    started. Afterwards no process of theirs is left, Tomcat included."""
    socket_dir = Path(tempfile.mkdtemp(prefix="pyhasw-"))  # a Unix socket path is short
    switch: PowerSwitch | None = None
    try:
        with netns_lab(PREFIX) as lab:
            cluster = Machines(lab, tmp_path, size=2, guard=False, floating=True,
                               resources=_tomcat_resource(tmp_path / "srv" / "tomcat"),
                               options={"tiebreaker": "fence-race",
                                        "fence_race_delay": "1s",
                                        "dead_after": request.param},
                               switch=socket_dir / "switch")
            (tmp_path / "switch.py").write_text(SWITCH)
            cluster.srv.mkdir()
            for node in cluster.nodes:
                _make_instance(cluster.disk(node) / "tomcat", node)
            switch = PowerSwitch(cluster.switch, cluster)
            threading.Thread(target=switch.serve_forever, daemon=True).start()
            yield cluster
    finally:
        if switch is not None:
            switch.shutdown()
            switch.server_close()
        shutil.rmtree(socket_dir, ignore_errors=True)
    left = _tomcat_pids(f"-Dcatalina.base={tmp_path / 'srv' / 'tomcat'}".encode())
    assert left == [], f"Tomcat outlived the test: {left}"


def _make_instance(base: Path, node: str) -> None:
    """A CATALINA_BASE whose HTTP connector listens on the floating address, with a page
    naming `node`."""
    make_catalina_base(base, HTTP_PORT, SHUTDOWN_PORT)
    server_xml = base / "conf" / "server.xml"
    server_xml.write_text(server_xml.read_text().replace(
        f'<Connector port="{HTTP_PORT}" address="127.0.0.1"',
        f'<Connector port="{HTTP_PORT}" address="{FLOATING}"'))
    (base / "webapps" / "ROOT" / "index.html").write_text(f"{MARKER} {node}\n")


def _tomcat_resource(base: Path) -> str:
    return "\n".join([
        "[[groups.resources]]", 'name = "tomcat"', 'type = "java:pyha:tomcat"',
        'operations = [{ name = "monitor", interval = "2s", timeout = "20s" }]',
        "[groups.resources.params]", f'catalina_base = "{base}"', f"jmx_port = {JMX_PORT}",
        f'http_probe_url = "http://{FLOATING}:{HTTP_PORT}/"', ""])


# --- the test -------------------------------------------------------------------------


def calm(c: Machines) -> bool:
    """True when a coordinator's last cycle had nothing left to do."""
    for node in c.nodes:
        answer = c.status(node)
        if answer and answer["role"] == "coordinator":
            return ": nothing to do" in str(answer["decision"])
    return False


def stopped_again(c: Machines, node: str, mark: int) -> bool:
    """True when `node` logged a stop of Tomcat after `mark` (a length of its log)."""
    return re.search(r"\bstop tomcat\b", c.log(node)[mark:]) is not None


def test_tomcat_fails_over_to_the_survivor_and_serves_the_page_on_the_floating_address(
        machines: Machines) -> None:
    c = machines
    c.start_all()
    c.heal(SETTLE)
    watcher = Watcher(c)
    watcher.start()
    try:
        wait_for(lambda: c.http(2.0).startswith(MARKER), SETTLE,
                 f"Tomcat serves the page on {FLOATING}", c)
        c.steady(SETTLE)  # the start is done: JMX says STARTED too
        first = c.http(2.0).removeprefix(MARKER).strip()
        assert first in c.nodes
        assert list(c.tomcats()) == [first]
        assert c.address_on() == [first]
        other = next(n for n in c.nodes if n != first)

        mark = len(c.log(other))
        survivor_led = (c.status(other) or {}).get("role") == "coordinator"
        kill_namespace(c.hosts[first].name)  # the machine dies: server, JVM host, Tomcat
        c.procs[first].wait(timeout=10)
        wait_for(lambda: c.http(2.0) == f"{MARKER} {other}", SETTLE,
                 f"Tomcat serves the page on {FLOATING} from {other}", c)
        wait_for(lambda: stopped_again(c, other, mark) or calm(c), SETTLE,
                 f"{other} is done, or stopped Tomcat again", c)
        assert not stopped_again(c, other, mark), (
            f"{other} stopped Tomcat again after the failover:{c.log_tails()}")
        assert c.http(2.0) == f"{MARKER} {other}"
        assert list(c.tomcats()) == [other]
        assert c.is_empty(first)  # off: its eth0 keeps the address, with the cable out
        assert c.address_on() in ([other], [first, other])
        said = c.log(other)
        assert f"fence {first}: off, confirmed by" in said
        if not survivor_led:  # it had to be elected: the tiebreaker's vote was the race
            assert f"won the fence race: fenced {first}" in said

        c.reboot(first)  # back, it probes its own machine: Tomcat stays where it is
        c.heal(SETTLE)
        c.steady(SETTLE)
        assert c.http(2.0) == f"{MARKER} {other}"
        assert list(c.tomcats()) == [other]
        assert c.address_on() == [other]
    finally:
        watcher.stop()
    assert watcher.both == [], "Tomcat ran on both machines at once"
