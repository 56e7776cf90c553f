"""The ip plugin: a floating IPv4 or IPv6 address on an interface, announced to neighbours."""

from __future__ import annotations

import contextlib
import ipaddress
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyha.resources.spi import (
    MetaData,
    OcfCode,
    OperationContext,
    OperationSpec,
    ParameterSpec,
    Plugin,
)

from .announce import ANNOUNCE_INTERVAL, Series, garp_socket, na_socket
from .checks import check_params, parse_address
from .links import IpInterface, Link, choose_link, holder
from .netlink import add_address, delete_address, read_links

__all__ = ["IpPlugin"]

POLL = 0.1
"""Seconds between looks at an IPv6 address whose duplicate address detection runs."""
NETLINK_TIMEOUT = 2.0
"""Seconds one request to the kernel (read the interfaces, add or remove an address) may
take at most; it usually takes well under a millisecond."""

_META = MetaData(
    name="ip",
    description=(
        "A floating IP address: added to a network interface on start, announced to the "
        "neighbours (gratuitous ARP for IPv4, unsolicited neighbour advertisement for IPv6) "
        "so their caches point at this node, removed on stop."
    ),
    parameters=(
        ParameterSpec(
            name="address",
            required=True,
            unique=True,
            description="The address with its prefix length: 198.18.10.50/24 or fd00::50/64.",
        ),
        ParameterSpec(
            name="interface",
            description="The interface to put it on; default: the one with an address in a "
            "subnet that contains it (the most specific subnet wins).",
        ),
        ParameterSpec(
            name="label",
            description="IPv4 only: a label for the address (eth0:web); must begin with the "
            "interface name.",
        ),
        ParameterSpec(
            name="broadcast",
            description="IPv4 only: the broadcast address; default: computed from the prefix.",
        ),
        ParameterSpec(
            name="announce_count",
            type="integer",
            default=3,
            description="How many gratuitous ARPs or neighbour advertisements to send (0 "
            "sends none): start sends the first, the others follow in the background and "
            "stop cancels those still due.",
        ),
        ParameterSpec(
            name="arp_sender",
            type="select",
            options=("auto", "arping", "builtin"),
            default="builtin",
            description="IPv4: who sends the gratuitous ARPs: builtin (a raw socket; 0.2s "
            "apart), arping (Debian iputils-arping, run in the background; one a second), "
            "or auto (arping if installed).",
        ),
        ParameterSpec(
            name="nodad",
            type="boolean",
            default=True,
            description="IPv6: add the address without duplicate address detection, usable at "
            "once; with false, start waits for the detection and fails if another host "
            "has the address.",
        ),
    ),
    operations=(
        OperationSpec(name="start", timeout=20.0),
        OperationSpec(name="stop", timeout=20.0),
        OperationSpec(name="monitor", timeout=10.0, interval=10.0),
    ),
)


@dataclass(frozen=True)
class Settings:
    """A resource's parameters with the address parsed; valid by construction."""

    address: IpInterface
    interface: str | None
    label: str | None
    broadcast: str | None
    announce_count: int
    arp_sender: str
    nodad: bool

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Settings:
        """The settings of typed, defaulted parameters; ValueError on a bad address."""
        return cls(
            address=parse_address(params["address"]),
            interface=params.get("interface"),
            label=params.get("label"),
            broadcast=params.get("broadcast"),
            announce_count=int(params.get("announce_count", 3)),
            arp_sender=params.get("arp_sender") or "builtin",
            nodad=bool(params.get("nodad", True)),
        )

    def usable_at_once(self) -> bool:
        """An added address is usable as soon as it is there: IPv4, or IPv6 without
        duplicate address detection."""
        return self.address.version == 4 or self.nodad

    def where(self) -> str:
        """'on eth0' or 'on any interface', for messages."""
        return f"on {self.interface}" if self.interface else "on any interface"


