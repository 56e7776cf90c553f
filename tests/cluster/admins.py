"""A local cluster whose nodes serve the admin endpoint, and certificates to call it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pyha.admin.auth import AdminRole
from pyha.admin.ca import CertificateAuthority, Issued
from pyha.admin.client import AdminClient
from pyha.admin.report import StatusReport
from pyha.ports import free_port
from tests.cluster.harness import LocalCluster


@dataclass
class AdminAccess:
    """A cluster whose nodes serve the admin endpoint, each node's admin address, and an
    operator's certificate (alice) to call them."""

    cluster: LocalCluster
    addresses: dict[str, str]
    alice: Issued

    def client(self, node: str, who: Issued | None = None) -> AdminClient:
        cert = who or self.alice
        return AdminClient(self.addresses[node], cert.ca, cert.cert, cert.key, timeout=20)

    def status(self, node: str) -> StatusReport | None:
        try:
            with self.client(node) as admin:
                return admin.status()
        except Exception:
            return None

    def settled(self, size: int | None = None) -> bool:
        """Every started node answers, with a coordinator, every member and the group
        running."""
        want = size or len(self.cluster.nodes[:self.cluster.listed])
        reports = [self.status(n) for n in self.cluster.procs]
        return all(r is not None and r.coordinator and r.groups[0].state == "running"
                   and len(r.members) == want for r in reports)


@dataclass
class Admins(AdminAccess):
    """AdminAccess, and an admin's certificate (root)."""

    root: Issued


def serve_admin(cluster: LocalCluster, ca: CertificateAuthority) -> dict[str, str]:
    """Give every node of `cluster` an admin endpoint on a free loopback port, with a
    server certificate from `ca`; each node's admin address."""
    addresses = {}
    for node in cluster.nodes:
        folder = cluster.state_dir(node) / "admin"
        ca.issue(node, AdminRole.VIEWER, server=True, out=folder)
        addresses[node] = f"127.0.0.1:{free_port()}"
        (folder / "admin.toml").write_text(f'address = "{addresses[node]}"\n')
    return addresses


@contextmanager
def admin_cluster(root: Path, **options: object) -> Iterator[Admins]:
    """Start the listed nodes of a LocalCluster (process-tree fencing) with admin
    endpoints; stop everything afterwards and check nothing ran twice."""
    cluster = LocalCluster(root, fence="process-tree", **options)  # type: ignore[arg-type]
    ca = CertificateAuthority.init(root / "ca")
    addresses = serve_admin(cluster, ca)
    alice = ca.issue("alice", AdminRole.OPERATOR, out=root / "alice")
    boss = ca.issue("root", AdminRole.ADMIN, out=root / "root")
    for running in cluster.serving():
        yield Admins(running, addresses, alice, boss)
