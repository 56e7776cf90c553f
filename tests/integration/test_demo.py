"""The README's main job: `pyha demo` keeps two web servers up and restarts a killed one."""

from __future__ import annotations

import socket
import subprocess
import sys
import tomllib
from pathlib import Path


def test_demo_restarts_a_killed_web_server_and_stops_cleanly(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pyha.cli", "demo", "--nodes", "1", "--plain", "--duration", "14",
         "--kill-after", "5", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "start web1 on demo1, web2 on demo1" in out
    kill_at = out.index("demo: kill -9 web1")
    after = out[kill_at:]
    assert "recover web1: monitor failed on demo1" in after
    assert "python:pyha:process start web1: success (0)" in after
    assert "python:pyha:process start web2: success (0)" in after  # restarted in order
    assert "shutting down: stop web2, web1" in after

    # The cluster file it printed is a real one, and nothing listens any more.
    config = tomllib.loads((tmp_path / "cluster.toml").read_text())
    for resource in config["groups"][0]["resources"]:
        port = int(resource["params"]["health_http"].rsplit(":", 1)[1].strip("/"))
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0
