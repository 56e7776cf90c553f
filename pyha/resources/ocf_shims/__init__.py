"""pyha's stand-ins for Pacemaker's crm_attribute, crm_master, attrd_updater and crm_node."""

from __future__ import annotations

import getopt
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from pyha import __version__
from pyha.errors import PyhaError
from pyha.resources.attributes import AttributeStore, Section, promotion_attribute

__all__ = [
    "EXIT_NOT_FOUND",
    "EXIT_USAGE",
    "TOOLS",
    "main",
    "shim_directory",
]

EXIT_USAGE = 1
"""Bad or unknown options. Pacemaker's C tools say 64 (CRM_EX_USAGE); crm_master and
agents' own checks say 1, and no agent tells the two apart."""
EXIT_NOT_FOUND = 105
"""CRM_EX_NOSUCH: what Pacemaker 2.1+ exits with when a queried attribute or node does
not exist ("No such device or address"); Pacemaker 1.1 said 6."""
TOOLS = ("crm_attribute", "crm_master", "attrd_updater", "crm_node")


def shim_directory() -> Path:
    """The directory of small executables named after the tools, put first on agents' PATH."""
    return Path(__file__).resolve().parent / "bin"


class UsageError(PyhaError):
    """The command line asks for something the tool does not do."""


class NotFound(PyhaError):
    """The attribute or node asked for does not exist."""


@dataclass
class _Io:
    """Where a tool reads its environment and writes its answers."""

    env: Mapping[str, str]
    out: TextIO
    err: TextIO

    def say(self, line: str) -> None:
        self.out.write(line + "\n")

    def local_node(self) -> str:
        """This node's name as the adapter passed it, else the host name."""
        return (
            self.env.get("PYHA_NODE")
            or self.env.get("OCF_RESKEY_CRM_meta_on_node")
            or os.uname().nodename
        )

    def nodes(self) -> list[str]:
        """The cluster's nodes as the adapter passed them; this node at least."""
        names = self.env.get("PYHA_NODES", "").split()
        local = self.local_node()
        return names if local in names else [*names, local]

    def store(self) -> AttributeStore:
        where = self.env.get("PYHA_ATTRIBUTES")
        if not where:
            raise UsageError("PYHA_ATTRIBUTES is not set: this tool runs under pyha's OCF adapter")
        return AttributeStore(where)


