"""Java plugin folders: their descriptor and the source hash that decides rebuilds (no javac)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyha.errors import PluginError
from pyha.jvm.build import JavaDescriptor, descriptor_language, source_hash


def _folder(tmp_path: Path, toml: str, *, sources: bool = True) -> Path:
    folder = tmp_path / "plug"
    folder.mkdir()
    (folder / "plugin.toml").write_text(toml)
    if sources:
        (folder / "src").mkdir()
    return folder


def test_a_descriptor_with_defaults(tmp_path: Path) -> None:
    folder = _folder(tmp_path, 'name = "cache"\nlanguage = "java"\nclass = "a.b.Cache"\n')
    descriptor = JavaDescriptor.read(folder)
    assert descriptor is not None
    assert descriptor.type_name == "java:local:cache"
    assert descriptor.klass == "a.b.Cache"
    assert descriptor.sources == folder / "src"
    assert descriptor.resources == folder / "resources"
    assert JavaDescriptor.read(folder, "pyha").type_name == "java:pyha:cache"  # type: ignore[union-attr]


def test_a_python_folder_is_not_a_java_plugin(tmp_path: Path) -> None:
    folder = _folder(tmp_path, 'name = "x"\nclass = "X"\n', sources=False)
    assert JavaDescriptor.read(folder) is None
    assert descriptor_language(folder) == "python"
    assert descriptor_language(tmp_path) is None


@pytest.mark.parametrize(
    ("toml", "sources", "reason"),
    [
        ('name = "x"\nlanguage = "java"\n', False, "no Java sources"),
        ('name = "x y"\nlanguage = "java"\n', True, "name 'x y' is not a valid name"),
        ('name = "x"\nlanguage = "java"\nclass = 3\n', True, "'class' must be a string"),
        ('name = "x"\nlanguage = "java"\nmain = "M"\n', True, "unknown key(s) main"),
        ('name = "x"\nlanguage = "java"\nprovider = "-p"\n', True, "provider '-p'"),
    ],
)
def test_bad_descriptors_say_why(tmp_path: Path, toml: str, sources: bool, reason: str) -> None:
    folder = _folder(tmp_path, toml, sources=sources)
    with pytest.raises(PluginError) as caught:
        JavaDescriptor.read(folder)
    assert reason in caught.value.reason


def test_broken_toml_is_an_error(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "name = \n")
    with pytest.raises(PluginError, match="cannot read it"):
        JavaDescriptor.read(folder)


def test_the_source_hash_follows_content_names_and_extras(tmp_path: Path) -> None:
    root = tmp_path / "src"
    (root / "a").mkdir(parents=True)
    (root / "a" / "A.java").write_text("class A {}")
    first = source_hash([root], ["jdk17"])
    assert source_hash([root], ["jdk17"]) == first
    assert source_hash([root], ["jdk21"]) != first
    (root / "a" / "A.java").write_text("class A { }")
    changed = source_hash([root], ["jdk17"])
    assert changed != first
    (root / "a" / "A.java").rename(root / "a" / "B.java")
    assert source_hash([root], ["jdk17"]) != changed


def test_a_missing_root_hashes_as_empty(tmp_path: Path) -> None:
    assert source_hash([tmp_path / "none"]) == source_hash([])
