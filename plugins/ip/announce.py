"""Tell the neighbours where an address now lives: gratuitous ARP and unsolicited NA.

The frames are built by pure functions; the senders use raw sockets (root or
CAP_NET_RAW), so no extra program is needed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
from collections.abc import Callable

__all__ = [
    "ANNOUNCE_INTERVAL",
    "garp_frame",
    "send_garp",
    "send_unsolicited_na",
    "unsolicited_na",
]

ANNOUNCE_INTERVAL = 0.2
"""Seconds between two announcements of the same address."""

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ARP_REQUEST = 1
ARP_HTYPE_ETHERNET = 1
BROADCAST_MAC = b"\xff" * 6

ND_NEIGHBOR_ADVERT = 136
NA_FLAG_OVERRIDE = 0x20000000
ND_OPT_TARGET_LINKADDR = 2
ALL_NODES = "ff02::1"
ND_HOP_LIMIT = 255
"""Receivers drop neighbour discovery messages that crossed a router (RFC 4861 7.1.2)."""

Pause = Callable[[float], bool]
"""Waits the given seconds; False when the caller was cancelled meanwhile."""


def garp_frame(mac: bytes, address: ipaddress.IPv4Address) -> bytes:
    """An Ethernet broadcast ARP request for `address` from `address` (RFC 5227 announcement).

    Sender and target protocol address are both `address` and the target hardware
    address is zero, which is what Linux and most hosts take as gratuitous: they update
    a cached entry for `address` to `mac`.
    """
    _check_mac(mac)
    ethernet = BROADCAST_MAC + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack(
        "!HHBBH6s4s6s4s",
        ARP_HTYPE_ETHERNET,
        ETH_P_IP,
        6,
        4,
        ARP_REQUEST,
        mac,
        address.packed,
        bytes(6),
        address.packed,
    )
    return ethernet + arp


def unsolicited_na(mac: bytes, target: ipaddress.IPv6Address) -> bytes:
    """An ICMPv6 neighbour advertisement for `target` with the override flag and `mac`.

    Solicited flag clear (nobody asked), override set (replace cached link-layer
    addresses), checksum zero: the kernel fills it in for ICMPv6 raw sockets.
    """
    _check_mac(mac)
    header = struct.pack("!BBHI16s", ND_NEIGHBOR_ADVERT, 0, 0, NA_FLAG_OVERRIDE, target.packed)
    option = struct.pack("!BB6s", ND_OPT_TARGET_LINKADDR, 1, mac)
    return header + option


def send_garp(
    ifname: str, mac: bytes, address: ipaddress.IPv4Address, count: int, pause: Pause
) -> int:
    """Send `count` gratuitous ARPs on `ifname`, ANNOUNCE_INTERVAL apart; how many went out."""
    frame = garp_frame(mac, address)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as sock:
        sock.bind((ifname, 0))
        return _repeat(lambda: sock.send(frame), count, pause)


def send_unsolicited_na(
    ifname: str, mac: bytes, target: ipaddress.IPv6Address, count: int, pause: Pause
) -> int:
    """Send `count` unsolicited NAs for `target` to all nodes on `ifname`; how many went out."""
    message = unsolicited_na(mac, target)
    index = socket.if_nametoindex(ifname)
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as sock:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ND_HOP_LIMIT)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        scope = index if target.is_link_local else 0
        # RFC 4861 7.2.6: the source should be an address of the interface, and the
        # announced one is the clearest; while it is still tentative the kernel
        # refuses it and picks the link-local address instead.
        with contextlib.suppress(OSError):
            sock.bind((str(target), 0, 0, scope))
        destination = (ALL_NODES, 0, 0, index)
        return _repeat(lambda: sock.sendto(message, destination), count, pause)


def _repeat(send: Callable[[], int], count: int, pause: Pause) -> int:
    sent = 0
    for _ in range(count):
        if sent and not pause(ANNOUNCE_INTERVAL):
            break
        send()
        sent += 1
    return sent


def _check_mac(mac: bytes) -> None:
    if len(mac) != 6:
        raise ValueError(f"a link-layer address has 6 bytes, got {len(mac)}")
