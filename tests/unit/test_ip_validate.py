"""The ip plugin without a network: parameter checks, `ip -j` parsing, link choice, frames."""

from __future__ import annotations

import errno
import importlib
import importlib.machinery
import importlib.util
import ipaddress
import json
import shutil
import struct
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugins" / "ip"


def _load(module: str) -> ModuleType:
    """Import one module of plugins/ip the way bundled plugin folders are imported."""
    package = "_pyha_test_bundled_ip"
    if package not in sys.modules:
        spec = importlib.machinery.ModuleSpec(package, None, is_package=True)
        created = importlib.util.module_from_spec(spec)
        created.__path__ = [str(PLUGIN_DIR)]
        sys.modules[package] = created
    return importlib.import_module(f"{package}.{module}")


plugin = _load("plugin")
links = _load("links")
announce = _load("announce")
checks = _load("checks")
netlink = _load("netlink")


def _problems(**params: Any) -> list[str]:
    return list(plugin.IpPlugin().validate(params))


# --- validate -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"address": "198.18.10.50/24"},
        {"address": "198.18.10.50/255.255.255.0"},
        {"address": "198.18.10.50/32", "interface": "eth0"},
        {"address": "198.18.10.50/31"},
        {"address": "fd00:198:18:10::50/64", "interface": "bond0.12"},
        {"address": "198.18.10.50/24", "interface": "eth0", "label": "eth0:web"},
        {"address": "198.18.10.50/24", "broadcast": "198.18.10.255", "announce_count": "0"},
        {"address": "198.18.10.50/24", "arp_sender": "builtin", "nodad": "no"},
    ],
)
def test_good_parameters_pass(params: dict[str, Any]) -> None:
    assert _problems(**params) == []


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("198.18.10.500/24", "'198.18.10.500' is not an IPv4 or IPv6 address"),
        ("web/24", "'web' is not an IPv4 or IPv6 address"),
        ("198.18.10.50", "needs a prefix length, as in 198.18.10.50/24"),
        ("fd00::50", "needs a prefix length, as in fd00::50/64"),
        ("198.18.10.50/33", "prefix length /33 is out of range for IPv4 (1-32)"),
        ("198.18.10.50/0", "prefix length /0 is out of range for IPv4 (1-32)"),
        ("fd00::50/129", "prefix length /129 is out of range for IPv6 (1-128)"),
        ("198.18.10.50/24x", "prefix '24x' is not a prefix length (1-32)"),
        ("198.18.10.50/255.0.255.0", "prefix '255.0.255.0' is not a prefix length"),
        ("198.18.10.50/", "prefix '' is not a prefix length"),
        ("198.18.10.0/24", "is the subnet's own address (198.18.10.0/24)"),
        ("198.18.10.255/24", "is the broadcast address of 198.18.10.0/24"),
        ("fd00:198:18:10::/64", "is the subnet's own address"),
        ("0.0.0.0/8", "is the unspecified address"),
        ("127.0.0.5/8", "is a loopback address"),
        ("224.0.0.5/24", "is a multicast address"),
        ("fe80::5/64", "is link-local"),
    ],
)
def test_bad_addresses_are_named(address: str, expected: str) -> None:
    problems = _problems(address=address)
    assert len(problems) == 1
    assert problems[0].startswith("address: ")
    assert expected in problems[0]


def test_address_is_required() -> None:
    assert _problems() == ["address: required parameter is missing"]