class IpPlugin(Plugin):
    """Adds, removes and watches one address per resource over rtnetlink (as `ip` does).

    Invariant: the address counts as running exactly when a link (the configured one,
    else any) holds the same IP with the same prefix length; start and stop change
    nothing when it already is, or is not, there.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[str, Series] = {}
        """Per resource, its announcements still to go out after its start returned."""

    def meta_data(self) -> MetaData:
        """Parameters with types and defaults; start, stop and monitor with timeouts."""
        return _META

    def validate(self, params: Mapping[str, Any]) -> list[str]:
        """Types first, then address, prefix, interface name, label and broadcast."""
        coerced, problems = _META.check(params)
        return list(problems) if problems else check_params(coerced)

    def start(self, ctx: OperationContext) -> int:
        """Add the address unless present, wait until usable, then announce it."""
        prepared = _prepare(ctx)
        if isinstance(prepared, int):
            return prepared
        settings, links = prepared
        try:
            link = choose_link(links, settings.address, settings.interface)
        except LookupError as exc:
            ctx.log.error("start %s: %s", ctx.resource, exc)
            return OcfCode.ERR_INSTALLED
        if settings.label is not None and not settings.label.startswith(link.name):
            ctx.log.error(
                "start %s: label %s must begin with the interface name %s",
                ctx.resource,
                settings.label,
                link.name,
            )
            return OcfCode.ERR_INSTALLED  # this node's interface; another node's may fit
        added = link.find(settings.address) is None
        if added:
            code = _add(ctx, settings, link)
            if code != OcfCode.SUCCESS:
                return code
        if added and settings.usable_at_once():
            # Nothing for the kernel to check first: the link as read just before the
            # add tells whether the address carries traffic, without another `ip` run.
            code = _usable(ctx, link, settings.address)
        else:
            code = _await_usable(ctx, settings, link.name)
        if code == OcfCode.SUCCESS:
            self._announce(ctx, settings, link)
        return code

    def stop(self, ctx: OperationContext) -> int:
        """Remove the address wherever this resource would have put it; absent is success."""
        self._forget(ctx.resource)  # announcements still due must not follow the stop
        prepared = _prepare(ctx)
        if isinstance(prepared, int):
            return prepared
        settings, links = prepared
        link = holder(links, settings.address, settings.interface)
        if link is None:
            return OcfCode.SUCCESS
        try:
            delete_address(link.index, settings.address, _budget(ctx))
            return OcfCode.SUCCESS
        except OSError as exc:
            failure = exc
        if _present(ctx, settings.address, link.name) is False:
            return OcfCode.SUCCESS  # someone else removed it meanwhile
        ctx.log.error(
            "stop %s: cannot remove %s from %s: %s",
            ctx.resource,
            settings.address,
            link.name,
            _reason(failure),
        )
        return OcfCode.ERR_GENERIC

    def monitor(self, ctx: OperationContext) -> int:
        """0 when the address is on a link that is up, 7 when absent, 1 when unusable."""
        prepared = _prepare(ctx)
        if isinstance(prepared, int):
            return prepared
        settings, links = prepared
        link = holder(links, settings.address, settings.interface)
        if link is None:
            self._forget(ctx.resource)  # not announced once gone, whoever removed it
            ctx.log.info(
                "monitor %s: %s is not %s", ctx.resource, settings.address, settings.where()
            )
            return OcfCode.NOT_RUNNING
        problem = _unusable(link, settings.address)
        if problem:
            ctx.log.error("monitor %s: %s", ctx.resource, problem)
            return OcfCode.ERR_GENERIC
        return OcfCode.SUCCESS


    def _announce(self, ctx: OperationContext, settings: Settings, link: Link) -> None:
        """Tell the neighbours, best effort (the address works without it, only later for
        some): the first announcement before start returns, the others in the background."""
        self._forget(ctx.resource)
        count, mac, ip = settings.announce_count, link.ethernet_mac, settings.address.ip
        if count <= 0:
            return
        if mac is None:
            ctx.log.info("start %s: %s does no ARP; nothing to announce", ctx.resource, link.name)
            return
        series = self._begin(ctx)
        where = f"{ip} on {link.name}"
        try:
            if isinstance(ip, ipaddress.IPv4Address) and _use_arping(settings.arp_sender):
                series.run_program(["arping", "-q", "-U", "-c", str(count), "-I", link.name,
                                    str(ip)], limit=count + 2.0)
                ctx.log.info("start %s: announcing %s with arping (%d, a second apart)",
                             ctx.resource, where, count)
                return
            announcer = na_socket(link.name, mac, ip) if isinstance(
                ip, ipaddress.IPv6Address) else garp_socket(link.name, mac, ip)
        except OSError as exc:
            ctx.log.warning("start %s: cannot announce %s: %s", ctx.resource, where, exc)
            return
        try:
            announcer.send()
        except OSError as exc:
            series.repeat(announcer, 0)  # only closes the socket
            ctx.log.warning("start %s: cannot announce %s: %s", ctx.resource, where, exc)
            return
        series.repeat(announcer, count - 1)
        more = f" (and {count - 1} more, {ANNOUNCE_INTERVAL:g}s apart)" if count > 1 else ""
        ctx.log.info("start %s: announced %s%s", ctx.resource, where, more)

    def _begin(self, ctx: OperationContext) -> Series:
        resource, log = ctx.resource, ctx.log
        series = Series(lambda why: log.warning("announcing %s: %s", resource, why))
        with self._lock:
            self._series[resource] = series
        return series

    def _forget(self, resource: str) -> None:
        """Cancel what is left of the resource's announcements; nothing goes out after."""
        with self._lock:
            series = self._series.pop(resource, None)
        if series is not None:
            series.cancel()


