"""pyha's LDAP schema as data: one source for the cn=config LDIF and the .schema file."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

ARC = "2.25.35796026136636653224896766603562457992"
"""The project's own OID arc: a UUID as an X.667 2.25 arc, which needs no registration."""

_STRING = "1.3.6.1.4.1.1466.115.121.1.15"
_INTEGER = "1.3.6.1.4.1.1466.115.121.1.27"
_BOOLEAN = "1.3.6.1.4.1.1466.115.121.1.7"
_TIME = "1.3.6.1.4.1.1466.115.121.1.24"


@dataclass(frozen=True)
class AttributeType:
    """One attribute type under pyhaAT; `kind` picks syntax and matching rules."""

    number: int
    name: str
    kind: str  # "name" (case-ignore), "text" (case-exact), "integer", "boolean", "time"
    description: str
    single: bool = True

    def definition(self) -> str:
        """The RFC 4512 definition, with the pyhaAT macro."""
        rules = _RULES[self.kind]
        single = " SINGLE-VALUE" if self.single else ""
        head = f"( pyhaAT:{self.number} NAME '{self.name}' DESC '{self.description}'"
        return f"{head} {rules}{single} )"


@dataclass(frozen=True)
class ObjectClass:
    """One object class under pyhaOC."""

    number: int
    name: str
    description: str
    must: tuple[str, ...]
    may: tuple[str, ...] = ()
    kind: str = "STRUCTURAL"
    sup: str = "top"

    def definition(self) -> str:
        """The RFC 4512 definition, with the pyhaOC macro."""
        parts = [f"( pyhaOC:{self.number} NAME '{self.name}' DESC '{self.description}'",
                 f"SUP {self.sup} {self.kind}"]
        if self.must:
            parts.append(f"MUST {_oids(self.must)}")
        if self.may:
            parts.append(f"MAY {_oids(self.may)}")
        return " ".join(parts) + " )"


_RULES = {
    "name": f"EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch SYNTAX {_STRING}",
    "text": f"EQUALITY caseExactMatch SUBSTR caseExactSubstringsMatch SYNTAX {_STRING}",
    "integer": f"EQUALITY integerMatch ORDERING integerOrderingMatch SYNTAX {_INTEGER}",
    "boolean": f"EQUALITY booleanMatch SYNTAX {_BOOLEAN}",
    "time": "EQUALITY generalizedTimeMatch ORDERING generalizedTimeOrderingMatch "
            f"SYNTAX {_TIME}",
}


def _oids(names: tuple[str, ...]) -> str:
    return names[0] if len(names) == 1 else "( " + " $ ".join(names) + " )"


