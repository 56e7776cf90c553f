"""The tuxedo plugin against the Tuxedo emulator (tests/emulators/tuxedo), not real Tuxedo.

Tuxedo cannot be installed here; the emulator's tmboot, tmshutdown and tmadmin print
the documented formats and run real background processes standing for the servers.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pyha.resources.spi import OcfCode, OperationContext

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_DIR = ROOT / "plugins" / "tuxedo"
EMULATOR = ROOT / "tests" / "emulators" / "tuxedo"
LOG = logging.getLogger("pyha.test.tuxedo")

UBBCONFIG = """# the emulator reads this UBBCONFIG subset as TUXCONFIG (real ones are binary)
*RESOURCES
IPCKEY 71234
*MACHINES
"node1" LMID=SITE1
*GROUPS
GROUP1 LMID=SITE1 GRPNO=1
*SERVERS
simpserv SRVGRP=GROUP1 SRVID=1
auditserv SRVGRP=GROUP1 SRVID=2
"""


def _load(name: str, path: Path, package_dir: Path | None = None) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    if package_dir is not None:
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        package = importlib.util.module_from_spec(spec)
        package.__path__ = [str(package_dir)]
        sys.modules[name] = package
        return importlib.import_module(f"{name}.plugin")
    file_spec = importlib.util.spec_from_file_location(name, path)
    assert file_spec is not None and file_spec.loader is not None
    module = importlib.util.module_from_spec(file_spec)
    sys.modules[name] = module
    file_spec.loader.exec_module(module)
    return module


plugin_module = _load("_pyha_test_bundled_tuxedo", PLUGIN_DIR, package_dir=PLUGIN_DIR)
tuxemu = _load("_pyha_test_tuxemu", EMULATOR / "lib" / "tuxemu.py")
TuxedoPlugin = plugin_module.TuxedoPlugin


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


def _emulated_processes(appdir: Path) -> list[int]:
    """Live processes the emulator started for this APPDIR (they carry it in their env)."""
    needle = f"TUXEMU_APPDIR={appdir}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if needle in environ and _alive(int(name)):
            found.append(int(name))
    return found


def _wait_for(predicate: Any, looks: int = 100, pause: float = 0.05) -> bool:
    for _ in range(looks):
        if predicate():
            return True
        time.sleep(pause)
    return bool(predicate())


class Domain:
    """An emulated Tuxedo domain in a temp APPDIR, and plugin operations on it."""

    def __init__(self, base: Path) -> None:
        self.appdir = base / "app"
        self.appdir.mkdir()
        self.tuxconfig = self.appdir / "tuxconfig"
        self.tuxconfig.write_text(UBBCONFIG)
        self.env_file = self.appdir / "tux.env"
        self.env_file.write_text("export FLDTBLDIR32=${APPDIR}/fml\nPYHA_TUX_MARK=from-env-file\n")
        self.plugin = TuxedoPlugin()

    def params(self, **overrides: Any) -> dict[str, Any]:
        given: dict[str, Any] = {
            "tuxdir": str(EMULATOR),
            "tuxconfig": str(self.tuxconfig),
            "appdir": str(self.appdir),
            "env_file": str(self.env_file),
            "required_servers": ["BBL", "simpserv", "auditserv"],
        }
        given.update(overrides)
        return given

    def ctx(self, op: str, timeout: float, interval: float, **overrides: Any) -> OperationContext:
        coerced, problems = self.plugin.meta_data().check(self.params(**overrides))
        assert problems == ()
        return OperationContext(
            resource="tux",
            operation=op,
            params=coerced,
            deadline=time.monotonic() + timeout,
            interval=interval,
            log=LOG,
        )

    def run(self, op: str, timeout: float = 20.0, interval: float = 0.0, **overrides: Any) -> int:
        return int(getattr(self.plugin, op)(self.ctx(op, timeout, interval, **overrides)))

    def pids(self) -> dict[str, int]:
        domain = tuxemu.read_domain(self.appdir)
        if domain is None:
            return {}
        return {p["name"]: p["pid"] for p in domain["procs"] if tuxemu.alive(p)}

    def cleanup(self) -> None:
        for pid in [*self.pids().values(), *_emulated_processes(self.appdir)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _wait_for(lambda: not _emulated_processes(self.appdir))


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    """The plugin says what it did at INFO; the assertions read it."""
    caplog.set_level(logging.INFO, logger=LOG.name)


@pytest.fixture
def domain(tmp_path: Path) -> Iterator[Domain]:
    made = Domain(tmp_path)
    try:
        yield made
    finally:
        made.cleanup()


def test_emulator_boot_monitor_shutdown(domain: Domain, caplog: pytest.LogCaptureFixture) -> None:
    assert domain.run("monitor") == OcfCode.NOT_RUNNING
    assert "No bulletin board exists" in caplog.text

    assert domain.run("start") == OcfCode.SUCCESS
    pids = domain.pids()
    assert set(pids) == {"BBL", "simpserv", "auditserv"}
    assert all(_alive(pid) for pid in pids.values())
    # The servers got the env file's variables through tmboot's environment.
    environ = Path(f"/proc/{pids['simpserv']}/environ").read_bytes().split(b"\0")
    assert b"PYHA_TUX_MARK=from-env-file" in environ
    assert f"FLDTBLDIR32={domain.appdir}/fml".encode() in environ

    caplog.clear()
    assert domain.run("monitor", interval=30.0) == OcfCode.SUCCESS
    assert "running: BBL(0), simpserv(1), auditserv(2)" in caplog.text

    assert domain.run("start") == OcfCode.SUCCESS
    assert domain.pids() == pids, "a second start must not boot anything"

    caplog.clear()
    assert domain.run("stop") == OcfCode.SUCCESS
    assert "shut down by tmshutdown -y" in caplog.text
    assert not any(_alive(pid) for pid in pids.values())
    assert _emulated_processes(domain.appdir) == []
    assert domain.run("monitor") == OcfCode.NOT_RUNNING
    assert domain.run("stop") == OcfCode.SUCCESS


def test_emulator_a_killed_server_fails_monitor_naming_it(
    domain: Domain, caplog: pytest.LogCaptureFixture
) -> None:
    assert domain.run("start") == OcfCode.SUCCESS
    victim = domain.pids()["auditserv"]
    os.kill(victim, signal.SIGKILL)
    assert _wait_for(lambda: not _alive(victim))
    caplog.clear()
    assert domain.run("monitor", interval=30.0) == OcfCode.ERR_GENERIC
    assert "not running: auditserv" in caplog.text

    # Starting again boots only what is missing.
    others = {n: p for n, p in domain.pids().items() if n != "auditserv"}
    assert domain.run("start") == OcfCode.SUCCESS
    assert domain.pids()["auditserv"] != victim
    assert {n: p for n, p in domain.pids().items() if n != "auditserv"} == others
    assert domain.run("monitor") == OcfCode.SUCCESS


def test_emulator_a_dead_bbl_with_live_servers_is_failed(
    domain: Domain, caplog: pytest.LogCaptureFixture
) -> None:
    assert domain.run("start") == OcfCode.SUCCESS
    bbl = domain.pids()["BBL"]
    os.kill(bbl, signal.SIGKILL)
    assert _wait_for(lambda: not _alive(bbl))
    caplog.clear()
    assert domain.run("monitor") == OcfCode.ERR_GENERIC
    assert "not running: BBL" in caplog.text


def test_emulator_shutdown_escalates_to_c_when_clients_are_attached(
    domain: Domain, caplog: pytest.LogCaptureFixture
) -> None:
    assert domain.run("start") == OcfCode.SUCCESS
    tuxemu.set_knobs(domain.appdir, clients_attached=True)
    caplog.clear()
    assert domain.run("stop") == OcfCode.SUCCESS
    assert "after tmshutdown -y (exited 1) the domain still runs" in caplog.text
    assert "shut down by tmshutdown -y -c" in caplog.text
    assert _emulated_processes(domain.appdir) == []


def test_emulator_shutdown_escalates_to_w_for_a_busy_server(
    domain: Domain, caplog: pytest.LogCaptureFixture
) -> None:
    assert domain.run("start") == OcfCode.SUCCESS
    busy = domain.pids()["simpserv"]
    tuxemu.set_knobs(domain.appdir, busy_servers=["simpserv"], shutdown_wait=0.2)
    caplog.clear()
    assert domain.run("stop", timeout=8.0) == OcfCode.SUCCESS
    assert "after tmshutdown -y -c (exited 1) the domain still runs" in caplog.text
    assert "shut down by tmshutdown -y -c -w" in caplog.text
    assert not _alive(busy)
    assert _emulated_processes(domain.appdir) == []


def test_emulator_boot_failure_is_reported(
    domain: Domain, caplog: pytest.LogCaptureFixture
) -> None:
    tuxemu.set_knobs(domain.appdir, fail_boot=["auditserv"])
    caplog.clear()
    assert domain.run("start") == OcfCode.ERR_GENERIC
    assert "not running: auditserv" in caplog.text
    assert "Application initialization failure" in caplog.text
    # Without the failing server among the required ones, the same boot is a success.
    assert domain.run("start", required_servers=["simpserv"]) == OcfCode.SUCCESS
    assert domain.run("stop") == OcfCode.SUCCESS


def test_missing_tuxdir_binaries(
    domain: Domain, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    empty = tmp_path / "tuxdir"
    (empty / "bin").mkdir(parents=True)
    caplog.clear()
    assert domain.run("start", tuxdir=str(empty)) == OcfCode.ERR_INSTALLED
    assert f"tmboot, tmshutdown, tmadmin not found in {empty}/bin (TUXDIR)" in caplog.text
    assert "is Tuxedo installed on this node?" in caplog.text
    assert domain.run("monitor", tuxdir=str(empty)) == OcfCode.NOT_RUNNING
    assert domain.run("monitor", interval=30.0, tuxdir=str(empty)) == OcfCode.ERR_INSTALLED
    assert domain.run("stop", tuxdir=str(empty)) == OcfCode.SUCCESS


def test_validate_rejects_a_missing_tuxconfig(domain: Domain) -> None:
    meta = domain.plugin.meta_data()
    good, _ = meta.check(domain.params())
    assert domain.plugin.validate(good) == []
    missing = str(domain.appdir / "nope")
    bad, _ = meta.check(domain.params(tuxconfig=missing))
    assert domain.plugin.validate(bad) == [f"tuxconfig: {missing!r} does not exist"]


def test_validate_reports_a_bad_env_file(domain: Domain) -> None:
    domain.env_file.write_text("TUXDIR=/opt/other\nnot an assignment\n")
    coerced, _ = domain.plugin.meta_data().check(domain.params())
    problems = domain.plugin.validate(coerced)
    assert "env_file: line 2: expected NAME=value, got 'not an assignment'" in problems
    assert any(p.startswith("env_file: sets TUXDIR='/opt/other'") for p in problems)
