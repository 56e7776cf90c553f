"""An in-memory directory for tests: the same entries, codecs and checks as LDAP, no server."""

from __future__ import annotations

from pyha.clock import Clock
from pyha.directory.filestore import TableStore
from pyha.directory.store import OnChange, OnReject
from pyha.directory.tree import Layout
from pyha.directory.watch import ConfigFollower
from pyha.errors import DirectoryError
from pyha.model.config import ClusterConfig

__all__ = ["MemoryDirectory", "MemoryWatch", "sample_config"]


class MemoryWatch:
    """A watch on a MemoryDirectory: checks run in the writer's thread, synchronously."""

    def __init__(self, directory: MemoryDirectory, follower: ConfigFollower) -> None:
        self.directory = directory
        self.follower = follower

    def poke(self) -> None:
        """The directory changed: check at once, in the writer's thread."""
        self.follower.check()

    def stop(self) -> None:
        """Stop being told about changes."""
        self.directory._unwatch(self)


class MemoryDirectory(TableStore):
    """A Directory held in a dict, for unit tests and for the contract suite.

    Invariant: it behaves like the LDAP backend for every Directory call (same entries,
    same errors); watchers are told after each complete change, in the writer's thread,
    so tests never wait. `put_entry` and `delete_entry` write raw entries the way
    `ldapmodify` would, without pyha's checks.
    """

    def __init__(self, base_dn: str = "dc=pyha,dc=test", cluster: str = "pyha", *,
                 clock: Clock | None = None, actor: str = "cn=admin,dc=pyha,dc=test") -> None:
        super().__init__(Layout(base_dn, cluster), actor=actor, clock=clock)
        self.available = True
        """Set to False to make every call fail as if the server were down."""

    @property
    def name(self) -> str:
        """memory: and the cluster DN."""
        return f"memory:{self.layout.cluster_dn}"

    def _fresh(self) -> None:
        if not self.available:
            raise DirectoryError(f"{self.name}: cannot reach the directory (it is down)")

    # -- watching ----------------------------------------------------------------------------------

    def watch(self, on_change: OnChange, on_reject: OnReject | None = None, *,
              known: ClusterConfig | None = None) -> MemoryWatch:
        """Register a watcher; if `known` is None it gets the current config at once."""
        follower = ConfigFollower(self.load, on_change, on_reject, known=known, name=self.name)
        watch = MemoryWatch(self, follower)
        self._add_watch(watch)
        if known is None:
            follower.check()
        return watch

    def recheck(self) -> None:
        """Have every watcher load again (as an LDAP watcher does after reconnecting)."""
        self._tree_changed()


def sample_config(name: str = "pyha") -> ClusterConfig:
    """A configuration in which every field of every model differs from its default.

    Round-trip tests of a backend store and load it; a test of this module checks that
    no field was left at its default, so a field added to the models shows up there.
    """
    return ClusterConfig.from_mapping({
        "cluster": {
            "name": name, "stickiness": "INFINITY", "no_quorum_policy": "freeze",
            "maintenance": True, "dead_after": 0.1234, "heartbeat_interval": "50ms",
            "tiebreaker": "witness", "fence_race_delay": 7.5, "cycle_interval": "2s",
            "call_timeout": "3s", "key_file": "/etc/pyha/cluster.key",
            "probe_departures": False, "recovery_without_fencing": True,
            "state_dir": "/var/lib/pyha-x",
            "plugin_paths": ["/opt/b", "/opt/a"],
        },
        "epoch": 7,
        "nodes": [
            {"name": "n2", "addresses": ["10.0.0.2:5405", "[fe80::1]:5405"],
             "rpc": "10.0.0.2:5406", "votes": 2, "standby": True, "maintenance": True,
             "attributes": {"rack": "r1", "note": "a=b, c"},
             "fence": {"kind": "command", "off": ["ipmitool", "-H", "bmc2", "power", "off"],
                       "status": ["ipmitool", "-H", "bmc2", "power", "status"]}},
            {"name": "n1", "fence": {"kind": "namespace", "namespace": "pyha-n1"}},
        ],
        "resource_types": [{"name": "web", "plugin": "python:pyha:process",
                            "description": "a web server, ünïcode"}],
        "groups": [
            {"name": "g", "description": "the first group",
             "meta": {"target_role": "stopped", "stickiness": -5},
             "resources": [
                 {"name": "b", "type": "dummy", "description": "b: a dummy",
                  "params": {"s": "1", "i": 1, "f": 1.5, "t": True, "l": ["a", "b c"],
                             "q": '"x"', "e": "", "sp": " a ", "eq": "k=v"},
                  "operations": [
                      {"name": "monitor", "interval": "10s", "timeout": "20s",
                       "on_fail": "stop", "role": "promoted"},
                      {"name": "start", "timeout": "1m"}],
                  "meta": {"target_role": "promoted", "stickiness": "-INFINITY",
                           "migration_threshold": 5, "failure_timeout": 0}},
                 {"name": "a", "type": "ocf:heartbeat:Dummy"},
             ]},
            {"name": "g2", "resources": [{"name": "c", "type": "dummy"}]},
        ],
        "constraints": [
            {"kind": "order", "id": "o1", "first": "g", "then": "g2", "mandatory": False,
             "symmetrical": False},
            {"kind": "location", "id": "l1", "group": "g", "node": "n1", "score": 50,
             "expires": 1_767_225_600.123456},
            {"kind": "colocation", "id": "c1", "group": "g2", "with_group": "g",
             "score": -100},
        ],
    })
