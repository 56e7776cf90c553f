"""Agents calling Pacemaker's tools get pyha's stand-ins: real Debian agents and a fake one."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from pyha.clock import MonotonicClock
from pyha.resources.attributes import AttributeStore
from pyha.resources.ocf import MetaDataCache, OcfAgent
from pyha.resources.ocf_shims import shim_directory
from pyha.resources.spi import OcfCode, OperationContext

HEARTBEAT = Path("/usr/lib/ocf/resource.d/heartbeat")
CLOCK = MonotonicClock()
REPOSITORY = Path(__file__).resolve().parents[2]


def _needs(agent: str) -> pytest.MarkDecorator:
    path = HEARTBEAT / agent
    return pytest.mark.skipif(
        not path.is_file(), reason=f"{path} is missing (Debian package resource-agents)"
    )


def _ctx(
    operation: str, state_dir: Path, resource: str = "web", node: str = "n1"
) -> OperationContext:
    return OperationContext(
        resource=resource,
        operation=operation,
        params={},
        deadline=CLOCK.now() + 20,
        node=node,
        state_dir=state_dir,
        clock=CLOCK,
    )


def _fake_agent(root: Path, body: str) -> Path:
    path = root / "resource.d" / "test" / "Fake"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_fake_agent_sets_a_promotion_score_and_asks_its_node_name(tmp_path: Path) -> None:
    body = (
        "crm_master -l reboot -v 100 || exit 1\n"
        '${HA_SBIN_DIR}/crm_attribute -N n2 -l forever -n seen-by -v "$(crm_node -n)" || exit 1\n'
        'echo "ocf-exit-reason:I am $(crm_node -n) of $(crm_node -p)" >&2\n'
        "exit 0\n"
    )
    agent = OcfAgent(
        _fake_agent(tmp_path / "ocf", body),
        cache=MetaDataCache(tmp_path / "cache"),
        nodes=("n1", "n2"),
    )
    outcome = agent.invoke(_ctx("start", tmp_path / "state"))
    assert (outcome.code, outcome.message) == (0, "I am n1 of n1 n2")
    store = AttributeStore(tmp_path / "state" / "attributes")
    assert store.get("n1", "master-web") == "100"
    assert store.promotion_score("n1", "web") == "100"
    assert store.get("n2", "seen-by", "permanent") == "n1"


def test_an_option_pyha_lacks_fails_the_agent_loudly(tmp_path: Path) -> None:
    body = "crm_attribute --pattern 'a.*' -l reboot -D || exit 1\nexit 0\n"
    agent = OcfAgent(_fake_agent(tmp_path / "ocf", body), cache=MetaDataCache(tmp_path / "c"))
    outcome = agent.invoke(_ctx("stop", tmp_path / "state"))
    assert outcome.code == 1
    assert "option --pattern not recognized" in outcome.message


@_needs("Stateful")
def test_stateful_promotion_scores_land_in_the_store(tmp_path: Path) -> None:
    agent = OcfAgent(HEARTBEAT / "Stateful", cache=MetaDataCache(tmp_path / "cache"))
    store = AttributeStore(tmp_path / "state" / "attributes")
    seen = []
    for operation in ("start", "monitor", "promote", "monitor", "demote", "stop", "monitor"):
        outcome = agent.invoke(_ctx(operation, tmp_path / "state", resource="ms1"))
        seen.append((operation, outcome.code, store.get("n1", "master-ms1")))
    assert seen == [
        ("start", OcfCode.SUCCESS, "5"),
        ("monitor", OcfCode.SUCCESS, "5"),
        ("promote", OcfCode.SUCCESS, "10"),
        ("monitor", OcfCode.RUNNING_PROMOTED, "10"),
        ("demote", OcfCode.SUCCESS, "5"),
        ("stop", OcfCode.SUCCESS, None),
        ("monitor", OcfCode.NOT_RUNNING, None),
    ]


@_needs("SysInfo")
def test_sysinfo_records_node_attributes_through_attrd_updater(tmp_path: Path) -> None:
    agent = OcfAgent(HEARTBEAT / "SysInfo", cache=MetaDataCache(tmp_path / "cache"))
    state = tmp_path / "state"
    assert agent.invoke(_ctx("start", state, resource="info", node="n7")).code == OcfCode.SUCCESS
    attributes = AttributeStore(state / "attributes").section("n7")
    assert attributes["arch"] == platform.machine()
    assert attributes["os"].startswith(f"{platform.system()}-")
    assert int(attributes["ram_total"]) > 0
    assert agent.invoke(_ctx("stop", state, resource="info", node="n7")).code == OcfCode.SUCCESS


def _shim_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYHA_PYTHON": sys.executable,
        "PYHA_PYTHONPATH": str(REPOSITORY),
        "PYHA_ATTRIBUTES": str(tmp_path / "attributes"),
        "PYHA_NODE": "n1",
        **extra,
    }


def test_shim_executables_run_from_anywhere(tmp_path: Path) -> None:
    tool = shim_directory() / "crm_attribute"
    env = _shim_env(tmp_path)
    subprocess.run(
        [tool, "-l", "reboot", "-n", "x", "-v", "1"], env=env, cwd="/", check=True, timeout=30
    )
    query = subprocess.run(
        [tool, "-l", "reboot", "-n", "x", "-G", "-q"],
        check=False,
        env=env,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (query.returncode, query.stdout) == (0, "1\n")
    missing = subprocess.run(
        [tool, "-l", "reboot", "-n", "y", "-G", "-q"],
        check=False,
        env=env,
        capture_output=True,
        timeout=30,
    )
    assert missing.returncode == 105


def test_concurrent_tool_processes_lose_no_update(tmp_path: Path) -> None:
    tool = shim_directory() / "attrd_updater"
    env = _shim_env(tmp_path)
    procs = [
        subprocess.Popen([tool, "-n", f"a{n}", "-U", str(n)], env=env, stderr=subprocess.PIPE)
        for n in range(12)
    ]
    try:
        codes = [proc.wait(timeout=60) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
    assert codes == [0] * 12
    section = AttributeStore(tmp_path / "attributes").section("n1")
    assert section == {f"a{n}": str(n) for n in range(12)}