@pytest.mark.parametrize(
    ("interface", "expected"),
    [
        ("", "must not be empty"),
        ("averyverylongname0", "longer than 15 characters"),
        ("eth0:1", "is not an interface name"),
        ("eth/0", "is not an interface name"),
        ("eth 0", "is not an interface name"),
        ("..", "is not an interface name"),
    ],
)
def test_bad_interfaces_are_named(interface: str, expected: str) -> None:
    problems = _problems(address="198.18.10.50/24", interface=interface)
    assert len(problems) == 1
    assert problems[0].startswith("interface: ")
    assert expected in problems[0]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"label": "eth1:web", "interface": "eth0"}, "label: 'eth1:web' must begin with"),
        ({"label": "eth0:averylongone"}, "label: 'eth0:averylongone' is longer than 15"),
        ({"address": "fd00::50/64", "label": "eth0:web"}, "label: only IPv4"),
        ({"broadcast": "198.18.10.256"}, "broadcast: '198.18.10.256' is not an IPv4 address"),
        ({"address": "fd00::50/64", "broadcast": "fd00::ff"}, "broadcast: IPv6 has no broadcast"),
        ({"announce_count": -1}, "announce_count: must be between 0 and 100, got -1"),
        ({"announce_count": 101}, "announce_count: must be between 0 and 100, got 101"),
        ({"announce_count": "three"}, "announce_count: must be an integer"),
        ({"arp_sender": "libnet"}, "arp_sender: must be one of auto, arping, builtin"),
        ({"nodad": "maybe"}, "nodad: must be true or false"),
        ({"netmask": "24"}, "netmask: unknown parameter"),
    ],
)
def test_other_bad_parameters_are_named(params: dict[str, Any], expected: str) -> None:
    given = {"address": "198.18.10.50/24", **params}
    problems = _problems(**given)
    assert len(problems) == 1
    assert expected in problems[0]


def test_arping_sender_needs_arping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: None)
    problems = _problems(address="198.18.10.50/24", arp_sender="arping")
    assert problems == [
        "arp_sender: arping is not installed (Debian package iputils-arping); use auto or builtin"
    ]
    assert _problems(address="198.18.10.50/24", arp_sender="auto") == []


def test_meta_data_declares_timeouts_and_parameters() -> None:
    meta = plugin.IpPlugin().meta_data()
    assert (meta.timeout("start"), meta.timeout("stop"), meta.timeout("monitor")) == (20, 20, 10)
    monitor = meta.operation("monitor")
    assert monitor is not None
    assert monitor.interval == 10
    names = {p.name for p in meta.parameters}
    assert {"address", "interface", "label", "broadcast", "announce_count"} <= names
    assert next(p for p in meta.parameters if p.name == "announce_count").default == 3


# --- ip -j addr show ----------------------------------------------------------------


def _link(name: str, index: int, *addresses: str, flags: tuple[str, ...] = ()) -> dict[str, Any]:
    infos = []
    for text in addresses:
        local, prefix = text.split("/")
        infos.append(
            {
                "family": "inet6" if ":" in local else "inet",
                "local": local,
                "prefixlen": int(prefix),
            }
        )
    return {
        "ifindex": index,
        "ifname": name,
        "flags": list(flags or ("BROADCAST", "MULTICAST", "UP", "LOWER_UP")),
        "link_type": "ether",
        "address": f"02:00:00:00:00:{index:02x}",
        "addr_info": infos,
    }


def _parse(*entries: dict[str, Any]) -> list[Any]:
    return list(links.parse_links(json.dumps(list(entries))))


def _iface(text: str) -> Any:
    return ipaddress.ip_interface(text)


def test_parse_reads_flags_labels_and_dad_state() -> None:
    entry = _link("eth0", 3, "198.18.10.1/24")
    entry["addr_info"] += [
        {"family": "inet", "local": "198.18.10.50", "prefixlen": 24, "label": "eth0:web"},
        {"family": "inet6", "local": "fd00::50", "prefixlen": 64, "tentative": True},
        {"family": "inet6", "local": "fd00::60", "prefixlen": 64, "dadfailed": True},
        {"family": "inet6"},  # no local address: skipped
    ]
    (link,) = _parse(entry)
    assert (link.name, link.index, link.up) == ("eth0", 3, True)
    assert link.ethernet_mac == bytes.fromhex("020000000003")
    assert [str(a.value) for a in link.addresses] == [
        "198.18.10.1/24",
        "198.18.10.50/24",
        "fd00::50/64",
        "fd00::60/64",
    ]
    assert link.find(_iface("198.18.10.50/24")).label == "eth0:web"
    assert link.find(_iface("fd00::50/64")).tentative
    assert link.find(_iface("fd00::60/64")).dadfailed
    assert link.find(_iface("198.18.10.50/32")) is None  # another prefix is another address


