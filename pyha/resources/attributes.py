"""Node attributes: small named values per node that agents set, such as promotion scores."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "PROMOTION_PREFIX",
    "SECTIONS",
    "AttributeStore",
    "Section",
    "current_boot_id",
    "promotion_attribute",
]

Section = Literal["transient", "permanent", "utilization"]
"""transient: gone when the node reboots (Pacemaker's lifetime "reboot", the status
section); permanent: kept (lifetime "forever", the nodes section); utilization: what
the node offers (crm_attribute -z)."""
SECTIONS: tuple[Section, ...] = ("transient", "permanent", "utilization")
PROMOTION_PREFIX = "master-"
"""Promotion scores are the node attribute `master-<resource>`, named as Pacemaker names them."""
_FORMAT = 1
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_MAX_NAME = 255


def promotion_attribute(resource: str) -> str:
    """The attribute holding `resource`'s promotion score on a node."""
    return PROMOTION_PREFIX + resource


def current_boot_id() -> str:
    """This boot's id from the kernel, '' where there is none (transients then never expire)."""
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return ""


class AttributeStore:
    """Node attributes as JSON files under `directory`: `nodes/<node>.json` and `cluster.json`.

    Invariant: a file is only ever replaced whole (written beside it, then renamed) while
    the store's lock file is held exclusively, so readers never see half a file and
    concurrent writers, threads or processes, never lose each other's updates. A node
    file written during another boot has an empty transient section: transient
    attributes end with the boot, as Pacemaker's "reboot" lifetime says.
    """

    def __init__(self, directory: Path | str, *, boot_id: str | None = None) -> None:
        self.directory = Path(directory)
        self.boot_id = current_boot_id() if boot_id is None else boot_id

    # ---------------------------------------------------------------- node attributes

    def get(self, node: str, name: str, section: Section = "transient") -> str | None:
        """The value of attribute `name` of `node`, None if it is not set."""
        return self.section(node, section).get(name)

    def set(self, node: str, name: str, value: str, section: Section = "transient") -> None:
        """Set attribute `name` of `node` to `value`."""
        _check_name("attribute", name)
        self._update(self._node_file(node), _setter(section, name, str(value)))

    def delete(self, node: str, name: str, section: Section = "transient") -> bool:
        """Remove attribute `name` of `node`; True if it was set."""
        _check_name("attribute", name)
        found: list[bool] = []

        def drop(data: dict[str, Any]) -> None:
            found.append(data.setdefault(section, {}).pop(name, None) is not None)

        self._update(self._node_file(node), drop)
        return found[0]

    def section(self, node: str, section: Section = "transient") -> dict[str, str]:
        """All attributes of `node` in one section, by name."""
        return dict(self._read_node(node).get(section, {}))

    def nodes(self) -> list[str]:
        """The nodes that have an attribute file, sorted."""
        return sorted(p.stem for p in (self.directory / "nodes").glob("*.json"))

    def everywhere(self, name: str, section: Section = "transient") -> dict[str, str]:
        """The value of `name` on every node that has it, by node."""
        values = {node: self.get(node, name, section) for node in self.nodes()}
        return {node: value for node, value in values.items() if value is not None}

    def clear_transient(self, node: str) -> None:
        """Forget `node`'s transient attributes (it left the cluster or restarted)."""
        self._update(self._node_file(node), lambda data: data.update(transient={}))

    def promotion_score(self, node: str, resource: str) -> str | None:
        """`resource`'s promotion score on `node` as the agent set it ("10", "INFINITY")."""
        name = promotion_attribute(resource)
        return self.get(node, name) or self.get(node, name, "permanent")

    # ---------------------------------------------------------------- cluster options

    def option(self, name: str) -> str | None:
        """A cluster-wide option that an agent stored (crm_attribute --type crm_config)."""
        value = self._read(self.directory / "cluster.json").get("options", {}).get(name)
        return None if value is None else str(value)

    def set_option(self, name: str, value: str) -> None:
        """Store a cluster-wide option."""
        _check_name("option", name)
        self._update(self.directory / "cluster.json", _setter("options", name, str(value)))

    def delete_option(self, name: str) -> bool:
        """Remove a cluster-wide option; True if it was set."""
        _check_name("option", name)
        found: list[bool] = []

        def drop(data: dict[str, Any]) -> None:
            found.append(data.setdefault("options", {}).pop(name, None) is not None)

        self._update(self.directory / "cluster.json", drop)
        return found[0]

    # ---------------------------------------------------------------- files

    def _node_file(self, node: str) -> Path:
        _check_node(node)
        return self.directory / "nodes" / f"{node}.json"

    def _read_node(self, node: str) -> dict[str, Any]:
        return self._read(self._node_file(node))

    def _read(self, path: Path) -> dict[str, Any]:
        """The file's content; {} if it does not exist yet; stale transients dropped."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise OSError(f"attribute file {path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise OSError(f"attribute file {path} does not hold an object")
        if data.get("boot_id", self.boot_id) != self.boot_id:
            data["transient"] = {}
        return data

    def _update(self, path: Path, change: Callable[[dict[str, Any]], None]) -> None:
        """Read, change and replace `path` under the store's lock."""
        with self._locked():
            data = self._read(path)
            change(data)
            data.update(format=_FORMAT, boot_id=self.boot_id)
            _write_atomically(path, data)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # flock locks belong to an open file description, so a fresh open per call
        # excludes other threads of this process as well as other processes.
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


def _setter(section: str, name: str, value: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data.setdefault(section, {})[name] = value

    return change


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False, encoding="utf-8"
    ) as tmp:
        json.dump(data, tmp, indent=1, sort_keys=True)
        tmp.flush()
        os.fsync(tmp.fileno())
    try:
        os.replace(tmp.name, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp.name)
        raise


def _check_name(what: str, name: str) -> None:
    """ValueError unless `name` is a usable attribute or option name."""
    if not name or "\0" in name:
        raise ValueError(f"invalid {what} name {name!r}")


def _check_node(node: str) -> None:
    """ValueError unless `node` can name a file: no slash or NUL, no leading dot."""
    if not node or len(node) > _MAX_NAME or "/" in node or "\0" in node or node.startswith("."):
        raise ValueError(f"invalid node name {node!r}")
