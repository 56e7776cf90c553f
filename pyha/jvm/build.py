"""Build the Java SPI and Java plugin folders into jars with plain javac, once per source hash."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyha.errors import PluginError

__all__ = [
    "DEFAULT_JAVA_HOME",
    "DESCRIPTOR",
    "SERVICES_FILE",
    "JavaDescriptor",
    "build_jar",
    "cache_dir",
    "descriptor_language",
    "file_hash",
    "java_home",
    "java_source_dir",
    "plugin_jar",
    "source_hash",
    "spi_jar",
]

DEFAULT_JAVA_HOME = Path("/usr/lib/jvm/java-17-openjdk-amd64")
"""The JDK pyha builds and runs Java plugins with, unless $PYHA_JAVA_HOME names another."""
JAVA_RELEASE = "17"
DESCRIPTOR = "plugin.toml"
SERVICES_FILE = "META-INF/services/io.pyha.spi.ResourcePlugin"
BUILD_TIMEOUT = 300.0
"""Seconds javac may take (a cold javac takes 2-3 s)."""
KEEP_BUILDS = 4
"""Jars kept per name in the cache; older ones may still be open in a running JVM host."""
_FORMAT = "pyha-java-build-1"
_JAVAC_JVM = ("-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC")
"""javac's own JVM: a small compile finishes before C2 or a parallel GC pay off (~2x faster)."""
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_CLASS = re.compile(r"^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$")
_DESCRIPTOR_KEYS = ("name", "provider", "language", "description", "class", "sources", "resources")
_OUTPUT_LIMIT = 4000


def java_home() -> Path:
    """$PYHA_JAVA_HOME, else Debian's OpenJDK 17, else $JAVA_HOME, else the JDK of `javac`."""
    explicit = os.environ.get("PYHA_JAVA_HOME")
    if explicit:
        return Path(explicit)
    if (DEFAULT_JAVA_HOME / "bin" / "javac").is_file():
        return DEFAULT_JAVA_HOME
    from_env = os.environ.get("JAVA_HOME")
    if from_env:
        return Path(from_env)
    javac = shutil.which("javac")
    return Path(javac).resolve().parents[1] if javac else DEFAULT_JAVA_HOME


