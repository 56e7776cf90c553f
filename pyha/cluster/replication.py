"""Configuration replication: a change is made by the coordinator, on disk on a majority.

The coordinator applies a change to the configuration it runs, checks it, writes it
(to its own state directory, or to the directory it follows, which then holds it), sends
it to every live member and adopts it; a member checks, writes and adopts what the
coordinator of a term not older than its own sends. Members that were away or missed a
change are sent the coordinator's configuration when their report shows another one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pyha.admin import changes as ch
from pyha.admin.report import ChangeResult
from pyha.clock import Clock
from pyha.cluster import tiebreak as tb
from pyha.cluster.source import DirectorySource
from pyha.cluster.view import NodeReport
from pyha.directory.embedded import ConfigStore, from_json
from pyha.directory.embedded import digest as config_digest
from pyha.directory.witness import Witness
from pyha.errors import AdminError, ConfigError, DirectoryError, PyhaError
from pyha.membership import election as el
from pyha.membership.detector import FailureDetector
from pyha.membership.rpc import PeerUnreachable, RpcClient
from pyha.model.config import ClusterConfig, ClusterOptions
from pyha.quorum import Tiebreaker, setup_problems
from pyha.server import ClusterServer, Member

log = logging.getLogger("pyha.cluster")


class ConfigReplication:
    """Configuration changes and their replication, for `ClusterNode`.

    Invariants: a node makes one change at a time (`_commit_lock`, from taking the base
    configuration to adopting the result); only the coordinator of the current term makes
    one (`commit` elsewhere forwards it there), with an epoch above every epoch a member
    reported; a node takes a configuration only from a term not older than the newest it
    knows, and only after checking it and writing it to disk; `commit` acknowledges a
    change once a majority of the votes has it on disk (or, with a directory source, once
    the directory took it). A directory configuration this node cannot run is refused once
    and not tried again until the directory changes.

    Needs from the node: the attributes annotated below, and `_adopt`, which makes the
    node run a configuration (resources, membership, votes, peers, fences).
    """

    node: str
    clock: Clock
    config: ClusterConfig
    options: ClusterOptions
    election: el.ElectionState
    detector: FailureDetector
    peers: dict[str, RpcClient]
    local: ClusterServer
    store: ConfigStore
    source: DirectorySource | None
    witness: Witness | None
    _lock: threading.RLock
    _wake: threading.Event
    _adopt: Callable[[ClusterConfig, str, dict[str, Member] | None], None]

    # -- configuration changes --------------------------------------------------------------

    def _init_replication(self, config: ClusterConfig) -> None:
        self._commit_lock = threading.Lock()
        """One configuration change at a time, from taking the base to adopting the result."""
        self._epoch_seen, self._refused = config.epoch, ""
        """The highest epoch any member reported: the next change's epoch is above it."""

    def commit(self, change: ch.Change) -> ChangeResult:
        """Make `change` through the coordinator: here if this node coordinates, else
        forwarded to it. Returns once a majority of votes has the new configuration on
        disk; InvalidArgument (nothing changed) or AdminError (no coordinator, or not
        durable on a majority) otherwise."""
        with self._lock:
            acting = el.may_act(self.election, self.clock.now())
            coordinator = self.election.coordinator
        if acting:
            return self._commit_here(change)
        if coordinator is None or coordinator not in self.peers:
            raise AdminError(f"{change.kind}: no coordinator right now (an election is "
                             "under way, or this node is cut off); nothing changed, try again")
        try:
            answer = self.peers[coordinator].call(
                "change", {"change": change.to_json()}, self._change_timeout())
        except PeerUnreachable as exc:
            outcome = ("the change may or may not have been made: check with status before "
                       "trying again") if exc.request_sent else "nothing changed, try again"
            raise AdminError(f"{change.kind}: the coordinator {coordinator} did not answer "
                             f"({exc}); {outcome}") from None
        except PyhaError as exc:
            raise AdminError(f"{change.kind}: the coordinator {coordinator} did not answer "
                             f"({exc}); the change may or may not have been made: check "
                             "with status before trying again") from None
        return _change_answer(change, answer)

    def _on_change(self, params: dict[str, Any], caller: str) -> dict[str, Any]:
        change = ch.Change.from_json(params.get("change"))
        try:
            with self._lock:
                acting = el.may_act(self.election, self.clock.now())
            if not acting:
                raise AdminError(f"{change.kind}: {self.node} is no longer the coordinator; "
                                 "nothing changed, try again")
            return {"ok": True, "result": self._commit_here(change).model_dump(mode="json")}
        except PyhaError as exc:
            return {"ok": False, "error": ch.error_fields(exc)}

    def _change_timeout(self) -> float:
        return self.options.call_timeout * 3

    def _commit_here(self, change: ch.Change) -> ChangeResult:
        with self._commit_lock:
            with self._lock:
                term, base = self.election.term, self.config
            made = ch.apply_change(base, change)
            new = made.model_copy(update={"epoch": max(base.epoch, self._epoch_seen) + 1})
            members: dict[str, Member] | None
            try:
                members = self._check(new)
            except ConfigError as exc:
                raise ch.invalid_config(change, exc) from None
            if self.source is not None:  # the directory holds it durably, and sets the epoch
                new, members = self._write_directory(change), None
            acked = self._spread(new, term, f"{change.describe()} (coordinator)", members)
        votes = sum(base_votes for n, base_votes in _votes(base).items() if n in acked)
        total = sum(_votes(base).values())
        if votes * 2 <= total and self.source is None:
            raise AdminError(
                f"{change.kind}: epoch {new.epoch} is on disk on {', '.join(acked)} only "
                f"({votes} of {total} votes): not acknowledged. It takes effect on the "
                "other nodes as they catch up, unless a coordinator without it is elected "
                "first; check status before trying again")
        log.info("configuration epoch %d committed (%s) on %s", new.epoch, change.describe(),
                 ", ".join(acked))
        return ChangeResult(change=change.describe(), epoch=new.epoch, coordinator=self.node,
                            acked=tuple(sorted(acked)))

    def _check(self, config: ClusterConfig) -> dict[str, Member]:
        """ConfigError unless the cluster can run `config` safely and this node can bind
        every resource of it; the bound resources."""
        problems = _setup_problems(config, self.node, self.witness is not None)
        if problems:
            raise ConfigError("the cluster could not run safely", tuple(problems))
        return self.local.check(config)

    def _spread(self, config: ClusterConfig, term: int, why: str,
                members: dict[str, Member] | None = None) -> list[str]:
        """Write `config` here, send it to every live member and adopt it; the nodes that
        have it on disk."""
        self.store.save(config)
        acked = [self.node, *self._replicate(config, term)]
        self._adopt(config, why, members)
        self._wake.set()
        return acked

    def _write_directory(self, change: ch.Change) -> ClusterConfig:
        assert self.source is not None
        try:
            return self.source.apply(lambda c: ch.apply_change(c, change))
        except ConfigError as exc:
            raise ch.invalid_config(change, exc) from None
        except DirectoryError as exc:
            raise AdminError(f"{change.kind}: the directory {self.source.name} did not take "
                             f"it ({exc}); nothing changed") from None

    def _follow_source(self, term: int) -> None:
        """Coordinator: make the cluster run the directory's newest configuration."""
        if self.source is None:
            return
        newest = self.source.newest()
        if newest is None:
            return
        mark = config_digest(newest)
        if mark in (config_digest(self.config), self._refused):
            return
        with self._commit_lock:
            try:
                members = self._check(newest)
            except ConfigError as exc:
                log.error("directory configuration epoch %d refused; the cluster keeps epoch "
                          "%d: %s", newest.epoch, self.config.epoch, exc)
                self._refused = mark
                self.source.audit.rejection(newest, exc)
                return
            old = self.config
            acked = self._spread(newest, term, f"from the directory {self.source.name}",
                                 members)
        self.source.audit.applied(old, newest)
        log.info("configuration epoch %d from the directory, on disk on %s", newest.epoch,
                 ", ".join(sorted(acked)))

    def _replicate(self, config: ClusterConfig, term: int) -> list[str]:
        """Send `config` to every live member at once; the nodes that wrote it to disk."""
        now = self.clock.now()
        with self._lock:
            targets = sorted(n for n in self.detector.members(now) - {self.node}
                             if n in self.peers)
        if not targets:
            return []
        body = {"term": term, "config": config.model_dump(mode="json")}
        pool = ThreadPoolExecutor(max_workers=len(targets))
        try:
            calls = {n: pool.submit(self.peers[n].call, "config", body,
                                    self.options.call_timeout) for n in targets}
            acked = []
            for node, future in calls.items():
                try:
                    answer = future.result()
                except PyhaError as exc:
                    log.warning("configuration epoch %d: %s did not take it: %s",
                                config.epoch, node, exc)
                    continue
                if answer.get("ok"):
                    acked.append(node)
                else:
                    log.warning("configuration epoch %d: %s refused it: %s", config.epoch,
                                node, answer.get("reason", "no reason given"))
            return acked
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _refusal_if_stale(self, term: int) -> dict[str, Any] | None:
        """The answer to a call from a coordinator of an older term; None if it is not."""
        with self._lock:
            if el.accept_action(self.election, term):
                return None
            return {"ok": False, "reason": f"term {term} is older than {self.election.term}"}

    def _on_config(self, params: dict[str, Any], caller: str) -> dict[str, Any]:
        """A configuration from the coordinator: check it, write it durably, adopt it."""
        refusal = self._refusal_if_stale(int(params["term"]))
        if refusal is not None:
            return refusal
        try:
            config = from_json(params.get("config"), f"configuration from {caller}")
            if config.cluster.name != self.options.name:
                raise ConfigError(f"cluster.name: {config.cluster.name!r} is not this "
                                  f"cluster ({self.options.name!r})")
            with self._commit_lock:
                if config_digest(config) == config_digest(self.config):
                    return {"ok": True, "epoch": config.epoch}
                members = self.local.check(config)
                self.store.save(config)
                self._adopt(config, f"from the coordinator {caller}", members)
        except ConfigError as exc:
            log.error("configuration epoch from %s refused: %s", caller, exc)
            return {"ok": False, "reason": str(exc)}
        return {"ok": True, "epoch": config.epoch}

    def _catch_up(self, reports: Mapping[str, NodeReport], term: int) -> None:
        """Send the configuration to members that run another one (they were away, or
        missed a change); note the highest epoch seen so the next change goes above it."""
        mine = config_digest(self.config)
        behind = [r.node for r in reports.values() if r.node != self.node
                  and r.digest and r.digest != mine]
        self._epoch_seen = max([self._epoch_seen, *(r.epoch for r in reports.values())])
        if not behind:
            return
        body = {"term": term, "config": self.config.model_dump(mode="json")}
        for node in behind:
            try:
                answer = self.peers[node].call("config", body, self.options.call_timeout)
            except PyhaError as exc:
                log.warning("could not send configuration epoch %d to %s: %s",
                            self.config.epoch, node, exc)
                continue
            (log.info if answer.get("ok") else log.warning)(
                "%s runs epoch %d: sent it epoch %d: %s", node, reports[node].epoch,
                self.config.epoch, "taken" if answer.get("ok") else answer.get("reason"))


