"""OCF meta-data parsing, exit reasons, environment and validation, without running agents."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pyha.errors import PluginError
from pyha.resources.ocf import (
    MetaDataCache,
    OcfAgent,
    _cache_key,
    exit_reason,
    parse_metadata,
)
from pyha.resources.ocf_shims import shim_directory
from pyha.resources.spi import OperationContext
from pyha.testing import FakeClock

DUMMY = """<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="Dummy" version="1.0">
<version>1.0</version>
<longdesc lang="en">This is a Dummy Resource Agent.
It does absolutely nothing.</longdesc>
<shortdesc lang="en">Example stateless resource agent</shortdesc>
<parameters>
<parameter name="state" unique="1">
  <longdesc lang="en">Location to store the resource state in.</longdesc>
  <shortdesc lang="en">State file</shortdesc>
  <content type="string" default="/run/resource-agents/Dummy-RESOURCE_ID.state" />
</parameter>
<parameter name="fake" unique="0">
  <longdesc lang="en">
  Fake attribute that can be changed
  to cause a reload
  </longdesc>
  <content type="string" default="dummy" />
</parameter>
</parameters>
<actions>
<action name="start"        timeout="20s" />
<action name="stop"         timeout="20s" />
<action name="monitor"      timeout="20s" interval="10s" depth="0" />
<action name="reload"       timeout="20s" />
<action name="migrate_to"   timeout="20s" />
<action name="migrate_from" timeout="20s" />
<action name="meta-data"    timeout="5s" />
<action name="validate-all" timeout="20s" />
</actions>
</resource-agent>
"""

TYPED = """<?xml version="1.0"?>
<resource-agent name="Typed">
<shortdesc lang="en">Typed parameters</shortdesc>
<parameters>
<parameter name="port" required="1">
  <shortdesc lang="en">Port</shortdesc>
  <content type="integer" />
</parameter>
<parameter name="enabled"><content type="boolean" default="false" /></parameter>
<parameter name="mode">
  <content type="select" default="fast">
    <option value="fast" /><option value="safe" />
  </content>
