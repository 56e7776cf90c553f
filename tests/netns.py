"""Test hosts in network namespaces: a bridge, hosts on veth pairs, Python workers inside them.

A `Lab` is a bridge namespace plus host namespaces, each host joined to the bridge by a
veth pair (`eth0` in the host, a port named after the host in the bridge). Everything a
lab creates (namespaces, and every process it started in them) is removed by
`Lab.close()`, which `netns_lab()` calls even when the test fails:

    from tests.netns import netns_lab

    @pytest.fixture
    def lab() -> Iterator[Lab]:
        with netns_lab("pyhaip") as lab:
            yield lab

    def test_x(lab):
        a = lab.add_host("a", ["198.18.10.1/24"])
        b = lab.add_host("b", ["198.18.10.2/24"])
        b.call("tests.netns:tcp_connect", "198.18.10.1", 22, 1.0)

Names are `<prefix>-<pid>-<n>-<host>`, so concurrent test runs never collide. Code
runs inside a namespace as a command (`Namespace.run`, through `ip netns exec`), as a
long-lived process (`Namespace.popen`), or as a Python function named
"module:function" with JSON arguments and result (`Namespace.call`, `Namespace.worker`).
`plugin_operation` runs one operation of a plugin folder inside a namespace.
Needs root; no default route is ever set, so nothing leaves the lab.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = [
    "Host",
    "Lab",
    "Namespace",
    "NetnsError",
    "PluginReply",
    "Worker",
    "netns_lab",
    "plugin_operation",
    "serve_banner",
    "tcp_connect",
]

ROOT = Path(__file__).resolve().parents[1]
"""The repository, put on the workers' import path so `tests.*` and `pyha` import."""
BRIDGE = "br0"
HOST_IFACE = "eth0"
COMMAND_TIMEOUT = 20.0
"""Seconds any one setup command or worker call may take before the test fails."""

_SEQUENCE = itertools.count(1)


class NetnsError(RuntimeError):
    """A namespace command or a worker call failed; the message holds its stderr."""


# --- namespaces ---------------------------------------------------------------------


class Namespace:
    """A named network namespace; it exists from `create()` until its lab closes."""

    def __init__(self, name: str, lab: Lab) -> None:
        self.name = name
        self._lab = lab

    def create(self) -> None:
        """Add the namespace (replacing a leftover of a crashed run) with loopback up."""
        if (Path("/run/netns") / self.name).exists():
            _ip("netns", "delete", self.name, check=False)
        _ip("netns", "add", self.name)
        self.ip("link", "set", "lo", "up")

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`ip -n <name> args...`; NetnsError on failure when `check`."""
        return _ip("-n", self.name, *args, check=check)

    def run(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside the namespace and wait for it; output captured as text."""
        return _run(["ip", "netns", "exec", self.name, *argv], check=check, timeout=timeout)

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start `argv` inside the namespace; the lab kills it when it closes."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs.setdefault("start_new_session", True)
        proc = subprocess.Popen(["ip", "netns", "exec", self.name, *argv], **kwargs)
        self._lab.track(proc)
        return proc

    def worker(self) -> Worker:
        """A Python process inside the namespace that runs calls until the lab closes."""
        return self._lab.track_worker(Worker(self))

    def call(self, target: str, *args: Any, timeout: float = COMMAND_TIMEOUT) -> Any:
        """Run the function `target` ("module:function") in the namespace's default worker."""
        return self._lab.default_worker(self).call(target, *args, timeout=timeout)

    def sysctl(self, key: str, value: str) -> None:
        """Set a per-namespace sysctl (net.ipv4.conf.eth0.arp_accept, ...)."""
        self.run(["sysctl", "-q", "-w", f"{key}={value}"])

    def addresses(self, iface: str = HOST_IFACE) -> list[str]:
        """The addresses on `iface` as address/prefix, in the kernel's order."""
        shown = json.loads(self.ip("-j", "addr", "show", "dev", iface).stdout)
        return [f"{a['local']}/{a['prefixlen']}" for link in shown for a in link["addr_info"]]

    def mac(self, iface: str = HOST_IFACE) -> str:
        """The link-layer address of `iface`."""
        shown = json.loads(self.ip("-j", "link", "show", "dev", iface).stdout)
        return str(shown[0]["address"])

    def neighbour(self, address: str, iface: str = HOST_IFACE) -> str | None:
        """The link-layer address this namespace has cached for `address`, if any."""
        shown = json.loads(self.ip("-j", "neigh", "show", "dev", iface).stdout)
        for entry in shown:
            if entry.get("dst") == address and "lladdr" in entry:
                return str(entry["lladdr"])
        return None

    def pids(self) -> list[int]:
        """Pids of the processes running in the namespace."""
        shown = _ip("netns", "pids", self.name, check=False).stdout
        return [int(word) for word in shown.split()]

    def delete(self) -> None:
        """Kill whatever still runs inside, then delete the namespace (its veths go too)."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _ip("netns", "delete", self.name, check=False)


class Host(Namespace):
    """A host namespace with `eth0` on the lab's bridge through port `port`."""

    def __init__(self, name: str, lab: Lab, port: str) -> None:
        super().__init__(name, lab)
        self.port = port

    def unplug(self) -> None:
        """Take the bridge-side port down: the host's cable is pulled, its eth0 loses carrier."""
        self._lab.bridge.ip("link", "set", self.port, "down")

    def plug(self) -> None:
        """Bring the bridge-side port back up."""
        self._lab.bridge.ip("link", "set", self.port, "up")


