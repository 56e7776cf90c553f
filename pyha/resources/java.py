"""The adapter for Java plugins: jars found with ServiceLoader, run in the node's JVM host."""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import shlex
import subprocess
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pyha.clock import MonotonicClock
from pyha.directory.bootstrap import DirectorySettings
from pyha.directory.tree import Layout
from pyha.errors import PluginError
from pyha.jvm.build import (
    DESCRIPTOR,
    JavaDescriptor,
    cache_dir,
    descriptor_language,
    file_hash,
    java_home,
    plugin_jar,
)
from pyha.jvm.build import spi_jar as build_spi_jar
from pyha.jvm.channel import Message
from pyha.jvm.jndi import JndiSource, LdapSource, SnapshotSource
from pyha.jvm.supervisor import HostReply, HostUnavailable, JvmHost, host_environment
from pyha.model.config import ClusterConfig
from pyha.model.types import format_duration
from pyha.resources.agent import Agent, Origin
from pyha.resources.spi import (
    CallStatus,
    MetaData,
    OcfCode,
    OperationContext,
    Outcome,
    TypeName,
    validation_detail,
)

__all__ = [
    "JAVA_PLUGIN_PATH_ENV",
    "JavaAgent",
    "JavaRuntime",
    "JavaSource",
    "discover_java",
    "java_parameters",
    "java_plugin_paths",
    "java_runtime",
    "meta_from_listing",
    "read_ldap_directory",
]

JAVA_PLUGIN_PATH_ENV = "PYHA_JAVA_PLUGIN_PATH"
VALIDATE_TIMEOUT = 10.0
"""Seconds a Java plugin's validate may take."""
LIST_TIMEOUT = 120.0
"""Seconds listing the plugins of jars may take (a JVM start, plus loading them)."""
_LISTING_FORMAT = "pyha-java-listing-1"
_JAVA_OPERATIONS = {"start", "stop", "monitor", "promote", "demote", "validate", "meta_data"}
_LOG = logging.getLogger("pyha.jvm")
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

Rejection = tuple[str, Origin, str]
"""A plugin that could not register: its name or path, its origin, the reason."""


def java_plugin_paths() -> list[Path]:
    """The jars, folders of jars and Java plugin folders named in $PYHA_JAVA_PLUGIN_PATH."""
    value = os.environ.get(JAVA_PLUGIN_PATH_ENV, "")
    return [Path(part) for part in value.split(os.pathsep) if part]


def java_parameters(params: Mapping[str, Any]) -> dict[str, str]:
    """Typed parameters as the text a Java plugin gets (see PluginContext.parameters)."""
    return {name: _text(value) for name, value in params.items() if value is not None}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | tuple):
        return shlex.join(str(v) for v in value)
    return str(value)


def meta_from_listing(type_name: str, data: Any) -> MetaData:
    """pyha's MetaData from a listed plugin's meta; PluginError says what is wrong."""
    try:
        meta = MetaData.model_validate(data)
    except ValidationError as exc:
        detail = validation_detail(exc)
        raise PluginError(
            type_name, f"metaData() is not valid meta data ({detail})", "meta_data"
        ) from None
    for spec in meta.operations:
        if spec.name not in _JAVA_OPERATIONS:
            raise PluginError(
                type_name, f"metaData() lists unknown operation {spec.name!r}", spec.name
            )
    return meta


# ---------------------------------------------------------------- where jars come from


@dataclass(frozen=True)
class JavaSource:
    """A jar of Java plugins: one built from a plugin folder's sources, or a jar as is.

    Invariant: exactly one of `descriptor` and `path` is set.
    """

    origin: Origin
    descriptor: JavaDescriptor | None = None
    path: Path | None = None


