"""PURE time helpers, and the one convention for times in this code base.

Inside (rows, folds, indexes) a moment is an integer of microseconds since the epoch, in a name
ending in `_us`: 8 bytes, sorts the same on every backend, no zone to lose. At the edges (parsed
input, rules that take `now`, pages, emails, the API) it is an aware UTC `datetime`, in a name
ending in `_at` (or `now`). Convert with `to_us` / `from_us`; format for people and the API with
`format_ts`. Stored `DateTime` columns come back naive from SQLite: pass them through `aware`.
"""
from __future__ import annotations

from datetime import UTC, datetime

US = 1_000_000  # microseconds per second


def utc_now() -> datetime:
    """The wall clock, for row bookkeeping defaults (created_at) only: rules take `now` as a parameter."""
    return datetime.now(UTC)


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch: how exchange times are stored (8 bytes, sorts, any backend)."""
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def from_us(value: int) -> datetime:
    return datetime.fromtimestamp(value // 1_000_000, UTC).replace(microsecond=value % 1_000_000)


def aware(moment: datetime | None) -> datetime | None:
    """A stored time as aware UTC (SQLite hands DateTime columns back naive)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def format_ts(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, milliseconds when they are whole, microseconds otherwise."""
    if moment.microsecond % 1000 == 0:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
