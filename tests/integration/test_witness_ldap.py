"""The LDAP witness against a real slapd: racing claims, stale swaps, takeovers, slapd down."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pyha.directory.ldap import LdapDirectory
from pyha.directory.witness import ATTRIBUTE, Claim, LdapWitness, WitnessResult
from pyha.model.config import ClusterConfig

ROUNDS = 15


def two_nodes(name: str) -> ClusterConfig:
    return ClusterConfig.from_mapping({
        "cluster": {"name": name, "tiebreaker": "witness"},
        "nodes": [{"name": "n1"}, {"name": "n2"}]})


def create_cluster(server: Any, name: str) -> None:
    with LdapDirectory(server.settings(name)) as directory:
        directory.replace(two_nodes(name))


class Paused(LdapWitness):
    """An LdapWitness that waits at `gate` after its first read of each claim, so two
    contenders both read the same value before either writes."""

    def __init__(self, *args: Any, gate: threading.Barrier, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = gate
        self.first_read = True

    def _read(self) -> tuple[bool, str | None]:
        found = super()._read()
        if self.first_read:
            self.first_read = False
            self.gate.wait()
        return found


def set_claim(server: Any, dn: str, value: str | None) -> None:
    """Put the witness entry in a given state with ldapmodify/ldapdelete (None: no entry)."""
    server.ldap_tool("ldapdelete", dn, check=False)  # 32 when it is absent already
    if value is not None:
        server.ldap_tool("ldapadd", text=f"dn: {dn}\nobjectClass: pyhaNodeStatus\n"
                         f"objectClass: pyhaWitness\ncn: witness\n{ATTRIBUTE}: {value}\n")


def stored(server: Any, dn: str) -> str | None:
    done = server.ldap_tool("ldapsearch", "-LLL", "-b", dn, "-s", "base", ATTRIBUTE,
                            check=False)
    for line in done.stdout.splitlines():
        if line.startswith(f"{ATTRIBUTE}:"):
            return str(line.split(":", 1)[1].strip())
    return None


@pytest.fixture
def witnesses(slapd_server: Any, cluster_name: str) -> Iterator[Callable[..., LdapWitness]]:
    """LdapWitness instances on the session's slapd (each with its own connection)."""
    create_cluster(slapd_server, cluster_name)
    made: list[LdapWitness] = []

    def make(cls: type[LdapWitness] = LdapWitness, **kwargs: Any) -> LdapWitness:
        tls: dict[str, Any] = {}
        if slapd_server.ca_file is not None:  # the witness binds through StartTLS like the rest
            tls = {"starttls": True, "ca_file": slapd_server.ca_file}
        witness = cls(slapd_server.settings(cluster_name, **tls), cluster_name, **kwargs)
        made.append(witness)
        return witness

    try:
        yield make
    finally:
        for witness in made:
            witness.close()


