"""What makes the ip plugin's parameters valid; every problem names its parameter."""

from __future__ import annotations

import ipaddress
import re
import shutil
from collections.abc import Mapping
from typing import Any

from .links import IpInterface

__all__ = ["MAX_ANNOUNCE", "check_params", "interface_problem", "parse_address"]

IFNAMSIZ = 16
"""Linux interface names hold at most IFNAMSIZ - 1 characters."""
MAX_ANNOUNCE = 100
_BAD_IFNAME = re.compile(r"[/:\s]")


def parse_address(text: str) -> IpInterface:
    """`198.18.10.50/24` or `fd00::50/64` as an interface address; ValueError says why not."""
    host, slash, prefix = text.partition("/")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IPv4 or IPv6 address") from None
    if not slash:
        example = "198.18.10.50/24" if ip.version == 4 else "fd00::50/64"
        raise ValueError(f"{text!r} needs a prefix length, as in {example}")
    value = _with_prefix(ip, prefix)
    problem = _unusable(value)
    if problem:
        raise ValueError(f"{text!r} {problem}")
    return value


def _with_prefix(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, prefix: str) -> IpInterface:
    bits = ip.max_prefixlen
    if prefix.isdigit() and prefix.isascii():
        if not 1 <= int(prefix) <= bits:
            raise ValueError(
                f"prefix length /{prefix} is out of range for IPv{ip.version} (1-{bits})"
            )
        return ipaddress.ip_interface(f"{ip}/{int(prefix)}")
    if ip.version == 4:
        try:
            value = ipaddress.IPv4Interface(f"{ip}/{prefix}")
        except ValueError:
            pass
        else:
            if value.network.prefixlen > 0:
                return value
    raise ValueError(f"prefix {prefix!r} is not a prefix length (1-{bits})")


def _unusable(value: IpInterface) -> str | None:
    """Why `value` cannot be a floating address, or None."""
    ip = value.ip
    if ip.is_unspecified:
        return "is the unspecified address"
    if ip.is_loopback or ip.is_multicast:
        return f"is a {'loopback' if ip.is_loopback else 'multicast'} address"
    if ip.version == 6 and ip.is_link_local:
        return "is link-local; a floating address must be global or unique-local"
    network = value.network
    host_bits = ip.max_prefixlen - network.prefixlen
    if ip == network.network_address and host_bits >= 2:
        return f"is the subnet's own address ({network}); choose a host address"
    if ip.version == 4 and ip == network.broadcast_address and host_bits >= 2:
        return f"is the broadcast address of {network}"
    return None


def interface_problem(name: str) -> str | None:
    """Why `name` cannot be a Linux interface name, or None."""
    if not name:
        return "must not be empty"
    if len(name) >= IFNAMSIZ:
        return f"{name!r} is longer than {IFNAMSIZ - 1} characters"
    if name in (".", "..") or _BAD_IFNAME.search(name):
        return f"{name!r} is not an interface name (no '/', ':' or spaces)"
    return None


def check_params(params: Mapping[str, Any]) -> list[str]:
    """Problems with already typed parameters, each naming its parameter."""
    try:
        address = parse_address(params["address"])
    except ValueError as exc:
        return [f"address: {exc}"]
    interface = params.get("interface")
    problems = []
    if interface is not None and (why := interface_problem(interface)):
        problems.append(f"interface: {why}")
    problems += _check_label(params.get("label"), interface, address)
    problems += _check_broadcast(params.get("broadcast"), address)
    count = params.get("announce_count", 0)
    if not 0 <= count <= MAX_ANNOUNCE:
        problems.append(f"announce_count: must be between 0 and {MAX_ANNOUNCE}, got {count}")
    if params.get("arp_sender") == "arping" and shutil.which("arping") is None:
        problems.append(
            "arp_sender: arping is not installed (Debian package iputils-arping); "
            "use auto or builtin"
        )
    return problems


def _check_label(label: str | None, interface: str | None, address: IpInterface) -> list[str]:
    if label is None:
        return []
    if address.version == 6:
        return ["label: only IPv4 addresses have labels"]
    if len(label) >= IFNAMSIZ:
        return [f"label: {label!r} is longer than {IFNAMSIZ - 1} characters"]
    if interface is not None and not label.startswith(interface):
        return [f"label: {label!r} must begin with the interface name ({interface}:...)"]
    return []


def _check_broadcast(broadcast: str | None, address: IpInterface) -> list[str]:
    if broadcast is None:
        return []
    if address.version == 6:
        return ["broadcast: IPv6 has no broadcast address; leave it out"]
    try:
        ipaddress.IPv4Address(broadcast)
    except ValueError:
        return [f"broadcast: {broadcast!r} is not an IPv4 address"]
    return []
