"""The ip plugin on test hosts in network namespaces: host a runs it, host b is a client."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyha.testing.waiting import eventually
from tests.netns import Host, Lab, PluginReply, netns_lab, plugin_operation, serve_banner

pytestmark = pytest.mark.root

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugins" / "ip"
A4, B4 = "198.18.10.1/24", "198.18.10.2/24"
A6, B6 = "fd00:198:18:10::1/64", "fd00:198:18:10::2/64"
FLOATING4 = "198.18.10.50"
FLOATING6 = "fd00:198:18:10::50"
PORT = 8050
ELSEWHERE = "02:00:00:00:00:99"
"""A link-layer address no host has: where clients believed the address lived before."""

needs_arping = pytest.mark.skipif(
    shutil.which("arping") is None, reason="arping is not installed (Debian iputils-arping)"
)


@pytest.fixture
def lab() -> Iterator[Lab]:
    with netns_lab("pyhaip") as lab:
        lab.add_host("a", [A4, A6])
        lab.add_host("b", [B4, B6])
        yield lab


def op(host: Host, operation: str, **params: Any) -> PluginReply:
    """Run an ip plugin operation inside `host`."""
    return plugin_operation(host, PLUGIN_DIR, operation, params)


def reach(client: Host, address: str, timeout: float = 5.0) -> str:
    """'ok <banner>' when `client` connects to the banner server on `address`."""
    return str(client.call("tests.netns:tcp_connect", address, PORT, timeout))


def unreachable(client: Host, address: str) -> bool:
    """True when a connection from `client` to `address` does not reach the banner server."""
    return not reach(client, address, timeout=1.0).startswith("ok")


def believe_elsewhere(client: Host, address: str) -> None:
    """Make `client` cache `address` at a stale, wrong link-layer address (an old owner)."""
    client.ip("neigh", "replace", address, "lladdr", ELSEWHERE, "dev", "eth0", "nud", "stale")


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def address_info(host: Host, address: str, iface: str = "eth0") -> dict[str, Any] | None:
    shown = json.loads(host.ip("-j", "addr", "show", "dev", iface).stdout)
    return next((a for a in shown[0]["addr_info"] if a["local"] == address), None)


def test_ipv4_start_moves_the_address_here_and_tells_the_neighbours(lab: Lab) -> None:
    a, b = lab.hosts["a"], lab.hosts["b"]
    params = {"address": f"{FLOATING4}/24", "arp_sender": "builtin"}
    serve_banner(a, FLOATING4, PORT, "on-a")
    assert op(a, "monitor", **params).code == 7
    assert unreachable(b, FLOATING4)
    believe_elsewhere(b, FLOATING4)

    started = op(a, "start", **params)
    assert started.code == 0, started.text
    assert "announced 198.18.10.50 on eth0 (and 2 more, 0.2s apart)" in started.text
    # b learned the new owner from the first gratuitous ARP alone: it sent nothing yet.
    assert b.neighbour(FLOATING4) == a.mac()
    # The two others follow after start returned: b forgets, and learns again.
    believe_elsewhere(b, FLOATING4)
    assert eventually(lambda: b.neighbour(FLOATING4) == a.mac(), seconds=2.0)
    assert reach(b, FLOATING4) == "ok on-a"
    assert op(a, "monitor", **params).code == 0
    info = address_info(a, FLOATING4)
    assert info is not None
    assert (info["prefixlen"], info["broadcast"]) == (24, "198.18.10.255")
    assert op(a, "start", **params).code == 0  # already there
    assert a.addresses().count(f"{FLOATING4}/24") == 1

    assert op(a, "stop", **params).code == 0
    assert address_info(a, FLOATING4) is None
    assert unreachable(b, FLOATING4)
    assert op(a, "monitor", **params).code == 7
    assert op(a, "stop", **params).code == 0  # already gone


def test_a_stop_cancels_the_announcements_still_due(lab: Lab) -> None:
    a, b = lab.hosts["a"], lab.hosts["b"]
    params = {"address": f"{FLOATING4}/24", "announce_count": 20}
    believe_elsewhere(b, FLOATING4)
    assert op(a, "start", **params).code == 0
    assert b.neighbour(FLOATING4) == a.mac()
    assert op(a, "stop", **params).code == 0
    believe_elsewhere(b, FLOATING4)
    time.sleep(0.6)  # three announcement intervals: none may come any more
    assert b.neighbour(FLOATING4) == ELSEWHERE


def test_no_announcement_leaves_the_neighbours_stale(lab: Lab) -> None:
    a, b = lab.hosts["a"], lab.hosts["b"]
    believe_elsewhere(b, FLOATING4)
    assert op(a, "start", address=f"{FLOATING4}/24", announce_count=0).code == 0
    assert b.neighbour(FLOATING4) == ELSEWHERE
    assert op(a, "stop", address=f"{FLOATING4}/24").code == 0


@needs_arping
def test_ipv4_announced_by_arping(lab: Lab) -> None:
    a, b = lab.hosts["a"], lab.hosts["b"]
    believe_elsewhere(b, FLOATING4)
    params = {"address": f"{FLOATING4}/24", "arp_sender": "arping", "announce_count": 3}
    begun = time.monotonic()
    started = op(a, "start", **params)
    assert started.code == 0, started.text
    assert "announcing 198.18.10.50 on eth0 with arping (3, a second apart)" in started.text
    assert time.monotonic() - begun < 2.0  # arping runs on in the background
    assert eventually(lambda: b.neighbour(FLOATING4) == a.mac(), seconds=2.0)
    assert op(a, "stop", **params).code == 0
    assert eventually(lambda: all("arping" not in _command(p) for p in a.pids()), seconds=2.0)


def test_address_added_by_someone_else_counts_as_started(lab: Lab) -> None:
    a = lab.hosts["a"]
    a.ip("addr", "add", f"{FLOATING4}/24", "dev", "eth0")
    params = {"address": f"{FLOATING4}/24", "announce_count": 0}
    assert op(a, "monitor", **params).code == 0
    assert op(a, "start", **params).code == 0
    assert a.addresses().count(f"{FLOATING4}/24") == 1
    # The same IP with another prefix length is another address: not ours.
    assert op(a, "monitor", address=f"{FLOATING4}/25").code == 7


def test_label_and_broadcast(lab: Lab) -> None:
    a = lab.hosts["a"]
    params = {
        "address": f"{FLOATING4}/24",
        "interface": "eth0",
        "label": "eth0:web",
        "broadcast": "198.18.10.127",
        "announce_count": 0,
    }
    assert op(a, "start", **params).code == 0
    info = address_info(a, FLOATING4)
    assert info is not None
    assert (info["label"], info["broadcast"]) == ("eth0:web", "198.18.10.127")
    assert op(a, "stop", **params).code == 0
    # With the interface chosen by subnet, the label is checked against the one chosen.
    mislabelled = op(a, "start", address=f"{FLOATING4}/24", label="eth1:web")
    assert mislabelled.code == 5
    assert "label eth1:web must begin with the interface name eth0" in mislabelled.text
    assert address_info(a, FLOATING4) is None


def links_both_ways() -> tuple[bool, str, str]:
    """Called inside a host: whether the links netlink gives the plugin are those
    `ip -j addr show` prints (the reference), and both as text."""
    import subprocess
    import sys

    sys.path.insert(0, str(PLUGIN_DIR.parent.parent))
    from plugins.ip.links import parse_links
    from plugins.ip.netlink import read_links

    shown = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True,
                           check=True).stdout
    netlink, reference = read_links(2.0), parse_links(shown)
    return netlink == reference, repr(netlink), repr(reference)


def test_netlink_reads_the_links_as_ip_shows_them(lab: Lab) -> None:
    a = lab.hosts["a"]
    a.ip("addr", "add", "198.18.10.60/24", "dev", "eth0", "label", "eth0:web")
    a.ip("addr", "add", "fd00:198:18:10::60/64", "dev", "eth0")  # tentative for a while
    a.ip("link", "add", "quiet0", "type", "veth", "peer", "name", "quiet1")
    a.ip("link", "set", "quiet0", "arp", "off")
    a.ip("addr", "add", "198.18.11.1/24", "dev", "quiet0")  # a link that is down
    a.ip("link", "add", "lonely0", "type", "veth", "peer", "name", "lonely1")
    a.ip("link", "set", "lonely0", "up")  # up, but its peer is down: no carrier
    same, netlink, shown = a.call("tests.integration.test_ip_plugin:links_both_ways")
    assert same, f"netlink: {netlink}\nip -j:   {shown}"
    for expected in ("eth0:web", "tentative=True", "NOARP", "NO-CARRIER", "'quiet0'"):
        assert expected in netlink


def test_link_down_is_a_failure_with_a_reason(lab: Lab) -> None:
    a = lab.hosts["a"]
    params = {"address": f"{FLOATING4}/24", "announce_count": 0}
    assert op(a, "start", **params).code == 0

    a.ip("link", "set", "eth0", "down")
    down = op(a, "monitor", **params)
    assert down.code == 1
    assert "198.18.10.50/24 is on eth0, but the link is administratively down" in down.text
    a.ip("link", "set", "eth0", "up")
    a.unplug()
    unplugged = op(a, "monitor", **params)
    assert unplugged.code == 1
    assert "the link is up but without carrier" in unplugged.text
    # A start on a link without carrier fails too: nobody could reach the address.
    assert op(a, "start", **params).code == 1
    a.plug()
    assert op(a, "monitor", **params).code == 0
    assert op(a, "stop", **params).code == 0


def test_ipv6_start_announce_stop(lab: Lab) -> None:
    a, b = lab.hosts["a"], lab.hosts["b"]
    params = {"address": f"{FLOATING6}/64"}
    serve_banner(a, FLOATING6, PORT, "on-a6")
    assert op(a, "monitor", **params).code == 7
    believe_elsewhere(b, FLOATING6)

    started = op(a, "start", **params)
    assert started.code == 0, started.text
    assert "announced fd00:198:18:10::50 on eth0 (and 2 more, 0.2s apart)" in started.text
    assert b.neighbour(FLOATING6) == a.mac()  # from the unsolicited advertisement
    assert reach(b, FLOATING6) == "ok on-a6"
    assert op(a, "monitor", **params).code == 0
    assert op(a, "start", **params).code == 0

    assert op(a, "stop", **params).code == 0
    assert address_info(a, FLOATING6) is None
    assert unreachable(b, FLOATING6)
    assert op(a, "monitor", **params).code == 7
    assert op(a, "stop", **params).code == 0


def test_ipv6_without_announcement_leaves_the_neighbours_stale(lab: Lab) -> None:
    a, b = lab.hosts["a"], lab.hosts["b"]
    believe_elsewhere(b, FLOATING6)
    assert op(a, "start", address=f"{FLOATING6}/64", announce_count=0).code == 0
    assert b.neighbour(FLOATING6) == ELSEWHERE


def test_ipv6_duplicate_address_detection(lab: Lab) -> None:
    a, b = lab.hosts["a"], lab.hosts["b"]
    started = op(a, "start", address=f"{FLOATING6}/64", nodad=False, announce_count=1)
    assert started.code == 0, started.text
    info = address_info(a, FLOATING6)
    assert info is not None
    assert not info.get("tentative")  # start waited for the detection to end

    taken = "fd00:198:18:10::2/64"  # b's own address
    duplicate = op(a, "start", address=taken, nodad=False)
    assert duplicate.code == 1
    assert "another host on eth0 uses fd00:198:18:10::2" in duplicate.text
    assert address_info(a, "fd00:198:18:10::2") is None  # not left behind
    assert b.addresses().count(taken) == 1


def test_interface_chosen_by_subnet(lab: Lab) -> None:
    c = lab.add_host("c", ["198.18.10.3/25"])
    c.ip("link", "add", "side0", "type", "veth", "peer", "name", "side1")
    c.ip("addr", "add", "198.18.10.129/26", "dev", "side0")
    for name in ("side0", "side1"):
        c.ip("link", "set", name, "up")

    outside = op(c, "start", address="198.18.10.200/25")
    assert outside.code == 5
    assert (
        "no interface has an address in a subnet containing 198.18.10.200; "
        "set the interface parameter"
    ) in outside.text

    assert op(c, "start", address="198.18.10.140/26", announce_count=0).code == 0
    assert "198.18.10.140/26" in c.addresses("side0")
    assert op(c, "start", address="198.18.10.20/25", announce_count=0).code == 0
    assert "198.18.10.20/25" in c.addresses("eth0")
    assert op(c, "monitor", address="198.18.10.140/26").code == 0
    assert op(c, "stop", address="198.18.10.140/26").code == 0
    assert "198.18.10.140/26" not in c.addresses("side0")

    c.ip("addr", "add", "198.18.10.130/26", "dev", "side1")
    ambiguous = op(c, "start", address="198.18.10.150/26")
    assert ambiguous.code == 5
    assert "interfaces side0, side1 all have a /26 subnet" in ambiguous.text
    assert op(c, "start", address="198.18.10.150/26", interface="side1", announce_count=0).code == 0
    assert "198.18.10.150/26" in c.addresses("side1")


def test_missing_interface(lab: Lab) -> None:
    a = lab.hosts["a"]
    params = {"address": f"{FLOATING4}/24", "interface": "nosuch0"}
    started = op(a, "start", **params)
    assert started.code == 5
    assert "interface nosuch0 does not exist on this node" in started.text
    assert op(a, "monitor", **params).code == 7
    assert op(a, "stop", **params).code == 0


def test_validate_through_the_registry(lab: Lab) -> None:
    reply = op(lab.hosts["a"], "validate", address="198.18.10.50", interface="eth0:1")
    assert reply.code == 6
    assert reply.message.startswith("address: '198.18.10.50' needs a prefix length")