</parameter>
<parameter name="empty_select"><content type="select" /></parameter>
<parameter name="when"><content type="time" /></parameter>
<parameter name="db_password"><content type="string" /></parameter>
<parameter name="old"><deprecated/><shortdesc>Old one</shortdesc></parameter>
<parameter name="port"><content type="string" /></parameter>
</parameters>
<actions>
<action name="start" timeout="1m" />
<action name="stop" timeout="90" />
<action name="monitor" timeout="bogus" interval="0" />
<action name="monitor" role="Promoted" timeout="30s" interval="9s" />
<action name="promote" timeout="0" />
<action name="demote" />
<action name="reload-agent" timeout="15s" />
<action name="notify" timeout="5s" />
</actions>
</resource-agent>
"""


def test_dummy_meta_data_parses() -> None:
    meta = parse_metadata(DUMMY, "ocf:heartbeat:Dummy")
    assert meta.name == "Dummy"
    assert meta.version == "1.0"
    assert meta.description == "Example stateless resource agent"
    state, fake = meta.parameters
    assert (state.name, state.type, state.required, state.unique) == (
        "state",
        "string",
        False,
        True,
    )
    assert state.default == "/run/resource-agents/Dummy-RESOURCE_ID.state"
    assert state.description == "State file"
    assert fake.description == "Fake attribute that can be changed to cause a reload"
    assert fake.default == "dummy"
    assert not meta.promotable


def test_dummy_actions_map_to_pyha_operation_names() -> None:
    meta = parse_metadata(DUMMY, "ocf:heartbeat:Dummy")
    names = [o.name for o in meta.operations]
    assert names == [
        "start",
        "stop",
        "monitor",
        "reload",
        "migrate_to",
        "migrate_from",
        "meta_data",
        "validate",
    ]
    assert meta.timeout("start") == 20
    assert meta.timeout("meta_data") == 5
    monitor = meta.operation("monitor")
    assert monitor is not None
    assert monitor.interval == 10


def test_content_types_and_required() -> None:
    meta = parse_metadata(TYPED, "ocf:acme:Typed")
    types = {p.name: p.type for p in meta.parameters}
    assert types == {
        "port": "integer",
        "enabled": "boolean",
        "mode": "select",
        "empty_select": "string",
        "when": "string",
        "db_password": "string",
        "old": "string",
    }
    port, _, mode, *_ = meta.parameters
    assert port.required
    assert port.description == "Port"
    assert mode.options == ("fast", "safe")
    assert mode.default == "fast"


def test_secret_looking_names_are_secret_and_deprecated_ones_say_so() -> None:
    params = {p.name: p for p in parse_metadata(TYPED, "ocf:acme:Typed").parameters}
    assert params["db_password"].secret
    assert not params["port"].secret
    assert params["old"].description == "(deprecated) Old one"


def test_action_durations_and_fallbacks() -> None:
    meta = parse_metadata(TYPED, "ocf:acme:Typed")
    assert meta.timeout("start") == 60
    assert meta.timeout("stop") == 90
    assert meta.timeout("monitor") == 20  # "bogus" falls back; the first monitor wins
    assert meta.timeout("promote") == 20  # zero is no timeout: the default applies
    assert meta.timeout("reload") == 15  # reload-agent stands for reload
    assert meta.operation("notify") is not None
    assert meta.promotable


def test_root_without_anything_still_parses() -> None:
    meta = parse_metadata("<resource-agent/>", "ocf:acme:Bare")
    assert meta.name == "Bare"
    assert meta.parameters == ()
    assert meta.operations == ()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("<resource-agent>", "meta-data is not valid XML"),
        ("", "meta-data is not valid XML"),
        ("<html/>", "meta-data root element is <html>, not <resource-agent>"),
    ],
)
def test_bad_xml_names_the_agent(text: str, reason: str) -> None:
    with pytest.raises(PluginError) as info:
        parse_metadata(text, "ocf:acme:Broken")
    assert info.value.plugin == "ocf:acme:Broken"
    assert info.value.operation == "meta_data"
    assert info.value.reason.startswith(reason)


@pytest.mark.parametrize(
    ("stderr", "message"),
    [
        (
            "INFO: starting\nocf-exit-reason:Address 10.0.0.5 is in use\nmore\n",
            "Address 10.0.0.5 is in use",
        ),
        ("ocf-exit-reason:first\nocf-exit-reason: second \n", "second"),
        ("one\n\ntwo\n  \n", "two"),
        ("", ""),
        ("x" * 400, "x" * 297 + "..."),
    ],
)
def test_exit_reason(stderr: str, message: str) -> None:
    assert exit_reason(stderr) == message


def _agent(tmp_path: Path, xml: str = TYPED) -> OcfAgent:
    """An OcfAgent over a script that is never run: its meta data is set directly."""
    path = tmp_path / "ocf" / "resource.d" / "acme" / "Typed"
    path.parent.mkdir(parents=True)
    path.write_text("#!/bin/sh\nexit 1\n")
    path.chmod(0o755)
    agent = OcfAgent(path, cache=MetaDataCache(tmp_path / "cache"))
    agent.meta = parse_metadata(xml, str(agent.name))
    return agent


def test_agent_name_origin_and_root_come_from_its_path(tmp_path: Path) -> None:
    agent = _agent(tmp_path)
    assert str(agent.name) == "ocf:acme:Typed"
    assert agent.origin.kind == "ocf"
    assert agent.origin.location == str(tmp_path / "ocf" / "resource.d" / "acme")
    assert agent.ocf_root == tmp_path / "ocf"
    assert agent.enforces_deadline
    assert agent.supports("promote")
    assert not agent.supports("migrate_to")


def test_non_executable_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "Thing"
    path.write_text("#!/bin/sh\n")
    with pytest.raises(PluginError, match="not an executable regular file"):
        OcfAgent(path)


def test_validation_is_lenient_but_catches_unknown_missing_and_bad_types(tmp_path: Path) -> None:
    agent = _agent(tmp_path)
    params, problems = agent.validate({"port": "8080", "enabled": "yes", "when": 5})
    assert problems == ()
    assert params == {"port": 8080, "enabled": True, "when": "5"}  # no defaults filled in
    _, problems = agent.validate({"port": "80a", "mode": "slow", "colour": "red"})
    assert problems == (
        "colour: unknown parameter (known: db_password, empty_select, enabled, mode, old, "
        "port, when)",
        "port: must be an integer, got '80a'",
        "mode: must be one of fast, safe; got 'slow'",
    )
    assert agent.validate({})[1] == ("port: required parameter is missing",)


def test_environment_follows_the_ocf_conventions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYHA_TEST_SECRET", "hunter2")
    clock = FakeClock()
    ctx = OperationContext(
        resource="db:1",
        operation="monitor",
        params={"port": 5432, "enabled": True, "hosts": ["a", "b"], "ratio": 2.0},
        deadline=clock.now() + 20,
        node="n1",
        interval=10,
        state_dir=tmp_path / "state",
        clock=clock,
        meta={"clone-max": 2, "promotable": True, "notify_start_uname": "n1 n2", "gone": None},
    )
    agent = _agent(tmp_path)
    agent.nodes = ("n0", "n1", "n2")
    env = agent.environment(ctx)
    rsctmp = tmp_path / "state" / "rsctmp" / "n1"
    assert rsctmp.is_dir()
    path = env.pop("PATH").split(":")
    assert path[0] == str(shim_directory())
    assert "/usr/sbin" in path
    assert env.pop("PYHA_PYTHON") == sys.executable
    assert (Path(env.pop("PYHA_PYTHONPATH")) / "pyha" / "resources" / "ocf.py").is_file()
    assert env == {
        "OCF_ROOT": str(tmp_path / "ocf"),
        "OCF_RA_VERSION_MAJOR": "1",
        "OCF_RA_VERSION_MINOR": "1",
        "OCF_RESOURCE_INSTANCE": "db:1",
        "OCF_RESOURCE_TYPE": "Typed",
        "OCF_RESOURCE_PROVIDER": "acme",
        "OCF_EXIT_REASON_PREFIX": "ocf-exit-reason:",
        "OCF_RESKEY_crm_feature_set": "3.16.2",
        "HA_SBIN_DIR": str(shim_directory()),
        "HA_RSCTMP": str(rsctmp),
        "OCF_RESKEY_CRM_meta_timeout": "20000",
        "OCF_RESKEY_CRM_meta_interval": "10000",
        "OCF_RESKEY_CRM_meta_name": "monitor",
        "OCF_RESKEY_CRM_meta_on_node": "n1",
        "OCF_CHECK_LEVEL": "0",
        "PYHA_ATTRIBUTES": str(tmp_path / "state" / "attributes"),
        "PYHA_NODE": "n1",
        "PYHA_NODES": "n0 n1 n2",
        "OCF_RESKEY_CRM_meta_clone_max": "2",
        "OCF_RESKEY_CRM_meta_promotable": "true",
        "OCF_RESKEY_CRM_meta_notify_start_uname": "n1 n2",
        "OCF_RESKEY_port": "5432",
        "OCF_RESKEY_enabled": "true",
        "OCF_RESKEY_hosts": "a b",
        "OCF_RESKEY_ratio": "2",
    }


def test_probe_has_interval_zero(tmp_path: Path) -> None:
    clock = FakeClock()
    ctx = OperationContext(
        resource="r",
        operation="monitor",
        params={},
        deadline=clock.now() + 2.5,
        clock=clock,
        state_dir=tmp_path,
    )
    env = _agent(tmp_path).environment(ctx)
    assert env["OCF_RESKEY_CRM_meta_interval"] == "0"
    assert env["OCF_RESKEY_CRM_meta_timeout"] == "2500"


def test_cache_round_trip_and_invalidation(tmp_path: Path) -> None:
    agent_file = tmp_path / "Agent"
    agent_file.write_text("#!/bin/sh\n")
    meta = parse_metadata(DUMMY, "ocf:x:Agent")
    MetaDataCache(tmp_path / "cache").put(agent_file, meta)
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1
    fresh = MetaDataCache(tmp_path / "cache")
    assert fresh.get(agent_file) == meta
    agent_file.write_text("#!/bin/sh\n# edited, so longer\n")
    assert fresh.get(agent_file) is None
    assert MetaDataCache(tmp_path / "cache").get(tmp_path / "missing") is None


def test_unreadable_cache_entry_is_a_miss(tmp_path: Path) -> None:
    agent_file = tmp_path / "Other"
    agent_file.write_text("#!/bin/sh\necho other\n")
    key = _cache_key(agent_file)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / f"{key}.json").write_text("{not json")
    assert MetaDataCache(tmp_path / "cache").get(agent_file) is None
