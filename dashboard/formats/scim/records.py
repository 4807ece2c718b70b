"""What one SCIM exchange is, once parsed: the records shared by ingestion and analysis."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Operation(StrEnum):
    """What a request means for provisioning (the contract's table)."""

    LOOKUP = "lookup"
    CREATE = "create"
    UPDATE = "update"
    DISABLE = "disable"
    ENABLE = "enable"
    DELETE = "delete"
    READ = "read"
    GROUP_LOOKUP = "group_lookup"
    GROUP_CREATE = "group_create"
    GROUP_UPDATE = "group_update"
    GROUP_DELETE = "group_delete"
    GROUP_READ = "group_read"
    CONNECTION_TEST = "connection_test"
    OTHER = "other"


USER_WRITES = frozenset(
    {Operation.CREATE, Operation.UPDATE, Operation.DISABLE, Operation.ENABLE, Operation.DELETE}
)


@dataclass(frozen=True, slots=True)
class ScimError:
    """The SCIM error a failed exchange carries (RFC 7644 section 3.12)."""

    status: int
    scim_type: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Exchange:
    """One HTTP exchange of the v1 log, already validated (bodies may still hold secrets)."""

    ts: datetime
    method: str
    path: str
    status: int
    query: str | None = None
    duration_ms: float | None = None
    request_id: str | None = None
    client: str | None = None
    job: str | None = None
    cycle_id: str | None = None
    request_headers: dict[str, Any] | None = None
    request_body: Any = None
    response_body: Any = None
    extra: dict[str, Any] = field(default_factory=dict)  # unknown fields: kept, never rejected


@dataclass(frozen=True, slots=True)
class ParseProblem:
    """A line that could not become an Exchange: kept with its number and the reason."""

    line_no: int
    reason: str
    raw: str  # truncated and redacted before storage


@dataclass(frozen=True, slots=True)
class Classified:
    """What an exchange means: its operation, the user it concerns, and its failure."""

    operation: Operation
    failed: bool
    user_name: str | None = None
    external_id: str | None = None
    scim_id: str | None = None  # the target's id, from the path or the response
    error: ScimError | None = None
    found: bool | None = None  # a lookup or read answered: the account is there (True) or not (False)