A = AttributeType
ATTRIBUTE_TYPES: tuple[AttributeType, ...] = (
    A(1, "pyhaPosition", "integer", "position among its siblings; LDAP keeps no order"),
    A(2, "pyhaEpoch", "integer", "configuration epoch, raised by every change pyha writes"),
    A(3, "pyhaStickiness", "name", "score: an integer, INFINITY or -INFINITY"),
    A(4, "pyhaNoQuorumPolicy", "name", "stop, freeze or ignore"),
    A(5, "pyhaMaintenance", "boolean", "maintenance mode: the cluster touches nothing"),
    A(6, "pyhaDeadAfter", "name", "duration without heartbeats after which a node is down"),
    A(7, "pyhaHeartbeatInterval", "name", "duration between two heartbeats"),
    A(8, "pyhaCycleInterval", "name", "longest duration between two decision cycles"),
    A(9, "pyhaStateDir", "text", "directory for the local state of each cluster server"),
    A(10, "pyhaPluginPath", "text", "plugin folder as {position}path", single=False),
    A(11, "pyhaAddress", "name", "heartbeat host:port as {link}host:port", single=False),
    A(12, "pyhaVotes", "integer", "quorum votes of a node"),
    A(13, "pyhaStandby", "boolean", "a standby node runs no resources"),
    A(14, "pyhaAttribute", "text", "node attribute as name=value", single=False),
    A(15, "pyhaPlugin", "name", "plugin implementing a resource type: class:provider:type"),
    A(16, "pyhaType", "name", "resource type: its name, or the DN of its entry"),
    A(17, "pyhaParameter", "text", "resource parameter as name=value", single=False),
    A(18, "pyhaOperation", "text", "operation as: name key=value ...", single=False),
    A(19, "pyhaTargetRole", "name", "started, stopped, promoted or unpromoted"),
    A(20, "pyhaMigrationThreshold", "integer", "failures on a node before it is banned"),
    A(21, "pyhaFailureTimeout", "name", "duration after which failures expire; 0 never"),
    A(22, "pyhaGroupName", "name", "name of a resource group"),
    A(23, "pyhaNodeName", "name", "name of a node"),
    A(24, "pyhaScore", "name", "score: an integer, INFINITY or -INFINITY"),
    A(25, "pyhaExpires", "name", "wall-clock seconds since the epoch when it lapses"),
    A(26, "pyhaWithGroup", "name", "the group another group is placed with or apart from"),
    A(27, "pyhaFirst", "name", "the group started first"),
    A(28, "pyhaThen", "name", "the group started after the first"),
    A(29, "pyhaMandatory", "boolean", "an order that must hold, not only a preference"),
    A(30, "pyhaSymmetrical", "boolean", "stop in reverse order too"),
    A(31, "pyhaRole", "name", "observed role: started, stopped, promoted, failed ..."),
    A(32, "pyhaSince", "time", "when the current role began"),
    A(33, "pyhaFailCount", "integer", "failures counted on the node"),
    A(34, "pyhaLastFailure", "time", "when the last failure happened"),
    A(35, "pyhaFailedOperation", "name", "the operation that failed"),
    A(36, "pyhaMessage", "text", "what the last operation or monitor said"),
    A(37, "pyhaWhen", "time", "when a change was made or applied"),
    A(38, "pyhaActor", "text", "who made a change: a bind DN or a pyha component"),
    A(39, "pyhaAction", "name", "add, modify, delete, apply, reject or import"),
    A(40, "pyhaSubject", "text", "DN or name of what changed", single=False),
    A(41, "pyhaChange", "text", "what changed, in words", single=False),
    A(42, "pyhaOnline", "boolean", "the node is a live member of the cluster"),
    A(43, "pyhaLastSeen", "time", "when the node last reported"),
    A(44, "pyhaTiebreaker", "name", "none, witness or fence-race"),
    A(45, "pyhaFenceRaceDelay", "name", "duration each later node waits before fencing"),
    A(46, "pyhaCallTimeout", "name", "duration a node-to-node call may take"),
    A(47, "pyhaKeyFile", "text", "file holding the cluster key"),
    A(48, "pyhaRecoveryWithoutFencing", "boolean", "unsafe: recover without fencing first"),
    A(49, "pyhaRpc", "name", "host:port where a node answers calls from the others"),
    A(50, "pyhaFence", "text", "how to fence a node, as JSON"),
    A(51, "pyhaExtra", "text", "a model field without an attribute of its own: path=JSON",
      single=False),
    A(52, "pyhaWitnessClaim", "text", "who holds the witness: node=NAME;term=N;until=UNIX-MS"),
    A(53, "pyhaProbeDepartures", "boolean",
      "ask the host of a silent peer whether its server runs"),
)

