"""Admin latency: `status` and a configuration write over mutual TLS on loopback.

    python bench/admin.py                 # a readable table
    python bench/admin.py --json          # one JSON object of figures in milliseconds
    python bench/admin.py --json --quick  # a few calls on small clusters (for the tests)

For each size, a single-node cluster server runs its loop on a thread with that many
dummy resources (groups of ten) and its admin endpoint (a real AdminDaemon: Pyro5, the
json serializer, TLS with certificates from a throwaway cluster CA). The dummies already
run when the server starts (their state files are written first), as after a restart of
the server: it adopts them at its probe instead of starting 10,000. Once every group
runs, one typed client (`AdminClient` with an admin's certificate) calls `status`
repeatedly over one kept connection; each figure is the time from the call to the
parsed `StatusReport`. `status` is what `pyha status` asks: above 200 resources it lists
only those not as they should be (none here); `status(full=True)` (`pyha status --all`,
every resource listed) is timed too, with fewer calls. The table also shows the same
`status` called in-process (no TLS, no serializer), to tell the service's work from the
wire's. The write, in the
largest cluster, is `resource_update` setting one resource's description (a new
configuration epoch, saved and in force from the next cycle); with an admin service
that has no configuration writes yet, `maintenance` switched on and off instead.
Everything started is stopped and its files removed, within `--timeout` seconds.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyha.admin.auth import AdminRole, Identity, server_context
from pyha.admin.ca import CertificateAuthority, Issued
from pyha.admin.client import AdminClient
from pyha.admin.daemon import AdminDaemon
from pyha.admin.service import AdminService
from pyha.admin.target import ServerTarget
from pyha.model.config import ClusterConfig
from pyha.ports import free_port
from pyha.resources.registry import Registry
from pyha.server import ClusterServer
from pyha.testing.dummy import default_state_path

TARGETS = {10: 5.0, 10_000: 100.0}
"""The status p50 each size should stay under, in milliseconds."""


def cluster(resources: int, state_dir: Path) -> ClusterConfig:
    """One node and `resources` dummies in groups of ten (the last group may be smaller)."""
    groups = [{"name": f"g{g}", "resources": [
        {"name": f"g{g}r{r}", "type": "dummy"} for r in range(min(10, resources - g * 10))]}
        for g in range((resources + 9) // 10)]
    return ClusterConfig.from_mapping({
        "cluster": {"name": "bench", "state_dir": str(state_dir)},
        "nodes": [{"name": "n1"}], "groups": groups})


@dataclass
class Endpoint:
    """A running server with its admin endpoint, and an admin's certificate for it."""

    server: ClusterServer
    local: AdminService
    """A second service on the same server, called in-process as the admin."""
    address: str
    user: Issued

    def client(self) -> AdminClient:
        return AdminClient(self.address, self.user.ca, self.user.cert, self.user.key,
                           timeout=120)


@contextmanager
def running(resources: int, root: Path, ca: CertificateAuthority, user: Issued,
            deadline: float) -> Iterator[Endpoint]:
    """A cluster server of `resources` dummies with every group running, and its endpoint."""
    state_dir = root / f"state-{resources}"
    config = cluster(resources, state_dir)
    for _, resource in config.resources():  # running already: adopted at the probe
        state = default_state_path(state_dir, resource.name)
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text('{"promoted": false, "reloads": 0}')
    node = ca.issue("n1", AdminRole.VIEWER, server=True, out=root / f"n1-{resources}")
    server = ClusterServer(config, Registry.discover([]),
                           state_dir=state_dir)
    service = AdminService(ServerTarget(server))
    daemon = AdminDaemon(service, ("127.0.0.1", free_port()),
                         server_context(node.ca, node.cert, node.key), node="n1")
    stop = threading.Event()
    loop = threading.Thread(target=server.run, args=(stop,), name="bench server")
    daemon.start()
    loop.start()
    try:
        local = AdminService(ServerTarget(server),
                             identity=lambda: Identity("bench", AdminRole.ADMIN))
        endpoint = Endpoint(server, local, daemon.address_text, user)
        wait_running(server, resources, deadline)
        yield endpoint
    finally:
        stop.set()
        loop.join(timeout=max(10.0, deadline - time.monotonic()))
        daemon.close()
        if loop.is_alive():
            raise RuntimeError("the cluster server did not stop in time")


def wait_running(server: ClusterServer, resources: int, deadline: float) -> None:
    """Until the server reports every resource started (or the deadline passes)."""
    while time.monotonic() < deadline:
        started = sum(1 for r in server.status().resources if r.role.value == "started")
        if started == resources:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{resources} resources did not all start before the deadline")