# --- reading and changing addresses -------------------------------------------------


def _prepare(ctx: OperationContext) -> tuple[Settings, list[Link]] | int:
    """The settings and the node's links, or the code to return when either is missing."""
    try:
        settings = Settings.from_params(ctx.params)
    except ValueError as exc:
        ctx.log.error("%s %s: address: %s", ctx.operation, ctx.resource, exc)
        return OcfCode.ERR_CONFIGURED
    links = _read_links(ctx)
    return links if isinstance(links, int) else (settings, links)


def _budget(ctx: OperationContext) -> float:
    """How long one netlink request may take: the operation's time left, within bounds."""
    return max(0.05, min(NETLINK_TIMEOUT, ctx.remaining()))


def _read_links(ctx: OperationContext) -> list[Link] | int:
    """The node's links, or the code to return when the kernel could not tell."""
    try:
        return read_links(_budget(ctx))
    except (OSError, ValueError) as exc:
        ctx.log.error("%s %s: cannot read the interfaces: %s", ctx.operation, ctx.resource,
                      _reason(exc))
        return OcfCode.ERR_GENERIC


def _present(ctx: OperationContext, address: IpInterface, name: str) -> bool | None:
    """Whether link `name` holds `address` now; None when the kernel cannot tell."""
    links = _read_links(ctx)
    return None if isinstance(links, int) else holder(links, address, name) is not None


def _add(ctx: OperationContext, settings: Settings, link: Link) -> int:
    address = settings.address
    broadcast = label = None
    if address.version == 4:
        broadcast = settings.broadcast
        if broadcast is None and address.network.prefixlen <= 30:
            broadcast = str(address.network.broadcast_address)
        label = settings.label
    try:
        add_address(link.index, address, broadcast=broadcast, label=label,
                    nodad=settings.nodad, timeout=_budget(ctx))
        return OcfCode.SUCCESS
    except OSError as exc:
        failure = exc
    if _present(ctx, address, link.name):
        return OcfCode.SUCCESS  # added meanwhile: "already assigned" is success
    ctx.log.error(
        "start %s: cannot add %s to %s: %s", ctx.resource, address, link.name, _reason(failure)
    )
    return OcfCode.ERR_GENERIC


def _await_usable(ctx: OperationContext, settings: Settings, name: str) -> int:
    """Wait out IPv6 duplicate address detection; then the link must be up."""
    while True:
        links = _read_links(ctx)
        if isinstance(links, int):
            return links
        link = holder(links, settings.address, name)
        if link is None:
            ctx.log.error("start %s: %s vanished from %s", ctx.resource, settings.address, name)
            return OcfCode.ERR_GENERIC
        found = link.find(settings.address)
        if found is None or found.dadfailed or not found.tentative:
            break
        if ctx.expired() or not ctx.sleep(POLL):
            ctx.log.error(
                "start %s: duplicate address detection of %s did not end in time",
                ctx.resource,
                settings.address,
            )
            return OcfCode.ERR_GENERIC
    code = _usable(ctx, link, settings.address)
    if code != OcfCode.SUCCESS and found is not None and found.dadfailed:
        with contextlib.suppress(OSError):
            delete_address(link.index, settings.address, _budget(ctx))
    return code


def _usable(ctx: OperationContext, link: Link, address: IpInterface) -> int:
    """SUCCESS when `address` on `link` can carry traffic; else logs why, ERR_GENERIC."""
    problem = _unusable(link, address)
    if problem is None:
        return OcfCode.SUCCESS
    ctx.log.error("start %s: %s", ctx.resource, problem)
    return OcfCode.ERR_GENERIC


def _unusable(link: Link, address: IpInterface) -> str | None:
    """Why `address`, present on `link`, cannot carry traffic; None when it can."""
    found = link.find(address)
    if found is not None and found.dadfailed:
        return f"another host on {link.name} uses {address.ip} (duplicate address detected)"
    if not link.up:
        return f"{address} is on {link.name}, but the link is {link.state()}"
    return None


def _reason(exc: Exception) -> str:
    """The kernel's words for a refusal ('Operation not permitted'), else the error."""
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


# --- announcing ---------------------------------------------------------------------


def _use_arping(arp_sender: str) -> bool:
    if arp_sender == "auto":
        return shutil.which("arping") is not None
    return arp_sender == "arping"
