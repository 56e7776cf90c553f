#!/opt/pyha/bin/python
"""pyha-healthcheck: does this container's cluster server answer? Exit 0 yes, 1 no.

1. The admin endpoint: `pyha status --json` (pyha's admin command, with the connection
   settings of the container's environment). Skipped with PYHA_HEALTH_ADMIN=0, and when
   this pyha has no `status` command yet.
2. When the admin endpoint does not answer: the node's own RPC port, with an
   authenticated `status` call under the cluster key (PYHA_KEY_FILE); without a readable
   key, a TCP connect to the rpc port and a look for the heartbeat port's UDP socket.

Settings: PYHA_CONFIG (cluster file), PYHA_NODE (this node; default: the only node),
PYHA_KEY_FILE (cluster key file). One line on stdout says what answered.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ADMIN_TIMEOUT = 5.0
RPC_TIMEOUT = 2.0
NO_SUCH_COMMAND = "No such command"


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: healthy, unknown (None: try the next) or not."""

    healthy: bool | None
    detail: str


@dataclass(frozen=True)
class Target:
    """The node to check: its name, rpc endpoint and heartbeat endpoints."""

    node: str
    rpc: tuple[str, int] | None
    heartbeats: tuple[tuple[str, int], ...]


def target(config_path: Path, node: str | None) -> Target:
    """This node's endpoints from the cluster file (the only node when `node` is None)."""
    from pyha.model.config import ClusterConfig, parse_endpoint

    config = ClusterConfig.from_toml(config_path)
    if node is None:
        if len(config.nodes) != 1:
            raise SystemExit("pyha-healthcheck: set PYHA_NODE (the cluster has several nodes)")
        node = config.nodes[0].name
    me = config.node(node)
    rpc = parse_endpoint(me.rpc) if me.rpc else None
    return Target(node, rpc, tuple(parse_endpoint(a) for a in me.addresses))


def admin_verdict(argv: list[str], timeout: float = ADMIN_TIMEOUT) -> Verdict:
    """Run the admin status command: healthy on exit 0, unknown otherwise."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Verdict(None, f"admin: {type(exc).__name__}")
    if done.returncode == 0:
        return Verdict(True, "admin endpoint answered pyha status")
    if NO_SUCH_COMMAND in done.stderr:
        return Verdict(None, "admin: this pyha has no status command")
    last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    return Verdict(None, f"admin: {last[:200]}")


def rpc_verdict(spot: Target, key_path: Path, timeout: float = RPC_TIMEOUT) -> Verdict:
    """An authenticated `status` call to the node itself; unknown without a usable key."""
    from pyha.errors import PyhaError
    from pyha.membership.keys import load_key
    from pyha.membership.rpc import RpcClient

    if spot.rpc is None:
        return Verdict(None, f"node {spot.node} has no rpc endpoint")
    try:
        key = load_key(key_path)
    except PyhaError as exc:
        return Verdict(None, f"rpc: {exc}")
    client = RpcClient(key, "healthcheck", spot.rpc, timeout, peer=spot.node)
    try:
        answer = client.call("status", timeout=timeout)
    except PyhaError as exc:
        return Verdict(False, f"rpc status of {spot.node} failed: {exc}")
    finally:
        client.close()
    return Verdict(True, f"node {answer.get('node')} answered: term {answer.get('term')}, "
                         f"role {answer.get('role')}, coordinator {answer.get('coordinator')}")


def udp_ports(table: str) -> set[int]:
    """Local ports of the sockets listed in a /proc/net/udp (or udp6) table."""
    ports = set()
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 1 and ":" in fields[1]:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def port_verdict(spot: Target, proc_net: Path = Path("/proc/net")) -> Verdict:
    """The rpc port accepts a TCP connection and every heartbeat port has a UDP socket."""
    if spot.rpc is None:
        return Verdict(False, f"node {spot.node} has no rpc endpoint to check")
    try:
        with socket.create_connection(spot.rpc, timeout=RPC_TIMEOUT):
            pass
    except OSError as exc:
        return Verdict(False, f"rpc port {spot.rpc[0]}:{spot.rpc[1]} is closed: {exc}")
    bound: set[int] = set()
    for name in ("udp", "udp6"):
        try:
            bound |= udp_ports((proc_net / name).read_text())
        except OSError:
            continue
    missing = [f"{h}:{p}" for h, p in spot.heartbeats if p not in bound]
    if missing:
        return Verdict(False, f"no heartbeat socket on {', '.join(missing)}")
    return Verdict(True, f"rpc port open and heartbeat sockets bound for {spot.node}")


def check(environ: dict[str, str]) -> Verdict:
    """Run the checks in order until one gives a clear answer."""
    notes = []
    if environ.get("PYHA_HEALTH_ADMIN", "1") != "0":
        verdict = admin_verdict(["pyha", "status", "--json"])
        if verdict.healthy is not None:
            return verdict
        notes.append(verdict.detail)
    spot = target(Path(environ.get("PYHA_CONFIG", "/etc/pyha/cluster.toml")),
                  environ.get("PYHA_NODE") or None)
    key = Path(environ.get("PYHA_KEY_FILE", "/var/lib/pyha-key/cluster.key"))
    verdict = rpc_verdict(spot, key)
    if verdict.healthy is None:
        notes.append(verdict.detail)
        verdict = port_verdict(spot)
    if notes:
        verdict = Verdict(verdict.healthy, f"{verdict.detail} ({'; '.join(notes)})")
    return verdict


def main() -> int:
    """Print the verdict; exit 0 when healthy."""
    verdict = check(dict(os.environ))
    print(("healthy: " if verdict.healthy else "unhealthy: ") + verdict.detail)
    return 0 if verdict.healthy else 1


if __name__ == "__main__":
    sys.exit(main())
