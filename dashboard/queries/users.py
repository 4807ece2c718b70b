"""People as the pages and the API show them: briefs, lists, lookup by any name they had, timeline (read-only)."""
from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import and_, or_, select, union
from sqlalchemy.orm import Session

from dashboard.analysis.identity import NAME, SCIM, name_key, visible
from dashboard.analysis.outcomes import Summary
from dashboard.models import Cycle, Exchange, Job, ScimUser, ScimUserAlias, UserCycle
from dashboard.queries.exchanges import exchange_json
from dashboard.times import format_ts, from_us


def user_brief(user: ScimUser) -> dict[str, Any]:
    return {
        "id": user.id,
        "key": user.key,
        "userName": user.user_name,
        "externalId": user.external_id,
        "scim_id": user.scim_id,
        "state": user.state,
        "provisioned": user.provisioned,
        "streak": user.streak,
        "failing_since": format_ts(from_us(user.failing_since_us)) if user.failing_since_us else None,
        "failing_since_cycle_id": user.failing_since_cycle_id,
        "last_seen": format_ts(from_us(user.last_seen_us)) if user.last_seen_us else None,
    }


def list_users(session: Session, job: Job, *, state: str | None = None, limit: int = 100,
               after: int | None = None, search: str | None = None) -> dict[str, Any]:
    query = select(ScimUser).where(ScimUser.job_id == job.id)
    if state:
        query = query.where(ScimUser.state == state)
    if search:
        query = query.where(ScimUser.id.in_(users_matching(job.id, search)))
    if after is not None:
        query = query.where(ScimUser.id > after)
    rows = session.scalars(query.order_by(ScimUser.id).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {"users": [user_brief(u) for u in rows], "next_after": rows[-1].id if more and rows else None}


def find_user(session: Session, job: Job, key: str) -> ScimUser | None:
    """By any userName they went by (case and Unicode variants too), externalId or SCIM id they
    had, or our numeric id. A name two people held finds the one who holds it now, else the
    latest to have held it."""
    # (the ids are the job's already: a job_id term here had SQLite read the job's people through
    # its (job_id, state) index instead of looking the few ids up)
    query = select(ScimUser).where(ScimUser.id.in_(users_named(job.id, key)))
    now_named = ScimUser.name_key == name_key(key)
    found = session.scalars(query.order_by(now_named.desc(), ScimUser.name_us.desc(), ScimUser.id).limit(1)).first()
    if found is None and key.isdigit():
        found = session.scalars(select(ScimUser).where(ScimUser.job_id == job.id, ScimUser.id == int(key))).first()
    return found


def user_timeline(session: Session, job: Job, user: ScimUser, *, limit: int = 500) -> dict[str, Any]:
    """Everything about one user in one place: each cycle's outcome and the exchanges, with the
    failing ones in full (redacted)."""
    cycles = session.execute(
        select(UserCycle, Cycle).join(Cycle, Cycle.id == UserCycle.cycle_id)
        .where(UserCycle.user_id == user.id).order_by(Cycle.started_us)
    ).all()
    exchanges = session.scalars(select(Exchange).where(Exchange.user_id == user.id)
                                .order_by(Exchange.ts_us.desc()).limit(limit)).all()
    by_cycle: dict[int | None, list[dict[str, Any]]] = {}
    for exchange in reversed(exchanges):
        by_cycle.setdefault(exchange.cycle_id, []).append(exchange_json(session, exchange, full=exchange.failed or exchange.status >= 400 or exchange.status == 0))
    return {
        "user": user_brief(user),
        "names": user_history(session, user),
        "cycles": [
            {
                "cycle": {"id": c.id, "cycle_id": c.key, "started_at": format_ts(c.started_at)},
                "operation": uc.operation,
                "outcome": uc.outcome,
                "attempts": Summary.from_dict(orjson.loads(uc.summary)).writes,
                "exchanges": by_cycle.get(c.id, []),
            }
            for uc, c in cycles
        ],
        "truncated": len(exchanges) >= limit,
    }


def user_history(session: Session, user: ScimUser) -> dict[str, list[dict[str, Any]]]:
    """The names the person went by and the SCIM ids they had, oldest first, each with its first
    and last sighting and the cycles of those sightings ("alice until cycle 5, alice.smith since")."""
    aliases = session.scalars(select(ScimUserAlias).where(ScimUserAlias.user_id == user.id)
                              .order_by(ScimUserAlias.first_us, ScimUserAlias.id)).all()
    times = sorted({t for a in aliases for t in (a.first_us, a.last_us)})
    cycles: dict[int, int | None] = {}
    for t in times:
        cycles[t] = session.scalars(select(Cycle.id).where(
            Cycle.job_id == user.job_id, Cycle.started_us <= t, Cycle.ended_us >= t).limit(1)).first()
    out: dict[str, list[dict[str, Any]]] = {"userName": [], "scim_id": [], "externalId": []}
    kinds = {"n": "userName", "s": "scim_id", "e": "externalId"}
    for alias in aliases:
        out[kinds[alias.kind]].append({
            "value": alias.value, "shown": visible(alias.value), "first_seen": format_ts(from_us(alias.first_us)),
            "last_seen": format_ts(from_us(alias.last_us)),
            "first_cycle": cycles.get(alias.first_us), "last_cycle": cycles.get(alias.last_us),
            "current": (alias.kind == "n" and alias.key == user.name_key) or (alias.kind == "s" and alias.key == user.scim_id)
                       or alias.kind == "e",
        })
    return out


def failing_users(session: Session, job: Job, *, limit: int = 50) -> list[dict[str, Any]]:
    rows = session.scalars(select(ScimUser).where(ScimUser.job_id == job.id, ScimUser.state == "failing")
                           .order_by(ScimUser.streak.desc(), ScimUser.id).limit(limit)).all()
    return [user_brief(u) for u in rows]


def users_named(job_id: int, text: str):  # type: ignore[no-untyped-def]
    """SELECT of the ids of people who go or went by this name (any case or Unicode variant), or
    have or had this externalId or SCIM id: a person is found by any of their names or ids."""
    a, u = ScimUserAlias.__table__.c, ScimUser.__table__.c
    key = name_key(text)
    # One SELECT per column, each on its own (job_id, column) index: with the columns OR-ed in one
    # SELECT, SQLite read every person of the job (97 ms for a user page at 100,000 people).
    now = [u.external_id == text, u.scim_id == text] + ([u.name_key == key] if key else [])
    before = [and_(a.kind == SCIM, a.key == text)] + ([and_(a.kind == NAME, a.key == key)] if key else [])
    return union(*(select(u.id).where(u.job_id == job_id, term) for term in now),
                 *(select(a.user_id).where(a.job_id == job_id, term) for term in before))


def users_matching(job_id: int, text: str):  # type: ignore[no-untyped-def]
    """SELECT of the ids of people with a present or past name, or an externalId, containing
    `text`, or the SCIM id `text` (the search box)."""
    a, u = ScimUserAlias.__table__.c, ScimUser.__table__.c
    key = name_key(text) or text.lower()
    like_key = "%" + key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    like_raw = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return union(
        select(u.id).where(u.job_id == job_id, or_(u.name_key.like(like_key, escape="\\"),
                                                   u.external_id.like(like_raw, escape="\\"), u.scim_id == text)),
        select(a.user_id).where(a.job_id == job_id, or_(and_(a.kind == NAME, a.key.like(like_key, escape="\\")),
                                                        and_(a.kind == SCIM, a.key == text))),
    )
