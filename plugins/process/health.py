"""Health probes of the process plugin: TCP connect, HTTP GET, a command's exit status."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
from collections.abc import Mapping
from typing import Any
from urllib.parse import SplitResult, urlsplit

__all__ = [
    "describe_exit",
    "parse_http_url",
    "probe_command",
    "probe_http",
    "probe_tcp",
    "split_host_port",
]


def split_host_port(text: str) -> tuple[str, int]:
    """('::1', 80) from '[::1]:80'; ValueError says what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:8080")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: port {port!r} is not a number from 1 to 65535")
    return host, int(port)


def parse_http_url(text: str) -> SplitResult:
    """The parts of an http(s) URL with a host and no credentials; ValueError otherwise."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{text!r} is not an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError(f"{text!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials in the URL are not supported (they would be logged)")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise ValueError(f"{text!r}: the port is not a number from 1 to 65535") from None
    return parts


def probe_tcp(target: str, timeout: float) -> str | None:
    """None when `target` (host:port) accepts a connection within `timeout`, else why not."""
    host, port = split_host_port(target)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"health_tcp {target}: {exc.strerror or exc}"


def probe_http(url: str, timeout: float) -> str | None:
    """None when a GET of `url` answers 2xx or 3xx within `timeout`, else why not."""
    parts = parse_http_url(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = kind(parts.hostname or "", parts.port, timeout=timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("GET", target, headers={"User-Agent": "pyha-health-check"})
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        return f"health_http {url}: {exc}"
    finally:
        conn.close()
    # Redirects are not followed: an application that answers one is up.
    return None if 200 <= status < 400 else f"health_http {url}: answered {status}"


def probe_command(
    argv: list[str],
    timeout: float,
    cwd: str | None,
    env: Mapping[str, str],
    identity: Mapping[str, Any],
) -> str | None:
    """None when `argv` exits 0 within `timeout`, else why not; `identity` holds Popen's
    user, group and extra_groups arguments."""
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **identity,
        )
    except OSError as exc:
        return f"health_command could not run: {exc}"
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_probe(proc)
        return f"health_command did not finish within {timeout:g}s"
    if proc.returncode != 0:
        tail = output.decode("utf-8", "replace").strip()[-300:]
        return f"health_command {describe_exit(proc.returncode)}: {tail}"
    return None


def kill_probe(proc: subprocess.Popen[bytes]) -> None:
    """Kill a probe that overran, with whatever it started, and reap it."""
    # The probe has its own session, so its whole group goes; closing the pipe first
    # means a child that left the group cannot keep the wait from ending.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.stdout is not None:
        proc.stdout.close()
    proc.wait()


def describe_exit(returncode: int) -> str:
    """'exited with status 3' or 'was killed by SIGKILL'."""
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"
