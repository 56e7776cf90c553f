"""Free loopback ports for servers that pyha starts itself (demo nodes, test fixtures).

A port found by binding to port 0 comes from the kernel's ephemeral range, the same
range outgoing connections take their source ports from: between the moment the port
is found and the moment the server binds it, an unrelated client may take it, and the
server then fails to start. Ports handed out here lie below that range instead, are
checked free for TCP and UDP at once, and are never handed out twice by one process.
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

LOW = 20000
"""The lowest port handed out (above the well-known and most registered services)."""

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_given: set[int] = set()
_lock = threading.Lock()


def ephemeral_start() -> int:
    """The first port of the kernel's ephemeral range (32768 when it cannot be read)."""
    try:
        return int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1", *, attempts: int = 200) -> int:
    """A port on `host` that nothing uses for TCP or UDP, outside the ephemeral range."""
    high = ephemeral_start() - 1
    low = LOW if high - LOW >= 1000 else 1024
    with _lock:
        for _ in range(attempts):
            port = random.randint(low, high)
            if port in _given or not _bindable(host, port):
                continue
            _given.add(port)
            return port
    raise OSError(f"no free port on {host} between {low} and {high} "
                  f"after {attempts} attempts")


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct free ports."""
    return [free_port(host) for _ in range(count)]


def _bindable(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(family, kind) as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True
