"""The plugin registry: finds resource types by each ecosystem's convention, checks each one."""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import os
import re
import sys
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyha.errors import PluginError, UnknownResourceType
from pyha.resources.agent import Agent, Origin, OriginKind
from pyha.resources.java import discover_java, java_plugin_paths
from pyha.resources.ocf import MetaDataCache, OcfAgent, default_ocf_root
from pyha.resources.python import PythonAgent
from pyha.resources.spi import TypeName

__all__ = [
    "ENTRY_POINT_GROUP",
    "PLUGIN_PATH_ENV",
    "RegistrationError",
    "Registry",
    "bundled_plugin_dir",
    "describe",
    "env_plugin_paths",
]

ENTRY_POINT_GROUP = "pyha.plugins"
PLUGIN_PATH_ENV = "PYHA_PLUGIN_PATH"
MANIFEST = "plugin.toml"
_MANIFEST_KEYS = ("name", "provider", "module", "class", "description", "language")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class RegistrationError:
    """A plugin that could not register, where it came from and why; the others still load."""

    name_or_path: str
    origin: Origin
    reason: str

    @property
    def name(self) -> str:
        """The plugin's full name if it got that far, else its folder or file."""
        return self.name_or_path

    def __str__(self) -> str:
        return f"{self.name_or_path} ({self.origin}): {self.reason}"