@pytest.mark.parametrize(
    ("flags", "up", "state"),
    [
        (("BROADCAST", "UP", "LOWER_UP"), True, "up"),
        (("NO-CARRIER", "BROADCAST", "UP"), False, "up but without carrier"),
        (("BROADCAST", "MULTICAST"), False, "administratively down"),
    ],
)
def test_link_state(flags: tuple[str, ...], up: bool, state: str) -> None:
    (link,) = _parse(_link("eth0", 2, flags=flags))
    assert (link.up, link.state()) == (up, state)


def test_loopback_and_noarp_links_are_not_announced_on() -> None:
    lo = _link("lo", 1, flags=("LOOPBACK", "UP", "LOWER_UP"))
    lo["link_type"] = "loopback"
    tun = _link("tun0", 2, flags=("POINTOPOINT", "NOARP", "UP", "LOWER_UP"))
    assert [link.ethernet_mac for link in _parse(lo, tun)] == [None, None]


@pytest.mark.parametrize("text", ["not json", "{}", "[1]", '[{"ifname": "x"}]'])
def test_unexpected_output_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="unexpected output of ip -j addr show"):
        links.parse_links(text)


def test_choose_named_link_or_say_it_is_missing() -> None:
    found = _parse(_link("eth0", 2, "198.18.10.1/24"), _link("eth1", 3))
    assert links.choose_link(found, _iface("198.18.10.50/24"), "eth1").name == "eth1"
    with pytest.raises(LookupError, match="interface eth9 does not exist on this node"):
        links.choose_link(found, _iface("198.18.10.50/24"), "eth9")


def test_choose_the_most_specific_subnet() -> None:
    found = _parse(
        _link("eth0", 2, "198.18.10.1/24", "fd00:198:18:10::1/64"),
        _link("eth1", 3, "198.18.10.129/26"),
    )
    assert links.choose_link(found, _iface("198.18.10.140/26"), None).name == "eth1"
    assert links.choose_link(found, _iface("198.18.10.140/24"), None).name == "eth1"
    assert links.choose_link(found, _iface("198.18.10.60/24"), None).name == "eth0"
    assert links.choose_link(found, _iface("fd00:198:18:10::50/64"), None).name == "eth0"


def test_choose_the_link_already_holding_the_address() -> None:
    found = _parse(_link("eth0", 2, "198.18.10.1/24"), _link("eth1", 3, "198.18.10.50/32"))
    assert links.choose_link(found, _iface("198.18.10.50/32"), None).name == "eth1"


def test_no_matching_subnet_is_a_clear_error() -> None:
    found = _parse(_link("eth0", 2, "198.18.10.1/25", "fd00:198:18:10::1/64"))
    with pytest.raises(LookupError, match=r"no interface has an address in a subnet containing "):
        links.choose_link(found, _iface("198.18.10.200/25"), None)
    with pytest.raises(LookupError, match="set the interface parameter"):
        links.choose_link(found, _iface("fd00:198:18:11::1/64"), None)


def test_two_equal_subnets_are_ambiguous() -> None:
    found = _parse(_link("eth0", 2, "198.18.10.1/24"), _link("eth1", 3, "198.18.10.2/24"))
    with pytest.raises(LookupError, match="interfaces eth0, eth1 all have a /24 subnet"):
        links.choose_link(found, _iface("198.18.10.50/24"), None)


def test_holder_looks_at_the_named_link_only() -> None:
    found = _parse(_link("eth0", 2, "198.18.10.50/24"), _link("eth1", 3))
    wanted = _iface("198.18.10.50/24")
    assert links.holder(found, wanted).name == "eth0"
    assert links.holder(found, wanted, "eth1") is None


# --- announcement frames ------------------------------------------------------------

MAC = bytes.fromhex("02aabbccddee")


