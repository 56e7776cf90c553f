"""Node-to-node calls over real sockets on 127.0.0.1: calls, failures, timeouts, pauses."""

from __future__ import annotations

import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyha.membership.rpc import (
    PeerError,
    PeerTimeout,
    PeerUnreachable,
    RpcClient,
    RpcServer,
    client_hello,
    encode_plain,
    max_payload,
)
from pyha.testing.waiting import eventually

KEY = bytes(range(32))
ROOT = Path(__file__).resolve().parents[2]

PEER_PROGRAM = """
import sys
from pyha.membership.rpc import RpcServer
key = bytes.fromhex(sys.stdin.readline().strip())
server = RpcServer(key, "paused", ("127.0.0.1", 0),
                   {"echo": lambda params, caller: {"params": params, "caller": caller}})
server.start()
print(server.address[1], flush=True)
sys.stdin.readline()  # runs until the test closes our stdin
server.close()
"""


class Calls:
    """Handlers for the test server, counting what ran."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.release = threading.Event()
        self.lock = threading.Lock()

    def handlers(self) -> dict[str, Callable[[dict[str, Any], str], dict[str, Any]]]:
        return {"echo": self.echo, "fail": self.fail, "slow": self.slow, "bad": self.bad}

    def echo(self, params: dict[str, Any], caller: str) -> dict[str, Any]:
        with self.lock:
            self.ran.append("echo")
        return {"params": params, "caller": caller}

    def fail(self, params: dict[str, Any], caller: str) -> dict[str, Any]:
        raise KeyError(params.get("missing", "group"))

    def slow(self, params: dict[str, Any], caller: str) -> dict[str, Any]:
        self.release.wait(10)
        return {"late": True}

    def bad(self, params: dict[str, Any], caller: str) -> dict[str, Any]:
        return {"not json": object()}


@pytest.fixture
def calls() -> Iterator[Calls]:
    calls = Calls()
    yield calls
    calls.release.set()


@pytest.fixture
def server(calls: Calls) -> Iterator[RpcServer]:
    server = RpcServer(KEY, "n2", ("127.0.0.1", 0), calls.handlers())
    server.start()
    yield server
    calls.release.set()
    server.close()


@pytest.fixture
def client(server: RpcServer) -> Iterator[RpcClient]:
    client = RpcClient(KEY, "n1", server.address, timeout=5.0, peer="n2")
    yield client
    client.close()


wait_for = eventually


def test_a_call_returns_the_handler_result_and_names_the_caller(client: RpcClient) -> None:
    assert client.call("echo", {"group": "web", "n": [1, 2]}) == {
        "params": {"group": "web", "n": [1, 2]}, "caller": "n1"}


def test_calls_reuse_one_connection(client: RpcClient, server: RpcServer) -> None:
    for n in range(5):
        assert client.call("echo", {"n": n})["params"] == {"n": n}
    assert server.connections() == 1


def test_concurrent_calls_from_threads_all_get_their_own_answer(
        client: RpcClient, calls: Calls) -> None:
    results: dict[int, Any] = {}

    def work(worker: int) -> None:
        for n in range(10):
            reply = client.call("echo", {"worker": worker, "n": n})
            results[worker * 100 + n] = reply["params"]

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {w * 100 + n: {"worker": w, "n": n} for w in range(6) for n in range(10)}
    assert len(calls.ran) == 60


def test_a_handler_that_raises_answers_with_its_error(client: RpcClient) -> None:
    with pytest.raises(PeerError) as caught:
        client.call("fail", {"missing": "db"})
    assert caught.value.remote_type == "KeyError"
    assert "'db'" in str(caught.value)
    assert client.call("echo", {})["caller"] == "n1"  # the server goes on


def test_an_unknown_method_and_a_non_json_result_are_error_replies(client: RpcClient) -> None:
    with pytest.raises(PeerError) as unknown:
        client.call("reboot", {})
    assert unknown.value.remote_type == "UnknownMethod"
    with pytest.raises(PeerError) as bad:
        client.call("bad", {})
    assert bad.value.remote_type == "BadReply"
    assert client.call("echo", {"x": 1})["params"] == {"x": 1}


def test_a_slow_handler_times_out_and_the_next_call_works(
        client: RpcClient, calls: Calls) -> None:
    with pytest.raises(PeerTimeout) as caught:
        client.call("slow", {}, timeout=0.3)
    assert caught.value.request_sent
    assert client.call("echo", {"after": "timeout"}, timeout=5)["params"] == {"after": "timeout"}
    calls.release.set()


def test_a_client_with_another_key_is_refused_and_nothing_runs(
        server: RpcServer, calls: Calls) -> None:
    intruder = RpcClient(bytes(32), "n9", server.address, timeout=2)
    with pytest.raises(PeerUnreachable, match="did not prove the cluster key") as caught:
        intruder.call("echo", {})
    assert not caught.value.request_sent
    intruder.close()
    assert calls.ran == []


def test_the_server_drops_a_connection_with_a_bad_proof(server: RpcServer) -> None:
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(encode_plain(client_hello("n9", b"x" * 32)))
        read_frame(sock)  # the challenge
        sock.sendall(encode_plain({"proof": "00" * 32}))
        assert sock.recv(100) == b""  # closed without a word
    assert wait_for(lambda: server.refused["auth"] == 1)


def test_the_server_drops_an_oversize_frame(server: RpcServer) -> None:
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(struct.pack("!I", max_payload() + 1))
        assert sock.recv(100) == b""
    assert wait_for(lambda: server.refused["oversize"] == 1)


def test_another_node_at_the_address_is_refused(server: RpcServer) -> None:
    wrong = RpcClient(KEY, "n1", server.address, timeout=2, peer="n3")
    with pytest.raises(PeerUnreachable, match="expected node 'n3'"):
        wrong.call("echo", {})
    wrong.close()


def test_a_closed_port_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = probe.getsockname()
    client = RpcClient(KEY, "n1", address, timeout=2)
    with pytest.raises(PeerUnreachable, match="connection refused"):
        client.call("echo", {})


def test_connections_past_the_limit_are_refused_as_busy(calls: Calls) -> None:
    server = RpcServer(KEY, "n2", ("127.0.0.1", 0), calls.handlers(), max_connections=1)
    server.start()
    first = RpcClient(KEY, "n1", server.address, timeout=5)
    second = RpcClient(KEY, "n3", server.address, timeout=5)
    try:
        first.call("echo", {})
        with pytest.raises(PeerUnreachable, match="n2 is busy"):
            second.call("echo", {})
        first.close()
        assert wait_for(lambda: server.connections() == 0)
        assert second.call("echo", {})["caller"] == "n3"
    finally:
        first.close()
        second.close()
        server.close()


def test_close_stops_everything_and_a_restarted_server_is_reached_again(
        calls: Calls) -> None:
    server = RpcServer(KEY, "n2", ("127.0.0.1", 0), calls.handlers())
    server.start()
    address = server.address
    client = RpcClient(KEY, "n1", address, timeout=5)
    try:
        client.call("echo", {})
        server.close()
        assert server.connections() == 0
        assert not [t for t in threading.enumerate() if t.name.startswith("pyha rpc n2")]
        with pytest.raises(PeerUnreachable):
            client.call("echo", {}, timeout=2)
        server = RpcServer(KEY, "n2", address, calls.handlers())
        server.start()
        assert client.call("echo", {"again": True})["params"] == {"again": True}
    finally:
        client.close()
        server.close()


def test_close_returns_while_a_handler_is_stuck_and_names_it(
        calls: Calls, caplog: pytest.LogCaptureFixture) -> None:
    server = RpcServer(KEY, "n2", ("127.0.0.1", 0), calls.handlers(), close_timeout=0.2)
    server.start()
    client = RpcClient(KEY, "n1", server.address, timeout=5)
    try:
        with pytest.raises(PeerTimeout):
            client.call("slow", {}, timeout=0.2)
        server.close()
        assert "closed with handlers still running: pyha rpc n2 from" in caplog.text
        with pytest.raises(PeerUnreachable, match="connection refused"):
            client.call("echo", {}, timeout=2)
    finally:
        calls.release.set()
        client.close()
        server.close()
    assert wait_for(lambda: server.connections() == 0)


# --- a peer in another process, paused with SIGSTOP -------------------------------------


@pytest.fixture
def paused_peer() -> Iterator[tuple[subprocess.Popen[str], int]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", PEER_PROGRAM], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(KEY.hex() + "\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, "the peer process did not start"
        yield proc, int(proc.stdout.readline())
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.communicate(timeout=10)


def test_a_paused_peer_times_out_and_answers_again_after_sigcont(
        paused_peer: tuple[subprocess.Popen[str], int]) -> None:
    proc, port = paused_peer
    client = RpcClient(KEY, "n1", ("127.0.0.1", port), timeout=5, peer="paused")
    try:
        assert client.call("echo", {"n": 1})["caller"] == "n1"
        os.kill(proc.pid, signal.SIGSTOP)
        assert wait_for(lambda: stopped(proc.pid)), "SIGSTOP did not take"
        with pytest.raises(PeerTimeout) as caught:
            client.call("echo", {"n": 2}, timeout=0.5)
        assert caught.value.request_sent
        with pytest.raises(PeerTimeout):  # a new connection: TCP accepts, nobody answers
            client.call("echo", {"n": 3}, timeout=0.5)
        os.kill(proc.pid, signal.SIGCONT)
        assert client.call("echo", {"n": 4}, timeout=10)["params"] == {"n": 4}
    finally:
        client.close()


def stopped(pid: int) -> bool:
    """True once every thread of `pid` is stopped (a signal takes effect asynchronously)."""
    states = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with open(task / "stat") as stat:
            states.append(stat.read().rsplit(")", 1)[1].split()[0])
    return all(state in "Tt" for state in states)


def read_frame(sock: socket.socket) -> bytes:
    (length,) = struct.unpack("!I", recv_exact(sock, 4))
    return recv_exact(sock, length)


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "closed early"
        data += chunk
    return data
