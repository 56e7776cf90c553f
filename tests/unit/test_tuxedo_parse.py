"""The tuxedo plugin's pure parts: tmadmin psr output, the health verdict, env files."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pyha.resources.registry import Registry

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugins" / "tuxedo"
PACKAGE = "_pyha_test_unit_tuxedo"


def _load(module: str) -> ModuleType:
    """Import a module of plugins/tuxedo as part of a package, as the registry does."""
    if PACKAGE not in sys.modules:
        spec = importlib.machinery.ModuleSpec(PACKAGE, None, is_package=True)
        package = importlib.util.module_from_spec(spec)
        package.__path__ = [str(PLUGIN_DIR)]
        sys.modules[PACKAGE] = package
    return importlib.import_module(f"{PACKAGE}.{module}")


psr = _load("psr")
envfile = _load("envfile")
plugin = _load("plugin")

HEADER = "Prog Name      Queue Name  Grp Name      ID RqDone Load Done Current Service"
DASHES = "---------      ----------  --------      -- ------ --------- ---------------"

# A session as `tmadmin -r` prints it with commands on stdin: banner, prompts, table.
RUNNING = f"""tmadmin - Copyright (c) 1996-2016 Oracle.
All Rights Reserved.

> {HEADER}
{DASHES}
BBL            77001       SITE1          0     12         0 ( IDLE )
ORDSRV         00001.00010 ORDERS        10      3       150 ( PLACE_ORDER )
ORDSRV         00001.00011 ORDERS        11      0         0 ( IDLE )
TMS_ORA        ORDERS_TMS  ORDERS     30001      0         0 ( IDLE )
stockserv      00002.00020 STOCK         20      7       350 ( IDLE )

"""  # the session ends with an empty prompt, added below to keep its trailing space
RUNNING += "> \n"

NO_BOARD = """tmadmin - Copyright (c) 1996-2016 Oracle.

No bulletin board exists. Entering boot mode.

> TMADMIN_CAT:121: ERROR: Cannot perform this command in boot mode
"""
NO_BOARD += "> \n"


# --- parsing ------------------------------------------------------------------------


def test_parse_a_running_domain() -> None:
    report = psr.parse_psr(RUNNING)
    assert report.table
    assert not report.no_bulletin_board
    assert report.messages == ()
    assert [row.prog_name for row in report.servers] == [
        "BBL", "ORDSRV", "ORDSRV", "TMS_ORA", "stockserv",
    ]  # fmt: skip
    first = report.servers[1]
    assert first == psr.ServerRow(
        prog_name="ORDSRV",
        queue_name="00001.00010",
        group="ORDERS",
        server_id=10,
        requests_done="3",
        load_done="150",
        current_service="PLACE_ORDER",
    )
    assert report.servers[0].queue_name == "77001"


def test_parse_no_bulletin_board() -> None:
    report = psr.parse_psr(NO_BOARD)
    assert not report.table
    assert report.no_bulletin_board
    assert report.messages == (
        "No bulletin board exists. Entering boot mode.",
        "TMADMIN_CAT:121: ERROR: Cannot perform this command in boot mode",
    )


def test_parse_without_prompts_or_banner() -> None:
    text = f"{HEADER}\n{DASHES}\nBBL 1 SITE1 0 0 0 ( IDLE )\n"
    report = psr.parse_psr(text)
    assert [row.prog_name for row in report.servers] == ["BBL"]


def test_rows_end_at_the_next_prompt() -> None:
    text = f"> {HEADER}\n{DASHES}\nBBL 1 SITE1 0 0 0 ( IDLE )\n> notarow x y 1 2 3 ( IDLE )\n"
    assert [row.prog_name for row in psr.parse_psr(text).servers] == ["BBL"]


def test_unparsable_rows_are_skipped() -> None:
    text = f"{HEADER}\n{DASHES}\nBBL 1 SITE1 0 0 0 ( IDLE )\nsomething else entirely\n"
    assert len(psr.parse_psr(text).servers) == 1


def test_dead_and_restarting_rows_do_not_run() -> None:
    text = (
        f"{HEADER}\n{DASHES}\nBBL 1 SITE1 0 0 0 ( IDLE )\n"
        "ORDSRV 00001.00010 ORDERS 10 0 0 ( DEAD )\n"
        "stockserv 00002.00020 STOCK 20 0 0 ( RESTARTING )\n"
    )
    report = psr.parse_psr(text)
    assert len(report.servers) == 3
    assert [row.prog_name for row in report.running] == ["BBL"]


def test_truncated_names_match_by_prefix() -> None:
    row = psr.ServerRow("inventory_upd+", "q", "G", 1, "0", "0", "IDLE")
    assert row.is_named("inventory_update_server")
    assert not row.is_named("inventory")
    assert psr.ServerRow("/opt/app/bin/ORDSRV", "q", "G", 1, "0", "0", "IDLE").is_named("ORDSRV")


# --- the verdict --------------------------------------------------------------------


def test_all_required_servers_run() -> None:
    health = psr.assess(psr.parse_psr(RUNNING), ["ORDSRV", "stockserv"])
    assert health.code == 0
    assert "ORDSRV(10)" in health.message
    assert health.missing == ()


def test_a_missing_server_is_named() -> None:
    health = psr.assess(psr.parse_psr(RUNNING), ["ORDSRV", "PAYSRV", "REFUNDSRV"])
    assert health.code == 1
    assert health.missing == ("PAYSRV", "REFUNDSRV")
    assert health.message.startswith("not running: PAYSRV, REFUNDSRV")


def test_no_bulletin_board_is_stopped() -> None:
    health = psr.assess(psr.parse_psr(NO_BOARD), ["ORDSRV"])
    assert health.code == 7
    assert "No bulletin board exists" in health.message


def test_a_catalog_error_without_a_table_is_stopped() -> None:
    text = "TMADMIN_CAT:1330: ERROR: Cannot join the application\n> \n"
    health = psr.assess(psr.parse_psr(text), [])
    assert health.code == 7
    assert "TMADMIN_CAT:1330" in health.message


def test_an_empty_table_is_stopped() -> None:
    health = psr.assess(psr.parse_psr(f"{HEADER}\n{DASHES}\n\n"), ["ORDSRV"])
    assert health.code == 7


def test_servers_without_a_bbl_are_failed_not_stopped() -> None:
    text = f"{HEADER}\n{DASHES}\nORDSRV 00001.00010 ORDERS 10 0 0 ( IDLE )\n"
    health = psr.assess(psr.parse_psr(text), ["ORDSRV"])
    assert health.code == 1
    assert health.missing == ("BBL",)


def test_unknown_output_is_a_failure() -> None:
    health = psr.assess(psr.parse_psr("Segmentation fault\n"), [])
    assert health.code == 1


def test_required_names_put_the_bbl_first_once() -> None:
    assert psr.required_names(["ORDSRV", "BBL", "ORDSRV"]) == ("BBL", "ORDSRV")


# --- env files ----------------------------------------------------------------------


def test_env_file_lines() -> None:
    text = """
