"""Provisioning logs: every exchange, filtered and paged by keyset, and streamed exports."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import and_, or_, select, text
from sqlalchemy.orm import Session

from dashboard.analysis.outcomes import OUTCOMES
from dashboard.formats.scim.parse import LineError, parse_ts
from dashboard.formats.scim.records import Operation
from dashboard.models import Cycle, Exchange, Job, ScimUser, UserCycle
from dashboard.queries.export import line_of
from dashboard.queries.users import users_matching, users_named
from dashboard.times import format_ts, from_us, to_us

OPERATIONS = tuple(op.value for op in Operation)
PAGE = 50


class FilterError(ValueError):
    """A bad filter value; the message names the field."""


@dataclass(frozen=True)
class LogFilter:
    since: datetime | None = None
    until: datetime | None = None
    outcome: str | None = None  # success, failure, skipped
    operation: str | None = None
    status: int | None = None
    user: str | None = None  # userName, externalId or SCIM id
    cycle: int | None = None
    text: str | None = None  # searched in the user, the error detail, scimType and request_id

    @classmethod
    def from_args(cls, args: Any) -> LogFilter:
        def when(name: str) -> datetime | None:
            value = (args.get(name) or "").strip()
            if not value:
                return None
            if len(value) == 10:
                value += "T00:00:00Z"
            elif len(value) == 16:  # <input type="datetime-local"> gives no seconds and no zone: UTC
                value += ":00Z"
            try:
                return parse_ts(value)
            except LineError:
                raise FilterError(f"'{name}' must be a date-time such as 2026-11-28T09:00:00Z") from None

        def number(name: str) -> int | None:
            value = (args.get(name) or "").strip()
            if not value:
                return None
            if not value.isdigit():
                raise FilterError(f"'{name}' must be a whole number")
            return int(value)

        outcome = (args.get("outcome") or "").strip() or None
        if outcome and outcome not in OUTCOMES:
            raise FilterError("'outcome' must be success, failure or skipped")
        operation = (args.get("operation") or "").strip() or None
        if operation and operation not in OPERATIONS:
            raise FilterError(f"'operation' must be one of {', '.join(OPERATIONS)}")
        return cls(
            since=when("since"), until=when("until"), outcome=outcome, operation=operation, status=number("status"),
            user=(args.get("user") or "").strip() or None, cycle=number("cycle"),
            text=(args.get("q") or "").strip()[:200] or None,
        )

    def to_args(self) -> dict[str, str]:
        args = {
            "since": format_ts(self.since) if self.since else None, "until": format_ts(self.until) if self.until else None,
            "outcome": self.outcome, "operation": self.operation,
            "status": str(self.status) if self.status is not None else None, "user": self.user,
            "cycle": str(self.cycle) if self.cycle is not None else None, "q": self.text,
        }
        return {k: v for k, v in args.items() if v}


@dataclass(frozen=True)
class LogPage:
    rows: list[dict[str, Any]]
    next_cursor: str | None  # "older": pass as `after`
    filter: LogFilter
    prev_cursor: str | None = None  # "newer": pass as `before`


def _query(job: Job, f: LogFilter):  # type: ignore[no-untyped-def]
    query = select(Exchange).where(Exchange.job_id == job.id)
    if f.since:
        query = query.where(Exchange.ts_us >= to_us(f.since))
    if f.until:
        query = query.where(Exchange.ts_us < to_us(f.until))
    if f.operation:
        query = query.where(Exchange.operation == f.operation)
    if f.status is not None:
        query = query.where(Exchange.status == f.status)
    if f.cycle is not None:
        query = query.where(Exchange.cycle_id == f.cycle)
    if f.outcome == "failure":
        # exactly the partial index's condition, so the database can use it
        query = query.where(text("(status = 0 OR status >= 400)"))  # parenthesised: it is one term
    elif f.outcome == "success":
        query = query.where(Exchange.status > 0, Exchange.status < 400)
    elif f.outcome == "skipped":
        skipped = select(UserCycle.cycle_id, UserCycle.user_id).where(UserCycle.outcome == "skipped").subquery()
        query = query.join(skipped, and_(skipped.c.cycle_id == Exchange.cycle_id, skipped.c.user_id == Exchange.user_id))
    if f.user:
        query = query.where(Exchange.user_id.in_(users_named(job.id, f.user)))  # any past name or id
    if f.text:
        users = users_matching(job.id, f.text)
        query = query.where(or_(Exchange.user_id.in_(users), Exchange.error_detail.like(f"%{f.text}%"),
                                Exchange.scim_type == f.text, Exchange.request_id == f.text))
    return query


def page(session: Session, job: Job, f: LogFilter, *, cursor: str | None = None, before: str | None = None,
         limit: int = PAGE) -> LogPage:
    """Newest first. The cursor is the (time, id) of the last row shown: a page deep into a
    million rows costs what the first page costs. `before` (the first row of a page) goes the
    other way: the `limit` rows just newer than it, still shown newest first.

    Neither direction counts: whether there are older (newer) rows is known from one extra row
    fetched, and a page reached through a cursor has rows on the side it came from (the cursor's
    own row, which matched the same filter)."""
    query = _query(job, f)
    if before:
        ts_us, exchange_id = _cursor(before, "before")
        query = query.where(Exchange.ts_us >= ts_us, or_(Exchange.ts_us > ts_us, Exchange.id > exchange_id))
        rows = session.scalars(query.order_by(Exchange.ts_us, Exchange.id).limit(limit + 1)).all()
        if len(rows) <= limit:  # back at the newest: the first page, full
            return page(session, job, f, limit=limit)
        newer, older = True, True
        rows = list(reversed(rows[:limit]))
    else:
        if cursor:
            ts_us, exchange_id = _cursor(cursor, "after")
            # "ts <= t AND (ts < t OR id < i)": the first term lets the index seek straight to the cursor
            query = query.where(Exchange.ts_us <= ts_us, or_(Exchange.ts_us < ts_us, Exchange.id < exchange_id))
        rows = session.scalars(query.order_by(Exchange.ts_us.desc(), Exchange.id.desc()).limit(limit + 1)).all()
        older = len(rows) > limit
        rows = rows[:limit]
        newer = bool(cursor)
    names = _names(session, {r.user_id for r in rows if r.user_id})
    return LogPage(
        rows=[row_json(r, names) for r in rows],
        next_cursor=f"{rows[-1].ts_us}.{rows[-1].id}" if older and rows else None,
        prev_cursor=f"{rows[0].ts_us}.{rows[0].id}" if newer and rows else None,
        filter=f,
    )


def _cursor(value: str, name: str) -> tuple[int, int]:
    try:
        return decode_cursor(value)
    except ValueError:
        raise FilterError(f"'{name}' is not a cursor this page gave out") from None


def decode_cursor(cursor: str) -> tuple[int, int]:
    """(time, id) of a keyset cursor "<ts_us>.<id>" (the last row of the page before); ValueError if not one."""
    ts, row_id = cursor.split(".", 1)
    return int(ts), int(row_id)


def _names(session: Session, ids: set[int]) -> dict[int, ScimUser]:
    if not ids:
        return {}
    return {u.id: u for u in session.scalars(select(ScimUser).where(ScimUser.id.in_(sorted(ids))))}


def row_json(row: Exchange, names: dict[int, ScimUser]) -> dict[str, Any]:
    details = row.details()
    user = names.get(row.user_id) if row.user_id else None
    bad = row.status == 0 or row.status >= 400
    return {
        "id": row.id,
        "ts": format_ts(from_us(row.ts_us)),
        "method": row.method,
        "path": details.get("path"),
        "query": details.get("query"),
        "status": row.status,
        "operation": row.operation,
        "outcome": "failure" if bad else "success",
        "tolerated": bad and not row.failed,
        "duration_ms": row.duration_ms,
        "user": (user.user_name or user.external_id or user.scim_id) if user else None,
        "user_id": row.user_id,
        "user_key": user.key if user else None,
        "cycle": row.cycle_id,
        "scimType": row.scim_type,
        "detail": row.error_detail,
        "request_id": row.request_id,
    }


CSV_COLUMNS = ("ts", "method", "path", "query", "status", "operation", "outcome", "duration_ms", "user", "cycle",
               "scimType", "detail", "request_id")


def export_csv(session: Session, job: Job, f: LogFilter, *, batch: int = 2000) -> Iterator[str]:
    """The filtered exchanges as CSV, oldest first, in pages (bounded memory; streamed)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield _drain(buffer)
    for rows, names in _batches(session, job, f, batch):
        for row in rows:
            data = row_json(row, names)
            writer.writerow([_safe_cell(data[c]) for c in CSV_COLUMNS])
        yield _drain(buffer)


