"""The LDAP tree of a cluster: entries, DNs and where each part of a cluster lives (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pyha.directory.ldapschema import ATTRIBUTE_TYPES
from pyha.errors import ConfigError

CONTAINERS = ("nodes", "types", "groups", "constraints", "status", "audit")
"""The organizational units under a cluster entry, in the order they are created."""

_CANONICAL = {a.name.lower(): a.name for a in ATTRIBUTE_TYPES} | {
    "objectclass": "objectClass", "cn": "cn", "ou": "ou", "description": "description",
    "dc": "dc", "o": "o",
}


def canonical(name: str) -> str:
    """The attribute name as the schema spells it (LDAP names are case-insensitive)."""
    return _CANONICAL.get(name.lower(), name)


# -- entries and DNs --------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One LDAP entry: its DN and its attributes, keyed by lower-case attribute name."""

    dn: str
    attrs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, dn: str, attrs: Mapping[str, Iterable[str] | str]) -> Entry:
        """An entry from any attribute mapping; names are folded to lower case."""
        folded: dict[str, tuple[str, ...]] = {}
        for name, values in attrs.items():
            vals = (values,) if isinstance(values, str) else tuple(values)
            if vals:
                folded[name.lower()] = folded.get(name.lower(), ()) + vals
        return cls(dn, folded)

    def values(self, name: str) -> tuple[str, ...]:
        """Every value of attribute `name` (case-insensitive), possibly none."""
        return self.attrs.get(name.lower(), ())

    def classes(self) -> frozenset[str]:
        """The object classes, in lower case."""
        return frozenset(v.lower() for v in self.values("objectClass"))

    def ldap_attrs(self) -> dict[str, list[str]]:
        """Attributes keyed by their canonical names, for writing."""
        return {canonical(k): list(v) for k, v in self.attrs.items()}


_UNESCAPE = re.compile(r"\\([0-9a-fA-F]{2}|.)")
_SPACES = re.compile(r"\s*([,=+])\s*")


def _unescape(value: str) -> str:
    def one(m: re.Match[str]) -> str:
        code = m.group(1)
        return chr(int(code, 16)) if len(code) == 2 else code

    return _UNESCAPE.sub(one, value) if "\\" in value else value


_SPECIAL = set('\\,+"<>;=')


def escape_value(value: str) -> str:
    """A string made safe as an RDN value (RFC 4514)."""
    out = []
    for i, ch in enumerate(value):
        if ch in _SPECIAL or (ch == "#" and i == 0) or (ch == " " and i in (0, len(value) - 1)):
            out.append("\\" + ch)
        elif ch == "\0":
            out.append("\\00")
        else:
            out.append(ch)
    return "".join(out)


def _split_rdn(dn: str) -> tuple[str, str]:
    """(first RDN, parent DN); an escaped comma does not split."""
    i = 0
    while True:
        i = dn.find(",", i)
        if i < 0:
            return dn, ""
        if dn[i - 1] != "\\" or (i > 1 and dn[i - 2] == "\\"):
            return dn[:i], dn[i + 1:]
        i += 1


def parent_dn(dn: str) -> str:
    """The DN one level up."""
    return _split_rdn(dn)[1]


def rdn_value(dn: str) -> str:
    """The value of the first RDN, unescaped: `cn=web,ou=groups,...` -> `web`."""
    return _unescape(_split_rdn(dn)[0].partition("=")[2].strip())


def norm_dn(dn: str) -> str:
    """A DN folded for comparison: lower case, no spaces around separators."""
    if " " not in dn:
        return dn.lower()
    return _SPACES.sub(r"\1", dn.strip()).lower()


def is_under(dn: str, ancestor: str) -> bool:
    """Whether `dn` is `ancestor` or below it (both already normalized or not)."""
    d, a = norm_dn(dn), norm_dn(ancestor)
    return d == a or d.endswith("," + a)


