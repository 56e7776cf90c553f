"""A vote round over real calls: it stops waiting for a peer declared down, not for a live one.

After a split vote (two candidates stand at once and refuse each other), a round that
waited for the dead node's answer until the call timeout kept both candidates stuck for
that long and then made them retry at the same moment, splitting the vote again.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pyha.cluster.node import ClusterNode
from pyha.membership import election as el
from pyha.membership.keys import generate_key, load_key
from pyha.membership.rpc import RpcServer
from pyha.model.config import ClusterConfig
from pyha.ports import free_port
from pyha.resources.registry import Registry
from pyha.testing.clock import FakeClock

CALL_TIMEOUT = 30.0
"""Long, so a round that waits for a silent peer's call cannot end in the test's time."""


class Cluster:
    """n1 under test in this process; n2 answers votes through a real call server; n3's
    address accepts connections but never answers (a paused or dead server)."""

    def __init__(self, root: Path, n2_answer: Any) -> None:
        generate_key(root / "key")
        self.key = load_key(root / "key")
        rpc = {n: free_port() for n in ("n1", "n2", "n3")}
        self.silent = socket.create_server(("127.0.0.1", rpc["n3"]))
        self.n2 = RpcServer(self.key, "n2", ("127.0.0.1", rpc["n2"]), {"vote": n2_answer})
        self.n2.start()
        config = ClusterConfig.from_mapping({
            "cluster": {"name": "votes", "call_timeout": CALL_TIMEOUT,
                        "heartbeat_interval": 0.05, "state_dir": str(root / "state")},
            "nodes": [{"name": n, "addresses": [f"127.0.0.1:{free_port()}"],
                       "rpc": f"127.0.0.1:{rpc[n]}"} for n in ("n1", "n2", "n3")],
        })
        self.clock = FakeClock()
        self.node = ClusterNode(config, Registry(), node="n1", key=self.key,
                                state_dir=root / "n1", clock=self.clock)
        self.node.detector.heard("n2", 0, self.clock.now(), 1)  # alive: the clock stands
        # n1 stands for term 1 and voted for itself, as after a won pre-vote.
        self.node.election = replace(self.node.election, term=1, voted_for="n1",
                                     role=el.Role.CANDIDATE, votes=frozenset({"n1"}))

    def vote_round(self) -> list[el.VoteRequest | None]:
        """Run one real vote round in a thread; its result, or [] if it is still waiting
        after 10 s (the silent peer's call would take CALL_TIMEOUT)."""
        result: list[el.VoteRequest | None] = []
        thread = threading.Thread(target=lambda: result.append(
            self.node._round(el.VoteRequest(1, "n1", 0))), daemon=True)
        thread.start()
        thread.join(timeout=10)
        return result

    def close(self) -> None:
        self.n2.close()
        self.silent.close()
        self.node.endpoint.close()
        self.node.rpc.close()
        for client in self.node.peers.values():
            client.close()


def _refuse(params: dict[str, Any], caller: str) -> dict[str, Any]:
    return {"term": params["term"], "granted": False, "reason": "already voted for n2"}


def _grant_late(params: dict[str, Any], caller: str) -> dict[str, Any]:
    time.sleep(0.5)  # longer than several heartbeat intervals
    return {"term": params["term"], "granted": True, "reason": ""}


@pytest.fixture
def refused(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, _refuse)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def granted_late(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, _grant_late)
    try:
        yield cluster
    finally:
        cluster.close()


def test_a_split_vote_round_ends_without_waiting_for_a_node_declared_down(
        refused: Cluster) -> None:
    # n2 refused (it stands too); n3 was never heard, so the detector has it down.
    assert refused.vote_round() == [None], "the round still waits for n3's answer"
    assert refused.node.election.role is el.Role.CANDIDATE
    assert refused.node.election.votes == frozenset({"n1"})


def test_a_round_still_waits_for_a_live_peer_that_answers_late(granted_late: Cluster) -> None:
    assert granted_late.vote_round() == [None]
    assert granted_late.node.election.role is el.Role.COORDINATOR
    assert granted_late.node.election.votes == frozenset({"n1", "n2"})
