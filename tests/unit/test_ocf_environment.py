"""OcfAgent's environment details and validate-all result mapping, without running agents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pyha.resources.ocf import MetaDataCache, OcfAgent, _validation_problems, parse_metadata
from pyha.resources.ocf_shims import shim_directory
from pyha.resources.spi import CallStatus, OperationContext, Outcome
from pyha.testing import FakeClock

META = '<resource-agent name="{name}"><actions><action name="start"/></actions></resource-agent>'


def _agent(tmp_path: Path, name: str = "Thing", **options: Any) -> OcfAgent:
    path = tmp_path / "ocf" / "resource.d" / "acme" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 1\n")
    path.chmod(0o755)
    agent = OcfAgent(path, cache=MetaDataCache(tmp_path / "cache"), **options)
    agent.meta = parse_metadata(META.format(name=name), str(agent.name))
    return agent


def _env(agent: OcfAgent, tmp_path: Path, meta: dict[str, Any], node: str = "n1") -> dict[str, str]:
    clock = FakeClock()
    ctx = OperationContext(
        resource="db",
        operation="notify",
        params={},
        deadline=clock.now() + 20,
        node=node,
        state_dir=tmp_path / "state",
        clock=clock,
        meta=meta,
    )
    return agent.environment(ctx)


def test_legacy_master_and_slave_names_are_exported_beside_the_new_ones(tmp_path: Path) -> None:
    meta = {
        "notify_promoted_uname": "n2",
        "notify_unpromoted_resource": "db:0 db:1",
        "notify_promote_uname": "n2",
        "notify-promoted-resource": "db:1",
        "promoted-max": 1,
        "promoted_node_max": 1,
    }
    env = _env(_agent(tmp_path), tmp_path, meta)
    crm = {k.removeprefix("OCF_RESKEY_CRM_meta_"): v for k, v in env.items() if "CRM_meta_" in k}
    assert crm == {
        "timeout": "20000",
        "interval": "0",
        "name": "notify",
        "on_node": "n1",
        "notify_promoted_uname": "n2",
        "notify_master_uname": "n2",
        "notify_unpromoted_resource": "db:0 db:1",
        "notify_slave_resource": "db:0 db:1",
        "notify_promote_uname": "n2",  # the operation "promote" has no legacy name
        "notify_promoted_resource": "db:1",
        "notify_master_resource": "db:1",
        "promoted_max": "1",
        "master_max": "1",
        "promoted_node_max": "1",
        "master_node_max": "1",
    }


def test_a_legacy_name_given_explicitly_is_not_overwritten(tmp_path: Path) -> None:
    env = _env(_agent(tmp_path), tmp_path, {"master_max": 2, "promoted_max": 1})
    assert env["OCF_RESKEY_CRM_meta_master_max"] == "2"
    assert env["OCF_RESKEY_CRM_meta_promoted_max"] == "1"


@pytest.mark.parametrize(
    ("meta", "level"), [({}, "0"), ({"depth": 10}, "10"), ({"depth": "20"}, "20")]
)
def test_check_level_comes_from_the_depth(tmp_path: Path, meta: dict[str, Any], level: str) -> None:
    assert _env(_agent(tmp_path), tmp_path, meta)["OCF_CHECK_LEVEL"] == level


def test_nodes_default_to_the_calls_node_and_always_include_it(tmp_path: Path) -> None:
    assert _env(_agent(tmp_path), tmp_path, {}, node="solo")["PYHA_NODES"] == "solo"
    agent = _agent(tmp_path, nodes=("a", "b"))
    assert _env(agent, tmp_path, {}, node="c")["PYHA_NODES"] == "a b c"
    assert _env(agent, tmp_path, {}, node="b")["PYHA_NODES"] == "a b"


def test_tools_are_found_through_path_and_ha_sbin_dir(tmp_path: Path) -> None:
    env = _env(_agent(tmp_path), tmp_path, {})
    assert env["PATH"].split(":")[0] == str(shim_directory())
    assert env["HA_SBIN_DIR"] == str(shim_directory())
    for tool in ("crm_attribute", "crm_master", "attrd_updater", "crm_node"):
        assert (shim_directory() / tool).stat().st_mode & 0o111


def test_agents_needing_real_programs_in_ha_sbin_dir_keep_the_default(tmp_path: Path) -> None:
    env = _env(_agent(tmp_path, "nfsnotify"), tmp_path, {})
    assert "HA_SBIN_DIR" not in env
    assert env["PATH"].split(":")[0] == str(shim_directory())


def test_wrapper_prefixes_every_call(tmp_path: Path) -> None:
    agent = _agent(tmp_path, wrapper=("ip", "netns", "exec", "ns1"))
    assert agent.argv("start") == ["ip", "netns", "exec", "ns1", str(agent.path), "start"]
    assert _agent(tmp_path).argv("monitor") == [str(agent.path), "monitor"]


@pytest.mark.parametrize(
    ("outcome", "problems"),
    [
        (Outcome(code=0), ()),
        (Outcome(code=3, message="usage"), ()),
        (
            Outcome(code=6, message="Invalid OCF_RESKEY_arp_count [0]"),
            ("validate-all: invalid configuration (6): Invalid OCF_RESKEY_arp_count [0]",),
        ),
        (
            Outcome(code=2, message="eth9 does not exist"),
            ("validate-all: invalid on this node (2): eth9 does not exist",),
        ),
        (Outcome(code=5), ("validate-all: not installed on this node (5): no reason given",)),
        (Outcome(code=1, message="boom"), ("validate-all: err generic (1): boom",)),
        (Outcome(code=42, message="odd"), ("validate-all: code 42: odd",)),
        (
            Outcome(code=1, status=CallStatus.TIMEOUT, message="x timed out"),
            ("validate-all did not answer within 2.5s",),
        ),
        (
            Outcome(code=5, status=CallStatus.NOT_INSTALLED, message="not started: no such file"),
            ("validate-all could not run: not started: no such file",),
        ),
    ],
)
def test_validate_all_outcomes_become_problems(outcome: Outcome, problems: tuple[str, ...]) -> None:
    assert _validation_problems(outcome, 2.5) == problems


def test_agents_without_validate_all_are_not_asked(tmp_path: Path) -> None:
    agent = _agent(tmp_path)  # its script would exit 1 if it ran
    assert agent.validate({}) == ({}, ())
    assert agent.validate_all({}) == ()
