"""The adapter for OCF resource agents: run them as Pacemaker does, parse their meta data."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import sys
import tempfile
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pyha.clock import Clock, MonotonicClock
from pyha.errors import PluginError
from pyha.executor.command import CommandResult, run_command
from pyha.model.types import parse_duration
from pyha.resources.agent import Agent, Origin
from pyha.resources.ocf_shims import TOOLS, shim_directory
from pyha.resources.spi import (
    DEFAULT_TIMEOUT,
    CallStatus,
    MetaData,
    OcfCode,
    OperationContext,
    OperationSpec,
    Outcome,
    ParameterSpec,
    ParamType,
    TypeName,
)

__all__ = [
    "CRM_FEATURE_SET",
    "EXIT_REASON_PREFIX",
    "VALIDATE_TIMEOUT",
    "MetaDataCache",
    "OcfAgent",
    "default_cache_dir",
    "default_ocf_root",
    "exit_reason",
    "parse_metadata",
]

_LOG = logging.getLogger("pyha.resources.ocf")

EXIT_REASON_PREFIX = "ocf-exit-reason:"
META_DATA_TIMEOUT = 10.0
"""Seconds `<agent> meta-data` may take; Debian's agents print theirs in milliseconds."""
VALIDATE_TIMEOUT = 10.0
"""Seconds `<agent> validate-all` may take when validating parameters before anything runs."""
CRM_FEATURE_SET = "3.16.2"
"""The Pacemaker feature set agents are told (Pacemaker 2.1.5's): agents that compare it
pick the current interfaces, e.g. ocf_promotion_score calls `crm_attribute -p`."""
_MAX_MESSAGE = 300
_VALIDATE_RESOURCE = "pyha-validate"
"""OCF_RESOURCE_INSTANCE of a validate-all run for parameters not yet bound to a resource."""
_REAL_SBIN_AGENTS = frozenset({"nfsnotify", "clvm"})
"""Agents that look up real programs (sm-notify, clvmd) in $HA_SBIN_DIR: they keep
/usr/sbin there, every other agent finds pyha's Pacemaker tools through it."""
_LEGACY_WORDS = {"promoted": "master", "unpromoted": "slave"}
_STANDARD_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
_CACHE_FORMAT = "pyha-ocf-meta-1"
"""Part of every cache key: bump it when parse_metadata changes what it produces."""

# pyha's operation names where the OCF action is spelled differently.
_ACTIONS = {"validate": "validate-all", "meta_data": "meta-data"}
_OPERATIONS = {action: operation for operation, action in _ACTIONS.items()}
_ALWAYS_RUN = ("start", "stop", "monitor", "validate", "meta_data")
_TYPES: dict[str, ParamType] = {
    "string": "string",
    "integer": "integer",
    "boolean": "boolean",
    "select": "select",
}
# OCF has no way to mark a secret; these names are never logged or shown.
_SECRET_NAME = re.compile(r"passw|secret|credential|token", re.IGNORECASE)


def default_ocf_root() -> Path:
    """$OCF_ROOT, else Debian's /usr/lib/ocf."""
    return Path(os.environ.get("OCF_ROOT") or "/usr/lib/ocf")


def default_cache_dir() -> Path:
    """Where parsed meta data is kept between runs: ~/.cache/pyha/ocf (or $XDG_CACHE_HOME)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pyha" / "ocf"


# ---------------------------------------------------------------- meta-data XML


def parse_metadata(text: str, agent: str) -> MetaData:
    """MetaData from an agent's `meta-data` XML; PluginError naming `agent` if malformed."""
    try:
        # The XML comes from an executable the administrator installed, not from the
        # network; expat ignores the DTD reference and bounds entity expansion.
        root = ET.fromstring(text)  # noqa: S314
    except ET.ParseError as exc:
        raise PluginError(agent, f"meta-data is not valid XML: {exc}", "meta_data") from None
    if root.tag != "resource-agent":
        raise PluginError(
            agent, f"meta-data root element is <{root.tag}>, not <resource-agent>", "meta_data"
        )
    operations = _operations(root)
    try:
        return MetaData(
            name=root.get("name") or agent.rsplit(":", 1)[-1],
            version=_text(root.find("version")) or root.get("version") or "1.0",
            description=_description(root),
            parameters=_parameters(root),
            operations=operations,
            promotable={"promote", "demote"} <= {o.name for o in operations},
        )
    except ValidationError as exc:
        raise PluginError(
            agent, f"meta-data does not describe a type: {exc}", "meta_data"
        ) from None


