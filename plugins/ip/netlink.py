"""The node's links and addresses over rtnetlink: what `ip -j addr show`, `ip addr add`
and `ip addr del` do, without starting a program each time (a failover waits on them).

One request per socket, answered before the socket closes; every read has a deadline.
Errors are NetlinkError with the kernel's errno, or OSError from the socket itself.
"""

from __future__ import annotations

import errno as errnos
import ipaddress
import os
import socket
import struct
import time
from collections.abc import Iterator

from .links import Address, IpInterface, Link

__all__ = ["NetlinkError", "add_address", "delete_address", "read_links"]

# linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h, linux/if.h
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP_INTR = 0x1, 0x2, 0x4, 0x10
NLM_F_DUMP, NLM_F_EXCL, NLM_F_CREATE = 0x300, 0x200, 0x400
RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
IFLA_ADDRESS, IFLA_IFNAME, IFLA_LINK, IFLA_LINK_NETNSID = 1, 3, 5, 37
IFA_ADDRESS, IFA_LOCAL, IFA_LABEL, IFA_BROADCAST, IFA_FLAGS = 1, 2, 3, 4, 8
IFA_F_NODAD, IFA_F_DADFAILED, IFA_F_TENTATIVE = 0x02, 0x08, 0x40
NLA_TYPE_MASK = 0x3FFF
IFF_UP, IFF_RUNNING = 0x1, 0x40
_FLAG_NAMES = {0x1: "UP", 0x2: "BROADCAST", 0x8: "LOOPBACK", 0x10: "POINTOPOINT",
               0x80: "NOARP", 0x100: "PROMISC", 0x200: "ALLMULTI", 0x400: "MASTER",
               0x800: "SLAVE", 0x1000: "MULTICAST", 0x10000: "LOWER_UP", 0x20000: "DORMANT"}
"""Interface flags by bit, named as `ip` names them (it shows RUNNING only as NO-CARRIER
when it is missing from a link that is up, and adds M-DOWN to a link whose parent link,
such as a veth's peer in the same namespace, is down)."""
_LINK_TYPES = {1: "ether", 772: "loopback", 776: "sit", 778: "gre", 65534: "none"}
"""ARPHRD_* link types by number, named as `ip` names them (others keep the number)."""
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefix length, flags, scope, index
_ATTR = struct.Struct("=HH")  # rtattr: length, type
DUMP_TRIES = 3
"""Dumps the kernel marks interrupted (a change during the dump) are asked again."""


class NetlinkError(OSError):
    """The kernel refused a request; `errno` says why."""


def read_links(timeout: float) -> list[Link]:
    """Every link with its addresses, as `ip -j addr show` would list them."""
    try:
        return _read_links(timeout)
    except struct.error as exc:
        raise NetlinkError(errnos.EBADMSG, f"a malformed answer from the kernel: {exc}") \
            from None


def _read_links(timeout: float) -> list[Link]:
    deadline = time.monotonic() + timeout  # for every dump together

    def left() -> float:
        return deadline - time.monotonic()

    for _ in range(DUMP_TRIES):
        links = _dump(RTM_GETLINK, _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0), left())
        addresses = _dump(RTM_GETADDR, _IFADDR.pack(socket.AF_UNSPEC, 0, 0, 0, 0), left())
        if links is not None and addresses is not None:
            break
    else:
        raise NetlinkError(errnos.EAGAIN, "the interfaces kept changing while being read")
    held: dict[int, list[Address]] = {}
    for kind, body in addresses:
        if kind == RTM_NEWADDR:
            index, address = _address(body)
            if address is not None:
                held.setdefault(index, []).append(address)
    infos = [(_IFINFO.unpack_from(body), _parse_attributes(body[_IFINFO.size:]))
             for kind, body in links if kind == RTM_NEWLINK]
    flags_of = {info[2]: info[3] for info, _ in infos}
    return [_link(info, attrs, held, flags_of) for info, attrs in infos]


def add_address(index: int, address: IpInterface, *, broadcast: str | None, label: str | None,
                nodad: bool, timeout: float) -> None:
    """Add `address` to link `index`; NetlinkError(EEXIST) when it is there already."""
    attrs = [(IFA_LOCAL, address.ip.packed), (IFA_ADDRESS, address.ip.packed)]
    if broadcast is not None:
        attrs.append((IFA_BROADCAST, ipaddress.IPv4Address(broadcast).packed))
    if label is not None:
        attrs.append((IFA_LABEL, label.encode() + b"\0"))
    flags = IFA_F_NODAD if nodad and address.version == 6 else 0
    if flags:
        attrs.append((IFA_FLAGS, struct.pack("=I", flags)))
    _change(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, _address_message(index, address, flags)
            + _attributes(attrs), timeout)


def delete_address(index: int, address: IpInterface, timeout: float) -> None:
    """Remove `address` from link `index`; NetlinkError(EADDRNOTAVAIL) when it is absent."""
    attrs = [(IFA_LOCAL, address.ip.packed), (IFA_ADDRESS, address.ip.packed)]
    _change(RTM_DELADDR, 0, _address_message(index, address, 0) + _attributes(attrs), timeout)


# --- messages --------------------------------------------------------------------------


