"""The README's main job: `pyha demo` runs three cluster servers and shows a failover."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_the_demo_fails_the_web_group_over_and_stops_everything(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pyha.cli", "demo", "--plain", "--duration", "30",
         "--kill-after", "3", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=180, check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert re.search(r"n\d is the coordinator \(term \d+\)", out), out
    victim = re.search(r"kill -9 the cluster server of (n\d)", out)
    assert victim, out
    moved = re.search(r"failover took ([\d.]+) s: (n\d) fenced, the web group runs on (n\d)",
                      out)
    assert moved, out
    assert moved.group(2) == victim.group(1) != moved.group(3)
    assert "stopped" in out

    config = tomllib.loads((tmp_path / "cluster.toml").read_text())
    url = config["groups"][0]["resources"][1]["params"]["health_http"]
    port = int(url.rsplit(":", 1)[1].strip("/"))
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the web server outlived the demo"