@dataclass(frozen=True)
class Layout:
    """Where each part of one cluster lives: `cn=<cluster>,<base DN>` and the units below."""

    base_dn: str
    cluster: str

    @property
    def cluster_dn(self) -> str:
        """The cluster entry: options and epoch."""
        return f"cn={escape_value(self.cluster)},{self.base_dn}"

    def container(self, kind: str) -> str:
        """The DN of `ou=<kind>` under the cluster entry."""
        return f"ou={kind},{self.cluster_dn}"

    def node_dn(self, name: str) -> str:
        """A node entry."""
        return f"cn={escape_value(name)},{self.container('nodes')}"

    def type_dn(self, name: str) -> str:
        """A resource type entry."""
        return f"cn={escape_value(name)},{self.container('types')}"

    def group_dn(self, name: str) -> str:
        """A group entry; its resources are its children."""
        return f"cn={escape_value(name)},{self.container('groups')}"

    def resource_dn(self, group: str, name: str) -> str:
        """A resource entry under its group."""
        return f"cn={escape_value(name)},{self.group_dn(group)}"

    def constraint_dn(self, ident: str) -> str:
        """A constraint entry."""
        return f"cn={escape_value(ident)},{self.container('constraints')}"

    def status_node_dn(self, node: str) -> str:
        """The status entry of a node; its resources' status entries are its children."""
        return f"cn={escape_value(node)},{self.container('status')}"

    def status_dn(self, node: str, resource: str) -> str:
        """The status entry of `resource` on `node`."""
        return f"cn={escape_value(resource)},{self.status_node_dn(node)}"

    def audit_dn(self, ident: str) -> str:
        """An audit entry."""
        return f"cn={escape_value(ident)},{self.container('audit')}"

    def is_config(self, dn: str) -> bool:
        """Whether `dn` belongs to the configuration (not status, not audit)."""
        return is_under(dn, self.cluster_dn) and not (
            is_under(dn, self.container("status")) or is_under(dn, self.container("audit")))


# -- errors -------------------------------------------------------------------------------


class EntryError(ConfigError):
    """An entry does not make a valid part of the configuration; names DN and attribute."""

    def __init__(self, dn: str, problems: Sequence[tuple[str, str]]) -> None:
        self.dn = dn
        self.attribute = problems[0][0] if problems else ""
        lines = tuple(f"{dn}: {attr}: {reason}" if attr else f"{dn}: {reason}"
                      for attr, reason in problems)
        super().__init__(lines[0] if len(lines) == 1 else f"{dn}: invalid entry", lines)


class ClusterNotFound(ConfigError):
    """The directory holds no entry for this cluster (yet)."""


def container_entries(layout: Layout) -> list[Entry]:
    """The organizational units under the cluster entry."""
    return [Entry.of(layout.container(kind), {"objectClass": "organizationalUnit", "ou": kind})
            for kind in CONTAINERS]


def base_entry(base_dn: str) -> Entry:
    """The entry of the base DN itself, for an empty directory (dc=, o= or ou= first)."""
    rdn, _ = _split_rdn(base_dn)
    attr, _, value = rdn.partition("=")
    attr, value = attr.strip().lower(), _unescape(value.strip())
    if attr == "dc":
        return Entry.of(base_dn, {"objectClass": ["dcObject", "organization"], "dc": value,
                                  "o": value})
    if attr == "o":
        return Entry.of(base_dn, {"objectClass": "organization", "o": value})
    if attr == "ou":
        return Entry.of(base_dn, {"objectClass": "organizationalUnit", "ou": value})
    raise ConfigError(f"{base_dn}: base DN must start with dc=, o= or ou= to be created")


def entries_sorted(entries: Iterable[Entry]) -> list[Entry]:
    """Parents before children (fewer RDNs first), for adding or writing LDIF."""
    return sorted(entries, key=lambda e: (norm_dn(e.dn).count(","), norm_dn(e.dn)))


def changed_attrs(old: Entry, new: Entry) -> dict[str, list[str]]:
    """Attributes to replace so `old` becomes `new`; an empty list deletes the attribute."""
    out: dict[str, list[str]] = {}
    for name in set(old.attrs) | set(new.attrs):
        if name in ("objectclass", "cn"):
            continue
        a, b = old.values(name), new.values(name)
        if sorted(a) != sorted(b):
            out[canonical(name)] = list(b)
    return out
