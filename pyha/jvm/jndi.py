"""What the JVM host needs to give Java plugins the cluster's directory through JNDI.

On an LDAP directory, the host gets the connection settings (password included) over
its authenticated channel and each plugin operation gets an LDAP InitialDirContext. On
the embedded store, the cluster server writes the configuration's entries, shaped as the
LDAP backend stores them, to a snapshot file (<state_dir>/jndi-tree.json, mode 0600)
that io.pyha.jndi.TreeContextFactory serves read-only; it is written again whenever the
configuration changes.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyha.directory.bootstrap import DirectorySettings
from pyha.directory.embedded import digest
from pyha.directory.ldapschema import ATTRIBUTE_TYPES
from pyha.directory.schema import config_to_entries
from pyha.directory.tree import Layout, base_entry
from pyha.jvm.channel import Message
from pyha.model.config import ClusterConfig

__all__ = [
    "EMBEDDED_BASE_DN",
    "SNAPSHOT_FILE",
    "SNAPSHOT_FORMAT",
    "JndiSource",
    "LdapSource",
    "SnapshotSource",
    "snapshot",
    "write_snapshot",
]

SNAPSHOT_FILE = "jndi-tree.json"
"""The snapshot's file name under the node's state directory."""
SNAPSHOT_FORMAT = "pyha-jndi-tree-1"
EMBEDDED_BASE_DN = "o=pyha"
"""The base DN of an embedded store's tree: its cluster entry is cn=<cluster>,o=pyha."""
_CASE_EXACT = tuple(a.name for a in ATTRIBUTE_TYPES if a.kind == "text")
_LOG = logging.getLogger("pyha.jvm")


def snapshot(config: ClusterConfig, layout: Layout) -> dict[str, Any]:
    """The snapshot of `config`: its entries as the LDAP backend stores them, JSON-ready."""
    entries = [base_entry(layout.base_dn), *config_to_entries(config, layout)]
    return {
        "format": SNAPSHOT_FORMAT,
        "cluster": layout.cluster,
        "base_dn": layout.base_dn,
        "cluster_dn": layout.cluster_dn,
        "epoch": config.epoch,
        "case_exact": list(_CASE_EXACT),
        "entries": [{"dn": e.dn, "attributes": e.ldap_attrs()} for e in entries],
    }


def write_snapshot(path: Path, config: ClusterConfig, layout: Layout) -> None:
    """Write the snapshot of `config` to `path` (mode 0600) in one rename: a reader sees
    the old snapshot or the new one, never a mix."""
    body = json.dumps(snapshot(config, layout), separators=(",", ":")).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an older temporary file keeps its mode otherwise
        os.write(fd, body)
    finally:
        os.close(fd)
    os.replace(temporary, path)


class JndiSource(ABC):
    """Where the JVM host's plugins find the cluster's directory through JNDI
    (`PluginContext.directory()`): the LDAP server itself, or a snapshot file."""

    @abstractmethod
    def message(self) -> Message | None:
        """The `directory` part of the host's hello (secrets included), or None."""

    def refresh(self) -> None:  # noqa: B027 - most sources have nothing to bring up to date
        """Bring what the host reads up to date (before an operation); cheap when current."""


class LdapSource(JndiSource):
    """The cluster's LDAP directory: the host binds with the server's own settings."""

    def __init__(self, settings: DirectorySettings, layout: Layout) -> None:
        self.settings = settings
        self.layout = layout

    def message(self) -> Message:
        """URLs, the cluster's DN, bind DN, password and TLS settings."""
        s = self.settings
        return {
            "kind": "ldap",
            "urls": list(s.urls),
            "cluster_dn": self.layout.cluster_dn,
            "bind_dn": s.bind_dn,
            "password": s.password.get_secret_value(),
            "starttls": s.starttls,
            "ca_file": str(s.ca_file) if s.ca_file else None,
            "timeout_ms": int(s.timeout * 1000),
        }


class SnapshotSource(JndiSource):
    """The embedded store: a snapshot file of the configuration the server runs.

    Invariant: after `refresh`, the file holds the configuration `config()` returns
    (compared by digest, so an unchanged configuration is not written again).
    """

    def __init__(self, config: Callable[[], ClusterConfig], state_dir: Path,
                 base_dn: str = EMBEDDED_BASE_DN) -> None:
        self._config = config
        self.path = Path(state_dir) / SNAPSHOT_FILE
        self.base_dn = base_dn
        self._written: str | None = None
        self._last: ClusterConfig | None = None
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Write the snapshot if the configuration changed since it was last written."""
        config = self._config()
        with self._lock:
            if config is self._last and self.path.is_file():
                return  # the same object: no need to hash it again
            stamp = digest(config)
            if stamp != self._written or not self.path.is_file():
                write_snapshot(self.path, config, Layout(self.base_dn, config.cluster.name))
                self._written = stamp
            self._last = config
        _LOG.debug("JNDI snapshot of configuration epoch %d written to %s",
                   config.epoch, self.path)

    def message(self) -> Message:
        """The snapshot's path (written first if need be)."""
        self.refresh()
        return {"kind": "tree", "path": str(self.path)}