# the domain's environment
export FIELDTBLS32=app.fml
FLDTBLDIR32=${APPDIR}/fml
PATH=$TUXDIR/bin:${PATH}
QUOTED="a b"
LITERAL='${NOT_EXPANDED}'
  SPACED = value with spaces  
"""  # noqa: W291 - trailing spaces are part of the case
    parsed = envfile.parse_env_file(text, {"APPDIR": "/app", "TUXDIR": "/tux", "PATH": "/bin"})
    assert parsed.problems == ()
    assert parsed.unset == ()
    assert parsed.variables == {
        "FIELDTBLS32": "app.fml",
        "FLDTBLDIR32": "/app/fml",
        "PATH": "/tux/bin:/bin",
        "QUOTED": "a b",
        "LITERAL": "${NOT_EXPANDED}",
        "SPACED": "value with spaces",
    }


def test_env_file_later_lines_see_earlier_ones() -> None:
    parsed = envfile.parse_env_file("A=1\nB=${A}2\n", {})
    assert parsed.variables == {"A": "1", "B": "12"}


def test_env_file_problems_name_the_line() -> None:
    parsed = envfile.parse_env_file("GOOD=1\njust words\n2BAD=x\nX=a\0b\n", {})
    assert parsed.variables == {"GOOD": "1"}
    assert parsed.problems == (
        "line 2: expected NAME=value, got 'just words'",
        "line 3: '2BAD' is not a variable name",
        "line 4: the value of X holds a NUL character",
    )


def test_env_file_unset_references_expand_to_nothing() -> None:
    parsed = envfile.parse_env_file("CLASSPATH=${CLASSPATH}:/app/lib\n", {})
    assert parsed.variables == {"CLASSPATH": ":/app/lib"}
    assert parsed.unset == ("line 1: ${CLASSPATH} is not set",)


def test_environment_pins_the_parameters(tmp_path: Path) -> None:
    env_file = tmp_path / "tux.env"
    env_file.write_text("TUXCONFIG=/elsewhere/tuxconfig\nFOO=bar\n")
    settings = plugin.Settings(
        tuxdir=Path("/opt/tuxedo"),
        tuxconfig=tmp_path / "tuxconfig",
        appdir=tmp_path,
        env_file=env_file,
        required=("BBL",),
        user=None,
    )
    env, problems, warnings = settings.environment()
    assert env["TUXCONFIG"] == str(tmp_path / "tuxconfig")
    assert env["FOO"] == "bar"
    assert env["PATH"].startswith("/opt/tuxedo/bin:")
    assert env["LD_LIBRARY_PATH"] == "/opt/tuxedo/lib"
    assert problems == [
        "env_file: sets TUXCONFIG='/elsewhere/tuxconfig', but the tuxconfig parameter "
        f"is {str(tmp_path / 'tuxconfig')!r}"
    ]
    assert warnings == []


# --- meta data ----------------------------------------------------------------------


def test_meta_data_declares_parameters_and_timeouts() -> None:
    meta = plugin.TuxedoPlugin().meta_data()
    names = {p.name for p in meta.parameters}
    assert names == {"tuxdir", "tuxconfig", "appdir", "env_file", "required_servers", "user"}
    assert {op.name for op in meta.operations} == {"start", "stop", "monitor"}
    coerced, problems = meta.check({"tuxdir": "/t", "tuxconfig": "/t/c", "appdir": "/a"})
    assert problems == ()
    assert coerced["required_servers"] == ["BBL"]


@pytest.mark.parametrize("name", ["two words", "bin/ORDSRV", ""])
def test_validate_rejects_bad_server_names(tmp_path: Path, name: str) -> None:
    meta = plugin.TuxedoPlugin().meta_data()
    params = {"tuxdir": str(tmp_path), "tuxconfig": str(tmp_path / "c"), "appdir": str(tmp_path)}
    coerced, _ = meta.check({**params, "required_servers": [name]})
    problems = plugin.TuxedoPlugin().validate(coerced)
    assert f"required_servers: {name!r} is not a server name (no spaces or slashes)" in problems


def test_registers_as_a_bundled_plugin() -> None:
    registry = Registry()
    registry.load_folder(PLUGIN_DIR, "bundled", default_provider="pyha")
    assert registry.errors == []
    assert registry.resolve("python:pyha:tuxedo").meta.name == "tuxedo"
