"""Argument handling of pyha's crm_attribute, crm_master, attrd_updater and crm_node."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyha.resources.attributes import AttributeStore
from pyha.resources.ocf_shims import main


@dataclass
class Run:
    """What one tool run printed and exited with."""

    code: int
    out: str
    err: str


class Tools:
    """Runs the tools in-process against one store, as the adapter's environment sets them up."""

    def __init__(self, root: Path) -> None:
        self.env = {
            "PYHA_ATTRIBUTES": str(root / "attributes"),
            "PYHA_NODE": "n1",
            "PYHA_NODES": "n1 n2 n3",
            "OCF_RESOURCE_INSTANCE": "db",
        }
        self.store = AttributeStore(root / "attributes")

    def __call__(self, *argv: str) -> Run:
        out, err = io.StringIO(), io.StringIO()
        code = main(argv, self.env, out, err)
        return Run(code, out.getvalue(), err.getvalue())


@pytest.fixture
def tools(tmp_path: Path) -> Tools:
    return Tools(tmp_path)


# ---------------------------------------------------------------- crm_attribute


def test_crm_attribute_update_query_delete_transient(tools: Tools) -> None:
    assert tools("crm_attribute", "-N", "n2", "-l", "reboot", "-n", "color", "-v", "red").code == 0
    assert tools.store.get("n2", "color") == "red"
    assert tools.store.get("n2", "color", "permanent") is None
    run = tools("crm_attribute", "-N", "n2", "-l", "reboot", "-n", "color", "-G", "-q")
    assert (run.code, run.out, run.err) == (0, "red\n", "")
    run = tools("crm_attribute", "-N", "n2", "-l", "reboot", "-n", "color", "--query")
    assert run.out == "scope=status  name=color value=red\n"
    assert tools("crm_attribute", "-N", "n2", "-l", "reboot", "-n", "color", "-D").code == 0
    assert tools.store.get("n2", "color") is None


def test_crm_attribute_long_options_and_forever(tools: Tools) -> None:
    run = tools(
        "crm_attribute", "--node=n3", "--lifetime=forever", "--name=ip", "--update=10.0.0.1"
    )
    assert run.code == 0
    assert tools.store.get("n3", "ip", "permanent") == "10.0.0.1"
    run = tools("crm_attribute", "--node", "n3", "--lifetime", "forever", "--name", "ip", "-G")
    assert run.out == "scope=nodes  name=ip value=10.0.0.1\n"


def test_crm_attribute_query_is_the_default_command(tools: Tools) -> None:
    tools.store.set("n1", "bootstrap", "true")
    run = tools("crm_attribute", "-N", "n1", "-l", "reboot", "--name", "bootstrap", "--quiet")
    assert (run.code, run.out) == (0, "true\n")


def test_crm_attribute_node_defaults_to_this_node_and_lifetime_to_forever(tools: Tools) -> None:
    assert tools("crm_attribute", "-l", "reboot", "-n", "a", "-v", "1").code == 0
    assert tools.store.get("n1", "a") == "1"
    assert tools("crm_attribute", "-N", "n2", "-n", "b", "-v", "2").code == 0
    assert tools.store.get("n2", "b", "permanent") == "2"


def test_crm_attribute_type_and_lifetime_last_one_wins(tools: Tools) -> None:
    assert tools("crm_attribute", "-t", "nodes", "-l", "reboot", "-n", "x", "-v", "1").code == 0
    assert tools("crm_attribute", "-l", "reboot", "-t", "nodes", "-n", "y", "-v", "1").code == 0
    assert tools.store.get("n1", "x") == "1"
    assert tools.store.get("n1", "y", "permanent") == "1"
    assert tools("crm_attribute", "-t", "status", "-n", "z", "-v", "1").code == 0
    assert tools.store.get("n1", "z") == "1"


def test_crm_attribute_missing_value_exits_105(tools: Tools) -> None:
    run = tools("crm_attribute", "-N", "n1", "-l", "reboot", "-n", "gone", "-G")
    assert run.code == 105
    assert run.out == "scope=status  name=gone value=(null)\n"
    assert run.err == "Error performing operation: No such device or address\n"
    run = tools("crm_attribute", "-N", "n1", "-l", "reboot", "-n", "gone", "-G", "-q")
    assert (run.code, run.out) == (105, "")