def _address_message(index: int, address: IpInterface, flags: int) -> bytes:
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    return _IFADDR.pack(family, address.network.prefixlen, flags & 0xFF, 0, index)


def _attributes(attrs: list[tuple[int, bytes]]) -> bytes:
    out = b""
    for kind, data in attrs:
        size = _ATTR.size + len(data)
        out += _ATTR.pack(size, kind) + data + b"\0" * (_align(size) - size)
    return out


def _parse_attributes(data: bytes) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    offset = 0
    while offset + _ATTR.size <= len(data):
        size, kind = _ATTR.unpack_from(data, offset)
        if size < _ATTR.size:
            break
        found.setdefault(kind & NLA_TYPE_MASK, data[offset + _ATTR.size:offset + size])
        offset += _align(size)
    return found


def _link(info: tuple[int, ...], attrs: dict[int, bytes], held: dict[int, list[Address]],
          flags_of: dict[int, int]) -> Link:
    _family, kind, index, flags, _change = info
    mac = attrs.get(IFLA_ADDRESS)
    local = IFLA_LINK in attrs and IFLA_LINK_NETNSID not in attrs
    parent = struct.unpack("=I", attrs[IFLA_LINK][:4])[0] if local else 0
    parent_down = parent != 0 and parent in flags_of and not flags_of[parent] & IFF_UP
    return Link(
        name=attrs.get(IFLA_IFNAME, b"").split(b"\0", 1)[0].decode(errors="replace"),
        index=index,
        flags=frozenset([name for bit, name in _FLAG_NAMES.items() if flags & bit]
                        + (["NO-CARRIER"] if flags & IFF_UP and not flags & IFF_RUNNING
                           else []) + (["M-DOWN"] if parent_down else [])),
        link_type=_LINK_TYPES.get(kind, str(kind)),
        mac=":".join(f"{b:02x}" for b in mac) if mac else None,
        addresses=tuple(held.get(index, ())),
    )


def _address(body: bytes) -> tuple[int, Address | None]:
    family, prefix, flags, _scope, index = _IFADDR.unpack_from(body)
    attrs = _parse_attributes(body[_IFADDR.size:])
    raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
    if family not in (socket.AF_INET, socket.AF_INET6) or raw is None:
        return index, None
    if IFA_FLAGS in attrs:
        flags = struct.unpack("=I", attrs[IFA_FLAGS][:4])[0]
    label = attrs.get(IFA_LABEL)
    return index, Address(
        value=ipaddress.ip_interface((ipaddress.ip_address(raw), prefix)),
        label=label.split(b"\0", 1)[0].decode(errors="replace") if label else None,
        tentative=bool(flags & IFA_F_TENTATIVE),
        dadfailed=bool(flags & IFA_F_DADFAILED),
    )


# --- the socket ------------------------------------------------------------------------


def _dump(kind: int, payload: bytes, timeout: float) -> list[tuple[int, bytes]] | None:
    """Every message of a dump as (type, body); None when the kernel says it was
    interrupted by a change (ask again)."""
    found: list[tuple[int, bytes]] = []
    interrupted = False
    for kind_seen, flags, body in _exchange(kind, NLM_F_DUMP, payload, timeout):
        interrupted |= bool(flags & NLM_F_DUMP_INTR)
        found.append((kind_seen, body))
    return None if interrupted else found


def _change(kind: int, flags: int, payload: bytes, timeout: float) -> None:
    """Send one change and wait for its acknowledgement."""
    for _ in _exchange(kind, flags | NLM_F_ACK, payload, timeout):
        pass


def _exchange(kind: int, flags: int, payload: bytes, timeout: float) -> Iterator[
        tuple[int, int, bytes]]:
    """Send one request; yield each answer (type, flags, body) until the kernel is done
    (NLMSG_DONE, or the acknowledgement of a change). NetlinkError on a refusal."""
    deadline = time.monotonic() + timeout
    sequence = int.from_bytes(os.urandom(4), "little") or 1
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        message = _HEADER.pack(_HEADER.size + len(payload), kind, NLM_F_REQUEST | flags,
                               sequence, 0) + payload
        sock.sendto(message, (0, 0))
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise NetlinkError(errnos.ETIMEDOUT, "no answer from the kernel in time")
            sock.settimeout(left)
            try:
                data = sock.recv(1 << 16)
            except TimeoutError:
                raise NetlinkError(errnos.ETIMEDOUT, "no answer from the kernel in time") \
                    from None
            offset = 0
            while offset + _HEADER.size <= len(data):
                size, seen, seen_flags, seq, _port = _HEADER.unpack_from(data, offset)
                if size < _HEADER.size:
                    raise NetlinkError(errnos.EBADMSG, "a malformed netlink message")
                body = data[offset + _HEADER.size:offset + size]
                offset += _align(size)
                if seq != sequence:
                    continue
                if seen == NLMSG_DONE:
                    return
                if seen == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", body)[0]
                    if code:
                        raise NetlinkError(code, os.strerror(code))
                    return  # the acknowledgement of a change
                yield seen, seen_flags, body
                if not seen_flags & NLM_F_MULTI and not flags & NLM_F_ACK:
                    return


def _align(size: int) -> int:
    return (size + 3) & ~3
