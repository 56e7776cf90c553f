"""The witness tiebreaker: one directory entry that at most one node holds, by compare-and-swap.

When a split leaves a partition with exactly half of the votes, that partition asks the
witness; only the node that holds it may count the tiebreaker as won (pyha.quorum.decide).
The claim is one attribute value, `node=<name>;term=<n>;until=<unix ms>`, changed by an
LDAP modify that deletes the old value and adds the new one in the same request: the
server applies it only while the old value is still there, so of two contenders that
read the same value exactly one write succeeds.

Layers: `Claim` and `decide_claim` are pure (time is an argument); `CasWitness` runs the
read / decide / compare-and-swap round on any store of one single-valued string;
`LdapWitness` is that store in the LDAP directory (pyha.testing.witness has one in memory).
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pyha.directory.bootstrap import DirectorySettings
from pyha.directory.tree import Entry, Layout
from pyha.errors import DirectoryError, PyhaError

if TYPE_CHECKING:
    from pyha.directory.ldap import LdapDirectory

log = logging.getLogger("pyha.directory")
T = TypeVar("T")

WITNESS_CN = "witness"
"""The witness entry is `cn=witness,cn=<cluster>,<base DN>`."""
ATTRIBUTE = "pyhaWitnessClaim"
OBJECT_CLASSES = ("pyhaNodeStatus", "pyhaWitness")
"""pyhaWitness is a kind of status entry: configuration reads and watches leave it out."""

_NODE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,62}$")


class WitnessValueError(DirectoryError):
    """The witness entry holds a value that is not a claim pyha can read."""


# -- the claim (pure) ------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """Who holds the witness, for which term, and until when (wall-clock ms since the epoch).

    A claim whose `until` has passed is free: anyone may take it over. A released claim
    keeps its holder and term but has `until` 0, so the term never goes back.
    """

    node: str
    term: int
    until_ms: int

    def __post_init__(self) -> None:
        if not _NODE.match(self.node):
            raise WitnessValueError(f"witness claim: {self.node!r} is not a node name")
        if self.term < 0 or self.until_ms < 0:
            raise WitnessValueError("witness claim: term and until must not be negative")

    def encode(self) -> str:
        """The attribute value: `node=n1;term=7;until=1767225600000`."""
        return f"node={self.node};term={self.term};until={self.until_ms}"

    @classmethod
    def parse(cls, text: str) -> Claim:
        """Read an attribute value; spaces and key order do not matter, unknown keys are kept
        out (a newer pyha may add some). WitnessValueError says what is wrong."""
        fields: dict[str, str] = {}
        for part in (p.strip() for p in text.split(";")):
            if not part:
                continue
            key, sep, value = part.partition("=")
            key = key.strip().lower()
            if not sep or not key:
                raise WitnessValueError(f"witness value {text!r}: {part!r} is not key=value")
            if key in fields:
                raise WitnessValueError(f"witness value {text!r}: {key} appears twice")
            fields[key] = value.strip()
        missing = [k for k in ("node", "term", "until") if k not in fields]
        if missing:
            raise WitnessValueError(f"witness value {text!r}: missing {', '.join(missing)} "
                                    "(expected node=NAME;term=N;until=UNIX-MS)")
        return cls(fields["node"], _number(text, "term", fields["term"]),
                   _number(text, "until", fields["until"]))

    def until(self) -> float:
        """When the claim lapses, in wall-clock seconds."""
        return self.until_ms / 1000

    def live(self, now: float) -> bool:
        """Whether the claim still holds at wall-clock time `now`."""
        return now * 1000 < self.until_ms


def _number(text: str, key: str, value: str) -> int:
    if not value.isdigit():
        raise WitnessValueError(f"witness value {text!r}: {key}={value!r} is not a "
                                "non-negative integer")
    return int(value)


@dataclass(frozen=True)
class WitnessResult:
    """The outcome of a claim: won or lost, who holds the witness now, and why, in words.

    `term` and `until` (wall-clock seconds) are those of the claim now stored, when known.
    """

    won: bool
    holder: str | None
    reason: str
    term: int | None = None
    until: float | None = None

    def holds(self, now: float, margin: float = 0.0) -> bool:
        """Whether this won claim still holds at wall-clock `now`, ending `margin` seconds
        early (allow for the clock difference between the nodes)."""
        return self.won and self.until is not None and now < self.until - margin

    @classmethod
    def winning(cls, claim: Claim, reason: str) -> WitnessResult:
        """A won result for the claim just written."""
        return cls(True, claim.node, reason, claim.term, claim.until())

    @classmethod
    def losing(cls, reason: str, claim: Claim | None = None) -> WitnessResult:
        """A lost result; `claim` is the one that stands, if known."""
        if claim is None:
            return cls(False, None, reason)
        return cls(False, claim.node, reason, claim.term, claim.until())


def decide_claim(current: Claim | None, node: str, term: int, lease_s: float,
                 now: float) -> tuple[Claim, str] | WitnessResult:
    """What `node` writes to claim the witness at wall-clock `now`, with the reason it
    gives if the write succeeds; or the lost result when another node's claim still holds.

    Invariant: the stored term never decreases, and rises whenever the holder changes, so
    a claim's term orders the claims of a witness (a fencing token).
    """
    if lease_s <= 0:
        raise ValueError(f"witness lease must be positive, not {lease_s}")
    until_ms = int((now + lease_s) * 1000)
    if current is None:
        return Claim(node, term, until_ms), f"claimed the free witness (term {term})"
    if current.node == node and current.live(now):
        new = Claim(node, max(term, current.term), until_ms)
        return new, f"renewed the witness (term {new.term}) for {lease_s:g} s"
    if current.live(now):
        left = current.until() - now
        return WitnessResult.losing(f"{current.node} holds the witness (term {current.term}) "
                                    f"for {left:.1f} s more", current)
    new = Claim(node, max(term, current.term + 1), until_ms)
    if current.until_ms == 0:
        return new, f"claimed the witness {current.node} released (term {new.term})"
    ago = now - current.until()
    return new, (f"took over the witness from {current.node}, whose claim lapsed "
                 f"{ago:.1f} s ago (term {new.term})")


# -- the round: read, decide, compare-and-swap -------------------------------------------------


class Witness(Protocol):
    """A tiebreaker that at most one node holds at a time.

    `now` is wall-clock seconds (Clock.wall()): two nodes compare each other's leases, so
    their clocks must agree to well within a lease (NTP).
    """

    def claim(self, node: str, term: int, lease_s: float, now: float) -> WitnessResult:
        """Take or renew the witness for `lease_s` seconds; a lost result for any I/O
        failure, never an exception (ValueError only for a bad node name or lease)."""
        ...

    def release(self, node: str) -> bool:
        """Give the witness up if `node` holds it; True if released. Never raises for I/O."""
        ...


class CasWitness(ABC):
    """The claim round over a store of one single-valued string that supports compare-and-swap.

    Invariant: a claim is won only by a write that succeeded while the value read was
    still stored, so for any stored value at most one contender wins; any failure to
    read or write is a loss (fails closed: no store, no tiebreak).
    """

    @abstractmethod
    def _read(self) -> tuple[bool, str | None]:
        """(whether the entry exists, its value or None)."""

    @abstractmethod
    def _create(self, value: str) -> bool:
        """Create the entry holding `value`; False if it exists already."""

    @abstractmethod
    def _swap(self, old: str | None, new: str) -> bool:
        """Store `new` only if the value is still `old` (None: no value); True if stored."""

    @property
    @abstractmethod
    def where(self) -> str:
        """Where the witness lives, for reasons and logs."""

    def claim(self, node: str, term: int, lease_s: float, now: float) -> WitnessResult:
        """Read, decide (decide_claim), then compare-and-swap; see Witness.claim."""
        if not _NODE.match(node):
            raise ValueError(f"{node!r} is not a node name")
        try:
            return self._claim(node, term, lease_s, now)
        except WitnessValueError as exc:
            # Never overwritten: it may be a live claim pyha cannot read. Fails closed.
            return WitnessResult.losing(f"{self.where}: {exc}; an admin may delete the "
                                        f"{ATTRIBUTE} value to reset the witness")
        except (PyhaError, OSError) as exc:
            return WitnessResult.losing(f"{self.where}: {exc}")

    def _claim(self, node: str, term: int, lease_s: float, now: float) -> WitnessResult:
        for _ in range(2):
            exists, raw = self._read()
            step = decide_claim(Claim.parse(raw) if raw else None, node, term, lease_s, now)
            if isinstance(step, WitnessResult):
                return step
            new, reason = step
            if not exists:
                if self._create(new.encode()):
                    return WitnessResult.winning(new, reason)
                continue  # another node created it between our read and our add: read again
            if self._swap(raw, new.encode()):
                return WitnessResult.winning(new, reason)
            return self._lost_race()
        return WitnessResult.losing(f"{self.where}: the witness entry keeps appearing and "
                                    "disappearing")

    def _lost_race(self) -> WitnessResult:
        """The result after our swap failed: someone else wrote first; name them if we can."""
        try:
            _, raw = self._read()
            winner = Claim.parse(raw) if raw else None
        except (PyhaError, OSError):
            winner = None
        who = winner.node if winner else "another node"
        return WitnessResult.losing(f"lost the race: {who} changed the witness first", winner)

    def release(self, node: str) -> bool:
        """Set our claim's `until` to 0 (keeping the term), by compare-and-swap."""
        try:
            _, raw = self._read()
            current = Claim.parse(raw) if raw else None
            if current is None or current.node != node or current.until_ms == 0:
                return False
            return self._swap(raw, Claim(node, current.term, 0).encode())
        except (PyhaError, OSError) as exc:
            log.warning("%s: cannot release the witness (its lease will lapse): %s",
                        self.where, exc)
            return False

    def holder(self, now: float) -> Claim | None:
        """The live claim at wall-clock `now`, or None; raises DirectoryError on I/O."""
        _, raw = self._read()
        current = Claim.parse(raw) if raw else None
        return current if current is not None and current.live(now) else None


