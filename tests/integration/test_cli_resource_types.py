"""`pyha resource-type list|show` through typer's CliRunner, with Debian's OCF agents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pyha.cli import resource_types

DUMMY = Path("/usr/lib/ocf/resource.d/heartbeat/Dummy")

needs_dummy = pytest.mark.skipif(
    not DUMMY.is_file(), reason=f"{DUMMY} is missing (Debian package resource-agents)"
)

GOOD_PLUGIN = """
from pyha.resources.spi import MetaData, OperationSpec, ParameterSpec, Plugin


class Widget(Plugin):
    def meta_data(self):
        return MetaData(
            name="widget",
            parameters=(ParameterSpec(name="size", type="integer", required=True),
                        ParameterSpec(name="api_token", secret=True, default="abc123")),
            operations=(OperationSpec(name="start", timeout=7),),
        )

    def start(self, ctx):
        return 0

    def stop(self, ctx):
        return 0

    def monitor(self, ctx):
        return 7
"""


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A private meta-data cache; no plugin path or OCF root from the caller's environment."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("PYHA_PLUGIN_PATH", raising=False)
    monkeypatch.delenv("OCF_ROOT", raising=False)


def _run(*args: str) -> Any:
    result = CliRunner().invoke(resource_types.app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def _plugins(tmp_path: Path) -> Path:
    """A plugin path holding a good plugin `widget` and a folder with broken TOML."""
    root = tmp_path / "plugins"
    good = root / "widget"
    good.mkdir(parents=True)
    (good / "plugin.toml").write_text('name = "widget"\nclass = "Widget"\ndescription = "W"\n')
    (good / "plugin.py").write_text(GOOD_PLUGIN)
    bad = root / "broken"
    bad.mkdir()
    (bad / "plugin.toml").write_text('name = "broken\n')
    return root


def _by_type(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["type"]: entry for entry in data["types"]}


@needs_dummy
def test_list_json_has_dummy_with_ocf_origin() -> None:
    result = _run("list", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    dummy = _by_type(data)["ocf:heartbeat:Dummy"]
    assert dummy["name"] == "Dummy"
    assert dummy["class"] == "ocf"
    assert dummy["provider"] == "heartbeat"
    assert dummy["origin"] == {"kind": "ocf", "location": str(DUMMY.parent)}


def test_broken_plugin_is_listed_as_an_error_with_exit_code_zero(tmp_path: Path) -> None:
    plugins = _plugins(tmp_path)
    result = _run("list", "--json", "--plugin-path", str(plugins))
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    widget = _by_type(data)["python:local:widget"]
    assert widget["origin"] == {"kind": "plugin-path", "location": str(plugins / "widget")}
    assert widget["description"] == "W"
    (error,) = [e for e in data["errors"] if e["name"] == str(plugins / "broken")]
    assert error["origin"]["kind"] == "plugin-path"
    assert error["reason"].startswith("plugin.toml: cannot read it")


def test_list_table_shows_types_and_errors(tmp_path: Path) -> None:
    result = _run("list", "--plugin-path", str(_plugins(tmp_path)))
    assert result.exit_code == 0
    assert "python:local:widget" in result.stdout
    assert "1 plugin failed to register:" in result.stdout
    assert "plugin.toml: cannot read it" in result.stdout


def test_plugin_path_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYHA_PLUGIN_PATH", str(_plugins(tmp_path)))
    data = json.loads(_run("list", "--json").stdout)
    assert "python:local:widget" in _by_type(data)


@needs_dummy
def test_show_dummy_json_has_parameters_and_start_timeout() -> None:
    result = _run("show", "Dummy", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["type"] == "ocf:heartbeat:Dummy"
    assert [p["name"] for p in data["parameters"]] == ["state", "fake"]
    operations = {o["name"]: o for o in data["operations"]}
    assert operations["start"]["timeout"] == 20
    assert operations["monitor"]["interval"] == 10


@needs_dummy
def test_show_dummy_table() -> None:
    result = _run("show", "ocf:heartbeat:Dummy")
    assert result.exit_code == 0
    for text in ("State file", "fake", "monitor", "20s", "10s"):
        assert text in result.stdout


def test_show_hides_secret_defaults(tmp_path: Path) -> None:
    plugins = _plugins(tmp_path)
    data = json.loads(_run("show", "widget", "--json", "--plugin-path", str(plugins)).stdout)
    params = {p["name"]: p for p in data["parameters"]}
    assert params["size"]["required"] is True
    assert params["api_token"]["default"] == "(hidden)"
    table = _run("show", "widget", "--plugin-path", str(plugins)).stdout
    assert "abc123" not in table
    assert "7s" in table


def test_show_unknown_type_exits_2_with_a_message_on_stderr() -> None:
    result = _run("show", "no-such-type-anywhere")
    assert result.exit_code == 2
    assert "unknown resource type 'no-such-type-anywhere'" in result.stderr
    assert result.stdout == ""
