"""The cluster key: 32 random bytes that authenticate heartbeats and node-to-node calls."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from pyha.errors import ConfigError

KEY_BYTES = 32


def generate_key(path: Path, *, force: bool = False) -> None:
    """Write a new key as hex to `path`, readable by its owner only."""
    if path.exists() and not force:
        raise ConfigError(f"{path}: a key is already there; pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(KEY_BYTES) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def load_key(path: Path) -> bytes:
    """Read a key file; refuse one others can read, or one of the wrong size."""
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the cluster key: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path}: the cluster key must be readable by its owner only "
                          "(chmod 600)")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"{path}: the cluster key is not hex; make one with pyha keygen") \
            from None
    if len(key) != KEY_BYTES:
        raise ConfigError(f"{path}: the cluster key must be {KEY_BYTES} bytes, "
                          f"found {len(key)}")
    return key