# -- in the LDAP directory -------------------------------------------------------------------


class LdapWitness(CasWitness):
    """The witness as `cn=witness,cn=<cluster>,<base DN>` in the LDAP directory.

    Invariant: every compare-and-swap goes to ONE directory server (`url`, by default the
    first of the settings' URLs): with multi-provider replication, two providers would
    each accept a swap of the same old value, and both halves would win. Connections,
    binds and TLS are those of pyha.directory.ldap (the password is never logged).
    """

    def __init__(self, settings: DirectorySettings, cluster: str, *, url: str | None = None,
                 timeout: float | None = None) -> None:
        from pyha.directory.ldap import LdapDirectory  # ldap3 loads only when it is used

        changes: dict[str, Any] = {"urls": (url or settings.urls[0],)}
        if timeout is not None:
            changes["timeout"] = timeout
        self.settings = settings.model_copy(update=changes)
        self.layout = Layout(settings.base_dn, cluster)
        self.dn = f"cn={WITNESS_CN},{self.layout.cluster_dn}"
        self._directory = LdapDirectory(self.settings, cluster)

    @property
    def where(self) -> str:
        """The server's URL and the witness DN."""
        return f"witness {self.dn} at {self.settings.urls[0]}"

    def close(self) -> None:
        """Unbind the witness's connection."""
        self._directory.close()

    def __enter__(self) -> LdapWitness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # A pyhaNodeStatus subclass sits beside status entries in every filter, and
    # LdapDirectory's primitives already turn result codes and broken links into
    # DirectoryError; the witness adds only what to read and write.

    def _read(self) -> tuple[bool, str | None]:
        found = self._ldap(lambda d: d._base(self.dn, [ATTRIBUTE]))
        if found is None:
            return False, None
        raw = {k.lower(): v for k, v in (found.get("raw_attributes") or {}).items()}
        values = raw.get(ATTRIBUTE.lower()) or ()
        return True, values[0].decode("utf-8", "replace") if values else None

    def _create(self, value: str) -> bool:
        from pyha.directory.store import EntryExists

        entry = Entry.of(self.dn, {"objectClass": list(OBJECT_CLASSES), "cn": WITNESS_CN,
                                   ATTRIBUTE: value})
        try:
            self._ldap(lambda d: d._add(entry))
        except EntryExists:
            return False
        return True

    def _swap(self, old: str | None, new: str) -> bool:
        return bool(self._ldap(lambda d: d._swap(self.dn, ATTRIBUTE, old, new)))

    def _ldap(self, op: Callable[[LdapDirectory], T]) -> T:
        """Run `op(directory)`; ldap3's own exceptions become DirectoryError."""
        from pyha.directory import ldap3compat

        try:
            return op(self._directory)
        except ldap3compat.ldap3().core.exceptions.LDAPException as exc:
            raise DirectoryError(str(exc) or type(exc).__name__) from None
