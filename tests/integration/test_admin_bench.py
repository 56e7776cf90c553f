"""The admin benchmark's quick run: a real admin daemon over mutual TLS, one JSON object."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_the_quick_benchmark_prints_one_json_object_of_latencies() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "admin.py"), "--json", "--quick",
                           "--timeout", "240"], capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    data = json.loads(lines[0])
    assert set(data) == {"status_p50_ms", "status_p99_ms", "status_full_p50_ms", "write_p50_ms"}
    for key in ("status_p50_ms", "status_p99_ms", "status_full_p50_ms"):
        assert set(data[key]) == {"10", "100"}
        assert all(isinstance(v, float) and v > 0 for v in data[key].values())
    assert all(data["status_p99_ms"][s] >= data["status_p50_ms"][s] for s in ("10", "100"))
    assert isinstance(data["write_p50_ms"], float) and data["write_p50_ms"] > 0