def test_crm_attribute_default_answers_for_a_missing_value(tools: Tools) -> None:
    run = tools("crm_attribute", "-l", "reboot", "-n", "gone", "-G", "-q", "-d", "0")
    assert (run.code, run.out) == (0, "0\n")
    run = tools("crm_attribute", "-l", "reboot", "-n", "gone", "-G", "--default=x")
    assert run.out == "scope=status  name=gone value=x\n"


def test_crm_attribute_deleting_what_is_not_there_succeeds(tools: Tools) -> None:
    assert tools("crm_attribute", "-N", "n1", "-l", "reboot", "-n", "never", "-D").code == 0


def test_crm_attribute_values_may_start_with_a_dash(tools: Tools) -> None:
    assert tools("crm_attribute", "-l", "reboot", "-n", "score", "-v", "-INFINITY").code == 0
    assert tools.store.get("n1", "score") == "-INFINITY"


def test_crm_attribute_without_node_or_type_sets_a_cluster_option(tools: Tools) -> None:
    run = tools(
        "crm_attribute", "--type", "crm_config", "--name", "repl", "-s", "set1", "-v", "a|b"
    )
    assert run.code == 0
    assert tools.store.option("repl") == "a|b"
    assert tools("crm_attribute", "--name", "repl", "--query", "-q").out == "a|b\n"
    assert tools.store.nodes() == []
    assert tools("crm_attribute", "-n", "repl", "-D").code == 0
    assert tools("crm_attribute", "-n", "repl", "-G").code == 105


def test_crm_attribute_utilization(tools: Tools) -> None:
    run = tools("crm_attribute", "-t", "nodes", "--node", "n2", "-z", "-n", "cpu", "-v", "8")
    assert run.code == 0
    assert tools.store.get("n2", "cpu", "utilization") == "8"
    run = tools("crm_attribute", "--quiet", "-t", "nodes", "--node", "n2", "-z", "-n", "cpu")
    assert run.out == "8\n"


@pytest.mark.parametrize(
    "args",
    [
        ("-p", "-v", "5"),
        ("--promotion", "-v", "5"),
        ("-v", "5", "-p"),
    ],
)
def test_crm_attribute_promotion_uses_the_instance(tools: Tools, args: tuple[str, ...]) -> None:
    assert tools("crm_attribute", *args).code == 0
    assert tools.store.get("n1", "master-db") == "5"  # transient: lifetime reboot by default


@pytest.mark.parametrize(
    "args", [("-p", "web", "-v", "7"), ("--promotion=web", "-v", "7"), ("-pweb", "-v", "7")]
)
def test_crm_attribute_promotion_of_a_named_resource(tools: Tools, args: tuple[str, ...]) -> None:
    assert tools("crm_attribute", *args).code == 0
    assert tools.store.get("n1", "master-web") == "7"


def test_crm_attribute_promotion_query_and_delete(tools: Tools) -> None:
    tools("crm_attribute", "-p", "-v", "10")
    assert tools("crm_attribute", "-p", "-G", "-q").out == "10\n"
    assert tools("crm_attribute", "-p", "-D").code == 0
    assert tools("crm_attribute", "-p", "-G", "-q").code == 105


def test_crm_attribute_promotion_needs_a_resource(tools: Tools) -> None:
    del tools.env["OCF_RESOURCE_INSTANCE"]
    run = tools("crm_attribute", "-p", "-v", "5")
    assert run.code == 1
    assert "--promotion needs a resource" in run.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-n", "x", "-X"), "crm_attribute: option -X not recognized"),
        (("-n", "x", "--pattern=a.*", "-v", "1"), "option --pattern not recognized"),
        (("-n", "x", "-G", "stray"), "unexpected argument 'stray'"),
        (("-n", "x", "-t", "rsc_defaults", "-G"), "'rsc_defaults' is not supported"),
        (("-l", "sometimes", "-n", "x", "-G"), "'sometimes' is not supported"),
        (("-l", "reboot", "-G"), "no attribute name given"),
        (("-n",), "option -n requires argument"),
    ],
)
def test_crm_attribute_bad_command_lines_exit_1(
    tools: Tools, args: tuple[str, ...], message: str
) -> None:
    run = tools("crm_attribute", *args)
    assert run.code == 1
    assert message in run.err
    assert run.out == ""


