"""Cluster servers in network namespaces: one host per node on a bridge, for partition tests
and the failover benchmark.

Each node is a `tests.netns` host (198.18.20.<i>/24 on eth0) whose `pyha server` runs
inside its namespace and is fenced by NamespaceFence. With `links=2` every node has a
second cable on a second bridge (198.18.20.<128+i>/25 on eth1) carrying a second
heartbeat link; node-to-node calls stay on the first. A client host (198.18.20.50)
reaches the floating address 198.18.20.100 and the nodes' call addresses.

    with netns_lab("pyhacl") as lab:
        cluster = NetnsCluster(lab, tmp_path, web=True)
        cluster.start_all()
        ...
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pyha.fencing.namespace import namespace_pids
from pyha.membership.keys import generate_key, load_key
from pyha.membership.rpc import RpcClient
from pyha.model.config import parse_endpoint
from pyha.testing.waiting import eventually
from tests.cluster.harness import GUARD, GuardedCluster, _alive, _recorded_pid, wait_for
from tests.netns import ROOT, Host, Lab, Namespace

__all__ = [
    "CLIENT",
    "FLOATING",
    "HTTP_PORT",
    "WEB",
    "NetnsCluster",
    "Poller",
    "http_get",
    "kill_namespace",
    "log_events",
    "rpc_status",
    "until",
    "wait_for",
]

SUBNET = "198.18.20"
FLOATING = f"{SUBNET}.100"
CLIENT = f"{SUBNET}.50"
HEARTBEAT_PORT = 5405
RPC_PORT = 5406
HTTP_PORT = 8080
SECOND_BRIDGE = "br1"
SECOND_IFACE = "eth1"

WEB = '''
import contextlib, os, socket, sys, threading
host, port = sys.argv[1], int(sys.argv[2])
mine = os.stat("/proc/self/ns/net")
me = next(name for name in os.listdir("/run/netns")
          if os.stat(f"/run/netns/{name}")[1:3] == mine[1:3])  # st_ino, st_dev
body = f"served by {me}\\n".encode()
answer = b"HTTP/1.0 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n%s" % (len(body), body)

def serve(conn):
    with conn, contextlib.suppress(OSError):
        conn.settimeout(5)
        request = b""
        while b"\\r\\n\\r\\n" not in request:
            chunk = conn.recv(4096)
            if not chunk:
                return
            request += chunk
        conn.sendall(answer)

listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND: the address floats
listener.bind((host, port))
listener.listen(128)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
'''
"""An HTTP/1.0 service that says which namespace serves it; argv: host port. It binds
with IP_FREEBIND, so it may start before the floating address is there. It is kept to
the socket module, as a lean service would be: it listens about 20 ms after its start
(http.server alone takes some 70 ms to import), so the failover benchmark times the
cluster rather than the interpreter."""


@dataclass
class NetnsCluster(GuardedCluster):
    """`size` cluster servers, each in its own namespace host, plus a client host.

    Invariant: every namespace and process it starts belongs to `lab`, whose close
    removes them, whatever state a test left them in.
    """

    lab: Lab
    root: Path
    size: int = 3
    links: int = 1
    web: bool = False
    """The group also holds the floating address and the HTTP service bound to it."""
    web_everywhere: bool = False
    """The HTTP service runs on every node outside the cluster's care (bound to the
    floating address with IP_FREEBIND); the group holds only the address."""
    guard: bool = True
    """The group holds the guarded service, which writes VIOLATION if it runs twice."""
    floating: bool = False
    """The group holds the floating address (without any service of the harness)."""
    resources: str = ""
    """More resources for the group, as TOML `[[groups.resources]]` tables, put last."""
    options: Mapping[str, str] = field(default_factory=dict)
    """Extra [cluster] settings, e.g. {"dead_after": "150ms"}."""
    unplug_fenced: bool = False
    """Fencing also pulls the node's first cable (the fence's `bridge_port`), as a power
    switch would: its addresses stop answering too."""
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.nodes = [f"n{i}" for i in range(1, self.size + 1)]
        self.key_file = self.root / "cluster.key"
        generate_key(self.key_file)
        (self.root / "guard.py").write_text(GUARD)
        (self.root / "web.py").write_text(WEB)
        self.record = self.root / "record.txt"
        self.hosts: dict[str, Host] = {}
        for i, node in enumerate(self.nodes, 1):
            self.hosts[node] = self.lab.add_host(node, [f"{SUBNET}.{i}/24"])
        self.client = self.lab.add_host("client", [f"{CLIENT}/24"])
        if self.links == 2:
            self._second_link()
        self.config = self.root / "cluster.toml"
        self.config.write_text(self._toml())

    # --- the network --------------------------------------------------------------

    def _second_link(self) -> None:
        bridge = self.lab.bridge
        bridge.ip("link", "add", SECOND_BRIDGE, "type", "bridge", "mcast_snooping", "0")
        bridge.ip("link", "set", SECOND_BRIDGE, "up")
        for i, node in enumerate(self.nodes, 1):
            host = self.hosts[node]
            bridge.ip("link", "add", _port(node, 2), "type", "veth",
                      "peer", "name", SECOND_IFACE, "netns", host.name)
            bridge.ip("link", "set", _port(node, 2), "master", SECOND_BRIDGE, "up")
            host.ip("addr", "add", f"{SUBNET}.{128 + i}/25", "dev", SECOND_IFACE)
            host.ip("link", "set", SECOND_IFACE, "up")

    def unplug(self, node: str, link: int | None = None) -> None:
        """Pull one cable of `node` (1 or 2), or every cable when `link` is None."""
        for n in self._links(link):
            self.lab.bridge.ip("link", "set", _port(node, n), "down")

    def plug(self, node: str, link: int | None = None) -> None:
        """Put back one cable of `node`, or every cable."""
        for n in self._links(link):
            self.lab.bridge.ip("link", "set", _port(node, n), "up")

    def _links(self, link: int | None) -> list[int]:
        return list(range(1, self.links + 1)) if link is None else [link]

    # --- the cluster file ---------------------------------------------------------

    def _toml(self) -> str:
        lines = ["[cluster]", 'name = "pyhacl"', 'cycle_interval = "500ms"',
                 f'state_dir = "{self.root / "unused"}"',
                 *(f'{k} = "{v}"' for k, v in self.options.items()), ""]
        for i, node in enumerate(self.nodes, 1):
            addresses = [f"{SUBNET}.{i}:{HEARTBEAT_PORT}"]
            if self.links == 2:
                addresses.append(f"{SUBNET}.{128 + i}:{HEARTBEAT_PORT}")
            lines += ["[[nodes]]", f'name = "{node}"', f"addresses = {_list(addresses)}",
                      f'rpc = "{SUBNET}.{i}:{RPC_PORT}"',
                      f"fence = {self._fence(node)}", ""]
        lines += ["[[groups]]", 'name = "svc"', ""]
        if self.guard:
            lines += self._process("guard", [sys.executable, str(self.root / "guard.py"),
                                             str(self.root / "lock"), str(self.record)])
        if self.web or self.web_everywhere or self.floating:
            lines += ["[[groups.resources]]", 'name = "vip"', 'type = "ip"',
                      "[groups.resources.params]", f'address = "{FLOATING}/24"',
                      'interface = "eth0"', ""]  # the plugin's defaults otherwise
        if self.web:
            lines += self._process("web", [sys.executable, str(self.root / "web.py"),
                                           FLOATING, str(HTTP_PORT)],
                                   health=f"http://{FLOATING}:{HTTP_PORT}/")
        if self.resources:
            lines.append(self.resources)
        return "\n".join(lines) + "\n"

    def _fence(self, node: str) -> str:
        """The node's fence device, as a TOML inline table: its namespace (and its cable)."""
        port = (f', bridge_port = "{_port(node, 1)}", '
                f'bridge_namespace = "{self.lab.bridge.name}"') if self.unplug_fenced else ""
        return f'{{ kind = "namespace", namespace = "{self.hosts[node].name}"{port} }}'

    @staticmethod
    def _process(name: str, command: list[str], health: str = "") -> list[str]:
        lines = ["[[groups.resources]]", f'name = "{name}"', 'type = "process"',
                 'operations = [{ name = "monitor", interval = "1s", timeout = "5s" }]',
                 "[groups.resources.params]", f"command = {_list(command)}",
                 'stop_grace = "2s"']
        if health:
            lines += ['health = "http"', f'health_http = "{health}"',
                      'health_timeout = "500ms"']
        return [*lines, ""]

    # --- servers ------------------------------------------------------------------

    def state_dir(self, node: str) -> Path:
        """Where the node's server keeps its state (pid files of its resources too)."""
        return self.root / node

    def log_file(self, node: str) -> Path:
        """The node's server log; every start of the server appends to it."""
        return self.root / f"{node}.log"

    def start(self, node: str) -> None:
        """Start the node's cluster server inside its namespace; output to <node>.log."""
        argv = [*self._launcher(node), sys.executable, "-m", "pyha.cli", "server",
                "--config", str(self.config), "--node", node, "--key", str(self.key_file),
                "--state-dir", str(self.state_dir(node)), "--log-level", "DEBUG"]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        if self.web_everywhere:
            self.hosts[node].popen([sys.executable, str(self.root / "web.py"), FLOATING,
                                    str(HTTP_PORT)])
        with self.log_file(node).open("ab") as out:
            self.procs[node] = self.hosts[node].popen(argv, stdout=out,
                                                      stderr=subprocess.STDOUT, cwd=ROOT,
                                                      env=env)

    def _launcher(self, node: str) -> list[str]:
        """Words put before the server's command line inside the node's namespace."""
        return []

    def start_all(self) -> None:
        """Start every node's server at once (a late one may be fenced: see heal)."""
        for node in self.nodes:
            self.start(node)

    def heal(self, timeout: float = 60.0) -> None:
        """Wait until every node runs its server and every node counts all as members.

        A node whose server is gone (the first coordinator fences a node it never heard
        from, as one that started late) is rebooted.
        """
        def whole() -> bool:
            for node in self.nodes:
                if self.procs[node].poll() is not None:
                    self.reboot(node)
            answers = [self.status(node) for node in self.nodes]
            return all(a is not None and a["members"] == self.nodes for a in answers)

        wait_for(whole, timeout, "every node is up and a member")

    def steady(self, timeout: float = 60.0) -> None:
        """Wait until a coordinator's last cycle had nothing to do: every action it sent
        has been answered."""
        def calm() -> bool:
            for node in self.nodes:
                answer = self.status(node)
                if answer and answer["role"] == "coordinator":
                    return ": nothing to do" in str(answer["decision"])
            return False

        wait_for(calm, timeout, "the coordinator has nothing left to do")

    def kill_server(self, node: str) -> None:
        """SIGKILL the node's cluster server only: what it started keeps running."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.procs[node].pid, signal.SIGKILL)
        self.procs[node].wait(timeout=10)

    def crash(self, node: str) -> None:
        """Every process in the node's namespace dies (its server and what that started);
        its network lives on, as the kernel of a host whose programs were killed."""
        kill_namespace(self.hosts[node].name)
        self.procs[node].wait(timeout=10)

    def power_off(self, node: str) -> None:
        """As a power loss: the node's cables go dead, every process in its namespace dies."""
        self.unplug(node)
        self.crash(node)

    def reboot(self, node: str) -> None:
        """Bring a fenced or powered-off node back as a reboot would: nothing running, the
        floating address gone from its interface, cables in, its server started."""
        kill_namespace(self.hosts[node].name)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.procs[node].wait(timeout=10)
        self.hosts[node].ip("addr", "del", f"{FLOATING}/24", "dev", "eth0", check=False)
        self.plug(node)
        self.start(node)

    def is_empty(self, node: str) -> bool:
        """True when no process runs in the node's namespace (it was fenced)."""
        return not namespace_pids(self.hosts[node].name)

    # --- what happened ------------------------------------------------------------

    def log(self, node: str) -> str:
        """The node's server log so far."""
        path = self.log_file(node)
        return path.read_text(errors="replace") if path.exists() else ""

    def running_on(self, resource: str = "guard") -> list[str]:
        """Nodes where `resource` (a process resource) has a live process."""
        where = []
        for node in self.nodes:
            pid = _recorded_pid(self.state_dir(node) / "process" / f"{resource}.pid")
            if pid and _alive(pid):
                where.append(node)
        return where

    def address_on(self) -> list[str]:
        """Nodes whose eth0 holds the floating address."""
        return [n for n in self.nodes
                if f"{FLOATING}/24" in self.hosts[n].addresses()]

    def status(self, node: str, timeout: float = 1.0) -> dict[str, Any] | None:
        """The node's answer to `status`, asked from the client host; None if none came."""
        answer: dict[str, Any] | None = self.client.call(
            "tests.cluster.netns_cluster:rpc_status", str(self.key_file),
            f"{SUBNET}.{self.nodes.index(node) + 1}:{RPC_PORT}", node, timeout,
            timeout=timeout + 10)
        return answer

    def http(self, timeout: float = 1.0) -> str:
        """What the floating address answers from the client host ('' when nothing)."""
        answer: str = self.client.call("tests.cluster.netns_cluster:http_get",
                                       f"http://{FLOATING}:{HTTP_PORT}/", timeout,
                                       timeout=timeout + 10)
        return answer

    def node_of(self, namespace: str) -> str | None:
        """The node whose host is `namespace`."""
        for node, host in self.hosts.items():
            if host.name == namespace:
                return node
        return None

    def served_by(self, answer: str) -> str | None:
        """The node named in an answer of the HTTP service."""
        words = answer.split()
        return self.node_of(words[-1]) if words[:2] == ["served", "by"] else None


