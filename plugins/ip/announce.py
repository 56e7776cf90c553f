"""Tell the neighbours where an address now lives: gratuitous ARP and unsolicited NA.

The frames are built by pure functions; the senders use raw sockets (root or
CAP_NET_RAW), so no extra program is needed. A start sends the first announcement
itself and leaves the others to a `Series` in the background, so the next member of
the group does not wait for them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import socket
import struct
import subprocess
import threading
from collections.abc import Callable

__all__ = [
    "ANNOUNCE_INTERVAL",
    "Announcer",
    "Series",
    "garp_frame",
    "garp_socket",
    "na_socket",
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


def garp_socket(ifname: str, mac: bytes, address: ipaddress.IPv4Address) -> Announcer:
    """A raw packet socket on `ifname` that sends gratuitous ARPs for `address`."""
    frame = garp_frame(mac, address)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        sock.bind((ifname, 0))
    except OSError:
        _close_later(sock)
        raise
    return Announcer(sock, lambda: sock.send(frame))


def na_socket(ifname: str, mac: bytes, target: ipaddress.IPv6Address) -> Announcer:
    """An ICMPv6 raw socket that sends unsolicited NAs for `target` to all nodes on `ifname`."""
    message = unsolicited_na(mac, target)
    index = socket.if_nametoindex(ifname)
    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ND_HOP_LIMIT)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
    except OSError:
        _close_later(sock)
        raise
    scope = index if target.is_link_local else 0
    # RFC 4861 7.2.6: the source should be an address of the interface, and the
    # announced one is the clearest; while it is still tentative the kernel
    # refuses it and picks the link-local address instead.
    with contextlib.suppress(OSError):
        sock.bind((str(target), 0, 0, scope))
    destination = (ALL_NODES, 0, 0, index)
    return Announcer(sock, lambda: sock.sendto(message, destination))


class Announcer:
    """An open socket and how to send one announcement through it."""

    def __init__(self, sock: socket.socket, send: Callable[[], int]) -> None:
        self.sock = sock
        self.send = send


class Series:
    """The announcements of one resource's address still to go out, in the background.

    Invariant: once `cancel` returns, the series sends nothing more. A stop cancels
    before it removes the address, so an address this node gave up is never announced
    again (it would pull the neighbours back to a node that no longer has it).
    """

    def __init__(self, on_error: Callable[[str], None],
                 interval: float = ANNOUNCE_INTERVAL) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._gate = threading.Lock()  # held while a send is decided and made
        self._on_error = on_error
        self._process: subprocess.Popen[bytes] | None = None

    def repeat(self, announcer: Announcer, left: int) -> threading.Thread:
        """Send `left` more announcements, `interval` apart (the first one `interval`
        after now), then close the socket (closing a packet socket waits for the
        kernel, some milliseconds: not on the start's path). The thread doing it."""
        def run() -> None:
            try:
                for _ in range(left):
                    if self._stop.wait(self.interval):
                        return
                    with self._gate:
                        if self._stop.is_set():
                            return
                        announcer.send()
            except OSError as exc:
                self._on_error(str(exc))
            finally:
                announcer.sock.close()

        thread = threading.Thread(target=run, name="pyha-announce", daemon=True)
        thread.start()
        return thread

    def run_program(self, argv: list[str], limit: float) -> None:
        """Start `argv` (arping, which sends its first announcement at once and then one
        a second) and reap it in the background; killed when over `limit` seconds."""
        with self._gate:
            if self._stop.is_set():
                return
            self._process = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def reap(process: subprocess.Popen[bytes]) -> None:
            try:
                _, err = process.communicate(timeout=limit)
            except subprocess.TimeoutExpired:
                process.kill()
                _, err = process.communicate()
            if process.returncode not in (0, -signal.SIGKILL):
                text = err.decode(errors="replace").strip()
                self._on_error(text.splitlines()[-1] if text else f"exit {process.returncode}")

        threading.Thread(target=reap, args=(self._process,), name="pyha-arping",
                         daemon=True).start()

    def cancel(self) -> None:
        """Send nothing more: wait for a send under way, kill a program still running."""
        self._stop.set()
        with self._gate:
            process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()


def _close_later(sock: socket.socket) -> None:
    threading.Thread(target=sock.close, name="pyha-announce-close", daemon=True).start()


def _check_mac(mac: bytes) -> None:
    if len(mac) != 6:
        raise ValueError(f"a link-layer address has 6 bytes, got {len(mac)}")