def test_crm_attribute_unknown_node_is_not_found(tools: Tools) -> None:
    run = tools("crm_attribute", "-N", "n9", "-l", "reboot", "-n", "x", "-v", "1")
    assert (run.code, run.err) == (105, "Could not map name=n9 to a UUID\n")
    assert tools.store.nodes() == []


def test_attribute_tools_need_the_store_location(tools: Tools) -> None:
    del tools.env["PYHA_ATTRIBUTES"]
    run = tools("crm_attribute", "-l", "reboot", "-n", "x", "-v", "1")
    assert run.code == 1
    assert "PYHA_ATTRIBUTES is not set" in run.err


def test_help_and_version(tools: Tools) -> None:
    run = tools("crm_attribute", "--help")
    assert run.code == 0
    assert run.out.startswith("usage: crm_attribute")
    assert "pyha" in tools("crm_node", "--version").out


# ---------------------------------------------------------------- crm_master


def test_crm_master_sets_the_instances_score(tools: Tools) -> None:
    assert tools("crm_master", "-l", "reboot", "-v", "100").code == 0
    assert tools.store.get("n1", "master-db") == "100"
    assert tools("crm_master", "-l", "reboot", "-G", "-q").out == "100\n"
    run = tools("crm_master", "-Q", "-l", "reboot", "-G")
    assert run.out == "100\n"  # -Q is crm_master's old spelling of --quiet
    assert tools("crm_master", "-l", "reboot", "-D").code == 0
    assert tools.store.get("n1", "master-db") is None


def test_crm_master_lifetime_defaults_to_forever(tools: Tools) -> None:
    assert tools("crm_master", "-v", "3").code == 0
    assert tools.store.get("n1", "master-db", "permanent") == "3"
    assert tools.store.get("n1", "master-db") is None


def test_crm_master_other_node_and_resource(tools: Tools) -> None:
    run = tools("crm_master", "-N", "n2", "-r", "web", "--lifetime=reboot", "--update=INFINITY")
    assert run.code == 0
    assert tools.store.get("n2", "master-web") == "INFINITY"


def test_crm_master_outside_an_agent_needs_a_resource(tools: Tools) -> None:
    del tools.env["OCF_RESOURCE_INSTANCE"]
    run = tools("crm_master", "-v", "1")
    assert run.code == 1
    assert "OCF_RESOURCE_INSTANCE" in run.err


def test_crm_master_refuses_crm_attribute_only_options(tools: Tools) -> None:
    run = tools("crm_master", "-n", "x", "-v", "1")
    assert run.code == 1
    assert "option -n not recognized" in run.err


# ---------------------------------------------------------------- attrd_updater


def test_attrd_updater_update_query_delete(tools: Tools) -> None:
    assert tools("attrd_updater", "-n", "pingd", "-U", "1000").code == 0
    assert tools.store.get("n1", "pingd") == "1000"
    run = tools("attrd_updater", "-n", "pingd", "-Q")
    assert (run.code, run.out) == (0, 'name="pingd" host="n1" value="1000"\n')
    assert tools("attrd_updater", "-D", "-n", "pingd").code == 0
    assert tools.store.get("n1", "pingd") is None


def test_attrd_updater_legacy_and_ignored_options(tools: Tools) -> None:
    assert tools("attrd_updater", "-d", "5s", "-S", "status", "-n", "m", "-v", "2").code == 0
    assert (
        tools("attrd_updater", "-p", "--name", "count", "--node", "n2", "--update", "3").code == 0
    )
    assert tools("attrd_updater", "-n", "both", "-B", "4", "-d", "1").code == 0
    assert tools.store.get("n1", "m") == "2"
    assert tools.store.get("n2", "count") == "3"
    assert tools.store.get("n1", "both") == "4"
    assert tools("attrd_updater", "-R").code == 0
    assert tools("attrd_updater", "-n", "m", "-Y", "-d", "3").code == 0


