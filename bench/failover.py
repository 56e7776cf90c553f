"""Failover time: from a node's death to its HTTP service answering again on the floating IP.

    sudo python bench/failover.py                      # a readable table, 10 runs each
    sudo python bench/failover.py --runs 20 --json     # one JSON object of figures
    sudo python bench/failover.py --service everywhere # only the address moves

Three cluster servers run in network namespaces on one bridge (the harness of the
cluster tests, tests/cluster/netns_cluster.py); a client namespace polls the floating
address 198.18.20.100 every 5 ms (overlapping TCP connects + HTTP GETs, each given
200 ms). The group is the floating address (`ip`) and an HTTP service (`process`,
started by the group after the address); with `--service everywhere` every node runs
the service itself, bound with IP_FREEBIND, and the group holds only the address.

A run waits for a steady state (every node a member, the service answering without a
gap for 2 s), then kills the node that serves:

- `crash`: SIGKILL of every process in its namespace (its cluster server and the service
  it started); its kernel, so its network, lives on, as on a host whose programs died;
- `power`: the same, and its cable pulled: a power loss, which nothing announces;
- `server`: SIGKILL of its cluster server only; what it started runs on until the node
  is fenced.

Fencing a node kills every process of its namespace and pulls its cable, as a power
switch would (the namespace fence with `bridge_port`). The failover time is the first
answer from another node minus the kill time, both on CLOCK_MONOTONIC. The killed node
is then rebooted (its namespace emptied, the floating address removed, cable back in,
server started) before the next run. Profiles: `default` (heartbeat 100 ms, dead_after
1 s) and `fast` (heartbeat 20 ms, dead_after 150 ms). The node logs tell where the time
went: detected (a survivor declares the node down), elected (a new coordinator, when
the dead node was the coordinator), fenced, started (the service's start returned).

Needs root (network namespaces).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.cluster.netns_cluster import NetnsCluster, Poller, log_events, until
from tests.netns import netns_lab

PREFIX = "pyhacl"
PROFILES = {
    "default": {},
    "fast": {"heartbeat_interval": "20ms", "dead_after": "150ms"},
}
KINDS = ("crash", "power", "server")
"""The kinds of kill; the first one asked for gives the headline figures."""
STEADY = 2.0
"""Seconds the service must answer without a gap before a run kills its node."""
SETTLE = 90.0
"""Seconds the cluster gets to reach a steady state before a run gives up."""
FAILOVER_LIMIT = 30.0
"""Seconds after a kill without an answer from another node: the run failed."""
PHASES = ("detected", "elected", "fenced", "started", "answered")


@dataclass
class Run:
    """One kill and what followed, in seconds after the kill (None: did not happen)."""

    kind: str
    victim: str
    coordinator: bool
    """The killed node was the coordinator, so a new one had to be elected."""
    phases: dict[str, float | None] = field(default_factory=dict)
    reshuffles: int = 0
    """Coordinators killed before the run so that the coordinator served (not timed)."""

    @property
    def failover(self) -> float | None:
        return self.phases.get("answered")


def steady(cluster: NetnsCluster, poller: Poller) -> str:
    """Wait for every node to be a member, a coordinator with nothing left to do, and the
    service answering without a gap; the node that serves."""
    cluster.heal(SETTLE)
    cluster.steady(SETTLE)
    if not until(lambda: poller.steady_for(STEADY), SETTLE):
        raise RuntimeError(f"the service did not answer steadily for {STEADY}s")
    victim = cluster.served_by(poller.current() or "")
    if victim is None:
        raise RuntimeError(f"unexpected answer: {poller.current()!r}")
    return victim


def coordinator_of(cluster: NetnsCluster) -> str | None:
    for node in cluster.nodes:
        answer = cluster.status(node)
        if answer and answer["role"] == "coordinator":
            return node
    return None


def serve_from_coordinator(cluster: NetnsCluster, poller: Poller, tries: int = 6) -> int:
    """Until the coordinator is the node that serves, kill the coordinator's server (it
    is fenced, then rebooted): each time another node is elected. How many kills."""
    for kills in range(tries):
        holder = steady(cluster, poller)
        coordinator = coordinator_of(cluster)
        if coordinator in (None, holder):
            return kills
        cluster.kill_server(coordinator)
        until(partial(_replaced, cluster, coordinator), SETTLE)
        until(partial(cluster.is_empty, coordinator), SETTLE)
        cluster.reboot(coordinator)
    return tries


def _replaced(cluster: NetnsCluster, old: str) -> bool:
    return coordinator_of(cluster) not in (None, old)


def one_run(cluster: NetnsCluster, poller: Poller, kind: str, service: str,
            coordinator: bool) -> Run:
    """Kill the serving node (or its server), time the failover, reboot the node. With
    `coordinator`, first make the coordinator the node that serves."""
    reshuffles = serve_from_coordinator(cluster, poller) if coordinator else 0
    victim = steady(cluster, poller)
    run = Run(kind, victim, coordinator_of(cluster) == victim, reshuffles=reshuffles)
    body = f"served by {cluster.hosts[victim].name}"
    wall, t0 = time.time(), time.monotonic()
    {"crash": cluster.crash, "power": cluster.power_off, "server": cluster.kill_server}[
        kind](victim)
    until(lambda: poller.first_answer(t0, body) is not None, FAILOVER_LIMIT, step=0.01)
    answer = poller.first_answer(t0, body)
    # The service may answer before its start operation returns and is logged.
    until(lambda: phases(cluster, victim, wall, service)["started"] is not None, 5.0)
    run.phases = phases(cluster, victim, wall, service)
    run.phases["answered"] = answer[0] - t0 if answer else None
    cluster.reboot(victim)
    return run


def phases(cluster: NetnsCluster, victim: str, since: float, service: str) -> dict[
        str, float | None]:
    """When the survivors logged each step of the failover, in seconds after `since`."""
    started = r"process start web: success" if service == "group" else r"ip start vip: success"
    patterns = {"detected": rf"node {victim} is down",
                "elected": r"elected coordinator for term",
                "fenced": rf"fence {victim}: namespace \S+ is empty",
                "started": started}
    seen: dict[str, float | None] = dict.fromkeys(patterns)
    for node in cluster.nodes:
        if node == victim:
            continue
        for name, at in log_events(cluster.log(node), since - 0.001, patterns).items():
            current = seen[name]
            seen[name] = at - since if current is None else min(current, at - since)
    return seen


@contextmanager
def running_cluster(root: Path, profile: str, service: str) -> Iterator[
        tuple[NetnsCluster, Poller]]:
    """A started cluster in namespaces, with the poller in the client namespace."""
    with netns_lab(PREFIX) as lab:
        cluster = NetnsCluster(lab, root, guard=False, web=service == "group",
                               web_everywhere=service == "everywhere", unplug_fenced=True,
                               options=PROFILES[profile])
        cluster.start_all()
        yield cluster, Poller.start(cluster.client)


@dataclass(frozen=True)
class Plan:
    """What to run for each profile: the kinds of kill, how many runs of each, where the
    service runs, whether to keep the logs, and where progress lines go."""

    kinds: list[str]
    runs: int
    service: str
    keep: bool
    say: Callable[[str], None]


def bench_profile(profile: str, plan: Plan) -> dict[str, Any]:
    """Every run of one profile; the figures per kind of kill, and what the logs show."""
    root = Path(tempfile.mkdtemp(prefix=f"pyha-failover-{profile}-"))
    if plan.keep:
        plan.say(f"{profile}: cluster file and node logs in {root}")
    out: dict[str, Any] = {}
    every: list[Run] = []
    with running_cluster(root, profile, plan.service) as (cluster, poller):
        for kind in plan.kinds:
            done = []
            for i in range(plan.runs):
                # Every other run, the coordinator serves: its loss needs an election.
                run = one_run(cluster, poller, kind, plan.service, coordinator=i % 2 == 1)
                done.append(run)
                plan.say(f"{profile:8} {kind:7} run {i + 1:2}: {_ms(run.failover):>8} (killed "
                         f"{run.victim}{', the coordinator' if run.coordinator else ''})")
            out[kind] = summary(done)
            every += done
        out["churn"] = churn(cluster, every)
    if not plan.keep:
        shutil.rmtree(root, ignore_errors=True)
    return out


def summary(runs: list[Run]) -> dict[str, Any]:
    """Median and max failover in ms, failed runs, and the phases' medians."""
    return {
        **_figures(runs),
        "failed": sum(r.failover is None for r in runs),
        "samples_ms": [None if r.failover is None else _round(r.failover) for r in runs],
        "coordinator_killed": _figures([r for r in runs if r.coordinator]),
        "other_killed": _figures([r for r in runs if not r.coordinator]),
        "phases_median_ms": {p: _median([r.phases.get(p) for r in runs
                                         if p != "elected" or r.coordinator])
                             for p in PHASES},
    }


