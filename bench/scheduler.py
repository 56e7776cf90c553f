"""Scheduler scale: time to schedule from scratch and after one node loss.

    python bench/scheduler.py                 # a readable table
    python bench/scheduler.py --json          # one JSON object of medians in milliseconds

The clusters have `--groups` groups over `--nodes` nodes with 1,000 and 10,000 resources
(resources spread evenly over the groups), half the groups with a location preference,
every fifth group colocated with the one before it, every seventh ordered after it, and
every eleventh (unless colocated) kept apart from the one before it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyha.model.config import ClusterConfig
from pyha.model.status import View
from pyha.scheduler import schedule
from pyha.testing.harness import apply, idle_view, node_down

NOW = 1_767_225_600.0


def cluster(resources: int, groups: int, nodes: int) -> ClusterConfig:
    """A cluster of `resources` dummies in `groups` groups on `nodes` nodes, with constraints."""
    per_group = max(1, resources // groups)
    names = [f"g{i}" for i in range(groups)]
    data: dict[str, Any] = {
        "cluster": {"name": "bench"},
        "nodes": [{"name": f"n{i}"} for i in range(1, nodes + 1)],
        "groups": [{"name": g, "resources": [{"name": f"{g}r{j}", "type": "dummy"}
                                             for j in range(per_group)]} for g in names],
        "constraints": _constraints(names, nodes),
    }
    return ClusterConfig.from_mapping(data)


def _constraints(names: list[str], nodes: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, g in enumerate(names):
        if i % 2 == 0:
            out.append({"kind": "location", "id": f"loc-{g}", "group": g,
                        "node": f"n{i % nodes + 1}", "score": 50})
        if i and i % 5 == 0:
            out.append({"kind": "colocation", "id": f"col-{g}", "group": g,
                        "with_group": names[i - 1], "score": "INFINITY"})
        if i and i % 7 == 0:
            out.append({"kind": "order", "id": f"ord-{g}", "first": names[i - 1], "then": g})
        if i and i % 11 == 0 and i % 5:  # never with and apart from the same group
            out.append({"kind": "colocation", "id": f"apart-{g}", "group": g,
                        "with_group": names[i - 1], "score": "-INFINITY"})
    return out


def timed(config: ClusterConfig, view: View, runs: int) -> tuple[float, float]:
    """Medians of `runs` schedules in milliseconds: (wall clock, this process's CPU time).

    On a busy machine the CPU time shows the work; the wall time includes the waiting.
    """
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        schedule(config, view, NOW)
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def measure(resources: int, groups: int, nodes: int,
            runs: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """(from scratch, after the loss of one node): each (wall, CPU) medians in ms."""
    config = cluster(resources, groups, nodes)
    empty = idle_view(config)
    scratch = timed(config, empty, runs)
    running = apply(empty, schedule(config, empty, NOW))
    lost = node_down(running, "n1")
    return scratch, timed(config, lost, runs)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table, or one JSON object with --json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--sizes", default="1000,10000", help="resource counts, comma separated")
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=32)
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (the median counts)")
    args = parser.parse_args(argv)
    figures: dict[str, dict[str, float]] = {"schedule_ms": {}, "node_loss_ms": {}}
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        scratch, loss = measure(size, args.groups, args.nodes, args.runs)
        figures["schedule_ms"][str(size)] = round(scratch[0], 1)
        figures["node_loss_ms"][str(size)] = round(loss[0], 1)
        rows.append(f"{size:>10}  {scratch[0]:>8.1f} ms ({scratch[1]:.1f} cpu)  "
                    f"{loss[0]:>8.1f} ms ({loss[1]:.1f} cpu)")
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"{args.groups} groups on {args.nodes} nodes, median of {args.runs} runs")
        print(f"{'resources':>10}  {'from scratch':>22}  {'after one node loss':>22}")
        print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