def test_attrd_updater_query_all_nodes(tools: Tools) -> None:
    tools("attrd_updater", "-n", "ports", "-N", "n2", "-U", "p2")
    tools("attrd_updater", "-n", "ports", "-N", "n3", "-U", "p3")
    run = tools("attrd_updater", "--query", "-n", "ports", "-A")
    assert run.out == 'name="ports" host="n2" value="p2"\nname="ports" host="n3" value="p3"\n'
    run = tools("attrd_updater", "--query", "-n", "ports", "-N", "n3")
    assert run.out == 'name="ports" host="n3" value="p3"\n'


def test_attrd_updater_missing_attribute_exits_105(tools: Tools) -> None:
    run = tools("attrd_updater", "-Q", "-n", "gone")
    assert run.code == 105
    assert run.err == "Could not query value of gone: attribute does not exist\n"
    assert tools("attrd_updater", "-Q", "-A", "-n", "gone").code == 105


@pytest.mark.parametrize(
    ("args", "message"),
    [(("-U", "1"), "no attribute name given"), (("-n", "x", "-G"), "option -G not recognized")],
)
def test_attrd_updater_bad_command_lines_exit_1(
    tools: Tools, args: tuple[str, ...], message: str
) -> None:
    run = tools("attrd_updater", *args)
    assert run.code == 1
    assert message in run.err


# ---------------------------------------------------------------- crm_node


@pytest.mark.parametrize(
    ("args", "out"),
    [
        (("-n",), "n1\n"),
        (("--name",), "n1\n"),
        (("-i",), "1\n"),
        (("-l",), "1 n1 member\n2 n2 member\n3 n3 member\n"),
        (("--list",), "1 n1 member\n2 n2 member\n3 n3 member\n"),
        (("-p",), "n1 n2 n3\n"),
        (("-l", "-p"), "n1 n2 n3\n"),
        (("-q",), "1\n"),
        (("-N", "2"), "n2\n"),
        (("--name-for-id=3",), "n3\n"),
    ],
)
def test_crm_node_answers(tools: Tools, args: tuple[str, ...], out: str) -> None:
    run = tools("crm_node", *args)
    assert (run.code, run.out, run.err) == (0, out, "")


def test_crm_node_id_of_a_later_node_and_a_partition(tools: Tools) -> None:
    tools.env["PYHA_NODE"] = "n3"
    assert tools("crm_node", "-i").out == "3\n"
    tools.env["PYHA_PARTITION"] = "n1 n3"
    assert tools("crm_node", "-p").out == "n1 n3\n"


def test_crm_node_without_a_node_list_knows_only_itself(tools: Tools) -> None:
    del tools.env["PYHA_NODES"]
    assert tools("crm_node", "-l").out == "1 n1 member\n"
    del tools.env["PYHA_NODE"]
    tools.env["OCF_RESKEY_CRM_meta_on_node"] = "from-meta"
    assert tools("crm_node", "-n").out == "from-meta\n"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("-N", "4"), 105, "Could not find node name for id 4"),
        (("-N", "0"), 105, "Could not find node name for id 0"),
        (("-N", "x"), 105, "Could not find node name for id x"),
        (("-R", "n2"), 1, "--remove is not supported"),
        ((), 1, "no command given"),
        (("-V",), 1, "no command given"),
        (("-Z",), 1, "option -Z not recognized"),
    ],
)
def test_crm_node_errors(tools: Tools, args: tuple[str, ...], code: int, message: str) -> None:
    run = tools("crm_node", *args)
    assert run.code == code
    assert message in run.err


def test_unknown_tool(tools: Tools) -> None:
    run = tools("crm_resource", "--list")
    assert run.code == 1
    assert "unknown tool 'crm_resource'" in run.err