class JavaRuntime:
    """The Java side of one registry: its jar sources, their builds and listings, one JVM host.

    Invariant: a jar's listing is cached under the hash of its content, the SPI jar
    and the JDK, so it is computed once per jar version; the host loads every jar that
    builds, and a jar that does not build only fails the plugins it carries.
    """

    def __init__(
        self,
        *,
        home: Path | None = None,
        cache: Path | None = None,
        run_dir: Path | None = None,
        grace: float | None = None,
        python: str | None = None,
    ) -> None:
        self.java_home = home or java_home()
        self.cache = cache or cache_dir()
        self.sources: list[JavaSource] = []
        self._lock = threading.Lock()
        self._listings: dict[Path, dict[str, Any]] = {}
        options: dict[str, Any] = {}
        if grace is not None:
            options["grace"] = grace
        if python is not None:
            options["python"] = python
        self.host = JvmHost(self._host_jars, java_home=self.java_home, run_dir=run_dir, **options)
        self.host.on_stray_log = _log_to_resource
        self.directory: JndiSource | None = None
        """Where plugins find the cluster's directory (PluginContext.directory()); None: nowhere."""
        self._ldap = False
        self._delivery = threading.Lock()
        self._delivered: JndiSource | None = None
        """The directory the running host was last told of."""
        self.host.directory = self._directory_message
        _RUNTIMES.add(self)

    def spi_jar(self) -> Path:
        """The SPI jar, built if needed."""
        return build_spi_jar(home=self.java_home, cache=self.cache)

    def jar(self, source: JavaSource) -> Path:
        """The source's jar, built from its folder if needed; PluginError if it cannot be."""
        if source.path is not None:
            return source.path
        assert source.descriptor is not None  # JavaSource's invariant
        return plugin_jar(source.descriptor, home=self.java_home, cache=self.cache)

    def listing(self, jar: Path) -> dict[str, Any]:
        """The plugins and errors of one jar (cached on disk by the jar's hash)."""
        return self.listings([jar])[jar]

    def listings(self, jars: Sequence[Path]) -> dict[Path, dict[str, Any]]:
        """Listings of several jars; those not cached are listed in one JVM run."""
        with self._lock:
            spi = self.spi_jar()
            keys = {jar: self._listing_key(jar, spi) for jar in jars}
            found = {jar: self._cached(jar, keys[jar]) for jar in jars}
            missing = [jar for jar, value in found.items() if value is None]
            if missing:
                fresh = _split(missing, self._run_listing(spi, missing))
                for jar in missing:
                    self._store(keys[jar], fresh[jar])
                    found[jar] = fresh[jar]
            return {jar: value for jar, value in found.items() if value is not None}

    @property
    def host_restarted(self) -> int:
        """How many times the JVM host was started again after it died, hung or was killed."""
        return self.host.restarts

    def on_host_restarted(self, listener: Callable[[int], None]) -> None:
        """Call `listener(generation)` after each restart, so the server re-probes its Java
        resources (see JvmHost.on_restart for where it runs)."""
        self.host.on_restart(listener)

    def close(self) -> None:
        """Stop the JVM host if one runs."""
        self.host.close()

    def use_ldap(self, settings: DirectorySettings, layout: Layout) -> None:
        """Plugins read the cluster's LDAP directory, bound as the server is (operations
        already running keep what they had)."""
        self.directory = LdapSource(settings, layout)
        self._ldap = True

    def follow_config(self, config: Callable[[], ClusterConfig], state_dir: Path) -> None:
        """Plugins read a snapshot of the configuration `config()` returns, kept up to date
        under `state_dir` (the embedded store); an LDAP directory set before stays."""
        if not self._ldap:
            self.directory = SnapshotSource(config, state_dir)

    def refresh_directory(self) -> None:
        """Before an operation: bring the directory plugins read up to date (a new
        snapshot after a change), and tell a running host if the directory itself changed
        since it started (the server said where it is after the host began validating)."""
        source = self.directory
        if source is not None:
            try:
                source.refresh()
            except OSError as exc:  # the plugin still runs; it reads the older snapshot
                _LOG.warning("cannot write the JNDI snapshot: %s", exc)
        with self._delivery:
            if source is self._delivered:
                return
        self.host.send_directory()  # a host started meanwhile got it in its hello: harmless

    def _directory_message(self) -> Message | None:
        with self._delivery:
            source = self._delivered = self.directory
        return None if source is None else source.message()

    # ------------------------------------------------------------ internals

    def _host_jars(self) -> tuple[Path, list[Path]]:
        jars: dict[Path, None] = {}  # ordered, and each jar once (two folders may build one jar)
        for source in self.sources:
            try:
                jars[self.jar(source)] = None
            except PluginError as exc:
                _LOG.warning("leaving %s out of the JVM host: %s", source.origin.location, exc)
        return self.spi_jar(), list(jars)

    def _listing_key(self, jar: Path, spi: Path) -> str:
        try:
            content = file_hash(jar)
        except OSError as exc:
            raise PluginError(str(jar), f"cannot read the jar: {exc}") from None
        text = f"{_LISTING_FORMAT}\0{content}\0{spi.name}\0{self.java_home}"
        return hashlib.sha256(text.encode()).hexdigest()[:40]

    def _cached(self, jar: Path, key: str) -> dict[str, Any] | None:
        if jar in self._listings and self._listings[jar].get("key") == key:
            return self._listings[jar]
        try:
            value = json.loads((self.cache / f"listing-{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):  # missing or damaged: list it again
            return None
        if not isinstance(value, dict):
            return None
        self._listings[jar] = value
        return value

    def _store(self, key: str, value: dict[str, Any]) -> None:
        value["key"] = key
        try:
            self.cache.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                "w", dir=self.cache, suffix=".tmp", delete=False, encoding="utf-8"
            ) as tmp:
                json.dump(value, tmp)
            os.replace(tmp.name, self.cache / f"listing-{key}.json")
        except OSError as exc:
            _LOG.debug("cannot cache a Java plugin listing in %s: %s", self.cache, exc)

    def _run_listing(self, spi: Path, jars: Sequence[Path]) -> dict[str, Any]:
        argv = [
            self.host.python,
            "-m",
            "pyha.jvm.host",
            "--list",
            "--java-home",
            str(self.java_home),
            "--spi",
            str(spi),
            *[arg for jar in jars for arg in ("--jar", str(jar))],
        ]
        where = ", ".join(str(j) for j in jars)
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                timeout=LIST_TIMEOUT,
                check=False,
                env=host_environment(),
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PluginError(where, f"cannot list the plugins: {exc}") from None
        try:
            listing = json.loads(done.stdout)
        except ValueError:
            tail = done.stderr.decode(errors="replace").strip()[-2000:]
            raise PluginError(
                where, f"listing the plugins failed (exit {done.returncode}): {tail}"
            ) from None
        if not isinstance(listing, dict):
            raise PluginError(where, "listing the plugins gave no JSON object")
        return listing


_RUNTIMES: weakref.WeakSet[JavaRuntime] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for runtime in list(_RUNTIMES):
        try:
            runtime.close()
        except Exception:  # at exit, one runtime's failure must not keep the others' hosts
            _LOG.exception("cannot stop a JVM host")


def _split(jars: Iterable[Path], listing: dict[str, Any]) -> dict[Path, dict[str, Any]]:
    """One listing per jar, out of the listing of several."""
    out: dict[Path, dict[str, Any]] = {jar: {"plugins": [], "errors": []} for jar in jars}
    for kind in ("plugins", "errors"):
        for item in listing.get(kind, []):
            jar = Path(item.get("jar", ""))
            if jar in out:
                out[jar][kind].append(item)
    return out


def _log_to_resource(record: Message) -> None:
    """A log line of a Java plugin, to the resource's logger (pyha.resource.<name>)."""
    logger = logging.getLogger(f"pyha.resource.{record.get('resource', 'unknown')}")
    logger.log(_LEVELS.get(str(record.get("level")), logging.INFO), "%s", record.get("message"))


# ---------------------------------------------------------------- the agent


class JavaAgent(Agent):
    """A Java plugin behind the Agent interface; its calls run in the node's JVM host.

    Invariant: `name` is `java:<provider>:<type>` as the plugin's meta data says (checked
    when the meta data is first read, for plugins built from a folder); every call
    returns by its deadline plus the host's grace: a call that hangs costs the host,
    which is killed and restarts on the next call.
    """

    def __init__(
        self,
        name: TypeName,
        origin: Origin,
        runtime: JavaRuntime,
        source: JavaSource,
        *,
        description: str = "",
        meta: MetaData | None = None,
    ) -> None:
        # Not Agent.__init__: meta data of a plugin built from a folder is read lazily.
        self.name = name
        self.origin = origin
        self.runtime = runtime
        self.source = source
        self._description = description
        self._meta = meta
        self._lock = threading.Lock()

    @property
    def meta(self) -> MetaData:
        """The plugin's meta data; built and listed on first use; PluginError if broken."""
        with self._lock:
            if self._meta is None:
                self._meta = self._read_meta()
            return self._meta

    @meta.setter
    def meta(self, value: MetaData) -> None:
        with self._lock:
            self._meta = value

    @property
    def description(self) -> str:
        """The descriptor's description, else the meta data's if already known (never builds)."""
        return self._description or (self._meta.description if self._meta else "")

    @property
    def enforces_deadline(self) -> bool:
        """True: the host call returns by the deadline (plus grace), killing the host if need be."""
        return True

    def _read_meta(self) -> MetaData:
        full = str(self.name)
        listing = self.runtime.listing(self.runtime.jar(self.source))
        for plugin in listing.get("plugins", []):
            if plugin.get("type") == full:
                return meta_from_listing(full, plugin.get("meta"))
        found = [str(p.get("type")) for p in listing.get("plugins", [])]
        errors = [str(e.get("reason")) for e in listing.get("errors", [])]
        detail = f"it provides {', '.join(found) or 'no plugin'}"
        if errors:
            detail += "; errors: " + "; ".join(errors)
        raise PluginError(
            full, f"the jar from {self.origin.location} does not provide it: {detail}"
        )

    def invoke(self, ctx: OperationContext) -> Outcome:
        """Run `ctx.operation` in the JVM host, under `ctx.deadline`."""
        operation = ctx.operation
        if operation == "validate":
            _, problems = self.validate(ctx.params)
            if problems:
                return Outcome(OcfCode.ERR_CONFIGURED, message="; ".join(problems))
            return Outcome(OcfCode.SUCCESS)
        if operation == "meta_data":
            return Outcome(OcfCode.SUCCESS)
        if not self.supports(operation) or operation not in _JAVA_OPERATIONS:
            return Outcome(
                OcfCode.ERR_UNIMPLEMENTED, message=f"{self.name} does not implement {operation}"
            )
        self.runtime.refresh_directory()
        began = ctx.clock.now()
        request = {
            "op": "invoke",
            "plugin": str(self.name),
            "operation": operation,
            "resource": ctx.resource,
            "node": ctx.node,
            "params": java_parameters(ctx.params),
            "interval_ms": int(ctx.interval * 1000),
            "state_dir": str(ctx.state_dir),
        }
        try:
            reply = self.runtime.host.call(
                request,
                deadline=ctx.deadline,
                clock=ctx.clock,
                cancelled=ctx.cancelled,
                on_log=_sink(ctx.log),
                run_dir=ctx.state_dir,
            )
        except HostUnavailable as exc:
            status = CallStatus.TIMEOUT if exc.timed_out else CallStatus.NOT_INSTALLED
            return Outcome(OcfCode.ERR_GENERIC, status, str(exc))
        return _outcome(reply, operation, ctx.deadline - began)

    def plugin_validate(self, params: Mapping[str, Any]) -> list[str]:
        """The plugin's own validate(), run in the JVM host; a failed call is a problem."""
        clock = MonotonicClock()
        request = {"op": "validate", "plugin": str(self.name), "params": java_parameters(params)}
        try:
            reply = self.runtime.host.call(request, deadline=clock.now() + VALIDATE_TIMEOUT)
        except HostUnavailable as exc:
            return [f"{self.name}.validate could not run: {exc}"]
        body = reply.body or {}
        if reply.status != "done" or not body.get("ok"):
            why = body.get("error") or reply.message or reply.status
            return [f"{self.name}.validate failed: {why}"]
        problems = body.get("problems")
        if not isinstance(problems, list):
            return [f"{self.name}.validate returned no list of problems"]
        return [str(p) for p in problems]


def _sink(log: logging.Logger) -> Callable[[Message], None]:
    def emit(record: Message) -> None:
        log.log(_LEVELS.get(str(record.get("level")), logging.INFO), "%s", record.get("message"))

    return emit


def _outcome(reply: HostReply, operation: str, allowed: float) -> Outcome:
    body = reply.body or {}
    if reply.status == "done":
        return _answered(body)
    if reply.status == "died":
        return Outcome(
            OcfCode.ERR_GENERIC,
            CallStatus.ERROR,
            f"the JVM host died during {operation}: {reply.message}",
        )
    late = "; cancelled, returned within the grace period" if reply.body else f"; {reply.message}"
    if reply.status == "cancelled":
        return Outcome(OcfCode.ERR_GENERIC, CallStatus.CANCELLED, f"cancelled{late}")
    took = format_duration(max(0.0, round(allowed, 1)))  # what was left when the call began
    return Outcome(OcfCode.ERR_GENERIC, CallStatus.TIMEOUT, f"timed out after {took}{late}")


def _answered(body: Message) -> Outcome:
    code = body.get("code")
    if body.get("ok") and isinstance(code, int) and not isinstance(code, bool):
        return Outcome(code)
    error = str(body.get("error") or "the JVM host gave no result")
    if body.get("kind") == "no-plugin":
        return Outcome(OcfCode.ERR_INSTALLED, CallStatus.NOT_INSTALLED, error)
    return Outcome(OcfCode.ERR_GENERIC, CallStatus.ERROR, error)


# ---------------------------------------------------------------- discovery


def java_runtime(agents: Iterable[Agent]) -> JavaRuntime | None:
    """The JavaRuntime behind the Java agents among `agents` (a registry's), if any.

    The server registers its re-probe with `java_runtime(...).host.on_restart(...)`.
    """
    return next((a.runtime for a in agents if isinstance(a, JavaAgent)), None)


def read_ldap_directory(agents: Iterable[Agent], settings: DirectorySettings,
                        layout: Layout) -> bool:
    """Give the Java plugins among `agents` (a registry's) the LDAP directory the server
    runs on, through JNDI, bound as the server is; False if there are none.

    Call it once the ClusterServer is made and before it runs (its own default is the
    embedded store's snapshot)."""
    runtime = java_runtime(agents)
    if runtime is None:
        return False
    runtime.use_ldap(settings, layout)
    return True


def discover_java(
    bundled: Path | None,
    paths: Sequence[Path],
    *,
    runtime: JavaRuntime | None = None,
) -> tuple[list[JavaAgent], list[Rejection]]:
    """Java plugins: folders with language = "java" under `bundled`, then `paths`.

    A path is a jar, a folder of jars and Java plugin folders, or one Java plugin
    folder. Folders register from their plugin.toml (nothing is built yet); jars are
    listed (once per jar version: the listing is cached) to learn their types.
    """
    agents: list[JavaAgent] = []
    rejected: list[Rejection] = []
    folders: list[tuple[Path, str]] = []
    jars: list[Path] = []
    if bundled is not None and bundled.is_dir():
        folders += [(f, "pyha") for f in sorted(bundled.iterdir()) if _is_java_folder(f)]
    for path in paths:
        _classify(path, folders, jars, rejected)
    if not folders and not jars:
        return agents, rejected
    runtime = runtime or JavaRuntime()
    for folder, provider in folders:
        _add_folder(runtime, folder, provider, agents, rejected)
    _add_jars(runtime, jars, agents, rejected)
    return agents, rejected


def _is_java_folder(folder: Path) -> bool:
    return descriptor_language(folder) == "java"


def _classify(
    path: Path, folders: list[tuple[Path, str]], jars: list[Path], rejected: list[Rejection]
) -> None:
    if path.is_file() and path.suffix == ".jar":
        jars.append(path)
    elif (path / DESCRIPTOR).is_file():
        folders.append((path, "local"))
    elif path.is_dir():
        for child in sorted(path.iterdir()):
            if child.is_file() and child.suffix == ".jar":
                jars.append(child)
            elif _is_java_folder(child):
                folders.append((child, "local"))
    else:
        rejected.append((str(path), Origin("jar", str(path)), "not a jar nor a folder"))


def _add_folder(
    runtime: JavaRuntime,
    folder: Path,
    provider: str,
    agents: list[JavaAgent],
    rejected: list[Rejection],
) -> None:
    origin = Origin("jar", str(folder))
    try:
        descriptor = JavaDescriptor.read(folder, provider)
    except PluginError as exc:
        rejected.append((exc.plugin, origin, exc.reason))
        return
    if descriptor is None:
        return  # a Python plugin folder; the registry's own loader takes it
    source = JavaSource(origin, descriptor=descriptor)
    runtime.sources.append(source)
    name = TypeName("java", descriptor.provider, descriptor.name)
    agents.append(JavaAgent(name, origin, runtime, source, description=descriptor.description))


def _add_jars(
    runtime: JavaRuntime, jars: list[Path], agents: list[JavaAgent], rejected: list[Rejection]
) -> None:
    if not jars:
        return
    try:
        listings = runtime.listings(jars)
    except PluginError as exc:
        rejected += [(str(jar), Origin("jar", str(jar)), exc.reason) for jar in jars]
        return
    for jar, listing in listings.items():
        source = JavaSource(Origin("jar", str(jar)), path=jar)
        runtime.sources.append(source)
        for error in listing.get("errors", []):
            where = f"{jar}!{error['class']}" if error.get("class") else str(jar)
            rejected.append((where, source.origin, str(error.get("reason"))))
        for plugin in listing.get("plugins", []):
            try:
                agents.append(_listed_agent(runtime, source, plugin))
            except PluginError as exc:
                rejected.append((exc.plugin, source.origin, exc.reason))


def _listed_agent(runtime: JavaRuntime, source: JavaSource, plugin: dict[str, Any]) -> JavaAgent:
    """The agent of one plugin in a jar's listing; PluginError if its name or meta is bad."""
    full = str(plugin.get("type"))
    try:
        name = TypeName.parse(full)
    except ValueError as exc:
        raise PluginError(full, str(exc)) from None
    meta = meta_from_listing(full, plugin.get("meta"))
    return JavaAgent(name, source.origin, runtime, source, meta=meta)