OC = ObjectClass
OBJECT_CLASSES: tuple[ObjectClass, ...] = (
    OC(1, "pyhaCluster", "a cluster: options and config epoch", ("cn",),
      ("pyhaEpoch", "pyhaStickiness", "pyhaNoQuorumPolicy", "pyhaMaintenance", "pyhaDeadAfter",
       "pyhaHeartbeatInterval", "pyhaTiebreaker", "pyhaFenceRaceDelay", "pyhaCycleInterval",
       "pyhaCallTimeout", "pyhaProbeDepartures", "pyhaKeyFile", "pyhaRecoveryWithoutFencing",
       "pyhaStateDir", "pyhaPluginPath", "description", "pyhaExtra")),
    OC(2, "pyhaNode", "a computer of the cluster", ("cn",),
      ("pyhaAddress", "pyhaRpc", "pyhaVotes", "pyhaStandby", "pyhaMaintenance",
       "pyhaAttribute", "pyhaFence", "pyhaPosition", "pyhaExtra")),
    OC(3, "pyhaResourceType", "a resource type and its plugin", ("cn", "pyhaPlugin"),
      ("description", "pyhaPosition", "pyhaExtra")),
    OC(4, "pyhaGroup", "a resource group; its resources are its children", ("cn",),
      ("pyhaTargetRole", "pyhaStickiness", "description", "pyhaPosition", "pyhaExtra")),
    OC(5, "pyhaResource", "a resource: an instance of a resource type", ("cn", "pyhaType"),
      ("pyhaParameter", "pyhaOperation", "pyhaTargetRole", "pyhaStickiness",
       "pyhaMigrationThreshold", "pyhaFailureTimeout", "description", "pyhaPosition",
       "pyhaExtra")),
    OC(6, "pyhaConstraint", "a constraint between groups and nodes", ("cn",),
       ("pyhaPosition", "pyhaExtra"),
      kind="ABSTRACT"),
    OC(7, "pyhaLocationConstraint", "a preference for a group to run on a node",
      ("pyhaGroupName", "pyhaNodeName", "pyhaScore"), ("pyhaExpires",), sup="pyhaConstraint"),
    OC(8, "pyhaColocationConstraint", "place a group with or apart from another",
      ("pyhaGroupName", "pyhaWithGroup"), ("pyhaScore",), sup="pyhaConstraint"),
    OC(9, "pyhaOrderConstraint", "start one group before another",
      ("pyhaFirst", "pyhaThen"), ("pyhaMandatory", "pyhaSymmetrical"), sup="pyhaConstraint"),
    OC(10, "pyhaNodeStatus", "a node as the coordinator sees it", ("cn",),
      ("pyhaOnline", "pyhaLastSeen")),
    OC(11, "pyhaResourceStatus", "where a resource runs and how it is",
      ("cn", "pyhaNodeName", "pyhaRole"),
      ("pyhaSince", "pyhaFailCount", "pyhaLastFailure", "pyhaFailedOperation", "pyhaMessage")),
    OC(12, "pyhaAuditEntry", "who changed what, when",
       ("cn", "pyhaWhen", "pyhaActor", "pyhaAction"), ("pyhaSubject", "pyhaChange", "pyhaEpoch")),
    # A status entry by kind (SUP pyhaNodeStatus), so every reader of the configuration
    # already leaves it out; its claim changes by compare-and-swap (single-valued).
    OC(13, "pyhaWitness", "the tiebreaker the halves of a split claim by compare-and-swap",
       ("cn",), ("pyhaWitnessClaim",), sup="pyhaNodeStatus"),
)

_HEADER = ("pyha's LDAP schema. Generated by `python -m pyha.directory.ldapschema jndi`;"
           " edit pyha/directory/ldapschema.py instead.")


def _fold(text: str, first: str, width: int = 76) -> list[str]:
    """Break a definition at spaces; continuation lines start with `first` indentation."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = first + word
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    return lines


def render_ldif() -> str:
    """The schema as a cn=config entry, for slapadd -n0 (include:) or ldapadd at runtime."""
    out = [f"# {_HEADER}", "dn: cn=pyha,cn=schema,cn=config", "objectClass: olcSchemaConfig",
           "cn: pyha", f"olcObjectIdentifier: pyhaOID {ARC}",
           "olcObjectIdentifier: pyhaAT pyhaOID:1", "olcObjectIdentifier: pyhaOC pyhaOID:2"]
    for at in ATTRIBUTE_TYPES:
        out += _fold(f"olcAttributeTypes: {at.definition()}", "  ")
    for oc in OBJECT_CLASSES:
        out += _fold(f"olcObjectClasses: {oc.definition()}", "  ")
    return "\n".join(out) + "\n"


def render_schema() -> str:
    """The schema in slapd.conf form (a .schema file), for `include` in slapd.conf."""
    out = [f"# {_HEADER}", f"objectIdentifier pyhaOID {ARC}", "objectIdentifier pyhaAT pyhaOID:1",
           "objectIdentifier pyhaOC pyhaOID:2", ""]
    for at in ATTRIBUTE_TYPES:
        out += _fold(f"attributetype {at.definition()}", "\t")
    out.append("")
    for oc in OBJECT_CLASSES:
        out += _fold(f"objectclass {oc.definition()}", "\t")
    return "\n".join(out) + "\n"


def write_files(folder: Path) -> list[Path]:
    """Write pyha-schema.ldif, pyha.schema and base-tree.ldif into `folder`."""
    from pyha.directory.transfer import base_tree_ldif

    written = []
    for name, text in (("pyha-schema.ldif", render_ldif()), ("pyha.schema", render_schema()),
                       ("base-tree.ldif", base_tree_ldif())):
        path = folder / name
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_files(Path(sys.argv[1] if len(sys.argv) > 1 else "jndi")):
        print(path)
