"""The node's links and addresses (as `ip -j addr show` prints them: the tests hold the
kernel's answers over netlink against it), and which link to use."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Address", "IpInterface", "Link", "choose_link", "holder", "parse_links"]

IpInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclass(frozen=True)
class Address:
    """One address on a link, with the kernel's flags that matter here."""

    value: IpInterface
    label: str | None = None
    tentative: bool = False
    """IPv6 duplicate address detection is still running; not usable yet."""
    dadfailed: bool = False
    """Another host answered for this IPv6 address; the kernel will not use it."""

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> Address:
        """One element of `addr_info`; ValueError when it holds no address."""
        value = ipaddress.ip_interface(f"{entry['local']}/{entry['prefixlen']}")
        return cls(
            value=value,
            label=entry.get("label"),
            tentative=bool(entry.get("tentative")),
            dadfailed=bool(entry.get("dadfailed")),
        )


@dataclass(frozen=True)
class Link:
    """A network interface: name, index, flags, link-layer address and IP addresses."""

    name: str
    index: int
    flags: frozenset[str]
    link_type: str
    mac: str | None
    addresses: tuple[Address, ...]

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> Link:
        """One element of `ip -j addr show`; entries without a local address are skipped."""
        addresses = tuple(
            Address.from_json(a)
            for a in entry.get("addr_info", ())
            if "local" in a and "prefixlen" in a
        )
        return cls(
            name=str(entry["ifname"]),
            index=int(entry["ifindex"]),
            flags=frozenset(entry.get("flags", ())),
            link_type=str(entry.get("link_type", "")),
            mac=entry.get("address"),
            addresses=addresses,
        )

    @property
    def up(self) -> bool:
        """Administratively up and with carrier: packets can flow."""
        return "UP" in self.flags and "LOWER_UP" in self.flags

    def state(self) -> str:
        """'up', 'administratively down' or 'up but without carrier', for messages."""
        if "UP" not in self.flags:
            return "administratively down"
        return "up" if "LOWER_UP" in self.flags else "up but without carrier"

    @property
    def ethernet_mac(self) -> bytes | None:
        """The 6-byte link-layer address of an Ethernet-like link that does ARP, else None."""
        if self.link_type != "ether" or "NOARP" in self.flags or not self.mac:
            return None
        raw = bytes.fromhex(self.mac.replace(":", ""))
        return raw if len(raw) == 6 else None

    def find(self, wanted: IpInterface) -> Address | None:
        """The address with the same IP and prefix length as `wanted`, if the link has it."""
        return next((a for a in self.addresses if a.value == wanted), None)


def parse_links(text: str) -> list[Link]:
    """The links in `ip -j addr show` output; ValueError when it is not that."""
    try:
        data = json.loads(text)
        if not isinstance(data, list):
            raise TypeError(f"a list of links was expected, got {type(data).__name__}")
        return [Link.from_json(entry) for entry in data]
    except (TypeError, KeyError, AttributeError, ValueError) as exc:
        raise ValueError(f"unexpected output of ip -j addr show: {exc}") from None


def holder(links: Sequence[Link], wanted: IpInterface, name: str | None = None) -> Link | None:
    """The link that has `wanted` (only link `name` when given), if any."""
    for link in links:
        if (name is None or link.name == name) and link.find(wanted) is not None:
            return link
    return None


def choose_link(links: Sequence[Link], wanted: IpInterface, name: str | None) -> Link:
    """The link to put `wanted` on: `name`, the link already holding it, or the subnet's.

    Without a name, the link whose own address's subnet contains `wanted` is chosen;
    the most specific subnet wins. LookupError says why no single link fits.
    """
    if name is not None:
        found = next((link for link in links if link.name == name), None)
        if found is None:
            raise LookupError(f"interface {name} does not exist on this node")
        return found
    owner = holder(links, wanted)
    if owner is not None:
        return owner
    return _subnet_link(links, wanted)


def _subnet_link(links: Sequence[Link], wanted: IpInterface) -> Link:
    matches = [
        (address.value.network.prefixlen, link)
        for link in links
        for address in link.addresses
        if address.value.version == wanted.version
        and address.value.ip != wanted.ip
        and wanted.ip in address.value.network
    ]
    if not matches:
        raise LookupError(
            f"no interface has an address in a subnet containing {wanted.ip}; "
            "set the interface parameter"
        )
    best = max(prefix for prefix, _ in matches)
    names = sorted({link.name for prefix, link in matches if prefix == best})
    if len(names) > 1:
        raise LookupError(
            f"interfaces {', '.join(names)} all have a /{best} subnet containing "
            f"{wanted.ip}; set the interface parameter"
        )
    return next(link for prefix, link in matches if prefix == best)