def _text(element: ET.Element | None) -> str:
    """The element's text with runs of whitespace folded, or ''."""
    if element is None or element.text is None:
        return ""
    return " ".join(element.text.split())


def _description(element: ET.Element) -> str:
    return _text(element.find("shortdesc")) or _text(element.find("longdesc"))


def _parameters(root: ET.Element) -> tuple[ParameterSpec, ...]:
    specs: dict[str, ParameterSpec] = {}
    for element in root.iterfind("parameters/parameter"):
        name = element.get("name", "")
        if name and name not in specs:
            specs[name] = _parameter(name, element)
    return tuple(specs.values())


def _parameter(name: str, element: ET.Element) -> ParameterSpec:
    content = element.find("content")
    content = content if content is not None else ET.Element("content")
    options = tuple(o.get("value", "") for o in content.iterfind("option") if o.get("value"))
    kind = _TYPES.get(content.get("type", "string"), "string")
    if kind == "select" and not options:
        kind = "string"  # a select with no options would reject every value
    description = _description(element)
    if element.find("deprecated") is not None or element.get("deprecated") == "1":
        description = f"(deprecated) {description}".strip()
    return ParameterSpec(
        name=name,
        type=kind,
        required=_flag(element.get("required")),
        default=content.get("default"),
        description=description,
        options=options,
        unique=_flag(element.get("unique")),
        secret=bool(_SECRET_NAME.search(name)),
    )


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def _operations(root: ET.Element) -> tuple[OperationSpec, ...]:
    specs: dict[str, OperationSpec] = {}
    for element in root.iterfind("actions/action"):
        action = element.get("name", "")
        name = _OPERATIONS.get(action, action)
        if name and name not in specs:  # monitor may be listed per role; the first wins
            specs[name] = OperationSpec(
                name=name,
                timeout=_seconds(element.get("timeout"), DEFAULT_TIMEOUT),
                interval=_seconds(element.get("interval"), 0.0),
            )
    if "reload-agent" in specs and "reload" not in specs:
        specs["reload"] = specs["reload-agent"].model_copy(update={"name": "reload"})
    return tuple(specs.values())


def _seconds(value: str | None, fallback: float) -> float:
    """A duration attribute ("20s", "20", "1m"); the fallback when absent, bad or zero."""
    try:
        seconds = parse_duration(value) if value else fallback
    except ValueError:
        return fallback
    return seconds or fallback


# ---------------------------------------------------------------- cache


_MEMORY: dict[tuple[Path, str], MetaData] = {}
"""Shared by the caches of one process, keyed by (cache directory, agent key)."""
_MEMORY_LOCK = threading.Lock()