# --- the lab ------------------------------------------------------------------------


class Lab:
    """A bridge namespace and host namespaces joined by veth pairs.

    Invariant: every namespace and process the lab created is listed in it, and
    `close()` removes them all (processes first), whatever state the test left.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = f"{prefix}-{os.getpid()}-{next(_SEQUENCE)}"
        self.hosts: dict[str, Host] = {}
        self._processes: list[subprocess.Popen[bytes]] = []
        self._workers: list[Worker] = []
        self._default_workers: dict[str, Worker] = {}
        self._namespaces: list[Namespace] = []
        self.bridge = Namespace(f"{self.prefix}-br", self)

    def open(self) -> None:
        """Create the bridge namespace and its bridge (no STP, no multicast snooping)."""
        self._add(self.bridge)
        self.bridge.ip("link", "add", BRIDGE, "type", "bridge", "mcast_snooping", "0")
        self.bridge.ip("link", "set", BRIDGE, "up")

    def add_host(self, name: str, addresses: Sequence[str] = (), mac: str | None = None) -> Host:
        """A host namespace on the bridge with `addresses` on its eth0 (IPv6 without DAD)."""
        if len(name) > 12 or not name.isalnum():
            raise ValueError(f"host name {name!r}: letters and digits, at most 12")
        host = Host(f"{self.prefix}-{name}", self, port=f"p-{name}")
        self._add(host)
        self.bridge.ip(
            "link", "add", host.port, "type", "veth",
            "peer", "name", HOST_IFACE, "netns", host.name,
        )  # fmt: skip
        self.bridge.ip("link", "set", host.port, "master", BRIDGE, "up")
        if mac is not None:
            host.ip("link", "set", HOST_IFACE, "address", mac)
        for address in addresses:
            extra = ["nodad"] if ":" in address else []
            host.ip("addr", "add", address, "dev", HOST_IFACE, *extra)
        host.ip("link", "set", HOST_IFACE, "up")
        self.hosts[name] = host
        return host

    def track(self, proc: subprocess.Popen[bytes]) -> None:
        """Kill `proc` (and its process group) when the lab closes."""
        self._processes.append(proc)

    def track_worker(self, worker: Worker) -> Worker:
        """Close `worker` when the lab closes."""
        self._workers.append(worker)
        return worker

    def default_worker(self, ns: Namespace) -> Worker:
        """The worker `Namespace.call` uses, started on first use."""
        if ns.name not in self._default_workers:
            self._default_workers[ns.name] = ns.worker()
        return self._default_workers[ns.name]

    def close(self) -> None:
        """Stop every process the lab started, then delete its namespaces."""
        for worker in reversed(self._workers):
            worker.close()
        for proc in reversed(self._processes):
            _kill(proc)
        for ns in reversed(self._namespaces):
            ns.delete()
        self._namespaces.clear()

    def _add(self, ns: Namespace) -> None:
        self._namespaces.append(ns)
        ns.create()


@contextlib.contextmanager
def netns_lab(prefix: str) -> Iterator[Lab]:
    """A lab whose names start with `prefix`; everything is removed on exit."""
    lab = Lab(prefix)
    try:
        lab.open()
        yield lab
    finally:
        lab.close()


# --- workers: Python functions inside a namespace -----------------------------------


class Worker:
    """A Python process in a namespace answering calls: one JSON line in, one out.

    Invariant: at most one call is in flight; a call that times out kills the worker,
    so a late answer can never be taken for the next call's.
    """

    def __init__(self, ns: Namespace) -> None:
        self.ns = ns
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns.name, sys.executable, "-c", _SERVE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        self._buffer = b""

    def call(self, target: str, *args: Any, timeout: float = COMMAND_TIMEOUT) -> Any:
        """Run `target(*args)` in the worker; its JSON result, or NetnsError with its trace."""
        assert self.proc.stdin is not None
        request = json.dumps({"target": target, "args": list(args)}) + "\n"
        try:
            self.proc.stdin.write(request.encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise NetnsError(f"worker in {self.ns.name} is gone: {self._tail()}") from None
        answer = json.loads(self._read_line(time.monotonic() + timeout, target))
        if "error" in answer:
            raise NetnsError(f"{target} in {self.ns.name}: {answer['error']}\n{answer['trace']}")
        return answer["result"]

    def _read_line(self, deadline: float, target: str) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    _kill(self.proc)
                    raise NetnsError(f"{target} in {self.ns.name}: no answer in time")
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise NetnsError(f"worker in {self.ns.name} died: {self._tail()}")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def close(self) -> None:
        """Kill the worker and release its pipes and stderr file."""
        _kill(self.proc)
        self._stderr.close()

    def _tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")[-2000:]


_SERVE = "import tests.netns as netns; netns.serve()"


def serve() -> None:
    """The worker's loop: read calls on stdin, answer on the original stdout.

    Whatever the called code prints goes to stderr, so it cannot corrupt an answer.
    """
    import importlib
    import traceback

    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    for line in sys.stdin:
        request = json.loads(line)
        module, _, name = request["target"].partition(":")
        try:
            function = getattr(importlib.import_module(module), name)
            answer = {"result": function(*request["args"])}
        except Exception as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
        answers.write(json.dumps(answer) + "\n")


# --- plugin operations inside a namespace -------------------------------------------


@dataclass(frozen=True)
class PluginReply:
    """What one plugin operation answered inside a namespace, with what it logged."""

    code: int
    status: str
    message: str = ""
    log: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The message and every log line, for assertions on what the plugin said."""
        return "\n".join([self.message, *self.log])


