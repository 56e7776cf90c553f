"""Registry: discovery of plugin folders, distributions and OCF files; errors; resolution."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyha.errors import PluginError, UnknownResourceType
from pyha.resources.agent import Origin
from pyha.resources.ocf import OcfAgent
from pyha.resources.python import PythonAgent
from pyha.resources.registry import (
    RegistrationError,
    Registry,
    bundled_plugin_dir,
    describe,
    env_plugin_paths,
)

REPO = Path(__file__).resolve().parents[2]

GOOD_PLUGIN = """
from pyha.resources.spi import MetaData, OperationSpec, ParameterSpec, Plugin


class {cls}(Plugin):
    def meta_data(self):
        return MetaData(
            name="{name}",
            description="meta description",
            parameters=(ParameterSpec(name="size", type="integer", required=True),),
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
def _forget_plugin_modules() -> Iterator[None]:
    """Plugin modules imported by a test do not outlive it."""
    yield
    for name in [n for n in sys.modules if n.startswith(("_pyha_plugin_", "pyhatestdist"))]:
        del sys.modules[name]


def _plugin(
    root: Path,
    folder: str,
    *,
    toml: str | None = None,
    code: str | None = None,
    name: str | None = None,
    cls: str = "Widget",
) -> Path:
    """Write plugin folder `root/folder` with a plugin.toml and plugin.py; its path."""
    path = root / folder
    path.mkdir(parents=True)
    name = name or folder
    if toml is None:
        toml = f'name = "{name}"\nclass = "{cls}"\ndescription = "toml description"\n'
    (path / "plugin.toml").write_text(toml)
    (path / "plugin.py").write_text(
        code if code is not None else GOOD_PLUGIN.format(cls=cls, name=name)
    )
    return path


def _discover(*paths: Path, entry_points: bool = False, ocf_root: Path | None = None) -> Registry:
    return Registry.discover(
        paths,
        bundled=False,
        entry_points=entry_points,
        ocf_root=ocf_root or Path("/nonexistent/pyha-test-ocf"),
    )


def _only_error(registry: Registry) -> RegistrationError:
    assert len(registry.errors) == 1, registry.errors
    return registry.errors[0]


def test_good_plugin_registers_with_name_origin_and_description(tmp_path: Path) -> None:
    folder = _plugin(tmp_path, "widget")
    registry = _discover(tmp_path)
    assert registry.errors == []
    agent = registry.resolve("python:local:widget")
    assert isinstance(agent, PythonAgent)
    assert agent.origin.kind == "plugin-path"
    assert agent.origin.location == str(folder)
    assert describe(agent) == "toml description"
    assert agent.meta.timeout("start") == 7


def test_provider_and_module_come_from_the_toml(tmp_path: Path) -> None:
    path = tmp_path / "custom"
    path.mkdir()
    (path / "plugin.toml").write_text(
        'name = "gizmo"\nprovider = "acme"\nmodule = "impl"\nclass = "Widget"\n'
    )
    (path / "impl.py").write_text(GOOD_PLUGIN.format(cls="Widget", name="gizmo"))
    registry = _discover(tmp_path)
    assert [str(a.name) for a in registry.agents()] == ["python:acme:gizmo"]
    assert describe(registry.resolve("gizmo")) == "meta description"


def test_plugin_path_may_be_the_plugin_folder_itself(tmp_path: Path) -> None:
    folder = _plugin(tmp_path, "widget")
    assert "python:local:widget" in _discover(folder)


def test_two_plugin_py_with_same_named_helpers_do_not_clash(tmp_path: Path) -> None:
    for name, size in (("alpha", 1), ("beta", 2)):
        code = "from .helper import SIZE\n" + GOOD_PLUGIN.format(cls="Widget", name=name)
        code += "\n    def validate(self, params):\n        return [f'size {SIZE}']\n"
        folder = _plugin(tmp_path, name, code=code)
        (folder / "helper.py").write_text(f"SIZE = {size}\n")
    registry = _discover(tmp_path)
    assert registry.errors == []
    assert registry.validate("alpha", {"size": 5})[1] == ("size 1",)
    assert registry.validate("beta", {"size": 5})[1] == ("size 2",)


def test_broken_toml_is_an_error_and_others_still_load(tmp_path: Path) -> None:
    _plugin(tmp_path, "good")
    bad = _plugin(tmp_path, "bad", toml='name = "bad\nclass = ')
    registry = _discover(tmp_path)
    error = _only_error(registry)
    assert error.name_or_path == str(bad)
    assert error.origin.kind == "plugin-path"
    assert error.reason.startswith("plugin.toml: cannot read it:")
    assert "python:local:good" in registry


def test_missing_class_field(tmp_path: Path) -> None:
    _plugin(tmp_path, "noclass", toml='name = "noclass"\n')
    error = _only_error(_discover(tmp_path))
    assert error.name_or_path == "python:local:noclass"
    assert error.reason == "plugin.toml: 'class' is required"


def test_unknown_manifest_key_is_an_error(tmp_path: Path) -> None:
    _plugin(tmp_path, "typo", toml='name = "typo"\nclass = "Widget"\nclas = "X"\n')
    assert "unknown key(s) clas" in _only_error(_discover(tmp_path)).reason


def test_plugin_of_another_language_is_left_to_its_adapter(tmp_path: Path) -> None:
    _plugin(tmp_path, "tomcat", toml='name = "tomcat"\nlanguage = "java"\nclass = "x.Tomcat"\n')
    registry = _discover(tmp_path)
    assert len(registry) == 0
    assert registry.errors == []


def test_class_missing_from_module(tmp_path: Path) -> None:
    _plugin(tmp_path, "widget", toml='name = "widget"\nclass = "Nope"\n')
    error = _only_error(_discover(tmp_path))
    assert error.name_or_path == str(tmp_path / "widget")
    assert error.reason == "class 'Nope' not found in plugin.py"


def test_import_error_is_recorded(tmp_path: Path) -> None:
    _plugin(tmp_path, "widget", code="import pyha_no_such_module_for_tests\n")
    error = _only_error(_discover(tmp_path))
    assert error.reason.startswith("cannot import plugin: ModuleNotFoundError:")
    assert "pyha_no_such_module_for_tests" in error.reason


def test_syntax_error_is_recorded(tmp_path: Path) -> None:
    _plugin(tmp_path, "widget", code="def broken(:\n")
    assert "SyntaxError" in _only_error(_discover(tmp_path)).reason


def test_missing_module_file(tmp_path: Path) -> None:
    folder = _plugin(tmp_path, "widget")
    (folder / "plugin.py").unlink()
    assert _only_error(_discover(tmp_path)).reason == f"module 'plugin': no plugin.py in {folder}"


def test_constructor_failure_is_recorded(tmp_path: Path) -> None:
    code = GOOD_PLUGIN.format(cls="Widget", name="widget")
    code += "\n    def __init__(self):\n        raise OSError('no config')\n"
    _plugin(tmp_path, "widget", code=code)
    assert _only_error(_discover(tmp_path)).reason == "cannot create Widget(): OSError: no config"


def test_plugin_whose_start_is_not_callable_fails_its_checks(tmp_path: Path) -> None:
    code = GOOD_PLUGIN.format(cls="Widget", name="widget") + "\nWidget.start = 'yes'\n"
    _plugin(tmp_path, "widget", code=code)
    registry = _discover(tmp_path)
    error = _only_error(registry)
    assert error.name_or_path == "python:local:widget"
    assert error.reason == "start: is not callable (it is a str)"
    assert "python:local:widget" not in registry


def test_duplicate_full_name_keeps_the_first(tmp_path: Path) -> None:
    first = _plugin(tmp_path / "a", "widget")
    second = _plugin(tmp_path / "b", "widget")
    registry = _discover(tmp_path / "a", tmp_path / "b")
    error = _only_error(registry)
    assert error.name_or_path == "python:local:widget"
    assert error.origin.location == str(second)
    assert error.reason == f"duplicate resource type; already registered from plugin-path {first}"
    assert registry.resolve("widget").origin.location == str(first)


def test_register_refuses_a_taken_name(tmp_path: Path) -> None:
    _plugin(tmp_path, "widget")
    registry = _discover(tmp_path)
    with pytest.raises(PluginError, match="duplicate resource type"):
        registry.register(registry.resolve("widget"))


def test_missing_plugin_path_is_an_error(tmp_path: Path) -> None:
    error = _only_error(_discover(tmp_path / "nowhere"))
    assert error.reason == "plugin path is not a folder"
    assert error.origin.kind == "plugin-path"


def _distribution(root: Path, dist: str, entries: str, module: str, code: str) -> None:
    """An installed distribution as importlib.metadata finds it on sys.path."""
    info = root / f"{dist}-1.2.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text(f"[pyha.plugins]\n{entries}\n")
    (root / f"{module}.py").write_text(code)


@pytest.fixture
def distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A distribution `pyhatestdist` with a good entry point `widget` and a broken one."""
    site = tmp_path / "site"
    _distribution(
        site,
        "pyhatestdist",
        "widget = pyhatestdist_plugin:Widget\nbroken = pyhatestdist_plugin:Missing\n",
        "pyhatestdist_plugin",
        GOOD_PLUGIN.format(cls="Widget", name="widget"),
    )
    monkeypatch.syspath_prepend(str(site))
    return site


def test_entry_point_plugin_registers_with_distribution_origin(distribution: Path) -> None:
    registry = _discover(entry_points=True)
    agent = registry.resolve("python:pyhatestdist:widget")
    assert agent.origin.kind == "distribution"
    assert agent.origin.location == "pyhatestdist==1.2"
    error = _only_error(registry)
    assert error.name_or_path == "python:pyhatestdist:broken"
    assert error.reason.startswith("cannot load pyhatestdist_plugin:Missing: AttributeError")


def test_short_name_resolves_when_unambiguous_and_full_name_always(
    distribution: Path, tmp_path: Path
) -> None:
    _plugin(tmp_path / "plugins", "gadget")
    registry = _discover(tmp_path / "plugins", entry_points=True)
    assert str(registry.resolve("gadget").name) == "python:local:gadget"
    assert str(registry.resolve("python:pyhatestdist:widget").name) == "python:pyhatestdist:widget"


def test_ambiguous_short_name_lists_the_candidates(distribution: Path, tmp_path: Path) -> None:
    _plugin(tmp_path / "plugins", "widget")
    registry = _discover(tmp_path / "plugins", entry_points=True)
    with pytest.raises(UnknownResourceType) as info:
        registry.resolve("widget")
    assert str(info.value) == (
        "resource type 'widget' is ambiguous: python:local:widget, python:pyhatestdist:widget; "
        "use the full name"
    )
    assert str(registry.resolve("python:local:widget").name) == "python:local:widget"


def test_unknown_name_lists_close_matches(tmp_path: Path) -> None:
    _plugin(tmp_path, "widget")
    _plugin(tmp_path, "gadget")
    registry = _discover(tmp_path)
    with pytest.raises(UnknownResourceType, match=r"did you mean python:local:widget\?"):
        registry.resolve("widgte")
    with pytest.raises(UnknownResourceType, match=r"did you mean python:local:widget\?"):
        registry.resolve("python:pyha:widgt")
    with pytest.raises(UnknownResourceType, match="resource-type list"):
        registry.resolve("zzzzzz")


def test_validate_resolves_then_checks(tmp_path: Path) -> None:
    _plugin(tmp_path, "widget")
    registry = _discover(tmp_path)
    assert registry.validate("widget", {"size": "3"}) == ({"size": 3}, ())
    assert registry.validate("widget", {})[1] == ("size: required parameter is missing",)


def _ocf_root(tmp_path: Path) -> Path:
    """A tiny OCF tree: one agent, one non-executable file, helpers, a marker on run."""
    provider = tmp_path / "ocf" / "resource.d" / "acme"
    provider.mkdir(parents=True)
    agent = provider / "Thing"
    marker = tmp_path / "ran"
    agent.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    agent.chmod(0o755)
    (provider / "README").write_text("not an agent\n")
    (provider / ".ocf-shellfuncs").write_text("# helpers\n")
    return tmp_path / "ocf"


def test_ocf_agents_are_listed_by_file_without_running_them(tmp_path: Path) -> None:
    registry = _discover(ocf_root=_ocf_root(tmp_path))
    agent = registry.resolve("ocf:acme:Thing")
    assert isinstance(agent, OcfAgent)
    assert agent.origin.kind == "ocf"
    assert describe(agent) == ""
    assert not (tmp_path / "ran").exists()
    error = _only_error(registry)
    assert error.name_or_path == "ocf:acme:README"
    assert "is not an executable regular file" in error.reason


def test_bundled_plugin_dir_is_the_repository_plugins_folder() -> None:
    assert bundled_plugin_dir() == REPO / "plugins"


def test_bundled_dummy_plugin_registers() -> None:
    """Depends on the bundled plugins/dummy folder; skipped while it does not exist."""
    if not (REPO / "plugins" / "dummy" / "plugin.toml").is_file():
        pytest.skip("plugins/dummy/plugin.toml is not there yet")
    registry = Registry.discover(entry_points=False, ocf_root="/nonexistent/pyha-test-ocf")
    agent = registry.resolve("python:pyha:dummy")
    assert agent.origin.kind == "bundled"
    assert agent.origin.location == str(REPO / "plugins" / "dummy")


def test_plugin_paths_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYHA_PLUGIN_PATH", "/a/b::/c")
    assert env_plugin_paths() == [Path("/a/b"), Path("/c")]
    monkeypatch.delenv("PYHA_PLUGIN_PATH")
    assert env_plugin_paths() == []


def test_registration_error_reads_well() -> None:
    error = RegistrationError("python:local:x", Origin("plugin-path", "/p/x"), "start: broken")
    assert str(error) == "python:local:x (plugin-path /p/x): start: broken"