def test_gratuitous_arp_frame() -> None:
    frame = announce.garp_frame(MAC, ipaddress.IPv4Address("198.18.10.50"))
    assert len(frame) == 42
    assert frame[:6] == b"\xff" * 6  # to everyone
    assert frame[6:12] == MAC
    assert frame[12:14] == b"\x08\x06"  # ARP
    htype, ptype, hlen, plen, oper = struct.unpack("!HHBBH", frame[14:22])
    assert (htype, ptype, hlen, plen, oper) == (1, 0x0800, 6, 4, 1)
    sha, spa, tha, tpa = struct.unpack("!6s4s6s4s", frame[22:42])
    assert sha == MAC
    assert spa == tpa == bytes([198, 18, 10, 50])
    assert tha == bytes(6)


def test_unsolicited_neighbour_advertisement() -> None:
    target = ipaddress.IPv6Address("fd00:198:18:10::50")
    message = announce.unsolicited_na(MAC, target)
    assert len(message) == 32
    kind, code, checksum, flags = struct.unpack("!BBHI", message[:8])
    assert (kind, code, checksum) == (136, 0, 0)
    assert flags == 0x20000000  # override only: not a router, not solicited
    assert message[8:24] == target.packed
    assert message[24:26] == b"\x02\x01"  # target link-layer address option, 8 bytes
    assert message[26:] == MAC


def test_frames_refuse_a_short_link_layer_address() -> None:
    with pytest.raises(ValueError, match="6 bytes"):
        announce.garp_frame(b"\x01\x02", ipaddress.IPv4Address("198.18.10.50"))


class FakeSocket:
    closed = False

    def close(self) -> None:
        self.closed = True


def test_a_series_sends_the_rest_apart_then_closes_and_a_cancel_ends_it() -> None:
    sent: list[float] = []
    errors: list[str] = []
    sock = FakeSocket()
    series = announce.Series(errors.append, interval=0.02)
    begun = time.monotonic()
    series.repeat(announce.Announcer(sock, lambda: sent.append(time.monotonic()) or 1),
                  3).join(5)
    assert len(sent) == 3 and sock.closed and not errors
    gaps = [b - a for a, b in zip([begun, *sent], sent, strict=False)]
    assert all(gap >= 0.015 for gap in gaps)  # none sent without its interval first

    sent.clear()
    later = announce.Series(errors.append, interval=0.05)
    thread = later.repeat(announce.Announcer(FakeSocket(), lambda: sent.append(1) or 1), 100)
    time.sleep(0.12)
    later.cancel()
    count = len(sent)
    thread.join(5)
    assert 1 <= count <= 3 and len(sent) == count  # nothing after cancel returned


def test_a_series_reports_a_failed_send() -> None:
    errors: list[str] = []

    def refuse() -> int:
        raise OSError("Network is down")

    sock = FakeSocket()
    announce.Series(errors.append, interval=0.0).repeat(
        announce.Announcer(sock, refuse), 2).join(5)
    assert errors == ["Network is down"] and sock.closed


# --- netlink ------------------------------------------------------------------------


def test_netlink_attributes_round_trip_with_padding() -> None:
    packed = netlink._attributes([(netlink.IFA_LABEL, b"eth0:web\0"), (netlink.IFA_FLAGS,
                                  struct.pack("=I", 0x40))])
    assert len(packed) % 4 == 0
    assert netlink._parse_attributes(packed) == {netlink.IFA_LABEL: b"eth0:web\0",
                                                 netlink.IFA_FLAGS: struct.pack("=I", 0x40)}


def test_netlink_reads_this_hosts_loopback_and_a_refusal_carries_the_errno() -> None:
    found = {link.name: link for link in netlink.read_links(2.0)}
    assert found["lo"].link_type == "loopback"
    assert found["lo"].find(ipaddress.ip_interface("127.0.0.1/8")) is not None
    # No link has this index: the kernel refuses (ENODEV as root, EPERM otherwise) and
    # nothing changes.
    with pytest.raises(netlink.NetlinkError) as refused:
        netlink.add_address(0x7FFFFFF0, ipaddress.ip_interface("198.18.99.1/24"),
                            broadcast=None, label=None, nodad=False, timeout=2.0)
    assert refused.value.errno in (errno.ENODEV, errno.EPERM)
    assert refused.value.strerror
