"""The cluster key file: made private, refused when readable by others or malformed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pyha.cli.main import _register, app
from pyha.errors import ConfigError
from pyha.membership.keys import generate_key, load_key


def test_keygen_writes_a_private_32_byte_key(tmp_path: Path) -> None:
    path = tmp_path / "cluster.key"
    generate_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(load_key(path)) == 32
    with pytest.raises(ConfigError, match="already there"):
        generate_key(path)
    old = load_key(path)
    generate_key(path, force=True)
    assert load_key(path) != old


def test_bad_key_files_are_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_text("ab" * 32)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="owner only"):
        load_key(path)
    os.chmod(path, 0o600)
    path.write_text("xyz")
    with pytest.raises(ConfigError, match="not hex"):
        load_key(path)
    path.write_text("ab" * 8)
    with pytest.raises(ConfigError, match="must be 32 bytes, found 8"):
        load_key(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_key(tmp_path / "missing")


def test_the_keygen_command(tmp_path: Path) -> None:
    _register()
    runner = CliRunner()
    first = runner.invoke(app, ["keygen", str(tmp_path / "k")])
    assert first.exit_code == 0 and "wrote a new cluster key" in first.output
    again = runner.invoke(app, ["keygen", str(tmp_path / "k")])
    assert again.exit_code == 2
