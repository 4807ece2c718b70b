"""Cycles as the pages, the API and the reports show them: counts, kind, progress bar (read-only)."""
from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dashboard.analysis.health import early_warning
from dashboard.analysis.outcomes import BUCKETS, OUTCOMES, empty_counts
from dashboard.analysis.progress import kind_of, progress_of
from dashboard.formats.entra.jobstatus import parse_job_status
from dashboard.models import (
    Cycle,
    EntraEvent,
    EntraJobStatus,
    Exchange,
    Job,
    ScimUser,
    Signature,
    UserCycle,
)
from dashboard.queries.signatures import signature_json
from dashboard.queries.users import user_brief
from dashboard.settings import Settings, gap_us, thresholds_for
from dashboard.times import US, format_ts, to_us


def cycle_kind(session: Session, job: Job, cycle: Cycle) -> str:
    earlier, largest = session.execute(
        select(func.count(), func.max(Cycle.users)).where(Cycle.job_id == job.id, Cycle.started_us < cycle.started_us)
    ).one()
    return kind_of(earlier_cycles=earlier, largest_earlier=largest, scope_size=job.scope_size,
                   looked_up_users=cycle.looked_up_users)


def cycle_json(session: Session, job: Job, cycle: Cycle, now: datetime, settings: Settings, *, latest: bool) -> dict[str, Any]:
    counts = orjson.loads(cycle.counts or "{}") or empty_counts()
    totals = {o: sum(counts.get(b, {}).get(o, 0) for b in BUCKETS) for o in OUTCOMES}
    running = latest and to_us(now) - cycle.ended_us <= gap_us(settings)
    return {
        "id": cycle.id,
        "cycle_id": cycle.key,
        "kind": cycle_kind(session, job, cycle),
        "state": "running" if running else "completed",
        "started_at": format_ts(cycle.started_at),
        "ended_at": format_ts(cycle.ended_at),
        "duration_s": round((cycle.ended_us - cycle.started_us) / US, 3),
        "requests": cycle.requests,
        "failed_requests": cycle.failed_requests,
        "entra_events": cycle.events or 0,
        "failed_entra_events": cycle.failed_events or 0,
        "staged_deletes": cycle.staged_deletes or 0,
        "source": _cycle_source(cycle),
        "users": cycle.users,
        "counts": counts,
        "totals": totals,
        "connection_tests": cycle.connection_tests,
        "rejected_credentials": cycle.rejected_credentials,
        "lookup_404s": cycle.lookup_404s,
        "reference_failures": cycle.reference_failures,
    }


def _cycle_source(cycle: Cycle) -> str:
    """Which traffic a cycle was seen in: "scim" (request log), "entra" (provisioning logs) or "both"."""
    if cycle.events and cycle.requests:
        return "both"
    return "entra" if cycle.events else "scim"


def current_cycle(session: Session, job: Job, now: datetime, settings: Settings) -> dict[str, Any] | None:
    """The latest cycle with its progress bar (running or last completed) and steady state."""
    cycle = session.scalars(select(Cycle).where(Cycle.job_id == job.id, Cycle.started_us <= to_us(now))
                            .order_by(Cycle.started_us.desc()).limit(1)).first()
    if cycle is None:
        return None
    data = cycle_json(session, job, cycle, now, settings, latest=True)
    data["progress"] = progress(session, job, cycle, data, now)
    thresholds = thresholds_for(job, settings)
    warning = early_warning(
        processed=cycle.users, failed=data["totals"]["failure"], rejected_credentials=cycle.rejected_credentials,
        requests=cycle.requests + (cycle.events or 0), lookup_404s=cycle.lookup_404s, expected=data["progress"]["expected_users"],
        thresholds=thresholds,
    )
    data["running"] = data["state"] == "running"
    data["early_warning"] = asdict(warning) if data["running"] else None
    data["steady_state_since"] = steady_state_since(session, job, now, settings)
    return data


