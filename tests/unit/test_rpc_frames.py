"""Node-to-node call frames: the handshake, sealed frames, and what they refuse."""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest

from pyha.membership.rpc import (
    MAX_BODY,
    BadFrame,
    Session,
    client_hello,
    client_proof,
    max_payload,
    read_payload,
    server_challenge,
    server_verify,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
CLIENT_NONCE = b"c" * 32
SERVER_NONCE = b"s" * 32


def handshake(client_key: bytes = KEY, server_key: bytes = KEY,
              client_nonce: bytes = CLIENT_NONCE,
              server_nonce: bytes = SERVER_NONCE) -> tuple[Session, Session]:
    """Run the three handshake messages in memory; (client session, server session)."""
    hello = client_hello("n1", client_nonce)
    challenge, pending = server_challenge(server_key, "n2", hello, server_nonce)
    proof, client, server_name = client_proof(client_key, "n1", client_nonce, challenge, "n2")
    assert server_name == "n2"
    return client, server_verify(server_key, pending, proof)


def payload(frame: bytes) -> bytes:
    """A frame without its length prefix, checking the prefix on the way."""
    (length,) = struct.unpack("!I", frame[:4])
    assert length == len(frame) - 4
    return frame[4:]


class FakeSocket:
    """Hands out fixed bytes to read_payload, a few at a time."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def recv(self, size: int) -> bytes:
        chunk, self.data = self.data[:min(size, 3)], self.data[min(size, 3):]
        return chunk

    def settimeout(self, value: float | None) -> None:
        pass


def test_a_handshake_gives_two_sessions_that_talk_both_ways() -> None:
    client, server = handshake()
    request = server.open(payload(client.seal({"method": "ping", "params": {"n": 1}})))
    assert request == {"method": "ping", "params": {"n": 1}}
    assert client.open(payload(server.seal({"result": {"ok": True}}))) == {"result": {"ok": True}}
    assert (client.sent, client.received, server.sent, server.received) == (1, 1, 1, 1)


def test_a_server_without_the_key_is_refused_by_the_client() -> None:
    with pytest.raises(BadFrame) as caught:
        handshake(server_key=OTHER_KEY)
    assert caught.value.reason == "auth"


def test_a_client_without_the_key_is_refused_by_the_server() -> None:
    hello = client_hello("intruder", CLIENT_NONCE)
    challenge, pending = server_challenge(KEY, "n2", hello, SERVER_NONCE)
    assert challenge["proof"]  # the server proves itself first; that gives nothing away
    with pytest.raises(BadFrame) as caught:
        server_verify(KEY, pending, {"proof": "00" * 32})
    assert caught.value.reason == "auth"


def test_a_proof_from_another_connection_is_refused() -> None:
    hello = client_hello("n1", CLIENT_NONCE)
    challenge, _ = server_challenge(KEY, "n2", hello, SERVER_NONCE)
    recorded, _, _ = client_proof(KEY, "n1", CLIENT_NONCE, challenge)
    _, pending = server_challenge(KEY, "n2", hello, b"t" * 32)  # a new server nonce
    with pytest.raises(BadFrame, match="auth"):
        server_verify(KEY, pending, recorded)


def test_the_server_proof_does_not_pass_as_a_client_proof() -> None:
    hello = client_hello("n1", CLIENT_NONCE)
    challenge, pending = server_challenge(KEY, "n2", hello, SERVER_NONCE)
    with pytest.raises(BadFrame, match="auth"):
        server_verify(KEY, pending, {"proof": challenge["proof"]})


def test_another_node_at_the_address_is_refused() -> None:
    hello = client_hello("n1", CLIENT_NONCE)
    challenge, _ = server_challenge(KEY, "n3", hello, SERVER_NONCE)
    with pytest.raises(BadFrame) as caught:
        client_proof(KEY, "n1", CLIENT_NONCE, challenge, expect="n2")
    assert caught.value.reason == "wrong-node"


def test_a_busy_server_refusal_reaches_the_client() -> None:
    with pytest.raises(BadFrame, match="n2 is busy"):
        client_proof(KEY, "n1", CLIENT_NONCE, {"refused": "n2 is busy"})


@pytest.mark.parametrize(
    ("hello", "reason"),
    [
        ({"protocol": "pyha-rpc/0", "node": "n1", "nonce": "00" * 32}, "protocol"),
        ({"protocol": "pyha-rpc/1", "node": "n1"}, "malformed"),
        ({"protocol": "pyha-rpc/1", "node": "n1", "nonce": "zz" * 32}, "malformed"),
        ({"protocol": "pyha-rpc/1", "node": "n1", "nonce": "00" * 8}, "malformed"),
        ({"protocol": "pyha-rpc/1", "node": "", "nonce": "00" * 32}, "malformed"),
        ({"protocol": "pyha-rpc/1", "node": 7, "nonce": "00" * 32}, "malformed"),
    ],
)
def test_a_malformed_hello_is_refused(hello: dict[str, object], reason: str) -> None:
    with pytest.raises(BadFrame) as caught:
        server_challenge(KEY, "n2", hello, SERVER_NONCE)
    assert caught.value.reason == reason


def test_a_tampered_frame_is_refused() -> None:
    client, server = handshake()
    frame = bytearray(payload(client.seal({"method": "stop", "params": {"group": "web"}})))
    at = frame.index(b"web")
    frame[at:at + 3] = b"db_"
    with pytest.raises(BadFrame) as caught:
        server.open(bytes(frame))
    assert caught.value.reason == "forged"


def test_a_frame_sealed_under_another_key_is_refused() -> None:
    client, _ = handshake()
    _, other_server = handshake(client_key=OTHER_KEY, server_key=OTHER_KEY)
    with pytest.raises(BadFrame, match="forged"):
        other_server.open(payload(client.seal({"method": "x", "params": {}})))


def test_a_replayed_frame_is_refused() -> None:
    client, server = handshake()
    frame = payload(client.seal({"method": "start", "params": {}}))
    server.open(frame)
    with pytest.raises(BadFrame) as caught:
        server.open(frame)
    assert caught.value.reason == "replayed"


def test_a_frame_replayed_on_another_connection_is_refused() -> None:
    client, server = handshake()
    frame = payload(client.seal({"method": "start", "params": {}}))
    server.open(frame)
    _, second = handshake(client_nonce=b"d" * 32, server_nonce=b"t" * 32)
    with pytest.raises(BadFrame, match="forged"):
        second.open(frame)


def test_a_frame_sent_back_to_its_sender_is_refused() -> None:
    client, _ = handshake()
    with pytest.raises(BadFrame, match="forged"):
        client.open(payload(client.seal({"result": {}})))


def test_a_skipped_frame_is_noticed() -> None:
    client, server = handshake()
    client.seal({"method": "lost", "params": {}})
    with pytest.raises(BadFrame) as caught:
        server.open(payload(client.seal({"method": "next", "params": {}})))
    assert caught.value.reason == "sequence"


def test_short_and_non_object_frames_are_refused() -> None:
    _, server = handshake()
    with pytest.raises(BadFrame, match="too short"):
        server.open(b"\0" * 39)
    # A body that verifies but is not an object needs the key: build one by the
    # documented layout (direction, both nonces, sequence, body) to reach the parser.
    body, seq = b"[1,2]", struct.pack("!Q", 1)
    tag = hmac.new(KEY, b"c>s" + CLIENT_NONCE + SERVER_NONCE + seq + body,
                   hashlib.sha256).digest()
    with pytest.raises(BadFrame, match="not a JSON object"):
        server.open(seq + body + tag)


def test_bodies_that_are_not_json_or_too_large_are_not_sent() -> None:
    client, _ = handshake()
    with pytest.raises(ValueError, match="not JSON"):
        client.seal({"x": object()})
    with pytest.raises(ValueError, match="not JSON"):
        client.seal({"x": float("nan")})
    with pytest.raises(ValueError, match="exceeds"):
        client.seal({"x": "a" * MAX_BODY})
    assert client.sent == 0  # nothing went out, the sequence did not move


def test_an_oversize_frame_is_refused_before_it_is_read() -> None:
    announced = struct.pack("!I", max_payload() + 1) + b"x" * 10
    with pytest.raises(BadFrame) as caught:
        read_payload(FakeSocket(announced), max_payload())  # type: ignore[arg-type]
    assert caught.value.reason == "oversize"


def test_frames_are_read_whole_from_a_stream() -> None:
    client, server = handshake()
    stream = client.seal({"method": "a", "params": {}}) + client.seal({"method": "b",
                                                                       "params": {}})
    sock = FakeSocket(stream)
    first = server.open(read_payload(sock, max_payload()))  # type: ignore[arg-type]
    second = server.open(read_payload(sock, max_payload()))  # type: ignore[arg-type]
    assert (first["method"], second["method"]) == ("a", "b")
    with pytest.raises(BadFrame, match="closed"):
        read_payload(sock, max_payload())  # type: ignore[arg-type]
