"""The report: a job's cycles, health, failing users and signatures, live or as they stood at a past moment (read-only)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dashboard.analysis.health import Snapshot, State, advance, status_at
from dashboard.analysis.outcomes import (
    BUCKETS,
    OUTCOMES,
    Fact,
    Summary,
    bucket_of,
    empty_counts,
)
from dashboard.models import Cycle, EntraEvent, Exchange, Job, UserCycle
from dashboard.queries.cycles import _users, cycle_json, list_cycles
from dashboard.queries.health import _iso, health_json
from dashboard.queries.signatures import list_signatures
from dashboard.queries.users import failing_users, user_brief
from dashboard.settings import Settings, gap_us, thresholds_for, timing_for
from dashboard.times import format_ts, from_us, to_us
from dashboard.tracking.health import facts_of


def report(session: Session, job: Job, now: datetime, settings: Settings, *, cycles: int = 5,
           at: datetime | None = None) -> dict[str, Any]:
    """The job's latest cycles, health, failing users and signatures, as they stood at `at`.

    Shape documented in docs/api.md (stable: the scheduled report and the emails render it).
    Without `at` it is the live state at `now`; with `at` nothing is written and the cycle
    running at that moment is counted from its exchanges up to `at`.
    """
    if at is None:
        health = health_json(session, job, now, settings)
        listed = list_cycles(session, job, now, settings, limit=cycles)
        failing = failing_users(session, job)
        moment = now
    else:
        moment = at
        health = _replayed_health(session, job, at, settings)
        listed = [_replayed_cycle(session, job, c, at, settings) for c in session.scalars(
            select(Cycle).where(Cycle.job_id == job.id, Cycle.started_us <= to_us(at))
            .order_by(Cycle.started_us.desc()).limit(cycles))]
        failing = _replayed_failing(session, job, at)
    return {
        "schema": "provisioning-report/1",
        "job": {"name": job.name, "title": job.title, "source": job.source_system, "target": job.target_system},
        "generated_at": format_ts(now),
        "as_of": format_ts(moment),
        "health": health,
        "cycles": listed,
        "failing_users": failing,
        "signatures": list_signatures(session, job, limit=10),
    }


def _replayed_cycle(session: Session, job: Job, cycle: Cycle, at: datetime, settings: Settings) -> dict[str, Any]:
    at_us = to_us(at)
    latest = session.scalar(select(func.max(Cycle.started_us)).where(Cycle.job_id == job.id, Cycle.started_us <= at_us))
    data = cycle_json(session, job, cycle, at, settings, latest=cycle.started_us == latest)
    if cycle.ended_us <= at_us:
        return data
    folded: dict[int, Summary] = {}
    requests = failed = 0
    for exchange_id, user_id, ts_us, operation, status in session.execute(
        select(Exchange.id, Exchange.user_id, Exchange.ts_us, Exchange.operation, Exchange.status)
        .where(Exchange.cycle_id == cycle.id, Exchange.ts_us <= at_us)
    ):
        requests += 1
        failed += 1 if status == 0 or status >= 400 else 0
        if user_id is None or operation == "connection_test" or operation.startswith("group_"):
            continue
        one = Summary.of(Fact(exchange_id, ts_us, operation, status))
        folded[user_id] = folded[user_id].merge(one) if user_id in folded else one
    events = failed_events = 0
    for event_id, user_id, ts_us, operation, status, failed_event in session.execute(
        select(EntraEvent.id, EntraEvent.user_id, EntraEvent.activity_us, EntraEvent.operation, EntraEvent.status,
               EntraEvent.failed)
        .where(EntraEvent.cycle_id == cycle.id, EntraEvent.activity_us <= at_us)
    ):
        events += 1
        failed_events += 1 if failed_event else 0
        if user_id is None or operation == "staged_delete":
            continue
        one = Summary.of(Fact(-event_id, ts_us, operation, status))
        folded[user_id] = folded[user_id].merge(one) if user_id in folded else one
    counts = empty_counts()
    for summary in folded.values():
        counts[bucket_of(summary.operation)][summary.outcome.value] += 1
    data.update(requests=requests, failed_requests=failed, entra_events=events, failed_entra_events=failed_events,
                users=len(folded), counts=counts,
                totals={o: sum(counts[b][o] for b in BUCKETS) for o in OUTCOMES}, ended_at=format_ts(at),
                state="running" if data["state"] == "running" or cycle.ended_us > at_us else data["state"])
    return data


def _replayed_health(session: Session, job: Job, at: datetime, settings: Settings) -> dict[str, Any]:
    at_us = to_us(at)
    done = session.scalars(select(Cycle).where(Cycle.job_id == job.id, Cycle.ended_us < at_us - gap_us(settings))
                           .order_by(Cycle.ended_us)).all()
    snapshot, transitions = advance(Snapshot(), [facts_of(session, c) for c in done], thresholds_for(job, settings))
    last = max((value for value in (
        session.scalar(select(func.max(Exchange.ts_us)).where(Exchange.job_id == job.id, Exchange.ts_us <= at_us)),
        session.scalar(select(func.max(EntraEvent.activity_us)).where(EntraEvent.job_id == job.id,
                                                                     EntraEvent.activity_us <= at_us)),
    ) if value is not None), default=None)
    status = status_at(snapshot, now_us=at_us, last_traffic_us=last, timing=timing_for(job, settings),
                       thresholds=thresholds_for(job, settings))
    return {
        "job": job.name, "state": status.state.value, "reason": status.reason, "detail": status.detail,
        "explanation": status.explanation, "since": _iso(status.since), "next_expected_attempt": _iso(status.next_attempt),
        "disabled_at": _iso(status.disabled_at) if status.state in (State.QUARANTINED, State.DISABLED) else None,
        "quarantine_series_began": _iso(status.quarantine_series_began), "last_traffic": _iso(status.last_traffic),
        "recommended_action": None, "early_warning": None, "evidence": [],
        "transitions": [{"at": format_ts(from_us(t.at_us)), "old": t.old.value, "new": t.new.value, "reason": t.reason,
                         "detail": t.detail, "cycle_id": t.cycle_id, "evidence": list(t.evidence)} for t in reversed(transitions)],
    }


def _replayed_failing(session: Session, job: Job, at: datetime, limit: int = 50) -> list[dict[str, Any]]:
    at_us = to_us(at)
    latest = (select(UserCycle.user_id, func.max(Cycle.started_us).label("started"))
              .join(Cycle, Cycle.id == UserCycle.cycle_id)
              .where(Cycle.job_id == job.id, Cycle.started_us <= at_us).group_by(UserCycle.user_id).subquery())
    rows = session.execute(
        select(UserCycle.user_id).join(Cycle, Cycle.id == UserCycle.cycle_id)
        .join(latest, (latest.c.user_id == UserCycle.user_id) & (latest.c.started == Cycle.started_us))
        .where(UserCycle.outcome == "failure").limit(limit)
    ).scalars().all()
    return [user_brief(u) for u in _users(session, set(rows))]
