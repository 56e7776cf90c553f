"""The configuration directory: the LDAP tree of a cluster, its schema, backends and watchers.

`Directory` (store.py) is the interface: load the whole configuration, write changes,
status and audit, watch for changes. `LdapDirectory` (ldap.py) keeps it in OpenLDAP;
`EmbeddedDirectory` (embedded.py) keeps the same tree in files under a node's state
directory; `pyha.testing.directory.MemoryDirectory` keeps it in memory for tests.
"""

from pyha.directory.bootstrap import Bootstrap, DirectorySettings, load_bootstrap
from pyha.directory.diff import Change, diff_configs
from pyha.directory.embedded import EmbeddedDirectory
from pyha.directory.ldap import LdapDirectory
from pyha.directory.records import AuditRecord, StatusRecord
from pyha.directory.store import (
    ConcurrentChange,
    Directory,
    EntryStore,
    Origin,
    Watch,
)
from pyha.directory.tree import ClusterNotFound, EntryError, Layout

__all__ = [
    "AuditRecord",
    "Bootstrap",
    "Change",
    "ClusterNotFound",
    "ConcurrentChange",
    "Directory",
    "DirectorySettings",
    "EmbeddedDirectory",
    "EntryError",
    "EntryStore",
    "Layout",
    "LdapDirectory",
    "Origin",
    "StatusRecord",
    "Watch",
    "diff_configs",
    "load_bootstrap",
]
