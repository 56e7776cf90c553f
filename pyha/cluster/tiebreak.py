"""The tiebreaker as one more voter: how a cluster with an even number of voters (two
nodes, most often) elects a coordinator and keeps quorum when exactly half is left.

With `tiebreaker` set, the election counts a virtual voter, TIEBREAK, next to the real
ones (two nodes make three voters, so two votes win). A candidate gets its vote only
when every voter that did not vote for it is down, and only by winning the tiebreak:
- **fence-race**: it fences those voters first (the first node in the configuration
  fences at once, each later one waits `fence_race_delay` longer, so two halves of a
  split never both shoot); the vote is granted when every fence confirmed;
- **witness**: it wins an atomic compare-and-swap on the witness entry of the LDAP
  directory for its term (pyha.directory.witness); only one claimant can hold it.
A coordinator whose real voters are down keeps its lease only through the tiebreaker:
its fenced peers stay fenced, or it renews its witness claim.

The rules are pure; the fence device, the witness and the clock come from the node.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pyha.clock import Clock
from pyha.directory.witness import Witness, WitnessResult
from pyha.model.config import ClusterConfig
from pyha.quorum import Tiebreaker, wait_before_fence_race

log = logging.getLogger("pyha.cluster")

TIEBREAK = "@tiebreak"
"""The virtual voter's name (never a node name: names cannot start with @)."""
WITNESS_MARGIN = 0.5
"""Seconds a witness claim is taken to end early (clock differences between nodes)."""


def voters(config: ClusterConfig) -> frozenset[str]:
    """The election's voters: the nodes with votes, plus TIEBREAK when a tiebreaker is
    set and the real voters are an even number (an odd number never ties)."""
    real = frozenset(n.name for n in config.nodes if n.votes > 0)
    if config.cluster.tiebreaker is not Tiebreaker.NONE and real and len(real) % 2 == 0:
        return real | {TIEBREAK}
    return real


@dataclass
class Tiebreak:
    """One node's side of the tiebreaker.

    Invariant: `win` and `renew` say yes only when this node fenced every voter it
    cannot hear (fence-race) or holds the witness for its term (witness).
    """

    kind: Tiebreaker
    node: str
    order: list[str]
    """The nodes in configuration order (the fence race's head start)."""
    delay: float
    lease: float
    clock: Clock
    fence: Callable[[str, str], bool]
    """Fence a node, with why; True when the device confirmed it off."""
    witness: Witness | None = None
    _claimed: WitnessResult | None = field(default=None, repr=False)
    _claimed_at: float = 0.0

    @classmethod
    def of(cls, config: ClusterConfig, node: str, clock: Clock,
           fence: Callable[[str, str], bool], witness: Witness | None) -> Tiebreak:
        """The tiebreak for `node` under `config`."""
        return cls(config.cluster.tiebreaker, node, [n.name for n in config.nodes],
                   config.cluster.fence_race_delay, config.cluster.dead_after, clock,
                   fence, witness)

    def win(self, term: int, missing: Iterable[str], alive: Callable[[str], bool],
            stop: threading.Event) -> tuple[bool, str]:
        """Try to win the tiebreak in `term` against the `missing` voters (all down):
        whether it was won, and why in words."""
        missing = sorted(missing)
        if self.kind is Tiebreaker.FENCE_RACE:
            wait = wait_before_fence_race(self.node, self.order, self.delay)
            deadline = self.clock.now() + wait
            while self.clock.now() < deadline:
                back = [n for n in missing if alive(n)]
                if back:
                    return False, f"{', '.join(back)} came back during the fence race"
                self.clock.wait(stop, min(0.05, max(0.0, deadline - self.clock.now())))
            for peer in missing:
                if not self.fence(peer, f"fence race of term {term} (waited {wait:g}s)"):
                    return False, f"the fence race: could not fence {peer}"
            return True, f"won the fence race: fenced {', '.join(missing)}"
        if self.kind is Tiebreaker.WITNESS:
            return self._claim(term)
        return False, "no tiebreaker"

    def renew(self, term: int, missing: Iterable[str], fenced: set[str]) -> float | None:
        """For a coordinator whose `missing` voters are down: the time to count as the
        tiebreaker's acknowledgement, or None when it does not hold the tiebreak now."""
        now = self.clock.now()
        if self.kind is Tiebreaker.FENCE_RACE:
            return now if set(missing) <= fenced else None
        if self.kind is Tiebreaker.WITNESS:
            wall = self.clock.wall()
            claimed = self._claimed
            fresh = claimed is not None and now - self._claimed_at < self.lease / 3
            if not fresh:
                won, _ = self._claim(term)
                claimed = self._claimed if won else None
            if claimed is not None and claimed.holds(wall, WITNESS_MARGIN):
                return self._claimed_at
        return None

    def release(self) -> None:
        """Give the witness back (a clean shutdown, or a majority is back)."""
        if self.witness is not None and self._claimed is not None:
            self.witness.release(self.node)
            self._claimed = None

    def _claim(self, term: int) -> tuple[bool, str]:
        if self.witness is None:
            return False, "no witness configured"
        now, wall = self.clock.now(), self.clock.wall()
        result = self.witness.claim(self.node, term, 2 * self.lease, wall)
        won = result.holds(wall, WITNESS_MARGIN)
        self._claimed, self._claimed_at = (result, now) if won else (None, 0.0)
        return won, result.reason