class MetaDataCache:
    """Parsed meta data of OCF agents, in memory and as JSON files in `directory`.

    Invariant: entries are keyed by the agent's path, mtime and size, so an agent
    that was replaced or edited misses and is asked again; a cache that cannot be
    read or written only costs a re-run of `meta-data`, never an error.
    """

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()

    def get(self, path: Path) -> MetaData | None:
        """The cached meta data of the agent at `path` as it is now, if any."""
        key = _cache_key(path)
        if key is None:
            return None
        with _MEMORY_LOCK:
            if (self.directory, key) in _MEMORY:
                return _MEMORY[self.directory, key]
        meta = self._read(key)
        if meta is not None:
            with _MEMORY_LOCK:
                _MEMORY[self.directory, key] = meta
        return meta

    def put(self, path: Path, meta: MetaData) -> None:
        """Remember `meta` for the agent at `path` as it is now."""
        key = _cache_key(path)
        if key is None:
            return
        with _MEMORY_LOCK:
            _MEMORY[self.directory, key] = meta
        self._write(key, meta)

    def _read(self, key: str) -> MetaData | None:
        try:
            return MetaData.model_validate_json((self.directory / f"{key}.json").read_bytes())
        except (OSError, ValueError):  # missing, unreadable or stale format: a miss
            return None

    def _write(self, key: str, meta: MetaData) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                "w", dir=self.directory, suffix=".tmp", delete=False, encoding="utf-8"
            ) as tmp:
                tmp.write(meta.model_dump_json())
            os.replace(tmp.name, self.directory / f"{key}.json")
        except OSError as exc:
            _LOG.debug("cannot cache OCF meta data in %s: %s", self.directory, exc)


def _cache_key(path: Path) -> str | None:
    try:
        stat = path.stat()
        resolved = path.resolve()
    except OSError:
        return None
    text = f"{_CACHE_FORMAT}\0{resolved}\0{stat.st_mtime_ns}\0{stat.st_size}"
    return hashlib.sha256(text.encode()).hexdigest()[:40]


# ---------------------------------------------------------------- the agent