def progress(session: Session, job: Job, cycle: Cycle, data: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The progress bar of `cycle` (analysis.progress): processed users of expected, and its
    `tone` from the cycle alone (pages that know the job's state colour the bar by that)."""
    earlier = session.scalars(select(Cycle.users).where(Cycle.job_id == job.id, Cycle.started_us < cycle.started_us)
                              .order_by(Cycle.started_us.desc()).limit(50)).all()
    running = data["state"] == "running"
    rejected = bool(cycle.requests) and cycle.rejected_credentials >= cycle.requests
    result = progress_of(kind=data["kind"], running=running, processed=cycle.users,
                         earlier_users=earlier, scope_size=job.scope_size, started_us=cycle.started_us,
                         ended_us=cycle.ended_us, now_us=to_us(now), entra_expected=_entra_expected(session, job),
                         last_complete=max(earlier, default=0) or None, rejected=rejected)
    result["tone"] = tone_of(running=running, quiet=result["quiet"], rejected=rejected,
                             failed=data["totals"]["failure"])
    return result


def tone_of(*, running: bool, quiet: bool, rejected: bool, failed: int, state: str | None = None) -> str:
    """The progress bar's colour: the job's state when known, else what the cycle shows."""
    if state in ("quarantined", "disabled", "stalled", "warning"):
        return state
    if rejected:
        return "quarantined"
    if quiet:
        return "stalled"
    if failed:
        return "warning"
    return "running" if running else (state or "healthy")


def _entra_expected(session: Session, job: Job) -> int | None:
    """Entra's own count of what the cycle covers, when its status counts users (not pages)."""
    row = session.scalars(select(EntraJobStatus).where(EntraJobStatus.job_id == job.id)
                          .order_by(EntraJobStatus.observed_us.desc(), EntraJobStatus.id.desc()).limit(1)).first()
    if row is None:
        return None
    for item in parse_job_status(orjson.loads(row.data)).progress:
        if item.units and item.units.lower() not in ("pages", "page") and item.total_units:
            return item.total_units
    return None


def steady_state_since(session: Session, job: Job, now: datetime, settings: Settings) -> str | None:
    """When the first initial cycle completed (Entra's steadyStateFirstAchievedTime)."""
    first = session.scalars(select(Cycle).where(Cycle.job_id == job.id).order_by(Cycle.started_us).limit(1)).first()
    if first is None:
        return None
    later = session.scalar(select(func.count()).where(Cycle.job_id == job.id, Cycle.started_us > first.started_us))
    if later or to_us(now) - first.ended_us > gap_us(settings):
        return format_ts(first.ended_at)
    return None


def list_cycles(session: Session, job: Job, now: datetime, settings: Settings, *, limit: int = 50,
                before: int | None = None) -> list[dict[str, Any]]:
    query = select(Cycle).where(Cycle.job_id == job.id)
    if before is not None:
        query = query.where(Cycle.started_us < before)
    rows = session.scalars(query.order_by(Cycle.started_us.desc()).limit(limit)).all()
    latest = session.scalar(select(func.max(Cycle.started_us)).where(Cycle.job_id == job.id))
    return [cycle_json(session, job, c, now, settings, latest=c.started_us == latest) for c in rows]


def cycle_detail(session: Session, job: Job, cycle: Cycle, now: datetime, settings: Settings) -> dict[str, Any]:
    latest = session.scalar(select(func.max(Cycle.started_us)).where(Cycle.job_id == job.id))
    data = cycle_json(session, job, cycle, now, settings, latest=cycle.started_us == latest)
    previous = session.scalars(select(Cycle).where(Cycle.job_id == job.id, Cycle.started_us < cycle.started_us)
                               .order_by(Cycle.started_us.desc()).limit(1)).first()
    mine = _outcomes(session, cycle.id)
    before = _outcomes(session, previous.id) if previous else {}
    failed_now = {u for u, o in mine.items() if o == "failure"}
    failed_before = {u for u, o in before.items() if o == "failure"}
    users = {u.id: u for u in _users(session, failed_now | failed_before)}
    data["previous_cycle_id"] = previous.id if previous else None
    data["diff"] = {
        "new_failures": [user_brief(users[u]) for u in sorted(failed_now - failed_before) if u in users],
        "fixed": [user_brief(users[u]) for u in sorted(failed_before - failed_now) if u in mine and u in users],
        "still_failing": [user_brief(users[u]) for u in sorted(failed_now & failed_before) if u in users],
    }
    data["signatures"] = cycle_signatures(session, cycle)
    return data


def cycle_signatures(session: Session, cycle: Cycle, limit: int = 10) -> list[dict[str, Any]]:
    """The cycle's failures by signature, from its exchanges and its Entra events."""
    rows = session.execute(
        select(Exchange.sig_id, func.count(), func.count(func.distinct(Exchange.user_id)))
        .where(Exchange.cycle_id == cycle.id, Exchange.sig_id.is_not(None))
        .group_by(Exchange.sig_id).order_by(func.count().desc()).limit(limit)
    ).all()
    if cycle.failed_events:
        rows += session.execute(
            select(EntraEvent.sig_id, func.count(), func.count(func.distinct(EntraEvent.user_id)))
            .where(EntraEvent.cycle_id == cycle.id, EntraEvent.sig_id.is_not(None))
            .group_by(EntraEvent.sig_id).order_by(func.count().desc()).limit(limit)
        ).all()
        merged: dict[int, list[int]] = {}
        for sig_id, count, users in rows:  # a signature in both sources: the larger user count
            seen = merged.setdefault(sig_id, [0, 0])
            seen[0], seen[1] = seen[0] + count, max(seen[1], users)
        rows = sorted(((sig_id, c, u) for sig_id, (c, u) in merged.items()), key=lambda r: -r[1])[:limit]
    out = []
    for sig_id, exchanges, users in rows:
        sig = session.get(Signature, sig_id)
        if sig is not None:
            out.append({**signature_json(sig), "in_cycle": {"exchanges": exchanges, "users": users}})
    return out


def _outcomes(session: Session, cycle_id: int) -> dict[int, str]:
    return dict(session.execute(select(UserCycle.user_id, UserCycle.outcome).where(UserCycle.cycle_id == cycle_id)).all())


def _users(session: Session, ids: set[int]) -> list[ScimUser]:
    ordered = sorted(ids)
    found: list[ScimUser] = []
    for start in range(0, len(ordered), 500):
        found.extend(session.scalars(select(ScimUser).where(ScimUser.id.in_(ordered[start:start + 500]))).all())
    return found