@pytest.mark.parametrize("start", ["absent", "lapsed", "released"])
def test_two_contenders_exactly_one_wins_each_round(
        slapd_server: Any, witnesses: Callable[..., LdapWitness], start: str) -> None:
    now = time.time()
    dn = witnesses().dn
    initial = {"absent": None, "lapsed": Claim("n3", 4, int((now - 1) * 1000)).encode(),
               "released": Claim("n3", 4, 0).encode()}[start]
    gate = threading.Barrier(2, timeout=30)
    one, two = witnesses(Paused, gate=gate), witnesses(Paused, gate=gate)
    assert isinstance(one, Paused) and isinstance(two, Paused)
    for round_ in range(ROUNDS):
        set_claim(slapd_server, dn, initial)
        one.first_read = two.first_read = True
        results: dict[str, WitnessResult] = {}

        def contend(node: str, witness: LdapWitness, term: int = round_,
                    out: dict[str, WitnessResult] = results) -> None:
            out[node] = witness.claim(node, term, 30.0, now)

        threads = [threading.Thread(target=contend, args=("n1", one)),
                   threading.Thread(target=contend, args=("n2", two))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(results) == 2, f"round {round_}: a contender hung"
        winners = [node for node, result in results.items() if result.won]
        assert len(winners) == 1, (round_, results)
        loser = next(result for result in results.values() if not result.won)
        assert loser.holder == winners[0], (round_, loser)
        # both wrote: the server refused the second add, or the second swap of one old value
        expected = "holds the witness" if start == "absent" else "lost the race:"
        assert expected in loser.reason, (round_, loser)
        value = stored(slapd_server, dn)
        assert value is not None and Claim.parse(value).node == winners[0]


def test_a_swap_with_a_stale_old_value_fails(
        slapd_server: Any, witnesses: Callable[..., LdapWitness]) -> None:
    witness = witnesses()
    now = time.time()
    first = witness.claim("n1", 1, 30.0, now)
    assert first.won
    stale = stored(slapd_server, witness.dn)
    assert stale is not None
    assert witness.claim("n1", 1, 30.0, now + 1).won  # renewed: the stored value changed
    fresh = stored(slapd_server, witness.dn)
    assert fresh != stale
    assert not witness._swap(stale, Claim("n2", 9, int((now + 60) * 1000)).encode())
    assert not witness._swap(None, Claim("n2", 9, int((now + 60) * 1000)).encode())
    assert stored(slapd_server, witness.dn) == fresh


def test_takeover_after_the_lease_and_release(
        slapd_server: Any, witnesses: Callable[..., LdapWitness]) -> None:
    one, two = witnesses(), witnesses()
    now = time.time()
    assert one.claim("n1", 3, 5.0, now).won
    early = two.claim("n2", 3, 5.0, now + 4)
    assert not early.won and early.holder == "n1" and early.term == 3
    assert early.reason == "n1 holds the witness (term 3) for 1.0 s more"
    late = two.claim("n2", 3, 5.0, now + 5)
    assert late.won and late.term == 4
    assert late.reason.startswith("took over the witness from n1")
    assert not one.claim("n1", 3, 5.0, now + 6).won
    assert two.release("n2") and not one.release("n1")
    back = one.claim("n1", 3, 5.0, now + 7)
    assert back.won and back.term == 5
    assert back.reason == "claimed the witness n2 released (term 5)"


def test_the_witness_stays_out_of_the_configuration(
        slapd_server: Any, witnesses: Callable[..., LdapWitness], cluster_name: str) -> None:
    witness = witnesses()
    assert witness.claim("n1", 1, 30.0, time.time()).won
    with LdapDirectory(slapd_server.settings(cluster_name)) as directory:
        assert [n.name for n in directory.load().nodes] == ["n1", "n2"]
        grown = ClusterConfig.from_mapping({
            "cluster": {"name": cluster_name, "tiebreaker": "witness"},
            "nodes": [{"name": "n1"}, {"name": "n2"}, {"name": "n3"}]})
        directory.replace(grown)  # rewrites the cluster: the witness entry is not its to drop
        assert [n.name for n in directory.load().nodes] == ["n1", "n2", "n3"]
    assert stored(slapd_server, witness.dn) is not None


def test_an_unreadable_value_loses_and_is_left_alone(
        slapd_server: Any, witnesses: Callable[..., LdapWitness]) -> None:
    witness = witnesses()
    set_claim(slapd_server, witness.dn, "someone=else")
    lost = witness.claim("n1", 1, 30.0, time.time())
    assert not lost.won and "missing node, term, until" in lost.reason
    assert stored(slapd_server, witness.dn) == "someone=else"


def test_no_directory_means_no_tiebreak(new_slapd: Callable[..., Any]) -> None:
    server = new_slapd()
    create_cluster(server, "pair")
    with LdapWitness(server.settings("pair", timeout=2.0), "pair") as witness:
        now = time.time()
        assert witness.claim("n1", 1, 30.0, now).won
        server.instance.stop()
        lost = witness.claim("n1", 1, 30.0, now + 1)
        assert not lost.won and lost.holder is None
        assert lost.reason.startswith(f"witness {witness.dn} at {server.url}: ")
        assert "cannot reach the directory" in lost.reason
        assert server.password not in lost.reason
        assert not witness.release("n1")
        server.instance.start()
        again = witness.claim("n1", 1, 30.0, now + 2)  # a new connection, the claim renewed
        assert again.won and again.reason == "renewed the witness (term 1) for 30 s"


def test_the_witness_uses_one_server_only(slapd_server: Any, cluster_name: str) -> None:
    settings = slapd_server.settings(cluster_name, urls=(slapd_server.url, "ldap://127.0.0.1:9"))
    with LdapWitness(settings, cluster_name) as witness:
        assert witness.settings.urls == (slapd_server.url,)
    with LdapWitness(settings, cluster_name, url="ldap://127.0.0.1:9") as witness:
        assert witness.settings.urls == ("ldap://127.0.0.1:9",)