def _figures(runs: list[Run]) -> dict[str, Any]:
    times = [r.failover for r in runs if r.failover is not None]
    return {"median_ms": _median(list(times)), "max_ms": _round(max(times)) if times else None,
            "runs": len(times)}


def churn(cluster: NetnsCluster, runs: list[Run]) -> dict[str, int]:
    """How often, over a whole profile, a node was declared down, a coordinator elected
    and a node fenced, with what the kills alone explain: more means false suspicions."""
    text = "".join(cluster.log(n) for n in cluster.nodes)
    survivors = len(cluster.nodes) - 1
    kills = len(runs) + sum(r.reshuffles for r in runs)
    return {
        "down": len(re.findall(r"pyha\.cluster: node \S+ is down$", text, re.MULTILINE)),
        "down_from_kills": survivors * kills,
        "elected": text.count("elected coordinator for term"),
        "elected_from_kills": 1 + sum(r.coordinator + r.reshuffles for r in runs),
        "fenced": text.count("WARNING pyha.fencing: fence "),
        "fenced_from_kills": kills,
    }


def _round(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return _round(statistics.median(known)) if known else None


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def table(results: dict[str, dict[str, Any]], runs: int, service: str) -> str:
    """The figures as a readable table."""
    what = "the floating address and the HTTP service" if service == "group" else \
        "the floating address (the HTTP service runs on every node)"
    rows = [(profile, kind, s) for profile, kinds in results.items()
            for kind, s in kinds.items() if kind != "churn"]
    lines = [f"Failover of a group with {what}: 3 nodes in namespaces, {runs} runs each.",
             "kill: crash = every process of its namespace; power = those and its cable "
             "(a power loss); server = its cluster server only.", "",
             f"{'':17}{'all runs':^27}  {'coordinator killed':^22}  {'another node killed':^22}",
             f"{'profile':8} {'kill':7} {'runs':>4} {'median':>10} {'max':>10}  "
             + f"{'runs':>4} {'median':>8} {'max':>8}  " * 2]
    for profile, kind, s in rows:
        c, o = s["coordinator_killed"], s["other_killed"]
        lines.append(f"{profile:8} {kind:7} {s['runs']:>4} {_cell(s['median_ms']):>10} "
                     f"{_cell(s['max_ms']):>10}  " + "  ".join(
                         f"{f['runs']:>4} {_cell(f['median_ms']):>8} {_cell(f['max_ms']):>8}"
                         for f in (c, o)))
    lines += ["", "where the time goes: medians, ms after the kill, from the survivors' logs "
              "(elected: runs that killed the coordinator)",
              f"{'profile':8} {'kill':7} " + " ".join(f"{p:>9}" for p in PHASES)]
    lines += [f"{profile:8} {kind:7} " + " ".join(
        f"{_cell(s['phases_median_ms'][p]):>9}" for p in PHASES) for profile, kind, s in rows]
    lines += ["", "churn over each profile, seen (explained by the kills): " + "; ".join(
        f"{profile}: {_churn(k['churn'])}" for profile, k in results.items())]
    failed = sum(s["failed"] for _, _, s in rows)
    if failed:
        lines.append(f"{failed} run(s) saw no answer from another node within "
                     f"{FAILOVER_LIMIT:.0f}s")
    return "\n".join(lines)


def _churn(seen: dict[str, int]) -> str:
    return ", ".join(f"{what} {seen[what]} ({seen[what + '_from_kills']})"
                     for what in ("down", "elected", "fenced"))


def _cell(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:.0f} ms"


def main() -> int:
    """Run the benchmark; print the table, or with --json one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per profile and kill")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--profiles", default="default,fast",
                        help="comma-separated: default, fast")
    parser.add_argument("--kill", default=",".join(KINDS),
                        help="comma-separated, the first gives the headline figures: crash "
                             "(every process of the node), power (a power loss), server "
                             "(its cluster server only)")
    parser.add_argument("--service", choices=("group", "everywhere"), default="group",
                        help="the HTTP service is in the group, or runs on every node")
    parser.add_argument("--keep", action="store_true",
                        help="keep each profile's cluster file and node logs")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/failover.py needs root: it creates network namespaces "
              "(run it with sudo)", file=sys.stderr)
        return 2
    if shutil.which("ip") is None:
        print("bench/failover.py needs the ip command (iproute2)", file=sys.stderr)
        return 2
    profiles = [p for p in args.profiles.split(",") if p]
    kinds = [k for k in args.kill.split(",") if k]
    if not profiles or not kinds or not set(profiles) <= set(PROFILES) \
            or not set(kinds) <= set(KINDS) or args.runs < 1:
        parser.error("--profiles from default,fast; --kill from crash,power,server; "
                     "--runs >= 1")

    def say(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    plan = Plan(kinds, args.runs, args.service, args.keep, say)
    results = {p: bench_profile(p, plan) for p in profiles}
    if args.json:
        print(json.dumps({p: {**r[kinds[0]], "kill": kinds[0], **{k: r[k] for k in kinds[1:]},
                              "churn": r["churn"]} for p, r in results.items()}))
    else:
        print()
        print(table(results, args.runs, args.service))
    return 0


if __name__ == "__main__":
    sys.exit(main())
