"""OcfAgent.validate runs the agent's validate-all after the type checks: Dummy and fake agents."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyha.resources.ocf import MetaDataCache, OcfAgent

DUMMY = Path("/usr/lib/ocf/resource.d/heartbeat/Dummy")

META = """<resource-agent name="Fake">
<parameters>
<parameter name="port" required="1"><content type="integer"/></parameter>
<parameter name="mode"><content type="string"/></parameter>
</parameters>
<actions>
<action name="start"/><action name="stop"/><action name="monitor"/>{validate}
</actions>
</resource-agent>"""


def _fake_agent(
    tmp_path: Path, validate_body: str, *, advertise: bool = True, **options: object
) -> OcfAgent:
    """An agent whose validate-all runs `validate_body` after recording its environment."""
    meta = META.format(validate='<action name="validate-all"/>' if advertise else "")
    path = tmp_path / "ocf" / "resource.d" / "test" / "Fake"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        f"meta-data) cat <<'END'\n{meta}\nEND\nexit 0;;\n"
        f'validate-all) env > "{tmp_path}/validate.env"\n{validate_body}\n;;\n'
        "esac\nexit 0\n"
    )
    path.chmod(0o755)
    return OcfAgent(path, cache=MetaDataCache(tmp_path / "cache"), **options)  # type: ignore[arg-type]


def _seen(tmp_path: Path) -> dict[str, str]:
    lines = (tmp_path / "validate.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_valid_parameters_pass_and_reach_the_agent_as_reskeys(tmp_path: Path) -> None:
    agent = _fake_agent(tmp_path, "exit 0")
    assert agent.validate({"port": "8080", "mode": "fast"}) == ({"port": 8080, "mode": "fast"}, ())
    env = _seen(tmp_path)
    assert env["OCF_RESKEY_port"] == "8080"
    assert env["OCF_RESKEY_mode"] == "fast"
    assert env["OCF_RESOURCE_INSTANCE"] == "pyha-validate"
    assert env["OCF_RESKEY_CRM_meta_name"] == "validate"
    assert int(env["OCF_RESKEY_CRM_meta_timeout"]) <= 10000
    assert not Path(env["HA_RSCTMP"]).exists()  # a scratch directory, gone afterwards


@pytest.mark.parametrize(
    ("code", "meaning"), [(2, "invalid on this node (2)"), (6, "invalid configuration (6)")]
)
def test_invalid_exit_codes_carry_the_exit_reason(tmp_path: Path, code: int, meaning: str) -> None:
    body = f'echo "ocf-exit-reason:port $OCF_RESKEY_port is privileged" >&2\nexit {code}'
    agent = _fake_agent(tmp_path, body)
    params, problems = agent.validate({"port": 80})
    assert params == {"port": 80}
    assert problems == (f"validate-all: {meaning}: port 80 is privileged",)


def test_other_failures_are_problems_too(tmp_path: Path) -> None:
    agent = _fake_agent(tmp_path, 'echo "something broke" >&2\nexit 1')
    assert agent.validate({"port": 1})[1] == ("validate-all: err generic (1): something broke",)


def test_type_problems_stop_before_validate_all(tmp_path: Path) -> None:
    agent = _fake_agent(tmp_path, "exit 6")
    assert agent.validate({"port": "eighty"})[1] == ("port: must be an integer, got 'eighty'",)
    assert agent.validate({})[1] == ("port: required parameter is missing",)
    assert not (tmp_path / "validate.env").exists()


def test_agents_that_do_not_advertise_validate_all_are_not_asked(tmp_path: Path) -> None:
    agent = _fake_agent(tmp_path, "exit 6", advertise=False)
    assert agent.validate({"port": 1}) == ({"port": 1}, ())
    assert not (tmp_path / "validate.env").exists()


def test_a_hanging_validate_all_is_cut_short(tmp_path: Path) -> None:
    agent = _fake_agent(tmp_path, "exec sleep 60", validate_timeout=0.5, grace=1)
    assert agent.validate({"port": 1})[1] == ("validate-all did not answer within 0.5s",)


def test_validate_all_with_a_resource_node_meta_and_state_dir(tmp_path: Path) -> None:
    agent = _fake_agent(tmp_path, "exit 0", nodes=("a", "b"))
    problems = agent.validate_all(
        {"port": 1},
        resource="web:1",
        node="b",
        meta={"globally-unique": True},
        state_dir=tmp_path / "state",
    )
    assert problems == ()
    env = _seen(tmp_path)
    assert env["OCF_RESOURCE_INSTANCE"] == "web:1"
    assert env["PYHA_NODE"] == "b"
    assert env["PYHA_NODES"] == "a b"
    assert env["OCF_RESKEY_CRM_meta_globally_unique"] == "true"
    assert env["HA_RSCTMP"] == str(tmp_path / "state" / "rsctmp" / "b")


def test_validate_all_runs_behind_the_wrapper(tmp_path: Path) -> None:
    wrapper = tmp_path / "wrap"
    wrapper.write_text(f'#!/bin/sh\necho "$@" > "{tmp_path}/wrapped"\nexec "$@"\n')
    wrapper.chmod(0o755)
    agent = _fake_agent(tmp_path, "exit 6", wrapper=(str(wrapper),))
    assert agent.validate({"port": 1})[1] == (
        "validate-all: invalid configuration (6): no reason given",
    )
    assert (tmp_path / "wrapped").read_text() == f"{agent.path} validate-all\n"


@pytest.mark.skipif(not DUMMY.is_file(), reason=f"{DUMMY} is missing (resource-agents)")
def test_dummy_validate_all_checks_its_state_directory(tmp_path: Path) -> None:
    agent = OcfAgent(DUMMY, cache=MetaDataCache(tmp_path / "cache"))
    assert agent.validate({"state": str(tmp_path / "d.state")}) == (
        {"state": str(tmp_path / "d.state")},
        (),
    )
    assert agent.validate({}) == ({}, ())  # the default state file in a scratch HA_RSCTMP
    _, problems = agent.validate({"state": str(tmp_path / "missing" / "d.state")})
    assert problems == (
        f'validate-all: invalid on this node (2): State file "{tmp_path}/missing/d.state" '
        "is not writable",
    )
