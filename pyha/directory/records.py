"""What the coordinator writes next to the configuration: status and audit records."""

from __future__ import annotations

import time
import uuid

from pydantic import BaseModel, ConfigDict, Field

from pyha.model.status import Role


class Record(BaseModel):
    """Base of the records: immutable, unknown fields are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class StatusRecord(Record):
    """Where one resource runs and how it is, as one node sees it (one entry per pair)."""

    resource: str
    node: str
    role: Role
    since: float = 0.0
    """Wall-clock seconds when the current role began."""
    fail_count: int = Field(default=0, ge=0)
    last_failure: float | None = None
    """Wall-clock seconds of the last failure, if any."""
    failed_operation: str = ""
    message: str = ""


class NodeStatusRecord(Record):
    """Whether a node is a live member, and when it was last heard, as the coordinator
    sees it (the attributes of its cn=<node> entry under ou=status)."""

    node: str
    online: bool
    last_seen: float | None = None
    """Wall-clock seconds."""


class AuditRecord(Record):
    """Who changed what, when; `id` orders records by time and keeps them unique."""

    id: str
    when: float
    """Wall-clock seconds."""
    actor: str
    """A bind DN, or a pyha component such as `pyha-server@n1`."""
    action: str
    """add, modify, delete, apply, reject or import."""
    subjects: tuple[str, ...] = ()
    """DNs or names of what changed."""
    changes: tuple[str, ...] = ()
    """What changed, in words, one line each."""
    epoch: int | None = None

    @classmethod
    def new(cls, when: float, actor: str, action: str, *, subjects: tuple[str, ...] = (),
            changes: tuple[str, ...] = (), epoch: int | None = None) -> AuditRecord:
        """A record with a fresh id: UTC time to the microsecond, then a random suffix."""
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(when))
        micros = round((when % 1) * 1_000_000) % 1_000_000
        ident = f"{stamp}.{micros:06d}Z-{uuid.uuid4().hex[:8]}"
        return cls(id=ident, when=when, actor=actor, action=action, subjects=subjects,
                   changes=changes, epoch=epoch)