class OcfAgent(Agent):
    """An OCF resource agent, `ocf:<provider>:<type>` for `<root>/resource.d/<provider>/<type>`.

    Invariant: the agent file was a regular executable when registered; its meta data
    is fetched on first use (not at registration, which only lists files) and then
    kept in memory and in the on-disk cache; every call runs under the operation's
    deadline with a minimal environment that carries nothing else of the server's,
    behind `wrapper` (an argv prefix such as `ip netns exec NS`) when one is given.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        ocf_root: Path | str | None = None,
        cache: MetaDataCache | None = None,
        grace: float = 5.0,
        clock: Clock | None = None,
        wrapper: Sequence[str] = (),
        nodes: Sequence[str] = (),
        validate_timeout: float = VALIDATE_TIMEOUT,
    ) -> None:
        # Not Agent.__init__: meta data is lazy here, so `meta` is a property.
        self.path = Path(path)
        self.name = TypeName("ocf", self.path.parent.name, self.path.name)
        if not (self.path.is_file() and os.access(self.path, os.X_OK)):
            raise PluginError(str(self.name), f"{self.path} is not an executable regular file")
        self.origin = Origin("ocf", str(self.path.parent))
        self.ocf_root = Path(ocf_root) if ocf_root is not None else self.path.parents[2]
        self.grace = grace
        self.wrapper = tuple(wrapper)
        """Run every call as `[*wrapper, agent, action]`: in a namespace, under nice, ..."""
        self.nodes = tuple(nodes)
        """The cluster's nodes, for crm_node; empty means just the node of each call."""
        self.validate_timeout = validate_timeout
        self._cache = cache or MetaDataCache()
        self._clock: Clock = clock or MonotonicClock()
        self._meta: MetaData | None = None
        self._lock = threading.Lock()

    @property
    def meta(self) -> MetaData:
        """The agent's meta data, run and parsed on first use; PluginError if it is broken."""
        with self._lock:
            if self._meta is None:
                self._meta = self._cache.get(self.path) or self._fetch_meta()
            return self._meta

    @meta.setter
    def meta(self, value: MetaData) -> None:
        with self._lock:
            self._meta = value

    @property
    def description(self) -> str:
        """The short description if the meta data is already known, else '' (never runs it)."""
        meta = self._meta or self._cache.get(self.path)
        return meta.description if meta else ""

    @property
    def enforces_deadline(self) -> bool:
        """True: the agent runs as a command that is killed at the deadline."""
        return True

    def _fetch_meta(self) -> MetaData:
        result = run_command(
            self.argv("meta-data"),
            deadline=self._clock.now() + META_DATA_TIMEOUT,
            clock=self._clock,
            env=self._base_env(),
            grace=1.0,
            log=_LOG,
            label=f"{self.name} meta-data",
        )
        if not result.ok:
            raise PluginError(str(self.name), f"meta-data failed: {_failure(result)}", "meta_data")
        meta = parse_metadata(result.stdout, str(self.name))
        self._cache.put(self.path, meta)
        return meta

    def argv(self, action: str) -> list[str]:
        """The command line of one call: the wrapper, the agent, the action, nothing else."""
        return [*self.wrapper, str(self.path), action]

    # ------------------------------------------------------------ validation

    def validate(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
        """Check names, required ones and types, then ask the agent's validate-all.

        No defaults are filled in (the agent has its own). validate-all runs only when
        the types are right and the agent advertises it, see `validate_all`.
        """
        checked, problems = self._check_types(params)
        if problems:
            return checked, problems
        return checked, self.validate_all(checked)

    def _check_types(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
        known = {p.name: p for p in self.meta.parameters}
        problems = [
            f"{name}: unknown parameter (known: {', '.join(sorted(known)) or 'none'})"
            for name in params
            if name not in known
        ]
        checked: dict[str, Any] = {}
        for spec in known.values():
            if spec.name not in params:
                if spec.required:
                    problems.append(f"{spec.name}: required parameter is missing")
                continue
            try:
                checked[spec.name] = spec.coerce(params[spec.name])
            except ValueError as exc:
                problems.append(f"{spec.name}: {exc}")
        return checked, tuple(problems)

    def validate_all(
        self,
        params: Mapping[str, Any],
        *,
        resource: str = _VALIDATE_RESOURCE,
        node: str | None = None,
        meta: Mapping[str, Any] | None = None,
        state_dir: Path | None = None,
    ) -> tuple[str, ...]:
        """Run `<agent> validate-all` with `params`; its complaints, () if it has none.

        Exit codes 2 (invalid here), 6 (invalid anywhere) and every other failure become
        one problem carrying the agent's `ocf-exit-reason:`; 3 means the agent does not
        really validate. Runs under `validate_timeout`, and only if the agent's meta
        data lists validate-all. HA_RSCTMP and the attribute store are a scratch
        directory unless `state_dir` is given.
        """
        if self.meta.operation("validate") is None:
            return ()
        with _scratch(state_dir) as where:
            outcome = self.invoke(
                OperationContext(
                    resource=resource,
                    operation="validate",
                    params=params,
                    deadline=self._clock.now() + self.validate_timeout,
                    node=node or os.uname().nodename,
                    state_dir=where,
                    log=_LOG,
                    clock=self._clock,
                    meta=dict(meta or {}),
                )
            )
        return _validation_problems(outcome, self.validate_timeout)

    # ------------------------------------------------------------ operations

    def invoke(self, ctx: OperationContext) -> Outcome:
        """Run `<agent> <action>` with the OCF environment, killed at `ctx.deadline`."""
        try:
            action = self._action(ctx.operation)
        except PluginError as exc:
            return Outcome(code=OcfCode.ERR_GENERIC, status=CallStatus.ERROR, message=str(exc))
        if action is None:
            return Outcome(
                code=OcfCode.ERR_UNIMPLEMENTED,
                message=f"{self.name} does not implement {ctx.operation}",
            )
        try:
            env = self.environment(ctx)
        except OSError as exc:
            return Outcome(
                code=OcfCode.ERR_INSTALLED,
                status=CallStatus.NOT_INSTALLED,
                message=f"cannot prepare HA_RSCTMP: {exc}",
            )
        result = run_command(
            self.argv(action),
            deadline=ctx.deadline,
            clock=ctx.clock,
            env=env,
            grace=self.grace,
            log=ctx.log,
            label=f"{self.name} {ctx.operation} {ctx.resource}",
        )
        return _outcome(result)

    def _action(self, operation: str) -> str | None:
        """The OCF action for a pyha operation, None if the agent lacks it."""
        if operation in _ALWAYS_RUN:
            return _ACTIONS.get(operation, operation)
        if operation == "reload" and self.meta.operation("reload-agent"):
            return "reload-agent"
        return operation if self.meta.operation(operation) else None

    # ------------------------------------------------------------ environment

    def _base_env(self) -> dict[str, str]:
        """What every call gets, meta-data included."""
        env = {
            "OCF_ROOT": str(self.ocf_root),
            "OCF_RA_VERSION_MAJOR": "1",
            "OCF_RA_VERSION_MINOR": "1",
            "OCF_RESOURCE_TYPE": self.name.type,
            "OCF_RESOURCE_PROVIDER": self.name.provider,
            "OCF_EXIT_REASON_PREFIX": EXIT_REASON_PREFIX,
            "OCF_RESKEY_crm_feature_set": CRM_FEATURE_SET,
            "PATH": _search_path(),
        }
        env.update(_shim_env(self.name.type))
        return env

    def environment(self, ctx: OperationContext) -> dict[str, str]:
        """The environment of one call (OCF.md 5.2); creates the HA_RSCTMP directory."""
        rsctmp = ctx.state_dir / "rsctmp" / ctx.node
        rsctmp.mkdir(parents=True, exist_ok=True)
        env = self._base_env()
        env.update(
            {
                "OCF_RESOURCE_INSTANCE": ctx.resource,
                "HA_RSCTMP": str(rsctmp),
                "OCF_RESKEY_CRM_meta_timeout": str(_milliseconds(ctx.remaining())),
                "OCF_RESKEY_CRM_meta_interval": str(_milliseconds(ctx.interval)),
                "OCF_RESKEY_CRM_meta_name": ctx.operation,
                "OCF_RESKEY_CRM_meta_on_node": ctx.node,
                "OCF_CHECK_LEVEL": _check_level(ctx.meta),
                "PYHA_ATTRIBUTES": str(ctx.state_dir / "attributes"),
                "PYHA_NODE": ctx.node,
                "PYHA_NODES": " ".join(self._nodes_with(ctx.node)),
            }
        )
        env.update(_meta_env(ctx.meta))
        for name, value in ctx.params.items():
            if value is not None:
                env[f"OCF_RESKEY_{name}"] = _env_value(value)
        return env

    def _nodes_with(self, node: str) -> list[str]:
        """The configured nodes, with `node` added if the list lacks it."""
        return list(self.nodes) if node in self.nodes else [*self.nodes, node]


@contextmanager
def _scratch(state_dir: Path | None) -> Iterator[Path]:
    """`state_dir`, or a private temporary directory removed afterwards."""
    if state_dir is not None:
        yield state_dir
        return
    with tempfile.TemporaryDirectory(prefix="pyha-ocf-validate-") as tmp:
        yield Path(tmp)


def _validation_problems(outcome: Outcome, timeout: float) -> tuple[str, ...]:
    """What a validate-all outcome says is wrong; () for valid (0) or not implemented (3)."""
    if outcome.status is CallStatus.TIMEOUT:
        return (f"validate-all did not answer within {timeout:g}s",)
    if outcome.status is not CallStatus.DONE:
        return (f"validate-all could not run: {outcome.message or outcome.status.value}",)
    if outcome.code in (OcfCode.SUCCESS, OcfCode.ERR_UNIMPLEMENTED):
        return ()
    reason = outcome.message or "no reason given"
    return (
        f"validate-all: {_VALIDATE_MEANING.get(outcome.code, OcfCode.label(outcome.code))}: "
        f"{reason}",
    )


_VALIDATE_MEANING: dict[int, str] = {
    OcfCode.ERR_ARGS: "invalid on this node (2)",
    OcfCode.ERR_PERM: "insufficient privileges (4)",
    OcfCode.ERR_INSTALLED: "not installed on this node (5)",
    OcfCode.ERR_CONFIGURED: "invalid configuration (6)",
}


def _check_level(meta: Mapping[str, Any]) -> str:
    """OCF_CHECK_LEVEL from the operation's depth (meta "depth"): 0, 10, 20; 0 by default."""
    depth = meta.get("depth")
    return "0" if depth is None else _env_value(depth)


def _meta_env(meta: Mapping[str, Any]) -> dict[str, str]:
    """OCF_RESKEY_CRM_meta_* for every meta attribute, and legacy names beside new ones.

    Pacemaker spells meta names with underscores, and still sets the old master/slave
    names next to promoted/unpromoted ones (notify_promoted_uname and
    notify_master_uname, promoted_max and master_max) because many agents read only those.
    """
    env: dict[str, str] = {}
    legacy: dict[str, str] = {}
    for name, value in meta.items():
        if value is None:
            continue
        words = name.replace("-", "_").split("_")
        env[f"OCF_RESKEY_CRM_meta_{'_'.join(words)}"] = _env_value(value)
        old = [_LEGACY_WORDS.get(word, word) for word in words]
        if old != words:
            legacy[f"OCF_RESKEY_CRM_meta_{'_'.join(old)}"] = _env_value(value)
    return legacy | env  # a legacy name given explicitly wins


def _shim_env(agent_type: str) -> dict[str, str]:
    """PATH entries and variables that let agents find pyha's Pacemaker tools."""
    shims = shim_directory()
    if not _shims_usable(shims):
        return {}
    env = {
        "PATH": os.pathsep.join([str(shims), _search_path()]),
        "PYHA_PYTHON": sys.executable,
        "PYHA_PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    if agent_type not in _REAL_SBIN_AGENTS:
        env["HA_SBIN_DIR"] = str(shims)  # ocf_promotion_score runs ${HA_SBIN_DIR}/crm_attribute
    return env


@functools.cache
def _shims_usable(shims: Path) -> bool:
    """True if the tool stand-ins can run; warns once if an install lost their mode bits."""
    usable = all(os.access(shims / tool, os.X_OK) for tool in TOOLS)
    if not usable:
        _LOG.warning("pyha's Pacemaker tool stand-ins in %s are not executable", shims)
    return usable


def _milliseconds(seconds: float) -> int:
    """Whole milliseconds; a timeout of 19.9996 s left reads as 20000, as configured."""
    return round(seconds) * 1000 if seconds >= 10 else round(seconds * 1000)


def _env_value(value: object) -> str:
    """A parameter as agents read it: true/false, words joined by spaces, plain numbers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return " ".join(_env_value(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _search_path() -> str:
    """The server's PATH with the standard system directories the agents expect."""
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    dirs += [d for d in _STANDARD_PATH if d not in dirs]
    return os.pathsep.join(dirs)


def exit_reason(stderr: str) -> str:
    """The agent's `ocf-exit-reason:` line, else its last non-empty stderr line (shortened)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    reasons = [line for line in lines if line.startswith(EXIT_REASON_PREFIX)]
    text = reasons[-1][len(EXIT_REASON_PREFIX) :].strip() if reasons else (lines or [""])[-1]
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _failure(result: CommandResult) -> str:
    """Why a command did not succeed, in one line."""
    if result.timed_out or result.returncode is None:
        return result.warning or result.stderr
    return f"exit code {result.returncode}: {exit_reason(result.stderr) or 'no message'}"


def _outcome(result: CommandResult) -> Outcome:
    if result.timed_out:
        return Outcome(code=OcfCode.ERR_GENERIC, status=CallStatus.TIMEOUT, message=result.warning)
    if result.returncode is None:
        return Outcome(
            code=OcfCode.ERR_INSTALLED, status=CallStatus.NOT_INSTALLED, message=result.stderr
        )
    if result.returncode < 0:
        # Killed by someone else's signal: the agent never answered.
        message = f"killed by signal {-result.returncode}"
        reason = exit_reason(result.stderr)
        return Outcome(
            code=OcfCode.ERR_GENERIC,
            status=CallStatus.ERROR,
            message=f"{message}: {reason}" if reason else message,
        )
    return Outcome(code=result.returncode, message=exit_reason(result.stderr))
