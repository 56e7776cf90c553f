#!/opt/pyha/bin/python
"""pyha-docker-fence off|status CONTAINER: a command fence for nodes that are containers.

`off` sends SIGKILL to the container through the Docker Engine API, so nothing the node
started survives it; a container that is gone or already stopped counts as off. `status`
prints "Status: OFF" when the container does not run and "Status: ON" when it does
(exit 0 both; exit 1 when the engine cannot tell).

The engine is reached over its Unix socket: DOCKER_HOST=unix:///path, default
/var/run/docker.sock. Whoever may use that socket controls every container on the host
(and the host itself): see containers/README.md, "Fencing".
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import urllib.parse

DEFAULT_SOCKET = "/var/run/docker.sock"
API = "/v1.41"
"""Docker Engine API 1.41 (Engine 20.10); later engines answer it too."""
TIMEOUT = 10.0


class UnixConnection(http.client.HTTPConnection):
    """An HTTP connection over a Unix socket (the Docker engine's)."""

    def __init__(self, path: str, timeout: float = TIMEOUT) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        """Connect to the socket file instead of a TCP address."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def socket_path(environ: dict[str, str]) -> str:
    """The engine's socket from DOCKER_HOST (unix:// only), else the default one."""
    host = environ.get("DOCKER_HOST", "")
    if not host:
        return DEFAULT_SOCKET
    if not host.startswith("unix://"):
        raise SystemExit(f"pyha-docker-fence: DOCKER_HOST={host}: only unix:// sockets")
    return host[len("unix://"):]


def request(path: str, method: str, url: str) -> tuple[int, dict[str, object]]:
    """One API call; the status and the decoded JSON body (empty when there is none)."""
    conn = UnixConnection(path)
    try:
        conn.request(method, API + url)
        answer = conn.getresponse()
        body = answer.read()
    finally:
        conn.close()
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        data = {"message": body.decode(errors="replace")[:200]}
    return answer.status, data if isinstance(data, dict) else {}


def off(path: str, container: str) -> tuple[int, str]:
    """SIGKILL the container; (exit code, message)."""
    name = urllib.parse.quote(container, safe="")
    status, data = request(path, "POST", f"/containers/{name}/kill?signal=SIGKILL")
    if status == 204:
        return 0, f"killed container {container}"
    if status == 404:
        return 0, f"container {container} does not exist: off"
    if status == 409 and "not running" in str(data.get("message", "")):
        return 0, f"container {container} was not running: off"
    return 1, f"kill {container}: HTTP {status}: {data.get('message', '')}"


def status(path: str, container: str) -> tuple[int, str]:
    """Status: ON or Status: OFF from the container's state; (exit code, message)."""
    name = urllib.parse.quote(container, safe="")
    code, data = request(path, "GET", f"/containers/{name}/json")
    if code == 404:
        return 0, f"Status: OFF (container {container} does not exist)"
    if code != 200:
        return 1, f"inspect {container}: HTTP {code}: {data.get('message', '')}"
    state = data.get("State")
    running = isinstance(state, dict) and bool(state.get("Running"))
    return 0, f"Status: {'ON' if running else 'OFF'} (container {container})"


def main(argv: list[str]) -> int:
    """off|status CONTAINER."""
    if len(argv) != 2 or argv[0] not in ("off", "status"):
        print("usage: pyha-docker-fence off|status CONTAINER", file=sys.stderr)
        return 2
    action, container = argv
    try:
        code, message = (off if action == "off" else status)(socket_path(dict(os.environ)),
                                                             container)
    except OSError as exc:
        code, message = 1, f"Docker engine unreachable: {exc}"
    print(message, file=sys.stdout if code == 0 else sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