def _setup_problems(config: ClusterConfig, node: str, witness: bool) -> list[str]:
    """Why this cluster cannot run safely from this node: quorum, endpoints, the name,
    and a witness tiebreaker without a witness."""
    problems = setup_problems({n.name: n.votes for n in config.nodes},
                              config.cluster.tiebreaker,
                              fencing=all(n.fence for n in config.nodes))
    problems += _endpoint_problems(config)
    if not witness and tb.TIEBREAK in tb.voters(config) \
            and config.cluster.tiebreaker is Tiebreaker.WITNESS:
        problems.append("cluster.tiebreaker: witness needs the LDAP directory: start the "
                        "server with --witness FILE (a bootstrap file with a [directory] "
                        "section)")
    names = [n.name for n in config.nodes]
    if node not in names:
        problems.append(f"--node: {node!r} is not a node of the cluster file "
                        f"({', '.join(names)})")
    return problems


def _endpoint_problems(config: ClusterConfig) -> list[str]:
    problems = []
    for i, node in enumerate(config.nodes):
        if not node.addresses:
            problems.append(f"nodes[{i}].addresses: {node.name} needs a heartbeat address")
        if not node.rpc:
            problems.append(f"nodes[{i}].rpc: {node.name} needs an address for calls")
    return problems


def _votes(config: ClusterConfig) -> dict[str, int]:
    return {n.name: n.votes for n in config.nodes}


def _change_answer(change: ch.Change, answer: Mapping[str, Any]) -> ChangeResult:
    """The coordinator's answer to a forwarded change, or its error raised here."""
    if answer.get("ok"):
        return ChangeResult.model_validate(answer["result"])
    raise ch.error_from_fields(change.kind, answer.get("error"))
