"""Directory speed: loading 1,000 and 10,000 resources from OpenLDAP; noticing a change.

    python bench/directory.py                 # a readable table
    python bench/directory.py --json          # one JSON object of medians in milliseconds

A private slapd is started in a temporary directory (loopback, free port) and filled with
`ldapadd`: groups of ten resources, each with a parameter and a monitor operation, four
nodes and a location constraint per group. A load is cold: a new connection, paged
searches, every entry parsed and the whole configuration checked. The change notice is
the time from starting `ldapmodify` (a real process changing one resource's target role)
to the watcher handing over the new configuration, in the 10,000-resource cluster.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import SecretStr

from pyha.directory.bootstrap import DirectorySettings
from pyha.directory.ldap import LdapDirectory
from pyha.directory.slapd import Slapd, SlapdConfig, installed
from pyha.model.config import ClusterConfig
from pyha.ports import free_port

PASSWORD = "bench-secret"  # noqa: S105 - a throwaway server on loopback


def tree_ldif(cluster: str, resources: int, suffix: str) -> str:
    """The cluster's entries as LDIF for ldapadd."""
    base = f"cn={cluster},{suffix}"
    out = [f"dn: {base}\nobjectClass: pyhaCluster\ncn: {cluster}\npyhaEpoch: 1\n"]
    out += [f"dn: ou={ou},{base}\nobjectClass: organizationalUnit\nou: {ou}\n"
            for ou in ("nodes", "types", "groups", "constraints", "status", "audit")]
    out += [f"dn: cn=n{i},ou=nodes,{base}\nobjectClass: pyhaNode\npyhaPosition: {i}\n"
            f"pyhaAddress: {{0}}10.0.0.{i}:5405\n" for i in range(1, 5)]
    for g in range(resources // 10):
        group = f"cn=g{g},ou=groups,{base}"
        out.append(f"dn: {group}\nobjectClass: pyhaGroup\npyhaPosition: {g}\n")
        out += [f"dn: cn=g{g}r{r},{group}\nobjectClass: pyhaResource\npyhaType: dummy\n"
                f"pyhaPosition: {r}\npyhaParameter: delay=0\n"
                "pyhaOperation: monitor interval=10s timeout=20s\n" for r in range(10)]
        out.append(f"dn: cn=loc-g{g},ou=constraints,{base}\nobjectClass: pyhaLocationConstraint"
                   f"\npyhaGroupName: g{g}\npyhaNodeName: n{g % 4 + 1}\npyhaScore: 50\n")
    return "\n".join(out)


class Bench:
    """A private slapd with one cluster per size."""

    def __init__(self, root: Path) -> None:
        self.cfg = SlapdConfig(directory=root / "slapd", port=free_port(), password=PASSWORD,
                               nosync=True)
        self.slapd = Slapd(self.cfg)
        self.password_file = root / "password"
        self.password_file.write_text(PASSWORD)
        self.root = root

    def start(self) -> None:
        self.slapd.create()
        self.slapd.start()
        self.tool("ldapadd", text=f"dn: {self.cfg.suffix}\nobjectClass: dcObject\n"
                                  "objectClass: organization\ndc: pyha\no: pyha\n")

    def tool(self, name: str, *args: str, text: str | None = None) -> None:
        subprocess.run([name, "-x", "-H", self.cfg.url, "-D", self.cfg.bind_dn, "-y",
                        str(self.password_file), *args], input=text, capture_output=True,
                       text=True, check=True, timeout=600)

    def fill(self, cluster: str, resources: int) -> None:
        path = self.root / f"{cluster}.ldif"
        path.write_text(tree_ldif(cluster, resources, self.cfg.suffix))
        self.tool("ldapadd", "-f", str(path))

    def settings(self, cluster: str) -> DirectorySettings:
        return DirectorySettings(urls=(self.cfg.url,), base_dn=self.cfg.suffix,
                                 bind_dn=self.cfg.bind_dn, password=SecretStr(PASSWORD),
                                 cluster=cluster)

    def load_ms(self, cluster: str, repeats: int) -> tuple[list[float], list[float]]:
        """Cold loads: a new directory object (connection, no parse memo) each time.

        Returns wall-clock and this process's CPU time: on a busy machine the CPU time
        shows pyha's own cost when the wall clock also counts waiting for a core.
        """
        wall, cpu = [], []
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            with LdapDirectory(self.settings(cluster)) as directory:
                config = directory.load()
            wall.append((time.perf_counter() - start) * 1000)
            cpu.append((time.process_time() - start_cpu) * 1000)
            assert sum(len(g.resources) for g in config.groups) > 0
        return wall, cpu

    def notice_ms(self, cluster: str, repeats: int) -> list[float]:
        """ldapmodify started -> the watcher hands over the changed configuration."""
        directory = LdapDirectory(self.settings(cluster))
        seen: list[ClusterConfig] = []
        arrived = threading.Event()

        def changed(config: ClusterConfig) -> None:
            seen.append(config)
            arrived.set()

        watch = directory.watch(changed, known=directory.load())
        times = []
        try:
            if not watch.connected.wait(60):
                raise RuntimeError("the watcher did not connect")
            dn = directory.layout.resource_dn("g1", "g1r1")
            for i in range(repeats):
                role = "stopped" if i % 2 == 0 else "started"
                arrived.clear()
                start = time.perf_counter()
                self.tool("ldapmodify", text=f"dn: {dn}\nchangetype: modify\n"
                                             f"replace: pyhaTargetRole\npyhaTargetRole: {role}\n")
                if not arrived.wait(30):
                    raise RuntimeError("the change was not noticed within 30 s")
                times.append((time.perf_counter() - start) * 1000)
                assert seen[-1].resource("g1r1").meta.target_role == role
                time.sleep(0.2)
        finally:
            watch.stop()
            directory.close()
        return times


def run(repeats: int) -> dict[str, Any]:
    """All figures, as lists of samples in milliseconds."""
    with tempfile.TemporaryDirectory(prefix="pyha-bench-dir-") as tmp:
        bench = Bench(Path(tmp))
        bench.start()
        try:
            bench.fill("c1000", 1000)
            bench.fill("c10000", 10000)
            small = bench.load_ms("c1000", repeats)
            large = bench.load_ms("c10000", max(3, repeats // 2))
            return {"load": {"1000": small[0], "10000": large[0]},
                    "load_cpu": {"1000": small[1], "10000": large[1]},
                    "notice": bench.notice_ms("c10000", repeats)}
        finally:
            bench.slapd.stop()


def main() -> None:
    """Print the table, or with --json one object of medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeats", type=int, default=7, help="samples per figure")
    args = parser.parse_args()
    reason = installed()
    if reason:
        sys.exit(f"bench/directory.py: {reason}")
    samples = run(args.repeats)
    medians = {"load_ms": {k: round(statistics.median(v), 1)
                           for k, v in samples["load"].items()},
               "change_notice_ms": round(statistics.median(samples["notice"]), 1)}
    if args.json:
        print(json.dumps(medians))
        return
    print(f"{'figure':<34}{'min':>10}{'median':>10}{'max':>10}")
    rows = []
    for k, v in samples["load"].items():
        rows += [(f"load {k} resources (ms)", v),
                 ("  CPU time of pyha (ms)", samples["load_cpu"][k])]
    rows.append(("ldapmodify -> new config (ms)", samples["notice"]))
    for label, values in rows:
        print(f"{label:<34}{min(values):>10.1f}{statistics.median(values):>10.1f}"
              f"{max(values):>10.1f}")


if __name__ == "__main__":
    main()