def plugin_operation(
    ns: Namespace,
    plugin_dir: Path | str,
    operation: str,
    params: dict[str, Any],
    *,
    timeout: float | None = None,
    state_dir: Path | str = "/run/pyha",
) -> PluginReply:
    """Run `operation` of the plugin in folder `plugin_dir` inside `ns`, as the server would.

    The folder is registered the way bundled plugins are (so registration checks run),
    parameters are checked and coerced by the agent, and "validate" answers 6 with the
    problems as its message. An operation outside the resource interface that the
    plugin has as a method (a computer's `fence`) is called directly. The plugin
    instance lives on in the namespace's worker.
    """
    reply = ns.call(
        "tests.netns:run_plugin_operation",
        str(plugin_dir),
        operation,
        params,
        timeout,
        str(state_dir),
        timeout=(timeout or 60.0) + 10.0,
    )
    return PluginReply(**reply)


_AGENTS: dict[str, Any] = {}


def run_plugin_operation(
    plugin_dir: str, operation: str, params: dict[str, Any], timeout: float | None, state_dir: str
) -> dict[str, Any]:
    """The worker side of `plugin_operation` (runs inside the namespace)."""
    from pyha.resources.spi import OcfCode, OperationContext

    agent = _agent(plugin_dir)
    coerced, problems = agent.validate(params)
    if operation == "validate" or problems:
        code = OcfCode.ERR_CONFIGURED if problems else OcfCode.SUCCESS
        return {"code": int(code), "status": "done", "message": "; ".join(problems), "log": []}
    lines: list[str] = []
    log = logging.getLogger(f"pyha.test.netns.{agent.short_name}")
    handler = _ListHandler(lines)
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        ctx = OperationContext(
            resource="r1",
            operation=operation,
            params=coerced,
            deadline=time.monotonic() + (timeout or agent.meta.timeout(operation)),
            state_dir=Path(state_dir),
            log=log,
        )
        outcome = _invoke(agent, ctx)
    finally:
        log.removeHandler(handler)
    return {
        "code": int(outcome.code),
        "status": outcome.status.value,
        "message": outcome.message,
        "log": lines,
    }


