"""The computer plugin: host b in a network namespace is the computer, host a watches it.

Its "power" is b's cable: the test power command takes b's port on the lab's bridge
down (off) or up (on), and reads the port's state as the power status.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pyha.executor.command import CommandResult
from tests.netns import Lab, PluginReply, netns_lab, plugin_operation

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugins" / "computer"
A, B = "198.18.10.101/24", "198.18.10.102/24"
COMPUTER = "198.18.10.102"
PY = sys.executable

needs_ping = pytest.mark.skipif(
    shutil.which("ping") is None, reason="ping is not installed (Debian iputils-ping)"
)

POWER_SCRIPT = """
import json, subprocess, sys
log, bridge, port, action = sys.argv[1:5]
with open(log, "a") as f:
    f.write(action + "\\n")
if action == "status":
    shown = subprocess.run(
        ["ip", "-n", bridge, "-j", "link", "show", port],
        capture_output=True, text=True, check=True,
    ).stdout
    up = "UP" in json.loads(shown)[0]["flags"]
    print("Chassis Power is " + ("on" if up else "off"))
else:
    state = "up" if action == "on" else "down"
    subprocess.run(["ip", "-n", bridge, "link", "set", port, state], check=True)
"""
"""The test's power command: argv log bridge port on|off|status; each call is logged."""


def _load(module: str) -> ModuleType:
    """Import one module of plugins/computer the way bundled plugin folders are imported."""
    package = "_pyha_test_bundled_computer"
    if package not in sys.modules:
        spec = importlib.machinery.ModuleSpec(package, None, is_package=True)
        created = importlib.util.module_from_spec(spec)
        created.__path__ = [str(PLUGIN_DIR)]
        sys.modules[package] = created
    return importlib.import_module(f"{package}.{module}")


plugin = _load("plugin")
probes = _load("probes")


class Power:
    """The power commands of host b, and the log of what was called."""

    def __init__(self, lab: Lab, tmp_path: Path) -> None:
        self.script = tmp_path / "power.py"
        self.script.write_text(POWER_SCRIPT)
        self.log = tmp_path / "power.log"
        self.log.touch()
        self.lab = lab
        self.port = lab.hosts["b"].port

    def command(self, action: str) -> list[str]:
        return [PY, str(self.script), str(self.log), self.lab.bridge.name, self.port, action]

    def calls(self) -> list[str]:
        return self.log.read_text().split()

    def is_on(self) -> bool:
        shown = self.lab.bridge.ip("-j", "link", "show", self.port).stdout
        return "UP" in json.loads(shown)[0]["flags"]


@pytest.fixture
def lab() -> Iterator[Lab]:
    with netns_lab("pyhaip") as lab:
        lab.add_host("a", [A])
        lab.add_host("b", [B])
        yield lab


@pytest.fixture
def power(lab: Lab, tmp_path: Path) -> Power:
    return Power(lab, tmp_path)


def computer(power: Power, **extra: Any) -> dict[str, Any]:
    """Parameters of host b as a computer, checked by TCP (nothing listens: refused is up)."""
    return {
        "host": COMPUTER,
        "check": "tcp",
        "port": 22,
        "check_timeout": "0.5s",
        "power_on": power.command("on"),
        "power_off": power.command("off"),
        **extra,
    }


def op(lab: Lab, operation: str, params: dict[str, Any], timeout: float = 10.0) -> PluginReply:
    """Run a computer plugin operation on host a."""
    return plugin_operation(lab.hosts["a"], PLUGIN_DIR, operation, params, timeout=timeout)


def answers_again(lab: Lab, tries: int = 20) -> bool:
    """True once host a gets an answer from the computer; a few tries, 0.5s each at most."""
    a = lab.hosts["a"]
    return any(
        a.call("tests.netns:tcp_connect", COMPUTER, 22, 0.5) == "ECONNREFUSED" for _ in range(tries)
    )


def failing(message: str, code: int = 1) -> list[str]:
    """A command that writes `message` to stderr and exits `code`."""
    return [PY, "-c", f"import sys; sys.stderr.write({message!r} + '\\n'); sys.exit({code})"]


# --- with a computer in a namespace -------------------------------------------------


