"""The JMX bridge as a companion of a node's admin endpoint: started when the node's admin
folder holds jmx.toml, restarted when it dies, stopped with the endpoint.

The bridge (`python -m pyha.jvm.jmx_admin`) runs its own JVM, so the cluster server never
loads one; it reaches the cluster through this node's admin endpoint like any client.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

log = logging.getLogger("pyha.admin")

SETTINGS_FILE = "jmx.toml"
RESTART_FIRST = 1.0
RESTART_MOST = 30.0
"""Seconds between restarts of a bridge that keeps dying: doubling from the first."""
STOP_GRACE = 20.0


class JmxBridge:
    """Keeps one bridge process running for a node until `close`.

    Invariant: at most one bridge process of this node runs at a time; after `close`
    returns none runs.
    """

    def __init__(self, state_dir: Path, node: str) -> None:
        self.state_dir = state_dir
        self.node = node
        self.starts = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._keep, name="pyha jmx bridge", daemon=True)

    @staticmethod
    def configured(state_dir: Path) -> bool:
        """Whether the node's admin folder asks for a JMX bridge."""
        return (state_dir / "admin" / SETTINGS_FILE).is_file()

    def start(self) -> None:
        """Start the bridge and keep it running in the background."""
        self._thread.start()

    def close(self) -> None:
        """Stop the bridge (SIGTERM, then SIGKILL after a grace) and stop restarting it."""
        self._stop.set()
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self._thread.join(timeout=STOP_GRACE + 15)

    def _keep(self) -> None:
        wait = RESTART_FIRST
        while not self._stop.is_set():
            with self._lock:
                if self._stop.is_set():
                    return
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "pyha.jvm.jmx_admin", "--state-dir",
                     str(self.state_dir), "--node", self.node], start_new_session=True)
                process = self._process
            self.starts += 1
            log.info("JMX bridge started (pid %d)", process.pid)
            code = process.wait()
            if self._stop.is_set():
                return
            log.warning("JMX bridge exited with %d; starting it again in %.0fs", code, wait)
            if self._stop.wait(wait):
                return
            wait = min(wait * 2, RESTART_MOST)
