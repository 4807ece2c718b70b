"""Write stored exchanges back out as v1 JSON Lines (redacted): a support bundle."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import orjson
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from dashboard.models import Exchange, Job
from dashboard.queries.users import users_named
from dashboard.times import format_ts, from_us, to_us


def export_lines(
    session: Session,
    job: Job,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    user: str | None = None,
    batch: int = 5000,
) -> Iterator[bytes]:
    """Yield one JSON line per exchange in time order; `until` is exclusive.

    `user` matches any userName the person went by (case and Unicode variants too), or an
    externalId or SCIM id they had.
    """
    query = select(Exchange).where(Exchange.job_id == job.id)
    if since is not None:
        query = query.where(Exchange.ts_us >= to_us(since))
    if until is not None:
        query = query.where(Exchange.ts_us < to_us(until))
    if user:
        query = query.where(Exchange.user_id.in_(users_named(job.id, user)))  # any past name or id
    last: tuple[int, int] | None = None
    while True:  # keyset pages: bounded memory on any size
        page = query
        if last is not None:
            page = page.where(
                or_(Exchange.ts_us > last[0], (Exchange.ts_us == last[0]) & (Exchange.id > last[1]))
            )
        rows = session.scalars(page.order_by(Exchange.ts_us, Exchange.id).limit(batch)).all()
        if not rows:
            return
        for row in rows:
            yield orjson.dumps(line_of(row, job.name)) + b"\n"
        last = (rows[-1].ts_us, rows[-1].id)
        session.expunge_all()


def line_of(row: Exchange, job_name: str) -> dict:
    details = row.details()
    line: dict = {"ts": format_ts(from_us(row.ts_us)), "method": row.method, "path": details.get("path", "/")}
    if details.get("query") is not None:
        line["query"] = details["query"]
    line["status"] = row.status
    for key, value in (
        ("duration_ms", row.duration_ms),
        ("request_id", row.request_id),
        ("client", details.get("client")),
        ("job", job_name),
        ("cycle_id", row.cycle_key),
        ("request_headers", details.get("request_headers")),
        ("request_body", details.get("request_body")),
        ("response_body", details.get("response_body")),
    ):
        if value is not None:
            line[key] = value
    for key, value in (details.get("extra") or {}).items():
        line.setdefault(key, value)
    return line

