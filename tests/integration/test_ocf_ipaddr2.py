"""Debian's ocf:heartbeat:IPaddr2 run by OcfAgent inside a network namespace (root).

The agent runs behind the wrapper `ip netns exec <ns>`: every call (meta-data,
validate-all, start, monitor, stop) sees the namespace's interfaces, and nothing in
the host's own namespace changes. IPaddr2 needs `ip` (iproute2) and, from
resource-agents, `findif` and `send_arp` in /usr/libexec/heartbeat; `arping` only
with run_arping=true or arp_sender=iputils_arping, which these tests do not use.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pyha.cli import resource_types
from pyha.clock import MonotonicClock
from pyha.resources.ocf import MetaDataCache, OcfAgent
from pyha.resources.spi import OcfCode, OperationContext

AGENT = Path("/usr/lib/ocf/resource.d/heartbeat/IPaddr2")
HA_BIN = Path("/usr/libexec/heartbeat")
ADDRESS = "198.18.11.50"
CLOCK = MonotonicClock()
_SEQUENCE = itertools.count(1)


def _missing() -> str:
    """Why IPaddr2 cannot run here, '' if it can."""
    needed = [AGENT, HA_BIN / "findif", HA_BIN / "send_arp"]
    absent = [str(path) for path in needed if not os.access(path, os.X_OK)]
    if shutil.which("ip") is None:
        absent.append("ip (Debian package iproute2)")
    return f"missing {', '.join(absent)} (Debian package resource-agents)" if absent else ""


needs_ipaddr2 = pytest.mark.skipif(bool(_missing()), reason=_missing() or "-")


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=20)


@dataclass
class Netns:
    """A network namespace holding one veth pair, `nic` and its peer, both up."""

    name: str
    nic: str

    def addresses(self) -> list[str]:
        """IPv4 addresses on `nic`."""
        shown = json.loads(_ip("-n", self.name, "-j", "-4", "addr", "show", "dev", self.nic).stdout)
        return [a["local"] for link in shown for a in link.get("addr_info", [])]

    def pids(self) -> list[int]:
        listed = subprocess.run(
            ["ip", "netns", "pids", self.name], check=False, capture_output=True, text=True
        )
        return [int(word) for word in listed.stdout.split()]


def _remove(ns: Netns) -> None:
    """Kill what still runs in the namespace (send_arp runs in the background), delete it."""
    pids = ns.pids()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for _ in range(100):  # they are not our children: wait until /proc forgets them
        if not any(Path(f"/proc/{pid}").exists() for pid in pids):
            break
        time.sleep(0.05)
    subprocess.run(["ip", "netns", "delete", ns.name], check=False, capture_output=True)


@pytest.fixture
def netns() -> Iterator[Netns]:
    ns = Netns(f"pyhaocf-{os.getpid()}-{next(_SEQUENCE)}", f"ocf{os.getpid()}")
    _ip("netns", "add", ns.name)
    try:
        _ip("-n", ns.name, "link", "set", "lo", "up")
        _ip("-n", ns.name, "link", "add", ns.nic, "type", "veth", "peer", "name", "peer0")
        _ip("-n", ns.name, "link", "set", ns.nic, "up")
        _ip("-n", ns.name, "link", "set", "peer0", "up")
        yield ns
    finally:
        _remove(ns)


def _agent(tmp_path: Path, ns: Netns) -> OcfAgent:
    wrapper = ("ip", "netns", "exec", ns.name)
    return OcfAgent(AGENT, cache=MetaDataCache(tmp_path / "cache"), wrapper=wrapper)


def _run(agent: OcfAgent, operation: str, params: dict[str, object], state: Path) -> int:
    ctx = OperationContext(
        resource="vip",
        operation=operation,
        params=params,
        deadline=CLOCK.now() + 20,
        node="n1",
        state_dir=state,
        clock=CLOCK,
    )
    return agent.invoke(ctx).code


def _host_addresses() -> str:
    return _ip("-4", "addr", "show").stdout


@pytest.mark.root
@needs_ipaddr2
def test_ipaddr2_lifecycle_inside_a_namespace(tmp_path: Path, netns: Netns) -> None:
    agent = _agent(tmp_path, netns)
    params, problems = agent.validate({"ip": ADDRESS, "cidr_netmask": 24, "nic": netns.nic})
    assert problems == ()
    state = tmp_path / "state"
    assert _run(agent, "monitor", params, state) == OcfCode.NOT_RUNNING
    assert _run(agent, "start", params, state) == OcfCode.SUCCESS
    assert netns.addresses() == [ADDRESS]
    assert ADDRESS not in _host_addresses()
    assert _run(agent, "monitor", params, state) == OcfCode.SUCCESS
    assert _run(agent, "start", params, state) == OcfCode.SUCCESS  # idempotent
    assert netns.addresses() == [ADDRESS]
    assert _run(agent, "stop", params, state) == OcfCode.SUCCESS
    assert netns.addresses() == []
    assert _run(agent, "monitor", params, state) == OcfCode.NOT_RUNNING
    assert _run(agent, "stop", params, state) == OcfCode.SUCCESS


@pytest.mark.root
@needs_ipaddr2
def test_ipaddr2_validate_all_looks_inside_the_namespace(tmp_path: Path, netns: Netns) -> None:
    params = {"ip": ADDRESS, "cidr_netmask": 24, "nic": netns.nic}
    assert _agent(tmp_path, netns).validate(params)[1] == ()
    outside = OcfAgent(AGENT, cache=MetaDataCache(tmp_path / "cache"))
    assert outside.validate(params)[1] == (
        "validate-all: invalid configuration (6): [findif] failed",
    )


@pytest.mark.root
@needs_ipaddr2
def test_ipaddr2_validate_all_reasons(tmp_path: Path, netns: Netns) -> None:
    agent = _agent(tmp_path, netns)
    bad_count = {"ip": ADDRESS, "cidr_netmask": 24, "nic": netns.nic, "arp_count": 0}
    assert agent.validate(bad_count)[1] == (
        "validate-all: invalid configuration (6): Invalid OCF_RESKEY_arp_count [0]",
    )
    _, problems = agent.validate({"ip": ADDRESS, "arp_count": "many"})
    assert problems == ("arp_count: must be an integer, got 'many'",)  # caught before the agent
    assert agent.validate({"cidr_netmask": 24})[1] == ("ip: required parameter is missing",)
    assert netns.addresses() == []


@pytest.mark.skipif(not AGENT.is_file(), reason=f"{AGENT} is missing (resource-agents)")
def test_resource_type_show_lists_ipaddr2_parameters_with_types(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("OCF_ROOT", raising=False)
    result = CliRunner().invoke(resource_types.app, ["show", "ocf:heartbeat:IPaddr2", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    params = {p["name"]: p for p in data["parameters"]}
    assert (params["ip"]["type"], params["ip"]["required"]) == ("string", True)
    assert (params["nic"]["type"], params["nic"]["required"]) == ("string", False)
    assert (params["arp_count"]["type"], params["arp_count"]["default"]) == ("integer", "5")
    assert (params["lvs_support"]["type"], params["lvs_support"]["default"]) == ("boolean", "false")
    assert params["cidr_netmask"]["type"] == "string"