@pytest.mark.root
def test_start_powers_on_and_waits_until_it_answers(lab: Lab, power: Power) -> None:
    lab.hosts["b"].unplug()
    params = computer(power)
    assert op(lab, "monitor", params).code == 7

    started = op(lab, "start", params)
    assert started.code == 0, started.text
    assert power.is_on()
    assert power.calls() == ["on"]
    assert lab.hosts["a"].call("tests.netns:tcp_connect", COMPUTER, 22, 5.0) == "ECONNREFUSED"
    assert op(lab, "monitor", params).code == 0
    assert op(lab, "start", params).code == 0
    assert power.calls() == ["on"]  # it answered: no second power on


@pytest.mark.root
def test_stop_powers_off_and_waits_until_silent(lab: Lab, power: Power) -> None:
    params = computer(power)
    assert op(lab, "start", params).code == 0
    stopped = op(lab, "stop", params)
    assert stopped.code == 0, stopped.text
    assert not power.is_on()
    silent = op(lab, "monitor", params)
    assert silent.code == 7
    assert "198.18.10.102 does not answer: no answer on TCP port 22" in silent.text
    assert op(lab, "stop", params).code == 0


@pytest.mark.root
def test_stop_with_power_status_off_does_nothing(lab: Lab, power: Power) -> None:
    lab.hosts["b"].unplug()
    params = computer(power, power_status=power.command("status"))
    assert op(lab, "stop", params).code == 0
    assert power.calls() == ["status"]


@pytest.mark.root
def test_monitor_sees_the_computer_die_behind_its_back(lab: Lab, power: Power) -> None:
    b = lab.hosts["b"]
    params = computer(power)
    assert op(lab, "start", params).code == 0
    assert op(lab, "monitor", params).code == 0
    b.unplug()
    assert op(lab, "monitor", params).code == 7
    b.plug()
    assert answers_again(lab)
    assert op(lab, "monitor", params).code == 0

    # Powered on (its port is up) but its own network interface is down: a failure.
    with_status = computer(power, power_status=power.command("status"))
    b.ip("link", "set", "eth0", "down")
    hung = op(lab, "monitor", with_status)
    assert hung.code == 1
    assert "198.18.10.102 is powered on but does not answer" in hung.text


@pytest.mark.root
def test_failing_power_commands_report_their_stderr(lab: Lab, power: Power) -> None:
    lab.hosts["b"].unplug()
    broken = computer(power, power_on=failing("bmc1: connection refused"))
    started = op(lab, "start", broken)
    assert started.code == 1
    assert "power_on failed: exit 1: bmc1: connection refused" in started.text

    lab.hosts["b"].plug()
    broken = computer(power, power_off=failing("bmc1: session timed out", 3))
    stopped = op(lab, "stop", broken)
    assert stopped.code == 1
    assert "power_off failed: exit 3: bmc1: session timed out" in stopped.text
    assert power.is_on()


@pytest.mark.root
def test_a_hung_power_command_is_named_without_its_arguments(lab: Lab, power: Power) -> None:
    hung = [PY, "-c", "import time; time.sleep(30)", "-P", "s3cret"]
    stopped = op(lab, "stop", computer(power, power_off=hung), timeout=2.0)
    assert stopped.code == 1
    assert "power_off failed: power_off of r1: timed out" in stopped.text
    assert "s3cret" not in stopped.text


@pytest.mark.root
def test_start_gives_up_at_its_deadline(lab: Lab, power: Power) -> None:
    lab.hosts["b"].unplug()
    params = computer(power, power_on=["true"])
    started = op(lab, "start", params, timeout=3.0)
    assert started.code == 1
    assert "198.18.10.102 is still not up: no answer on TCP port 22" in started.text


@pytest.mark.root
def test_health_command(lab: Lab, power: Power) -> None:
    sick = computer(power, health_command=failing("disk full", 3))
    assert op(lab, "start", sick, timeout=3.0).code == 1
    monitored = op(lab, "monitor", sick)
    assert monitored.code == 1
    assert "answers but is unhealthy: health_command: exit 3: disk full" in monitored.text
    assert op(lab, "monitor", computer(power, health_command=["true"])).code == 0