class _Rejected(Exception):
    """A plugin failed a registration step; carries the name known so far and the reason."""

    def __init__(self, reason: str, name: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.name = name


def bundled_plugin_dir() -> Path:
    """The repository's top-level plugins/ next to the pyha package, else the wheel's copy."""
    package = Path(__file__).resolve().parents[1]
    in_repo = package.parent / "plugins"
    return in_repo if in_repo.is_dir() else package / "_bundled_plugins"


def env_plugin_paths() -> list[Path]:
    """The plugin folders named in $PYHA_PLUGIN_PATH (colon-separated)."""
    value = os.environ.get(PLUGIN_PATH_ENV, "")
    return [Path(part) for part in value.split(os.pathsep) if part]


def describe(agent: Agent) -> str:
    """An agent's one-line description, without running anything to get it."""
    text = getattr(agent, "description", None)
    return text if isinstance(text, str) else agent.meta.description


class Registry:
    """The resource types a node knows, by full name, and the plugins that failed to register.

    Invariant: full names are unique; every agent held passed its registration checks;
    discovery never raises for a bad plugin, it records a RegistrationError instead.
    """

    def __init__(self) -> None:
        self._agents: dict[str, Agent] = {}
        self._short: dict[str, list[Agent]] | None = None
        """Agents by short type name, built on first use after a registration."""
        self.errors: list[RegistrationError] = []

    @classmethod
    def discover(
        cls,
        plugin_paths: Sequence[Path | str] = (),
        *,
        ocf_root: Path | str | None = None,
        entry_points: bool = True,
        bundled: bool = True,
        ocf_cache_dir: Path | None = None,
        java_plugin_path: Sequence[Path | str] | None = None,
    ) -> Registry:
        """Find every plugin: bundled folders, plugin paths, distributions, OCF agents, jars.

        `java_plugin_path` None means $PYHA_JAVA_PLUGIN_PATH.
        """
        registry = cls()
        if bundled:
            registry.load_folders(bundled_plugin_dir(), "bundled", default_provider="pyha")
        for path in plugin_paths:
            registry.load_folders(Path(path), "plugin-path", default_provider="local")
        if entry_points:
            registry.load_entry_points()
        ocf = Path(ocf_root) if ocf_root is not None else default_ocf_root()
        registry.load_ocf(ocf, MetaDataCache(ocf_cache_dir))
        registry.load_java(bundled_plugin_dir() if bundled else None, java_plugin_path)
        return registry

    # ------------------------------------------------------------ the registry proper

    def register(self, agent: Agent) -> None:
        """Add `agent`; PluginError if its full name is already taken."""
        full = str(agent.name)
        if full in self._agents:
            raise PluginError(
                full,
                f"duplicate resource type; already registered from {self._agents[full].origin}",
            )
        self._agents[full] = agent
        self._short = None  # rebuilt at the next lookup by short name

    def agents(self) -> list[Agent]:
        """Every registered agent, sorted by full name."""
        return [self._agents[name] for name in sorted(self._agents)]

    def __len__(self) -> int:
        return len(self._agents)

    def __contains__(self, name: object) -> bool:
        return name in self._agents

    def resolve(self, name: str) -> Agent:
        """The agent for a full name, or a short type name that only one agent has."""
        if name in self._agents:
            return self._agents[name]
        if self._short is None:  # one pass per registry, not one per resource bound
            short: dict[str, list[Agent]] = {}
            for agent in self.agents():
                short.setdefault(agent.short_name, []).append(agent)
            self._short = short
        matches = self._short.get(name, []) if ":" not in name else []
        if len(matches) == 1:
            return matches[0]
        if matches:
            names = ", ".join(str(a.name) for a in matches)
            raise UnknownResourceType(
                f"resource type {name!r} is ambiguous: {names}; use the full name"
            )
        raise UnknownResourceType(self._unknown_message(name))

    def _unknown_message(self, name: str) -> str:
        # Compare type parts only: the shared "ocf:heartbeat:" prefix would make every
        # full name look alike.
        by_type: dict[str, set[str]] = {}
        for agent in self._agents.values():
            by_type.setdefault(agent.short_name.lower(), set()).add(str(agent.name))
        wanted = name.rsplit(":", 1)[-1].lower()
        close = difflib.get_close_matches(wanted, list(by_type), n=5, cutoff=0.6)
        suggestions = sorted({full for text in close for full in by_type[text]})
        message = f"unknown resource type {name!r}"
        if suggestions:
            return f"{message}; did you mean {', '.join(suggestions)}?"
        return f"{message}; `pyha resource-type list` shows the known ones"

    def validate(
        self, type_name: str, params: Mapping[str, Any]
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        """Resolve `type_name`, then check `params` against it: (params, problems)."""
        return self.resolve(type_name).validate(params)

    def _reject(self, name: str, origin: Origin, reason: str) -> None:
        self.errors.append(RegistrationError(name, origin, reason))

    def _try_register(self, agent: Agent) -> None:
        try:
            self.register(agent)
        except PluginError as exc:
            self._reject(str(agent.name), agent.origin, exc.reason)

    # ------------------------------------------------------------ Python plugin folders

    def load_folders(self, path: Path, kind: OriginKind, *, default_provider: str) -> None:
        """Register every plugin folder in `path` (or `path` itself if it is one)."""
        if not path.is_dir():
            if kind != "bundled":  # a wheel without bundled plugins is fine
                self._reject(str(path), Origin(kind, str(path)), "plugin path is not a folder")
            return
        folders = [path] if (path / MANIFEST).is_file() else sorted(path.iterdir())
        for folder in folders:
            if (folder / MANIFEST).is_file():
                self.load_folder(folder, kind, default_provider=default_provider)

    def load_folder(self, folder: Path, kind: OriginKind, *, default_provider: str) -> None:
        """Register the plugin of one folder holding a plugin.toml; failures are recorded."""
        origin = Origin(kind, str(folder))
        try:
            manifest = _Manifest.read(folder / MANIFEST, default_provider)
            if manifest is None:
                return  # a plugin in another language; its own adapter finds it
            plugin = _instantiate(_import_from_folder(folder, manifest), manifest.klass)
            agent = PythonAgent(plugin, manifest.type_name, origin, manifest.description)
        except _Rejected as exc:
            self._reject(exc.name or str(folder), origin, exc.reason)
            return
        except PluginError as exc:
            self._reject(exc.plugin, origin, _plugin_reason(exc))
            return
        self._try_register(agent)

    # ------------------------------------------------------------ distributions

    def load_entry_points(self) -> None:
        """Register the plugins installed distributions declare in group pyha.plugins."""
        seen: set[tuple[str, str, str]] = set()
        for dist, entry in _entry_points():
            dist_name = dist.metadata["Name"] or "unknown"
            if (dist_name, entry.name, entry.value) in seen:
                continue  # the same distribution found twice on sys.path
            seen.add((dist_name, entry.name, entry.value))
            self._load_entry_point(dist_name, dist.version, entry)

    def _load_entry_point(
        self, dist_name: str, version: str, entry: importlib.metadata.EntryPoint
    ) -> None:
        origin = Origin("distribution", f"{dist_name}=={version}")
        name = f"python:{dist_name}:{entry.name}"
        try:
            type_name = TypeName("python", _checked_name(dist_name, "distribution"), entry.name)
            _checked_name(entry.name, "entry point")
            loaded = _guarded(entry.load, f"cannot load {entry.value}")
            plugin = _instantiate_class(loaded, entry.value)
            agent = PythonAgent(plugin, type_name, origin)
        except _Rejected as exc:
            self._reject(name, origin, exc.reason)
            return
        except PluginError as exc:
            self._reject(exc.plugin, origin, _plugin_reason(exc))
            return
        self._try_register(agent)

    # ------------------------------------------------------------ OCF agents

    def load_ocf(self, root: Path, cache: MetaDataCache | None = None) -> None:
        """Register every executable `<root>/resource.d/<provider>/<type>`; no meta-data runs."""
        for path in _ocf_files(root):
            try:
                agent = OcfAgent(path, ocf_root=root, cache=cache)
            except PluginError as exc:
                self._reject(exc.plugin, Origin("ocf", str(path.parent)), exc.reason)
                continue
            self._try_register(agent)

    # ------------------------------------------------------------ Java plugins

    def load_java(self, bundled: Path | None, paths: Sequence[Path | str] | None = None) -> None:
        """Register Java plugins: folders with language = "java" in `bundled`, then `paths`.

        `paths` (jars, folders of jars, Java plugin folders) None means
        $PYHA_JAVA_PLUGIN_PATH. Folders register without building; jars are listed once
        per version (the listing is cached), so discovery stays fast.
        """
        chosen = java_plugin_paths() if paths is None else [Path(p) for p in paths]
        agents, rejected = discover_java(bundled, chosen)
        for name, origin, reason in rejected:
            self._reject(name, origin, reason)
        for agent in agents:
            self._try_register(agent)


def _ocf_files(root: Path) -> Iterator[Path]:
    base = root / "resource.d"
    if not base.is_dir():
        return  # no OCF agents installed on this node
    for provider in sorted(base.iterdir()):
        if provider.is_dir() and not provider.name.startswith("."):
            # Dot files are the agents' shared shell helpers, not agents.
            yield from (
                p
                for p in sorted(provider.iterdir())
                if not p.name.startswith(".") and not p.is_dir() and ":" not in p.name
            )


def _entry_points() -> Iterator[
    tuple[importlib.metadata.Distribution, importlib.metadata.EntryPoint]
]:
    for dist in importlib.metadata.distributions():
        for entry in dist.entry_points:
            if entry.group == ENTRY_POINT_GROUP:
                yield dist, entry


def _plugin_reason(exc: PluginError) -> str:
    return f"{exc.operation}: {exc.reason}" if exc.operation else exc.reason


# ---------------------------------------------------------------- plugin.toml


@dataclass(frozen=True)
class _Manifest:
    """A folder's plugin.toml, checked."""

    name: str
    provider: str
    module: str
    klass: str
    description: str

    @property
    def type_name(self) -> TypeName:
        return TypeName("python", self.provider, self.name)

    @classmethod
    def read(cls, path: Path, default_provider: str) -> _Manifest | None:
        """The checked manifest; None for a plugin in another language; _Rejected if bad."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise _Rejected(f"{MANIFEST}: cannot read it: {exc}") from None
        if data.get("language", "python") != "python":
            return None
        unknown = sorted(set(data) - set(_MANIFEST_KEYS))
        if unknown:
            known = ", ".join(_MANIFEST_KEYS)
            raise _Rejected(f"{MANIFEST}: unknown key(s) {', '.join(unknown)} (known: {known})")
        name = _string(data, "name", None)
        full = f"python:{_string(data, 'provider', default_provider)}:{name}"
        try:
            return cls(
                name=_checked_name(name, "name"),
                provider=_checked_name(_string(data, "provider", default_provider), "provider"),
                module=_checked_module(_string(data, "module", "plugin")),
                klass=_string(data, "class", None),
                description=_string(data, "description", ""),
            )
        except _Rejected as exc:
            raise _Rejected(exc.reason, full) from None


def _string(data: Mapping[str, Any], key: str, default: str | None) -> str:
    value = data.get(key, default)
    if value is None:
        raise _Rejected(f"{MANIFEST}: {key!r} is required")
    if not isinstance(value, str):
        raise _Rejected(f"{MANIFEST}: {key!r} must be a string, got {value!r}")
    return value


def _checked_name(value: str, what: str) -> str:
    if not _NAME.match(value):
        raise _Rejected(
            f"{MANIFEST}: {what} {value!r} must start with a letter and hold only "
            "letters, digits, '_', '.' or '-'"
        )
    return value


def _checked_module(value: str) -> str:
    if not _MODULE.match(value):
        raise _Rejected(f"{MANIFEST}: module {value!r} is not a Python module name")
    return value


# ---------------------------------------------------------------- importing


def _import_from_folder(folder: Path, manifest: _Manifest) -> Any:
    """Import the manifest's module as a sub-module of a package made of `folder`.

    Each folder becomes its own uniquely named package, so two plugins that both
    have a plugin.py do not clash, and `from . import helper` works inside them.
    """
    package = _package_name(folder, manifest)
    _forget(package)  # a second discovery imports the current code afresh
    relative = manifest.module.replace(".", "/")
    if not ((folder / f"{relative}.py").is_file() or (folder / relative).is_dir()):
        raise _Rejected(f"module {manifest.module!r}: no {relative}.py in {folder}")
    try:
        sys.modules[package] = _package_module(package, folder)
        return importlib.import_module(f"{package}.{manifest.module}")
    except (Exception, SystemExit) as exc:
        _forget(package)
        raise _Rejected(f"cannot import {manifest.module}: {type(exc).__name__}: {exc}") from None


def _package_name(folder: Path, manifest: _Manifest) -> str:
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:10]
    safe = re.sub(r"\W", "_", f"{manifest.provider}_{manifest.name}")
    return f"_pyha_plugin_{safe}_{digest}"


def _package_module(package: str, folder: Path) -> Any:
    init = folder / "__init__.py"
    if init.is_file():
        spec = importlib.util.spec_from_file_location(
            package, init, submodule_search_locations=[str(folder)]
        )
    else:
        spec = importlib.machinery.ModuleSpec(package, None, is_package=True)
        spec.submodule_search_locations = [str(folder)]
    assert spec is not None  # a path ending in .py always gives a spec
    module = importlib.util.module_from_spec(spec)
    if spec.loader is not None:
        sys.modules[package] = module  # the package's own relative imports need it
        spec.loader.exec_module(module)
    return module


def _forget(package: str) -> None:
    for name in [n for n in sys.modules if n == package or n.startswith(f"{package}.")]:
        del sys.modules[name]


def _guarded(load: Any, what: str) -> Any:
    try:
        return load()
    except (Exception, SystemExit) as exc:
        raise _Rejected(f"{what}: {type(exc).__name__}: {exc}") from None


def _instantiate(module: Any, class_name: str) -> object:
    try:
        cls = getattr(module, class_name)
    except AttributeError:
        raise _Rejected(
            f"class {class_name!r} not found in {module.__name__.rsplit('.', 1)[-1]}.py"
        ) from None
    return _instantiate_class(cls, class_name)


def _instantiate_class(cls: Any, what: str) -> object:
    if not isinstance(cls, type):
        raise _Rejected(f"{what} is not a class (it is a {type(cls).__name__})")
    return _guarded(cls, f"cannot create {cls.__name__}()")
