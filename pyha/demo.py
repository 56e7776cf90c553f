"""The local demo: a one-node cluster keeping a group of two small web servers running."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from rich.console import Group as RichGroup
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from pyha.model.config import ClusterConfig
from pyha.server import ServerStatus

log = logging.getLogger("pyha.demo")


def demo_config(workdir: Path, ports: tuple[int, int]) -> dict[str, Any]:
    """The demo cluster: node demo1, group web of two HTTP servers checked over HTTP."""
    resources = []
    for index, port in enumerate(ports, start=1):
        site = workdir / f"site{index}"
        site.mkdir(parents=True, exist_ok=True)
        (site / "index.html").write_text(f"web{index} on port {port}\n")
        resources.append({
            "name": f"web{index}",
            "type": "process",
            "params": {
                "command": [sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                            str(port)],
                "cwd": str(site),
                "health": "http",
                "health_http": f"http://127.0.0.1:{port}/",
            },
            "operations": [
                {"name": "start", "timeout": "15s"},
                {"name": "monitor", "interval": "2s", "timeout": "5s"},
            ],
            "meta": {"migration_threshold": 5, "failure_timeout": "5m"},
        })
    return {
        "cluster": {"name": "demo", "state_dir": str(workdir / "state"),
                    "cycle_interval": "1s"},
        "nodes": [{"name": "demo1"}],
        "groups": [{"name": "web", "resources": resources,
                    "description": "two web servers started in order"}],
    }


def write_toml(data: dict[str, Any], path: Path) -> None:
    """Write the demo config as a cluster file people can read and reuse."""
    lines = [f'[cluster]\nname = "{data["cluster"]["name"]}"',
             f'state_dir = "{data["cluster"]["state_dir"]}"', 'cycle_interval = "1s"', "",
             '[[nodes]]\nname = "demo1"', "", '[[groups]]\nname = "web"']
    for r in data["groups"][0]["resources"]:
        params = r["params"]
        lines += ["", "[[groups.resources]]", f'name = "{r["name"]}"', 'type = "process"',
                  f'meta = {{ migration_threshold = {r["meta"]["migration_threshold"]}, '
                  f'failure_timeout = "{r["meta"]["failure_timeout"]}" }}',
                  "operations = [",
                  '  { name = "start", timeout = "15s" },',
                  '  { name = "monitor", interval = "2s", timeout = "5s" },', "]",
                  "[groups.resources.params]",
                  "command = [" + ", ".join(f'"{c}"' for c in params["command"]) + "]",
                  f'cwd = "{params["cwd"]}"', 'health = "http"',
                  f'health_http = "{params["health_http"]}"']
    path.write_text("\n".join(lines) + "\n")
    ClusterConfig.from_toml(path)  # what we print for people must load as it is


def pid_of(state_dir: Path, resource: str) -> int | None:
    """The pid the process plugin recorded for `resource`, if it runs."""
    try:
        record = json.loads((state_dir / "process" / f"{resource}.pid").read_text())
        return int(record["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def kill_later(state_dir: Path, resource: str, delay: float, stop: threading.Event) -> None:
    """After `delay` s, kill -9 the resource's process, as an operator would to try pyha."""
    def _kill() -> None:
        if stop.wait(delay):
            return
        pid = pid_of(state_dir, resource)
        if pid is None:
            log.warning("demo: %s has no pid to kill", resource)
            return
        log.warning("demo: kill -9 %s (pid %d) to show recovery", resource, pid)
        os.kill(pid, signal.SIGKILL)

    threading.Thread(target=_kill, name="demo-kill", daemon=True).start()


def render(status: ServerStatus, state_dir: Path, lines: list[str]) -> RichGroup:
    """The live screen: one row per resource, group states, the last log lines."""
    table = Table(title=f"pyha demo — node {status.node}, cycle {status.cycle}",
                  expand=True)
    for column in ("resource", "group", "state", "pid", "failures", "last operation"):
        table.add_column(column)
    colours = {"started": "green", "failed": "red", "blocked": "red", "stopped": "yellow"}
    for r in status.resources:
        pid = pid_of(state_dir, r.name) if r.role.value == "started" else None
        table.add_row(r.name, r.group, Text(r.role.value, style=colours.get(r.role.value, "")),
                      str(pid or "-"), str(r.failures), r.last_operation)
    groups = Text("\n".join(f"group {g}: {s}" for g, s in status.groups.items()))
    hint = Text("Try: kill -9 <pid> in another terminal, and watch the monitor notice and "
                "restart it. Ctrl-C stops the group in reverse order.", style="dim")
    return RichGroup(table, groups, Text(f"decision: {status.decision}", style="bold"),
                     Panel("\n".join(lines) or " ", title="log"), hint)