def export_json(session: Session, job: Job, f: LogFilter, *, batch: int = 2000) -> Iterator[bytes]:
    """The filtered exchanges as v1 JSON Lines (redacted, re-ingestable), oldest first."""
    for rows, _names in _batches(session, job, f, batch):
        yield b"".join(orjson.dumps(line_of(row, job.name)) + b"\n" for row in rows)


def _batches(session: Session, job: Job, f: LogFilter, batch: int):  # type: ignore[no-untyped-def]
    query = _query(job, f)
    last: tuple[int, int] | None = None
    while True:
        q = query
        if last is not None:
            q = q.where(Exchange.ts_us >= last[0], or_(Exchange.ts_us > last[0], Exchange.id > last[1]))
        rows = session.scalars(q.order_by(Exchange.ts_us, Exchange.id).limit(batch)).all()
        if not rows:
            return
        yield rows, _names(session, {r.user_id for r in rows if r.user_id})
        last = (rows[-1].ts_us, rows[-1].id)
        session.expunge_all()


def _safe_cell(value: Any) -> Any:
    # A cell starting with = + - @ is a formula to a spreadsheet: a userName could be one.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _drain(buffer: io.StringIO) -> str:
    value = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return value


def cycles_of(session: Session, job: Job, limit: int = 100) -> list[Cycle]:
    return list(session.scalars(select(Cycle).where(Cycle.job_id == job.id).order_by(Cycle.started_us.desc()).limit(limit)))
