"""Emulator of Oracle Tuxedo's tmboot/tmshutdown/tmadmin for tests; not Tuxedo.

It reproduces what pyha's tuxedo plugin reads: the documented output formats and exit
codes of `tmboot -y`, `tmshutdown -y [-c] [-w delay]` and `tmadmin -r` with `psr`.
Servers are real background processes (lib/tuxemu_server.py), so a test can kill one.

Differences from Tuxedo, on purpose:
- TUXCONFIG is read as text in a small UBBCONFIG subset (*RESOURCES IPCKEY,
  *MACHINES LMID, *SERVERS name SRVGRP= SRVID=); real TUXCONFIG files are binary,
  made by tmloadcf. No IPC resources exist: the "bulletin board" is the state file
  $APPDIR/.tuxemu/domain.json, present from tmboot until a complete tmshutdown.
- Knobs in $APPDIR/.tuxemu/knobs.json make it misbehave for tests:
  `clients_attached` (plain tmshutdown leaves the BBL up; -c overrides),
  `busy_servers` (names that ignore the shutdown request; -w kills them after delay),
  `fail_boot` (names whose initialisation fails), `shutdown_wait` (seconds tmshutdown
  waits for a server, default 0.5).
- Messages with a catalog number not taken from Tuxedo's documentation are marked
  "(emulator)".
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LIB = Path(__file__).resolve().parent
SERVER_SCRIPT = LIB / "tuxemu_server.py"
STATE_DIR = ".tuxemu"
READY_TIMEOUT = 5.0
DEFAULT_SHUTDOWN_WAIT = 0.5
BANNER = "tmadmin - emulator of Oracle Tuxedo's tmadmin for tests; not Tuxedo."
PSR_HEADER = "Prog Name      Queue Name  Grp Name      ID RqDone Load Done Current Service"
PSR_DASHES = "---------      ----------  --------      -- ------ --------- ---------------"


# --- configuration --------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """One *SERVERS entry (one instance: MIN/MAX are not emulated)."""

    name: str
    group: str
    srvid: int


@dataclass(frozen=True)
class Config:
    """What the emulator reads from TUXCONFIG."""

    ipckey: str
    lmid: str
    servers: tuple[Server, ...]


def read_config(path: Path) -> Config:
    """Parse the UBBCONFIG subset; OSError if the file is missing, ValueError if bad."""
    section = ""
    ipckey, lmid, servers = "123456", "SITE1", []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("*"):
            section = line[1:].upper()
            continue
        words = shlex.split(line)
        if section == "RESOURCES" and words[0] == "IPCKEY" and len(words) > 1:
            ipckey = words[1]
        elif section == "MACHINES":
            lmid = _attributes(words[1:]).get("LMID", lmid)
        elif section == "SERVERS":
            attrs = _attributes(words[1:])
            try:
                servers.append(Server(words[0], attrs["SRVGRP"], int(attrs["SRVID"])))
            except (KeyError, ValueError):
                raise ValueError(f"line {number}: a server needs SRVGRP= and SRVID=") from None
    return Config(ipckey, lmid, tuple(servers))


def _attributes(words: list[str]) -> dict[str, str]:
    return dict(word.split("=", 1) for word in words if "=" in word)


# --- state ----------------------------------------------------------------------------


def state_dir(appdir: Path) -> Path:
    """Where the emulator keeps a domain's state and knobs."""
    return appdir / STATE_DIR