def cache_dir() -> Path:
    """Where built jars and plugin listings live: $PYHA_JAVA_CACHE or ~/.cache/pyha/java."""
    explicit = os.environ.get("PYHA_JAVA_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pyha" / "java"


def java_source_dir() -> Path:
    """The repository's java/ folder next to the pyha package, else the wheel's copy."""
    package = Path(__file__).resolve().parents[1]
    in_repo = package.parent / "java"
    return in_repo if (in_repo / "src").is_dir() else package / "_java"


def file_hash(path: Path) -> str:
    """The SHA-256 of a file's content, in hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_hash(roots: Sequence[Path], extra: Sequence[str] = ()) -> str:
    """A hash of every file under `roots` (relative names and contents) and `extra` strings."""
    digest = hashlib.sha256(_FORMAT.encode())
    for text in extra:
        digest.update(b"\0x" + text.encode())
    for index, root in enumerate(roots):
        for path in _files(root):
            digest.update(f"\0{index}\0{path.relative_to(root).as_posix()}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _files(root: Path) -> Iterator[Path]:
    if root.is_dir():
        yield from sorted(
            p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
        )


@dataclass(frozen=True)
class JavaDescriptor:
    """A Java plugin folder's plugin.toml (language = "java"), checked.

    Invariant: `name` and `provider` are valid type-name parts, `klass` (if given) is a
    Java class name, and the sources folder exists.
    """

    folder: Path
    name: str
    provider: str
    description: str
    klass: str | None
    sources: Path
    resources: Path

    @property
    def type_name(self) -> str:
        """The resource type the folder declares, `java:<provider>:<name>`."""
        return f"java:{self.provider}:{self.name}"

    @classmethod
    def read(cls, folder: Path, default_provider: str = "local") -> JavaDescriptor | None:
        """The folder's descriptor; None if it is not a Java plugin; PluginError if bad."""
        data = _read_toml(folder / DESCRIPTOR)
        if data.get("language", "python") != "java":
            return None
        where = f"java:{data.get('provider', default_provider)}:{data.get('name', folder.name)}"
        unknown = sorted(set(data) - set(_DESCRIPTOR_KEYS))
        if unknown:
            raise PluginError(where, f"{DESCRIPTOR}: unknown key(s) {', '.join(unknown)}")
        values = {key: _text(data, key, where) for key in _DESCRIPTOR_KEYS if key in data}
        descriptor = cls(
            folder=folder,
            name=_checked(values.get("name", ""), "name", where, _NAME),
            provider=_checked(values.get("provider", default_provider), "provider", where, _NAME),
            description=values.get("description", ""),
            klass=_checked(values["class"], "class", where, _CLASS) if "class" in values else None,
            sources=folder / values.get("sources", "src"),
            resources=folder / values.get("resources", "resources"),
        )
        if not descriptor.sources.is_dir():
            raise PluginError(where, f"no Java sources: {descriptor.sources} is not a folder")
        return descriptor


def descriptor_language(folder: Path) -> str | None:
    """The `language` of a folder's plugin.toml ("python" if unset); None if unreadable."""
    try:
        data = _read_toml(folder / DESCRIPTOR)
    except PluginError:
        return None
    language = data.get("language", "python")
    return language if isinstance(language, str) else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PluginError(str(path.parent), f"{DESCRIPTOR}: cannot read it: {exc}") from None


def _text(data: dict[str, Any], key: str, where: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise PluginError(where, f"{DESCRIPTOR}: {key!r} must be a string, got {value!r}")
    return value


def _checked(value: str, what: str, where: str, pattern: re.Pattern[str]) -> str:
    if not pattern.match(value):
        raise PluginError(where, f"{DESCRIPTOR}: {what} {value!r} is not a valid {what}")
    return value


# ---------------------------------------------------------------- building


def spi_jar(*, home: Path | None = None, cache: Path | None = None) -> Path:
    """The jar of the SPI and the host's helpers (java/src), built if its sources changed."""
    sources = java_source_dir() / "src"
    if not sources.is_dir():
        raise PluginError("pyha-spi", f"the Java SPI sources are missing: {sources}")
    return build_jar("pyha-spi", [sources], home=home, cache=cache)


def plugin_jar(
    descriptor: JavaDescriptor, *, home: Path | None = None, cache: Path | None = None
) -> Path:
    """The jar of a Java plugin folder, built against the SPI if its sources changed."""
    spi = spi_jar(home=home, cache=cache)
    services = None
    has_services = (descriptor.resources / SERVICES_FILE).is_file()
    if descriptor.klass and not has_services:
        services = descriptor.klass + "\n"
    if not descriptor.klass and not has_services:
        raise PluginError(
            descriptor.type_name,
            f"{DESCRIPTOR} names no class and {descriptor.resources / SERVICES_FILE} is missing",
            "build",
        )
    return build_jar(
        f"{descriptor.provider}-{descriptor.name}",
        [descriptor.sources],
        resources=descriptor.resources,
        classpath=[spi],
        services=services,
        home=home,
        cache=cache,
        label=descriptor.type_name,
    )


def build_jar(
    name: str,
    sources: Sequence[Path],
    *,
    resources: Path | None = None,
    classpath: Sequence[Path] = (),
    services: str | None = None,
    home: Path | None = None,
    cache: Path | None = None,
    label: str | None = None,
) -> Path:
    """`<cache>/<name>-<hash>.jar` of `sources` (+ `resources`), compiled unless already there.

    The hash covers the sources, the resources, the class path jars, the generated
    services file and the JDK, so any change gives a new jar and nothing else rebuilds.
    """
    home = home or java_home()
    out_dir = cache or cache_dir()
    roots = [*sources, *([resources] if resources else [])]
    extra = [str(home), JAVA_RELEASE, services or "", *(file_hash(j) for j in classpath)]
    jar = out_dir / f"{name}-{source_hash(roots, extra)[:20]}.jar"
    if jar.is_file():
        return jar
    out_dir.mkdir(parents=True, exist_ok=True)
    with _locked(out_dir / f".{name}.lock"):
        if not jar.is_file():  # another process may have built it while we waited
            _compile(
                jar,
                sources,
                resources=resources,
                classpath=classpath,
                services=services,
                home=home,
                label=label or name,
            )
            _prune(out_dir, name, keep=jar)
    return jar


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _compile(
    jar: Path,
    sources: Sequence[Path],
    *,
    resources: Path | None,
    classpath: Sequence[Path],
    services: str | None,
    home: Path,
    label: str,
) -> None:
    files = sorted(str(p) for root in sources for p in _files(root) if p.suffix == ".java")
    if not files:
        raise PluginError(label, f"no .java files under {', '.join(map(str, sources))}", "build")
    with tempfile.TemporaryDirectory(prefix="pyha-javac-", dir=jar.parent) as tmp:
        classes = Path(tmp) / "classes"
        classes.mkdir()
        javac = [str(home / "bin" / "javac"), *_JAVAC_JVM, "--release", JAVA_RELEASE]
        javac += ["-encoding", "UTF-8"]
        if classpath:
            javac += ["-classpath", os.pathsep.join(str(j) for j in classpath)]
        _run([*javac, "-d", str(classes), *files], label, "javac")
        if resources is not None and resources.is_dir():
            shutil.copytree(resources, classes, dirs_exist_ok=True)
        if services is not None:
            target = classes / SERVICES_FILE
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(services, encoding="utf-8")
        partial = Path(tmp) / jar.name
        _zip(classes, partial)
        os.replace(partial, jar)


def _zip(classes: Path, jar: Path) -> None:
    """A jar is a zip with a manifest first; writing it here saves starting the `jar` tool."""
    with zipfile.ZipFile(jar, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\nCreated-By: pyha\r\n\r\n"
        )
        for path in _files(classes):
            name = path.relative_to(classes).as_posix()
            if name != "META-INF/MANIFEST.MF":
                archive.write(path, name)


def _run(argv: list[str], label: str, tool: str) -> None:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PluginError(label, f"{tool} could not run: {exc}", "build") from None
    if done.returncode != 0:
        output = (done.stderr + done.stdout).strip()[-_OUTPUT_LIMIT:]
        raise PluginError(label, f"{tool} failed (exit {done.returncode}):\n{output}", "build")


def _prune(out_dir: Path, name: str, keep: Path) -> None:
    """Delete all but the newest KEEP_BUILDS jars of `name` (never `keep`)."""
    pattern = re.compile(re.escape(name) + r"-[0-9a-f]{20}\.jar$")
    builds = [p for p in out_dir.iterdir() if pattern.match(p.name) and p != keep]
    builds.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for old in builds[KEEP_BUILDS - 1 :]:
        with contextlib.suppress(OSError):
            old.unlink()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m pyha.jvm.build [FOLDER...]`: build the SPI and plugin folders; print jars."""
    import sys

    folders = list(argv if argv is not None else sys.argv[1:])
    try:
        print(spi_jar())
        for folder in folders:
            descriptor = JavaDescriptor.read(Path(folder), "pyha")
            if descriptor is None:
                print(f"{folder}: not a Java plugin folder", file=sys.stderr)
                return 2
            print(plugin_jar(descriptor))
    except PluginError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
