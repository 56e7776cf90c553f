"""Import and export of a cluster's configuration: LDIF or a TOML cluster file.

An import is checked whole before anything is written: every entry on its own (the
first bad one stops it, named by file, line, DN and attribute), then the whole
configuration (references between entries).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyha.directory.ldif import parse_ldif, write_ldif
from pyha.directory.schema import config_from_entries as _build
from pyha.directory.schema import (
    constraint_from_entry,
    group_data_from_entry,
    kind_of,
    node_from_entry,
    options_from_entry,
    resource_from_entry,
    type_from_entry,
)
from pyha.directory.tree import Entry, Layout, is_under, norm_dn, parent_dn, rdn_value
from pyha.errors import ConfigError
from pyha.model.config import ClusterConfig

_CHECKS: dict[str, Callable[[Entry], Any]] = {
    "cluster": options_from_entry, "node": node_from_entry, "type": type_from_entry,
    "group": group_data_from_entry, "resource": resource_from_entry,
    "constraint": constraint_from_entry,
}


def _cluster_dn(records: list[tuple[int, Entry]], source: str) -> str:
    found = [e.dn for _, e in records if kind_of(e) == "cluster"]
    if len(found) != 1:
        raise ConfigError(f"{source}: needs exactly one pyhaCluster entry, found {len(found)}")
    return found[0]


def _check_entry(line: int, entry: Entry, cluster_dn: str, source: str) -> bool:
    """Whether the entry belongs to the configuration; ConfigError for a bad one."""
    if not is_under(entry.dn, cluster_dn):
        if is_under(cluster_dn, entry.dn):
            return False  # the base DN or one of its parents: created when missing
        raise ConfigError(f"{source}:{line}: {entry.dn}: outside the cluster {cluster_dn}")
    kind = kind_of(entry)
    if kind is None:
        return False  # status and audit records are not configuration
    if kind == "other":
        raise ConfigError(f"{source}:{line}: {entry.dn}: objectClass: not a pyha entry")
    check = _CHECKS.get(kind)
    if check is not None:
        try:
            check(entry)
        except ConfigError as exc:
            raise ConfigError(f"{source}:{line}: {exc}", tuple(
                f"{source}:{line}: {p}" for p in exc.problems)) from None
    return True


def config_from_ldif(text: str, source: str = "LDIF") -> tuple[ClusterConfig, Layout]:
    """The configuration an LDIF file describes, and where it lives; checked whole."""
    records = parse_ldif(text, source)
    cluster_dn = _cluster_dn(records, source)
    layout = Layout(parent_dn(cluster_dn), rdn_value(cluster_dn))
    keep = [entry for line, entry in records if _check_entry(line, entry, cluster_dn, source)]
    try:
        return _build(keep, layout), layout
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc.args[0]}", exc.problems) from None


def read_config_file(path: Path) -> tuple[ClusterConfig, Layout | None]:
    """A configuration from LDIF (.ldif) or a TOML cluster file (anything else)."""
    if path.suffix.lower() == ".ldif":
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
        return config_from_ldif(text, str(path))
    return ClusterConfig.from_toml(path), None


def check_target(layout: Layout | None, target: Layout) -> None:
    """An LDIF file's cluster must be the directory's cluster."""
    if layout is not None and norm_dn(layout.cluster_dn) != norm_dn(target.cluster_dn):
        raise ConfigError(f"the file describes {layout.cluster_dn}, the directory is set up "
                          f"for {target.cluster_dn}")


def export_ldif(entries: list[Entry], what: str) -> str:
    """LDIF of a cluster's entries with a short header."""
    return write_ldif(entries, header=f"pyha directory export: {what}")