# --- called inside namespaces -------------------------------------------------------


def rpc_status(key_file: str, address: str, node: str, timeout: float) -> dict[str, Any] | None:
    """A node's `status` answer through its call address; None when it does not answer."""
    from pyha.errors import PyhaError

    client = RpcClient(load_key(Path(key_file)), "client", parse_endpoint(address), timeout,
                       peer=node)
    try:
        return client.call("status", timeout=timeout)
    except PyhaError:
        return None
    finally:
        client.close()


def http_get(url: str, timeout: float) -> str:
    """The body of a GET of `url`, or '' when it failed."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:  # noqa: S310 - test URL
            body: bytes = reply.read()
            return body.decode("utf-8", "replace").strip()
    except OSError:
        return ""


# --- the poller: every few ms, does the floating address answer, and who? ----------


def _get_once(host: str, port: int, timeout: float) -> str | None:
    """One connect + HTTP/1.0 GET, `timeout` for the whole exchange; the body, or None."""
    import socket

    deadline = time.monotonic() + timeout
    data = b""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            while chunk := sock.recv(4096):  # an HTTP/1.0 server closes when done
                data += chunk
                sock.settimeout(max(0.001, deadline - time.monotonic()))
    except OSError:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or head.split(b" ", 2)[1:2] != [b"200"]:
        return None
    return body.decode("utf-8", "replace").strip() or None


def poll(host: str, port: int, every: float, timeout: float, gap: float) -> None:
    """Start a GET every `every` s; print JSON lines: an answer from a new server or
    after a gap ({"t", "by", "gap"}), and every 0.1 s a tick ({"tick", "last", "by"}).

    Attempts overlap (each has `timeout`), so a lost connection attempt does not hide a
    server that answers meanwhile. Times are CLOCK_MONOTONIC, shared by all namespaces.
    """
    import threading

    lock = threading.Lock()
    state: dict[str, Any] = {"last": 0.0, "by": None}

    def emit(line: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    def attempt() -> None:
        body = _get_once(host, port, timeout)
        now = time.monotonic()
        if body is None:
            return
        with lock:
            since = now - state["last"]
            if body != state["by"] or since > gap:
                emit({"t": now, "by": body, "gap": since})
            if now > state["last"]:
                state["last"], state["by"] = now, body

    pool = ThreadPoolExecutor(max_workers=int(timeout / every) + 8)
    next_tick = time.monotonic()
    while True:
        pool.submit(attempt)
        now = time.monotonic()
        if now >= next_tick:
            with lock:
                emit({"tick": now, "last": state["last"], "by": state["by"]})
            next_tick = now + 0.1
        time.sleep(every)


@dataclass
class Poller:
    """The poller running in the client host, its lines read as they come.

    Invariant: `answers` holds every answer the poller reported, in the order it did (an
    answer from another server than the one before, or one after a gap); `last_tick` is
    its newest tick.
    """

    proc: subprocess.Popen[bytes]
    answers: list[tuple[float, str]] = field(default_factory=list)
    """(monotonic time, body) of every answer the poller reported."""
    last_tick: dict[str, Any] = field(default_factory=dict)
    _buffer: bytes = b""

    @classmethod
    def start(cls, client: Namespace, every: float = 0.005, timeout: float = 0.2,
              gap: float = 0.05) -> Poller:
        """Start polling the floating address from `client`; the lab stops it."""
        argv = [sys.executable, "-m", "tests.cluster.netns_cluster", "poll", FLOATING,
                str(HTTP_PORT), str(every), str(timeout), str(gap)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = client.popen(argv, stdout=subprocess.PIPE, cwd=ROOT, env=env)
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        return cls(proc)

    def read(self) -> None:
        """Take in whatever the poller printed since the last read."""
        assert self.proc.stdout is not None
        with contextlib.suppress(BlockingIOError):
            chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
            self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            line = json.loads(raw)
            if "tick" in line:
                self.last_tick = line
            else:
                self.answers.append((float(line["t"]), str(line["by"])))

    def steady_for(self, seconds: float) -> bool:
        """True when the service answered without a gap for `seconds`, until just now."""
        self.read()
        tick = self.last_tick
        if not tick or tick["tick"] - tick["last"] > 0.05:
            return False
        since = max((t for t, _ in self.answers), default=0.0)
        return tick["tick"] - since >= seconds

    def first_answer(self, after: float, not_by: str) -> tuple[float, str] | None:
        """The first answer after `after` from a server other than `not_by`."""
        self.read()
        found = [(t, by) for t, by in self.answers if t > after and by != not_by]
        return min(found) if found else None

    def current(self) -> str | None:
        """The body of the newest answer, if any."""
        self.read()
        by = self.last_tick.get("by")
        return str(by) if by else None


# --- logs ---------------------------------------------------------------------------

_STAMP = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3}) ")


def log_events(text: str, since: float, patterns: Mapping[str, str]) -> dict[str, float]:
    """When each pattern first matched a line logged at or after `since` (epoch seconds).

    Log lines carry only the time of day, taken to be within 12 hours of `since`.
    """
    found: dict[str, float] = {}
    day = datetime.fromtimestamp(since).date()
    for line in text.splitlines():
        stamp = _STAMP.match(line)
        if not stamp:
            continue
        clock = datetime.strptime(stamp.group(1), "%H:%M:%S.%f").time()
        at = datetime.combine(day, clock).timestamp()
        if at < since - 12 * 3600:
            at += 24 * 3600  # logged after midnight
        if at < since:
            continue
        for name, pattern in patterns.items():
            if name not in found and re.search(pattern, line):
                found[name] = at
    return found


# --- helpers ------------------------------------------------------------------------


def kill_namespace(namespace: str, timeout: float = 10.0) -> int:
    """SIGKILL every process in `namespace` until none is left; how many were killed."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while pids := namespace_pids(namespace):
        if time.monotonic() > deadline:
            raise AssertionError(f"processes {sorted(pids)} outlive SIGKILL in {namespace}")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed |= pids
        time.sleep(0.005)
    return len(killed)


def _port(node: str, link: int) -> str:
    return f"p-{node}" if link == 1 else f"q-{node}"


def _list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def until(check: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """Poll `check` until true or `timeout`; whether it became true."""
    return eventually(check, timeout, step)


if __name__ == "__main__" and sys.argv[1:2] == ["poll"]:
    _host, _port_, _every, _timeout, _gap = sys.argv[2:7]
    poll(_host, int(_port_), float(_every), float(_timeout), float(_gap))