def main(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run tool `argv[0]` with arguments `argv[1:]`; its exit code."""
    io = _Io(os.environ if env is None else env, out or sys.stdout, err or sys.stderr)
    tool, args = (argv[0], list(argv[1:])) if argv else ("", [])
    handler = _HANDLERS.get(tool)
    if handler is None:
        io.err.write(f"ocf_shims: unknown tool {tool!r} (one of {', '.join(TOOLS)})\n")
        return EXIT_USAGE
    try:
        return handler(args, io)
    except UsageError as exc:
        io.err.write(f"{tool}: {exc}\n")
        return EXIT_USAGE
    except NotFound as exc:
        io.err.write(f"{exc}\n")
        return EXIT_NOT_FOUND
    except (OSError, ValueError) as exc:
        io.err.write(f"{tool}: Error performing operation: {exc}\n")
        return 1


# ---------------------------------------------------------------- option parsing


@dataclass(frozen=True)
class _Opt:
    """One option: the key it sets, whether it takes a value, and its spellings."""

    key: str
    takes_value: bool
    short: str = ""
    long: tuple[str, ...] = ()


_COMMON = (
    _Opt("verbose", False, "V", ("verbose",)),
    _Opt("help", False, "", ("help",)),
    _Opt("version", False, "", ("version",)),
)


def _parse(args: Sequence[str], options: Sequence[_Opt]) -> list[tuple[str, str]]:
    """(key, value) pairs in command-line order; UsageError on anything unknown."""
    table = (*_COMMON, *options)
    short = "".join(o.short + (":" if o.takes_value else "") for o in table if o.short)
    long = [name + ("=" if o.takes_value else "") for o in table for name in o.long]
    keys = {f"-{o.short}": o.key for o in table if o.short}
    keys.update({f"--{name}": o.key for o in table for name in o.long})
    try:
        pairs, rest = getopt.gnu_getopt(list(args), short, long)
    except getopt.GetoptError as exc:
        raise UsageError(f"{exc} (pyha implements only the options OCF agents use)") from None
    if rest:
        raise UsageError(f"unexpected argument {rest[0]!r}")
    return [(keys[flag], value) for flag, value in pairs]


def _take_promotion(args: Sequence[str]) -> tuple[list[str], str | None]:
    """Remove -p/--promotion [RSC] (its value is optional, which getopt cannot express)."""
    rest: list[str] = []
    promotion: str | None = None
    words = iter(args)
    for word in words:
        if word == "--":
            rest += [word, *words]
        elif word in ("-p", "--promotion"):
            promotion = ""
            following = next(words, None)
            if following is not None and not following.startswith("-"):
                promotion = following
            elif following is not None:
                rest.append(following)
        elif word.startswith("--promotion="):
            promotion = word.split("=", 1)[1]
        elif word.startswith("-p") and not word.startswith("--"):
            promotion = word[2:]
        else:
            rest.append(word)
    return rest, promotion


def _help_or_version(tool: str, pairs: Sequence[tuple[str, str]], io: _Io, usage: str) -> bool:
    keys = {key for key, _ in pairs}
    if "help" in keys:
        io.say(f"usage: {tool} {usage}\npyha's stand-in for Pacemaker's {tool}; see docs/ocf.md")
    elif "version" in keys:
        io.say(f"{tool} (pyha {__version__})")
    return bool(keys & {"help", "version"})


# ---------------------------------------------------------------- crm_attribute, crm_master


@dataclass
class _Request:
    """One attribute request, as crm_attribute understands it."""

    command: str = "query"
    name: str = ""
    value: str = ""
    node: str = ""
    kind: str = ""
    """reboot, forever, status, nodes or crm_config: -l and -t set it, the last one wins."""
    utilization: bool = False
    quiet: bool = False
    default: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


_ATTRIBUTE_OPTIONS = (
    _Opt("name", True, "n", ("name", "attr-name")),
    _Opt("update", True, "v", ("update", "attr-value")),
    _Opt("query", False, "G", ("query", "get-value")),
    _Opt("delete", False, "D", ("delete", "delete-attr")),
    _Opt("node", True, "N", ("node",)),
    _Opt("node", True, "U", ("node-uname",)),
    _Opt("lifetime", True, "l", ("lifetime",)),
    _Opt("type", True, "t", ("type",)),
    _Opt("utilization", False, "z", ("utilization",)),
    _Opt("quiet", False, "q", ("quiet",)),
    _Opt("quiet", False, "Q", ()),
    _Opt("default", True, "d", ("default",)),
    _Opt("set-name", True, "s", ("set-name",)),
    _Opt("id", True, "i", ("id", "attr-id")),
)
_MASTER_OPTIONS = (
    _Opt("update", True, "v", ("update", "attr-value")),
    _Opt("query", False, "G", ("query", "get-value")),
    _Opt("delete", False, "D", ("delete", "delete-attr")),
    _Opt("node", True, "N", ("node",)),
    _Opt("node", True, "U", ("uname",)),
    _Opt("lifetime", True, "l", ("lifetime",)),
    _Opt("quiet", False, "q", ("quiet",)),
    _Opt("quiet", False, "Q", ()),
    _Opt("id", True, "i", ("id", "attr-id")),
    _Opt("resource", True, "r", ("resource",)),
)
_KINDS: dict[str, tuple[Section | None, str]] = {
    "reboot": ("transient", "status"),
    "status": ("transient", "status"),
    "forever": ("permanent", "nodes"),
    "nodes": ("permanent", "nodes"),
    "crm_config": (None, "crm_config"),
}
"""-l/-t value -> (store section, None for a cluster option; scope Pacemaker prints)."""


def _request(pairs: Sequence[tuple[str, str]]) -> _Request:
    request = _Request()
    for key, value in pairs:
        if key in ("query", "delete", "update"):
            request.command, request.value = key, value
        elif key in ("lifetime", "type"):
            request.kind = value
        elif key == "utilization":
            request.utilization = True
        elif key == "quiet":
            request.quiet = True
        elif key in ("name", "node", "default"):
            setattr(request, key, value)
        else:
            request.extra[key] = value  # -s, -i, -r and -V change nothing here
    return request


def _crm_attribute(args: list[str], io: _Io) -> int:
    args, promotion = _take_promotion(args)
    pairs = _parse(args, _ATTRIBUTE_OPTIONS)
    if _help_or_version("crm_attribute", pairs, io, "<command> -n <attribute> [options]"):
        return 0
    request = _request(pairs)
    if promotion is not None:
        resource = promotion or io.env.get("OCF_RESOURCE_INSTANCE", "")
        if not resource:
            raise UsageError("--promotion needs a resource: -p RSC, or OCF_RESOURCE_INSTANCE set")
        request.name = promotion_attribute(resource)
        request.kind = request.kind or "reboot"
    return _run(request, io)


def _crm_master(args: list[str], io: _Io) -> int:
    pairs = _parse(args, _MASTER_OPTIONS)
    if _help_or_version("crm_master", pairs, io, "<command> [options]"):
        return 0
    request = _request(pairs)
    resource = request.extra.get("resource") or io.env.get("OCF_RESOURCE_INSTANCE", "")
    if not resource:
        raise UsageError("no resource: run from an OCF agent (OCF_RESOURCE_INSTANCE) or give -r")
    request.name = promotion_attribute(resource)
    request.kind = request.kind or "forever"  # what Pacemaker's crm_master passes on
    return _run(request, io)


def _run(request: _Request, io: _Io) -> int:
    """Carry out an attribute request on the store."""
    if not request.name:
        raise UsageError("no attribute name given (-n NAME)")
    kind = request.kind or ("forever" if request.node else "crm_config")
    if kind not in _KINDS:
        raise UsageError(
            f"--lifetime/--type {kind!r} is not supported (reboot, forever, "
            "status, nodes or crm_config)"
        )
    section, scope = _KINDS[kind]
    if request.utilization:
        section, scope = "utilization", "nodes"
    if section is None:
        return _run_option(request, io)
    node = request.node or io.local_node()
    if io.env.get("PYHA_NODES") and node not in io.nodes():
        raise NotFound(f"Could not map name={node} to a UUID")
    return _run_attribute(request, io, node, section, scope)


def _run_attribute(request: _Request, io: _Io, node: str, section: Section, scope: str) -> int:
    store = io.store()
    if request.command == "update":
        store.set(node, request.name, request.value, section)
    elif request.command == "delete":
        store.delete(node, request.name, section)
    else:
        return _answer(request, io, scope, store.get(node, request.name, section))
    return 0


def _run_option(request: _Request, io: _Io) -> int:
    store = io.store()
    if request.command == "update":
        store.set_option(request.name, request.value)
    elif request.command == "delete":
        store.delete_option(request.name)
    else:
        return _answer(request, io, "crm_config", store.option(request.name))
    return 0


def _answer(request: _Request, io: _Io, scope: str, value: str | None) -> int:
    """Print a queried value as crm_attribute prints it; 105 when there is none."""
    if value is None:
        value = request.default
    if value is not None:
        io.say(value if request.quiet else f"scope={scope}  name={request.name} value={value}")
        return 0
    if not request.quiet:
        io.say(f"scope={scope}  name={request.name} value=(null)")
    raise NotFound("Error performing operation: No such device or address")


# ---------------------------------------------------------------- attrd_updater


_ATTRD_OPTIONS = (
    _Opt("name", True, "n", ("name",)),
    _Opt("update", True, "U", ("update",)),
    _Opt("update", True, "v", ()),
    _Opt("update", True, "B", ("update-both",)),
    _Opt("update-delay", False, "Y", ("update-delay",)),
    _Opt("query", False, "Q", ("query",)),
    _Opt("delete", False, "D", ("delete",)),
    _Opt("refresh", False, "R", ("refresh",)),
    _Opt("delay", True, "d", ("delay",)),
    _Opt("set", True, "s", ("set",)),
    _Opt("node", True, "N", ("node",)),
    _Opt("all", False, "A", ("all",)),
    _Opt("lifetime", True, "l", ("lifetime",)),
    _Opt("section", True, "S", ("section",)),
    _Opt("private", False, "p", ("private",)),
    _Opt("quiet", False, "q", ("quiet",)),
)
_ATTRD_COMMANDS = ("update", "update-delay", "query", "delete", "refresh")


def _attrd_updater(args: list[str], io: _Io) -> int:
    pairs = _parse(args, _ATTRD_OPTIONS)
    if _help_or_version("attrd_updater", pairs, io, "<command> -n <attribute> [options]"):
        return 0
    command, value, options = "query", "", dict(pairs)
    for key, given in pairs:
        if key in _ATTRD_COMMANDS:
            command, value = key, given
    if command in ("refresh", "update-delay"):
        return 0  # nothing is dampened or cached: every value is written at once
    name = options.get("name", "")
    if not name:
        raise UsageError("no attribute name given (-n NAME)")
    node = options.get("node") or io.local_node()
    store = io.store()
    if command == "update":
        store.set(node, name, value)
    elif command == "delete":
        store.delete(node, name)
    else:
        _attrd_query(io, store, name, None if "all" in options else node)
    return 0


def _attrd_query(io: _Io, store: AttributeStore, name: str, node: str | None) -> None:
    if node is None:
        values = store.everywhere(name)
    else:
        value = store.get(node, name)
        values = {} if value is None else {node: value}
    if not values:
        raise NotFound(f"Could not query value of {name}: attribute does not exist")
    for host, value in values.items():
        io.say(f'name="{name}" host="{host}" value="{value}"')


# ---------------------------------------------------------------- crm_node


_NODE_OPTIONS = (
    _Opt("name", False, "n", ("name",)),
    _Opt("name-for-id", True, "N", ("name-for-id",)),
    _Opt("cluster-id", False, "i", ("cluster-id",)),
    _Opt("list", False, "l", ("list",)),
    _Opt("partition", False, "p", ("partition",)),
    _Opt("quorum", False, "q", ("quorum",)),
    _Opt("remove", True, "R", ("remove",)),
)


def _crm_node(args: list[str], io: _Io) -> int:
    pairs = _parse(args, _NODE_OPTIONS)
    if _help_or_version("crm_node", pairs, io, "<command> [options]"):
        return 0
    if not pairs or pairs[-1][0] == "verbose":
        raise UsageError("no command given (-n, -i, -l, -p, -q or -N ID)")
    command, value = [(k, v) for k, v in pairs if k != "verbose"][-1]  # the last one wins
    if command == "remove":
        raise UsageError("--remove is not supported: pyha's nodes are configured, not learned")
    nodes = io.nodes()
    if command == "name":
        io.say(io.local_node())
    elif command == "cluster-id":
        io.say(str(nodes.index(io.local_node()) + 1))
    elif command == "list":
        for number, node in enumerate(nodes, 1):
            io.say(f"{number} {node} member")
    elif command == "partition":
        io.say(" ".join(io.env.get("PYHA_PARTITION", "").split() or nodes))
    elif command == "quorum":
        io.say("1")  # agents run only where pyha has quorum
    else:
        io.say(_name_for_id(nodes, value))
    return 0


def _name_for_id(nodes: Sequence[str], text: str) -> str:
    """The node numbered `text` (1 for the first of PYHA_NODES)."""
    number = int(text) if text.strip().isdigit() else 0
    if 1 <= number <= len(nodes):
        return nodes[number - 1]
    raise NotFound(f"Could not find node name for id {text}")


_HANDLERS: dict[str, Callable[[list[str], _Io], int]] = {
    "crm_attribute": _crm_attribute,
    "crm_master": _crm_master,
    "attrd_updater": _attrd_updater,
    "crm_node": _crm_node,
}