def timed(call: Callable[[], Any], runs: int) -> list[float]:
    """Milliseconds each of `runs` calls took (wall clock)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return times


def p50(times: list[float]) -> float:
    return statistics.median(times)


def p99(times: list[float]) -> float:
    """The 99th percentile (nearest rank): the slowest call when there are under 100."""
    ordered = sorted(times)
    return ordered[max(0, -(-len(ordered) * 99 // 100) - 1)]


def writer(admin: AdminClient) -> tuple[str, Callable[[int], Any]]:
    """The configuration write to time, in words, and a call making the i-th one."""
    if hasattr(AdminService, "resource_update"):
        return "resource_update (a description)", lambda i: admin.call(
            "resource_update", name="g0r0", fields={"description": f"bench write {i}"})
    return "maintenance on/off", lambda i: admin.maintenance(i % 2 == 0)


@dataclass
class Figures:
    """What one cluster size gave, in milliseconds."""

    status: list[float]
    full: list[float]
    """status(full=True): every resource listed."""
    in_process: list[float]
    write: list[float]
    write_kind: str


def measure(endpoint: Endpoint, runs: int, writes: int) -> Figures:
    """status over TLS, status in-process, and the write, on one endpoint."""
    with endpoint.client() as admin:
        admin.status()  # connect, and the first plan, outside the figures
        status = timed(admin.status, runs)
        full = timed(lambda: admin.status(full=True), max(3, runs // 5))
        in_process = timed(endpoint.local.status, max(1, runs // 4))
        kind, write_one = writer(admin)
        count = iter(range(writes))
        write = timed(lambda: write_one(next(count)), writes)
        if kind.startswith("maintenance") and writes % 2:
            admin.maintenance(False)
    return Figures(status, full, in_process, write, kind)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table, or one JSON object with --json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true",
                        help="10 and 100 resources, a few calls each (for the tests)")
    parser.add_argument("--sizes", help="resource counts, comma separated (default 10,10000)")
    parser.add_argument("--runs", type=int,
                        help="status calls per size (default 300; 50 above 1,000 resources)")
    parser.add_argument("--writes", type=int, help="writes in the largest cluster (default 40)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds the whole run may take")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the server's decisions are not the figures
    sizes = [int(s) for s in (args.sizes or ("10,100" if args.quick else "10,10000")).split(",")]
    def runs(size: int) -> int:
        return args.runs or (10 if args.quick else 300 if size <= 1000 else 50)

    writes = args.writes or (4 if args.quick else 40)
    deadline = time.monotonic() + args.timeout
    results: dict[int, Figures] = {}
    with tempfile.TemporaryDirectory(prefix="pyha-bench-admin-") as tmp:
        root = Path(tmp)
        ca = CertificateAuthority.init(root / "ca")
        user = ca.issue("bench", AdminRole.ADMIN, out=root / "bench")
        for size in sizes:
            with running(size, root, ca, user, deadline) as endpoint:
                results[size] = measure(endpoint, runs(size),
                                        writes if size == max(sizes) else 0)
    write = results[max(sizes)].write
    figures = {
        "status_p50_ms": {str(s): round(p50(f.status), 2) for s, f in results.items()},
        "status_p99_ms": {str(s): round(p99(f.status), 2) for s, f in results.items()},
        "status_full_p50_ms": {str(s): round(p50(f.full), 2) for s, f in results.items()},
        "write_p50_ms": round(p50(write), 2),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        print(table(results, max(sizes)))
    return 0


def table(results: dict[int, Figures], largest: int) -> str:
    """The figures as a readable table, with the targets."""
    lines = ["admin status over mutual TLS on loopback (ms)",
             f"{'resources':>10}  {'calls':>5}  {'p50':>8}  {'p99':>8}  {'in-process p50':>14}"
             f"  {'full p50':>9}  target p50"]
    for size, f in results.items():
        target = TARGETS.get(size)
        verdict = "" if target is None else \
            f"< {target:g} ms {'ok' if p50(f.status) < target else 'MISSED'}"
        lines.append(f"{size:>10}  {len(f.status):>5}  {p50(f.status):8.2f}  {p99(f.status):8.2f}  "
                     f"{p50(f.in_process):14.2f}  {p50(f.full):9.2f}  {verdict}")
    write = results[largest]
    lines.append(f"write ({write.write_kind}, {largest} resources, {len(write.write)} calls): "
                 f"p50 {p50(write.write):.2f} ms, p99 {p99(write.write):.2f} ms")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
