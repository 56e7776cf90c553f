"""The embedded configuration store: each node keeps the cluster's configuration in one
file under its state directory, written durably (write, fsync, rename, fsync the folder).

Clusters without an LDAP server use it: a change goes to the coordinator, gets the next
epoch, is written here on every member, and is acknowledged once a majority of votes has
it on disk (pyha.cluster.node). At start-up a node runs the newer of its cluster file and
this store, so a change made at runtime survives a restart, and a node that was away
catches up from the coordinator.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from pyha.errors import ConfigError
from pyha.model.config import ClusterConfig

log = logging.getLogger("pyha.directory")

STORE_FILE = "config.json"
"""The file under a node's state directory that holds the replicated configuration."""
FORMAT = "pyha-config-1"


def canonical(config: ClusterConfig) -> bytes:
    """The configuration as JSON with sorted keys: the same bytes on every node."""
    return json.dumps(config.model_dump(mode="json"), sort_keys=True,
                      separators=(",", ":")).encode()


def digest(config: ClusterConfig) -> str:
    """A short fingerprint of the whole configuration (its epoch included): two nodes
    run the same configuration exactly when their digests are equal."""
    return hashlib.sha256(canonical(config)).hexdigest()[:16]


def from_json(data: Any, source: str = "replicated configuration") -> ClusterConfig:
    """A configuration from its JSON form; ConfigError names the bad fields."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: not a configuration (a JSON object is expected)")
    return ClusterConfig.from_mapping(data, source)


class ConfigStore:
    """One node's durable copy of the configuration.

    Invariant: the file holds either the previous or the new configuration, never a
    mix: a write goes to a temporary file that is synced and renamed over the old one.
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / STORE_FILE
        self._lock = threading.Lock()

    def load(self) -> ClusterConfig | None:
        """The stored configuration, or None when there is none; ConfigError when the
        file exists but cannot be read or is not a valid configuration."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{self.path}: not valid JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigError(f"{self.path}: format: not a {FORMAT} file")
        return from_json(data.get("config"), str(self.path))

    def save(self, config: ClusterConfig) -> None:
        """Write `config` durably: when this returns, it survives a crash or power loss."""
        # No indent: json's fast C encoder only runs without one (10,000 resources).
        body = json.dumps({"format": FORMAT, "config": config.model_dump(mode="json")},
                          sort_keys=True, separators=(",", ":")).encode()
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_name(f".{self.path.name}.tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, body)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, self.path)
            folder = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)


def newest(config: ClusterConfig, store: ConfigStore) -> ClusterConfig:
    """The configuration a node starts with: the stored one when its epoch is higher than
    the cluster file's (changes made at runtime), else the file's (an admin edited it).
    A stored configuration of another cluster is refused."""
    stored = store.load()
    if stored is None:
        return config
    if stored.cluster.name != config.cluster.name:
        raise ConfigError(f"{store.path}: holds cluster {stored.cluster.name!r}, not "
                          f"{config.cluster.name!r}; remove it or use another state_dir")
    if stored.epoch > config.epoch:
        log.info("running the stored configuration epoch %d (the cluster file has epoch %d)",
                 stored.epoch, config.epoch)
        return stored
    return config
