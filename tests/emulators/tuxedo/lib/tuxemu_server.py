"""Emulator of Oracle Tuxedo's tmboot/tmshutdown/tmadmin for tests; not Tuxedo.

One emulated Tuxedo server process: `tuxemu_server.py NAME SRVID APPDIR`. It prints
"ready" once "initialised" (tmboot waits for that, as Tuxedo waits for tpsvrinit),
then idles until SIGTERM, which stands for tmshutdown's shutdown request. Knobs
(see tuxemu.py): a name in `fail_boot` fails its initialisation; a name in
`busy_servers` ignores the shutdown request, like a server stuck in a service.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from types import FrameType


def _knobs(appdir: Path) -> dict[str, object]:
    try:
        knobs = json.loads((appdir / ".tuxemu" / "knobs.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return knobs if isinstance(knobs, dict) else {}


def _listed(appdir: Path, knob: str, name: str) -> bool:
    value = _knobs(appdir).get(knob) or []
    return isinstance(value, list) and name in value


def main(argv: list[str]) -> int:
    """Initialise, report ready on stdout, then wait for the shutdown request."""
    name, _srvid, appdir = argv[0], argv[1], Path(argv[2])
    if _listed(appdir, "fail_boot", name):
        print(f"{name}: tpsvrinit failed (emulator)", file=sys.stderr, flush=True)
        return 1

    def on_term(signum: int, frame: FrameType | None) -> None:
        if not _listed(appdir, "busy_servers", name):
            sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    print("ready", flush=True)
    # tmboot closes its end after reading "ready"; nothing more is written there.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