@needs_ping
@pytest.mark.root
def test_icmp_check(lab: Lab, power: Power) -> None:
    params = computer(power, check="icmp", port=None)
    del params["port"]
    assert op(lab, "start", params).code == 0
    assert op(lab, "monitor", params).code == 0
    assert op(lab, "stop", params).code == 0
    silent = op(lab, "monitor", params)
    assert silent.code == 7
    assert "no answer to ping within 0.5s" in silent.text


@pytest.mark.root
def test_fence_trusts_only_the_power_commands(lab: Lab, power: Power) -> None:
    params = computer(power, power_status=power.command("status"))
    assert op(lab, "fence", params).code == 0
    assert not power.is_on()
    assert power.calls() == ["off", "status"]

    stuck = computer(power, power_status=["echo", "Chassis Power is on"])
    refused = op(lab, "fence", stuck, timeout=3.0)
    assert refused.code == 1
    assert "is not confirmed off: power_status says on" in refused.text

    broken = computer(power, power_off=failing("bmc1: no route"))
    assert op(lab, "fence", broken).code == 1


# --- validate and the pure helpers (no namespace needed) ----------------------------


def _problems(**params: Any) -> list[str]:
    given = {"host": "node1", "power_on": ["true"], "power_off": ["true"], **params}
    given = {k: v for k, v in given.items() if v is not None}
    return list(plugin.ComputerPlugin().validate(given))


def test_good_parameters_pass() -> None:
    assert _problems(host="bmc-1.example.org.", check="tcp", port=22) == []
    assert _problems(host="fd00::102", check="tcp", port=22, health_command="true") == []


@needs_ping
def test_good_icmp_parameters_pass() -> None:
    assert _problems() == []
    assert _problems(host="198.18.10.102", power_status=["echo", "on"]) == []


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"host": "-f"}, "host: '-f' is not an IP address or a host name"),
        ({"host": "bad host"}, "host: 'bad host' is not an IP address or a host name"),
        ({"host": "a..b"}, "host: 'a..b' is not an IP address or a host name"),
        ({"host": ""}, "host: must not be empty"),
        ({"check": "tcp"}, "port: required when check=tcp"),
        ({"check": "tcp", "port": 70000}, "port: must be between 1 and 65535, got 70000"),
        ({"check": "tcp", "port": 22, "check_timeout": "0s"}, "check_timeout: must be more"),
        ({"check": "udp"}, "check: must be one of icmp, tcp"),
        ({"power_on": None}, "power_on: required parameter is missing"),
        ({"power_off": []}, "power_off: must name a program"),
        ({"power_off": ["no-such-ipmitool"]}, "power_off: program 'no-such-ipmitool' not found"),
        ({"power_status": ["bin/status"]}, "must be a name on PATH or an absolute path"),
        ({"health_command": ["/no/such/check"]}, "health_command: '/no/such/check' does not"),
        ({"health_timeout": "soon"}, "health_timeout:"),
    ],
)
def test_bad_parameters_are_named(params: dict[str, Any], expected: str) -> None:
    if "check" not in params:
        params = {"check": "tcp", "port": 22, **params}
    problems = _problems(**params)
    assert len(problems) == 1, problems
    assert expected in problems[0]


def test_port_without_tcp_and_icmp_without_ping(monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda name, *a, **k: None if name == "ping" else real_which(name, *a, **k)
    )
    assert _problems(port=22) == [
        "port: is set, but check is icmp; set check=tcp to use it",
        "check: icmp needs the ping program (Debian package iputils-ping), which is not "
        "installed; install it or use check=tcp with a port",
    ]
    assert _problems(check="tcp", port=22) == []


@pytest.mark.parametrize(
    ("returncode", "stdout", "state"),
    [
        (0, "Chassis Power is on\n", "on"),
        (0, "Chassis Power is off\n", "off"),
        (0, "Status: OFF\n", "off"),
        (0, "", "on"),
        (2, "Status: OFF\n", "off"),
        (1, "Chassis Power is on\n", "unknown"),
        (None, "", "unknown"),
    ],
)
def test_power_state(returncode: int | None, stdout: str, state: str) -> None:
    result = CommandResult(returncode, stdout, "")
    assert probes.read_power_state(result).value == state


def test_power_state_of_a_timed_out_command_is_unknown() -> None:
    result = CommandResult(0, "on", "", timed_out=True)
    assert probes.read_power_state(result) is probes.PowerState.UNKNOWN