def _invoke(agent: Any, ctx: Any) -> Any:
    """The agent's outcome, or for a plugin's own extra method what that method returned."""
    from pyha.resources.spi import Outcome

    extra = getattr(agent.plugin, ctx.operation, None)
    if agent.supports(ctx.operation) or not callable(extra):
        return agent.invoke(ctx)
    return Outcome(code=int(extra(ctx)))


def _agent(plugin_dir: str) -> Any:
    if plugin_dir not in _AGENTS:
        from pyha.resources.registry import Registry

        registry = Registry()
        registry.load_folder(Path(plugin_dir), "bundled", default_provider="pyha")
        if registry.errors:
            raise NetnsError("; ".join(str(e) for e in registry.errors))
        _AGENTS[plugin_dir] = registry.agents()[0]
    return _AGENTS[plugin_dir]


class _ListHandler(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")


# --- small network helpers (called inside namespaces) -------------------------------


def tcp_connect(host: str, port: int, timeout: float) -> str:
    """'ok <first line>' when a connection to host:port is accepted, else the errno name."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            try:
                banner = sock.recv(256).decode("utf-8", "replace").strip()
            except OSError:
                banner = ""
            return f"ok {banner}".strip()
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))


TCP_BANNER_SERVER = """
import socket, sys
host, port, banner = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode() + b"\\n"
family = socket.AF_INET6 if ":" in host else socket.AF_INET
server = socket.socket(family, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND: bind before the address exists
server.bind((host, port))
server.listen(16)
print("listening", flush=True)
while True:
    conn, _ = server.accept()
    with conn:
        conn.sendall(banner)
"""
"""A TCP server that greets every connection with a banner; argv: host port banner.

It binds with IP_FREEBIND, so it can listen on an address that is not there yet
(the way a service waits for a floating address). Start it with `serve_banner`.
"""


def serve_banner(ns: Namespace, host: str, port: int, banner: str) -> subprocess.Popen[bytes]:
    """Start the banner server in `ns` and wait until it listens; the lab stops it."""
    proc = ns.popen(
        [sys.executable, "-c", TCP_BANNER_SERVER, host, str(port), banner],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(COMMAND_TIMEOUT) or b"listening" not in proc.stdout.readline():
            raise NetnsError(f"banner server on {host}:{port} in {ns.name} did not start")
    return proc


# --- plumbing -----------------------------------------------------------------------


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run(["ip", *args], check=check, timeout=COMMAND_TIMEOUT)


def _run(argv: Sequence[str], *, check: bool, timeout: float) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: exit {result.returncode}: {result.stderr.strip()}")
    return result


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group `proc` leads (they all start a new session), and reap it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
