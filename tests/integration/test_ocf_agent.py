"""OcfAgent against Debian's real ocf:heartbeat:Dummy and small fake agents."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyha.clock import MonotonicClock
from pyha.errors import PluginError
from pyha.resources.ocf import MetaDataCache, OcfAgent
from pyha.resources.spi import CallStatus, OcfCode, OperationContext

DUMMY = Path("/usr/lib/ocf/resource.d/heartbeat/Dummy")
CLOCK = MonotonicClock()

needs_dummy = pytest.mark.skipif(
    not DUMMY.is_file(), reason=f"{DUMMY} is missing (Debian package resource-agents)"
)


def _ctx(
    operation: str,
    state_dir: Path,
    params: dict[str, object] | None = None,
    *,
    timeout: float = 20,
    resource: str = "web1",
) -> OperationContext:
    return OperationContext(
        resource=resource,
        operation=operation,
        params=params or {},
        deadline=CLOCK.now() + timeout,
        node="n1",
        state_dir=state_dir,
        clock=CLOCK,
    )


def _fake_agent(root: Path, body: str, name: str = "Fake") -> Path:
    """Write an executable shell agent `ocf:test:<name>` under `root`."""
    path = root / "resource.d" / "test" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@needs_dummy
def test_dummy_lifecycle_with_state_under_ha_rsctmp(tmp_path: Path) -> None:
    agent = OcfAgent(DUMMY, cache=MetaDataCache(tmp_path / "cache"))
    state_file = tmp_path / "state" / "rsctmp" / "n1" / "Dummy-web1.state"
    codes = []
    for operation in ("monitor", "start", "monitor"):
        codes.append(agent.invoke(_ctx(operation, tmp_path / "state")).code)
    assert state_file.exists()
    for operation in ("stop", "monitor", "stop", "validate"):
        codes.append(agent.invoke(_ctx(operation, tmp_path / "state")).code)
    assert codes == [7, 0, 0, 0, 7, 0, 0]
    assert not state_file.exists()


@needs_dummy
def test_dummy_with_explicit_state_parameter(tmp_path: Path) -> None:
    agent = OcfAgent(DUMMY, cache=MetaDataCache(tmp_path / "cache"))
    state = tmp_path / "custom.state"
    params, problems = agent.validate({"state": str(state), "fake": "x"})
    assert problems == ()
    assert agent.invoke(_ctx("start", tmp_path, params)).code == OcfCode.SUCCESS
    assert state.exists()
    assert agent.invoke(_ctx("monitor", tmp_path, params)).code == OcfCode.SUCCESS
    assert agent.invoke(_ctx("stop", tmp_path, params)).code == OcfCode.SUCCESS
    assert not state.exists()


@needs_dummy
def test_dummy_meta_data_is_run_parsed_and_cached(tmp_path: Path) -> None:
    agent = OcfAgent(DUMMY, cache=MetaDataCache(tmp_path / "cache"))
    assert agent.description == ""
    meta = agent.meta
    assert [p.name for p in meta.parameters] == ["state", "fake"]
    assert meta.timeout("start") == 20
    assert agent.description == "Example stateless resource agent"
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1
    assert agent.invoke(_ctx("meta_data", tmp_path)).code == OcfCode.SUCCESS
    assert agent.invoke(_ctx("promote", tmp_path)).code == OcfCode.ERR_UNIMPLEMENTED


def test_agent_past_its_deadline_times_out(tmp_path: Path) -> None:
    path = _fake_agent(tmp_path / "ocf", "exec sleep 60\n")
    agent = OcfAgent(path, cache=MetaDataCache(tmp_path / "cache"), grace=2)
    outcome = agent.invoke(_ctx("start", tmp_path, timeout=1, resource="slow1"))
    assert outcome.status is CallStatus.TIMEOUT
    assert outcome.code == OcfCode.ERR_GENERIC
    assert outcome.message.startswith("ocf:test:Fake start slow1: timed out after 1s; sent SIGTERM")


def test_exit_code_and_exit_reason_are_reported(tmp_path: Path) -> None:
    body = (
        'echo "INFO: checking" >&2\n'
        'echo "${OCF_EXIT_REASON_PREFIX}port $OCF_RESKEY_port is taken" >&2\n'
        'echo "after" >&2\n'
        "exit 5\n"
    )
    agent = OcfAgent(_fake_agent(tmp_path / "ocf", body), cache=MetaDataCache(tmp_path / "c"))
    outcome = agent.invoke(_ctx("start", tmp_path, {"port": 80}))
    assert outcome == type(outcome)(code=5, message="port 80 is taken")


def test_agent_gets_one_argument_and_no_server_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYHA_TEST_SECRET", "hunter2")
    out = tmp_path / "seen"
    body = f'echo "$# $1" > {out}\nenv >> {out}\nexit 0\n'
    agent = OcfAgent(_fake_agent(tmp_path / "ocf", body), cache=MetaDataCache(tmp_path / "c"))
    assert agent.invoke(_ctx("validate", tmp_path, {"ip": "10.0.0.5"})).code == 0
    first, *env_lines = out.read_text().splitlines()
    assert first == "1 validate-all"
    names = {line.split("=", 1)[0] for line in env_lines}
    assert "PYHA_TEST_SECRET" not in names
    assert "HOME" not in names
    assert "OCF_RESKEY_ip=10.0.0.5" in env_lines
    assert f"OCF_ROOT={tmp_path / 'ocf'}" in env_lines


def test_broken_meta_data_is_a_plugin_error_naming_the_agent(tmp_path: Path) -> None:
    body = 'if [ "$1" = meta-data ]; then echo "<resource-agent"; exit 0; fi\nexit 0\n'
    agent = OcfAgent(_fake_agent(tmp_path / "ocf", body), cache=MetaDataCache(tmp_path / "c"))
    with pytest.raises(PluginError) as info:
        agent.validate({})
    assert info.value.plugin == "ocf:test:Fake"
    assert "not valid XML" in info.value.reason
    # Start and stop need no meta data; optional operations report the breakage.
    assert agent.invoke(_ctx("start", tmp_path)).code == 0
    outcome = agent.invoke(_ctx("promote", tmp_path))
    assert outcome.status is CallStatus.ERROR
    assert "ocf:test:Fake" in outcome.message


def test_failing_meta_data_is_a_plugin_error(tmp_path: Path) -> None:
    body = 'echo "ocf-exit-reason:cannot find the daemon" >&2\nexit 5\n'
    agent = OcfAgent(_fake_agent(tmp_path / "ocf", body), cache=MetaDataCache(tmp_path / "c"))
    with pytest.raises(PluginError) as info:
        _ = agent.meta
    assert info.value.reason == "meta-data failed: exit code 5: cannot find the daemon"


def test_meta_data_runs_once_per_agent_version(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    body = (
        f'if [ "$1" = meta-data ]; then echo run >> {runs}\n'
        "  echo '<resource-agent name=\"Fake\"><shortdesc>fake</shortdesc></resource-agent>'\n"
        "fi\nexit 0\n"
    )
    path = _fake_agent(tmp_path / "ocf", body)
    for _ in range(3):
        agent = OcfAgent(path, cache=MetaDataCache(tmp_path / "cache"))
        assert agent.meta.description == "fake"
    assert runs.read_text() == "run\n"
    path.write_text(path.read_text() + "# a new version of the agent\n")
    assert OcfAgent(path, cache=MetaDataCache(tmp_path / "cache")).meta.description == "fake"
    assert runs.read_text() == "run\nrun\n"