def read_knobs(appdir: Path) -> dict[str, Any]:
    """The test knobs, {} when none are set."""
    try:
        knobs = json.loads((state_dir(appdir) / "knobs.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return knobs if isinstance(knobs, dict) else {}


def set_knobs(appdir: Path, **knobs: Any) -> None:
    """Replace the test knobs (for tests)."""
    state_dir(appdir).mkdir(parents=True, exist_ok=True)
    (state_dir(appdir) / "knobs.json").write_text(json.dumps(knobs), encoding="utf-8")


def read_domain(appdir: Path) -> dict[str, Any] | None:
    """The bulletin board's content, None when no bulletin board exists."""
    try:
        data = json.loads((state_dir(appdir) / "domain.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_domain(appdir: Path, domain: dict[str, Any] | None) -> None:
    path = state_dir(appdir) / "domain.json"
    if domain is None:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(domain, indent=1), encoding="utf-8")
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(appdir: Path) -> Iterator[None]:
    """One emulator command at a time per domain, as Tuxedo serialises admin commands."""
    state_dir(appdir).mkdir(parents=True, exist_ok=True)
    with open(state_dir(appdir) / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in (b"Z", b"X") else int(fields[19])


def alive(entry: dict[str, Any]) -> bool:
    """True while the recorded server process runs (the same process, not a reused pid)."""
    return bool(_start_time(int(entry["pid"])) == entry["start"])


# --- environment ----------------------------------------------------------------------


def _environment() -> tuple[Path, Path] | str:
    """(TUXCONFIG, APPDIR) from the environment, or the error to print."""
    tuxconfig = os.environ.get("TUXCONFIG")
    if not tuxconfig:
        return "ERROR: TUXCONFIG environment variable not set"
    appdir = os.environ.get("APPDIR") or str(Path(tuxconfig).parent)
    return Path(tuxconfig), Path(appdir)


def _say(text: str = "") -> None:
    print(text, flush=True)


# --- tmboot ---------------------------------------------------------------------------


def tmboot(argv: list[str]) -> int:
    """tmboot -y: boot the BBL, then every server not running; 1 if any failed."""
    if "-y" not in argv:
        _say("tmboot (emulator): only 'tmboot -y' is emulated")
        return 1
    found = _environment()
    if isinstance(found, str):
        _say(f"tmboot: {found}")
        return 1
    tuxconfig, appdir = found
    try:
        config = read_config(tuxconfig)
    except (OSError, ValueError) as exc:
        _say("tmboot: CMDTUX_CAT:1: ERROR: error processing configuration file (emulator)")
        _say(f"tmboot: CMDTUX_CAT:2: ERROR: configuration file not found ({exc}) (emulator)")
        return 1
    with _locked(appdir):
        return _boot(config, tuxconfig, appdir)


def _boot(config: Config, tuxconfig: Path, appdir: Path) -> int:
    domain = read_domain(appdir) or {"ipckey": config.ipckey, "lmid": config.lmid, "procs": []}
    domain["procs"] = [p for p in domain["procs"] if alive(p)]
    _say(f"Booting all admin and server processes in {tuxconfig}")
    _say("INFO: Emulator of Oracle Tuxedo's tmboot for tests; not Tuxedo.")
    _say()
    started = failed = 0
    _say("Booting admin processes ...")
    _say()
    bbl = Server("BBL", config.lmid, 0)
    outcome = _boot_one(bbl, appdir, domain)
    started, failed = started + (outcome is True), failed + (outcome is False)
    _say()
    _say("Booting server processes ...")
    _say()
    for server in config.servers:
        outcome = _boot_one(server, appdir, domain) if bbl_running(domain) else False
        started, failed = started + (outcome is True), failed + (outcome is False)
    _write_domain(appdir, domain)
    _say(f"{started} processes started.")
    return 1 if failed else 0


def bbl_running(domain: dict[str, Any]) -> bool:
    """True while the domain's BBL process runs."""
    return any(p["name"] == "BBL" and alive(p) for p in domain["procs"])


def _boot_one(server: Server, appdir: Path, domain: dict[str, Any]) -> bool | None:
    """Start one process: True started, False failed, None already running."""
    flag = "-A"
    _say(f"exec {server.name} {flag} :")
    if any(p["name"] == server.name and p["srvid"] == server.srvid for p in domain["procs"]):
        _say("\tINFO: already running (emulator).")
        return None
    pid = _spawn(server, appdir)
    start = _start_time(pid) if pid is not None else None
    if pid is None or start is None:
        _say("\tCMDTUX_CAT:3: ERROR: Application initialization failure (emulator)")
        return False
    domain["procs"].append(
        {"name": server.name, "group": server.group, "srvid": server.srvid, "pid": pid,
         "start": start}
    )  # fmt: skip
    _say(f"\tprocess id={pid} ... Started.")
    return True


def _spawn(server: Server, appdir: Path) -> int | None:
    """Start an emulated server detached, as tmboot does; its pid once it is initialised."""
    ulog = open(state_dir(appdir) / "ULOG", "ab")  # noqa: SIM115 - handed to the child
    env = dict(os.environ, TUXEMU_APPDIR=str(appdir))
    try:
        proc = subprocess.Popen(
            [sys.executable, str(SERVER_SCRIPT), server.name, str(server.srvid), str(appdir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=ulog,
            env=env,
            cwd=str(appdir),
            start_new_session=True,
        )
    finally:
        ulog.close()
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT)
    line = proc.stdout.readline() if ready else b""
    proc.stdout.close()
    if line.strip() != b"ready":
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        return None
    return proc.pid


# --- tmshutdown -----------------------------------------------------------------------


def tmshutdown(argv: list[str]) -> int:
    """tmshutdown -y [-c] [-w delay]: servers in reverse order, then the BBL; 1 if any stay."""
    options = _shutdown_options(argv)
    if isinstance(options, str):
        _say(f"tmshutdown: {options}")
        return 1
    force_clients, delay = options
    found = _environment()
    if isinstance(found, str):
        _say(f"tmshutdown: {found}")
        return 1
    tuxconfig, appdir = found
    with _locked(appdir):
        domain = read_domain(appdir)
        if domain is None:
            _say("tmshutdown: CMDTUX_CAT:4: ERROR: No bulletin board exists (emulator)")
            return 1
        return _shutdown(domain, tuxconfig, appdir, force_clients, delay)


def _shutdown_options(argv: list[str]) -> tuple[bool, float | None] | str:
    if "-y" not in argv:
        return "only 'tmshutdown -y [-c] [-w delay]' is emulated"
    delay = None
    if "-w" in argv:
        try:
            delay = float(argv[argv.index("-w") + 1])
        except (IndexError, ValueError):
            return "-w needs a delay in seconds"
    return "-c" in argv, delay


def _shutdown(
    domain: dict[str, Any], tuxconfig: Path, appdir: Path, force_clients: bool, delay: float | None
) -> int:
    knobs = read_knobs(appdir)
    wait = delay if delay is not None else float(knobs.get("shutdown_wait", DEFAULT_SHUTDOWN_WAIT))
    _say(f"Shutting down all admin and server processes in {tuxconfig}")
    _say()
    _say("Shutting down server processes ...")
    _say()
    servers = [p for p in domain["procs"] if p["name"] != "BBL"]
    stopped = 0
    for entry in reversed(servers):
        stopped += _stop_one(entry, domain, wait, kill=delay is not None)
    _say()
    _say("Shutting down admin processes ...")
    _say()
    left = [p for p in domain["procs"] if p["name"] != "BBL" and alive(p)]
    if left:
        _say("\tERROR: servers are still running; the BBL stays up (emulator)")
    elif knobs.get("clients_attached") and not force_clients:
        _say("\tCMDTUX_CAT:5: ERROR: Clients are attached; use -c to shut down anyway (emulator)")
    else:
        for entry in [p for p in domain["procs"] if p["name"] == "BBL"]:
            stopped += _stop_one(entry, domain, wait, kill=delay is not None)
    domain["procs"] = [p for p in domain["procs"] if alive(p)]
    _write_domain(appdir, domain if domain["procs"] else None)
    _say(f"{stopped} processes stopped.")
    return 1 if domain["procs"] else 0


def _stop_one(entry: dict[str, Any], domain: dict[str, Any], wait: float, kill: bool) -> int:
    """Ask one server to stop (SIGTERM); with `kill`, SIGKILL it after `wait`. 1 if it stopped."""
    where = f"Server Id = {entry['srvid']} Group Id = {entry['group']} Machine = {domain['lmid']}:"
    if alive(entry):
        with contextlib.suppress(ProcessLookupError):
            os.kill(entry["pid"], signal.SIGTERM)
        if not _gone(entry, wait) and kill:
            with contextlib.suppress(ProcessLookupError):
                os.kill(entry["pid"], signal.SIGKILL)
            _gone(entry, 2.0)
    if alive(entry):
        _say(f"\t{where}\tshutdown failed.")
        return 0
    _say(f"\t{where}\tshutdown succeeded.")
    return 1


def _gone(entry: dict[str, Any], seconds: float) -> bool:
    end = time.monotonic() + seconds
    while alive(entry):
        if time.monotonic() >= end:
            return False
        time.sleep(0.02)
    return True


# --- tmadmin --------------------------------------------------------------------------


def tmadmin(argv: list[str], stdin: Any) -> int:
    """tmadmin [-r]: read commands from stdin; psr/printserver prints the server table."""
    _say(BANNER)
    _say()
    found = _environment()
    if isinstance(found, str):
        _say(f"tmadmin: {found}")
        return 1
    _, appdir = found
    domain = read_domain(appdir)
    if domain is None:
        _say("No bulletin board exists. Entering boot mode.")
        _say()
    for raw in stdin:
        command = raw.strip()
        print("> ", end="")
        if command in ("q", "quit"):
            break
        if command in ("psr", "printserver"):
            _psr(appdir, domain)
        elif command:
            _say(f"TMADMIN_CAT:6: ERROR: {command}: command not emulated (emulator)")
    _say()
    return 0


def _psr(appdir: Path, domain: dict[str, Any] | None) -> None:
    if domain is None:
        _say("TMADMIN_CAT:121: ERROR: Cannot perform this command in boot mode")
        return
    _say(PSR_HEADER)
    _say(PSR_DASHES)
    for entry in domain["procs"]:
        if alive(entry):
            _say(_psr_row(entry, domain))
    _say()


def _psr_row(entry: dict[str, Any], domain: dict[str, Any]) -> str:
    name = entry["name"] if len(entry["name"]) <= 14 else entry["name"][:13] + "+"
    if entry["name"] == "BBL":
        queue, group = domain["ipckey"], domain["lmid"]
    else:
        queue, group = f"00001.{entry['srvid']:05d}", entry["group"]
    return f"{name:<14} {queue:<11} {group:<9} {entry['srvid']:>6} {0:>6} {0:>9} ( IDLE )"
