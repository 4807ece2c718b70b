"""Keeps a job's health judgement current: judges the cycles completed since the last judgement and
records each transition. Only the scheduler's evaluation writes here (`evaluate`); pages and the
API read `judge` and `clock_transition`, which write nothing."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import bindparam, delete, func, or_, select
from sqlalchemy.orm import Session

from dashboard.analysis.health import (
    CycleFacts,
    HealthStatus,
    Snapshot,
    State,
    Transition,
    advance,
    status_at,
)
from dashboard.analysis.outcomes import BUCKETS, empty_counts
from dashboard.db import insert_ignoring
from dashboard.models import (
    Cycle,
    EntraEvent,
    Exchange,
    HealthTransition,
    Job,
    JobAnalysis,
)
from dashboard.settings import Settings, gap_us, thresholds_for, timing_for
from dashboard.times import to_us, utc_now


@dataclass(frozen=True)
class Judgement:
    """The job's health judged up to `judged_until_us`, with the transitions not yet recorded."""

    snapshot: Snapshot
    pending: tuple[Transition, ...]
    judged_until_us: int | None
    void_recorded: bool  # earlier cycles changed: the recorded (non-clock) transitions no longer hold


def judge(session: Session, job: Job, now: datetime, settings: Settings) -> Judgement:
    """Judge the cycles completed since the last recorded judgement (all of them when earlier
    cycles changed), without writing: pages and the API read this."""
    state = session.get(JobAnalysis, job.id)
    snapshot = Snapshot.from_dict(json.loads(state.snapshot or "{}")) if state else Snapshot()
    judged = state.judged_until_us if state else None
    void = bool(state and state.dirty_from_us is not None and judged is not None and state.dirty_from_us <= judged)
    if void:
        snapshot, judged = Snapshot(), None
    completed_before = to_us(now) - gap_us(settings)
    query = select(Cycle).where(Cycle.job_id == job.id, Cycle.ended_us < completed_before)
    if judged is not None:
        query = query.where(Cycle.ended_us > judged)
    cycles = session.scalars(query.order_by(Cycle.ended_us)).all()
    transitions: list[Transition] = []
    if cycles:
        snapshot, transitions = advance(snapshot, [facts_of(session, c) for c in cycles], thresholds_for(job, settings))
        judged = cycles[-1].ended_us
    return Judgement(snapshot, tuple(transitions), judged, void)


def refresh_health(session: Session, job: Job, now: datetime, settings: Settings) -> Snapshot:
    """Record the judgement (`judge`) and each transition it found. Idempotent."""
    judgement = judge(session, job, now, settings)
    state = session.get(JobAnalysis, job.id)
    if state is None:
        state = JobAnalysis(job_id=job.id, snapshot="{}")
        session.add(state)
        session.flush()
    if judgement.void_recorded:
        session.execute(delete(HealthTransition).where(
            HealthTransition.job_id == job.id,
            or_(HealthTransition.reason.is_(None), HealthTransition.reason != "clock"),
        ))
    for t in judgement.pending:
        _record(session, job, t.at_us, t.old.value, t.new.value, t.reason, t.detail, list(t.evidence), t.cycle_id)
    state.snapshot = json.dumps(judgement.snapshot.to_dict())
    state.judged_until_us = judgement.judged_until_us
    state.dirty_from_us = None
    session.commit()
    return judgement.snapshot


def facts_of(session: Session, cycle: Cycle) -> CycleFacts:
    counts = orjson.loads(cycle.counts or "{}") or empty_counts()
    succeeded = sum(counts.get(b, {}).get("success", 0) for b in BUCKETS)
    failed = sum(counts.get(b, {}).get("failure", 0) for b in BUCKETS)
    deletes = sum(counts.get(b, {}).get(o, 0) for b in ("delete", "disable") for o in ("success", "failure"))
    deletes += cycle.staged_deletes or 0  # held back by Entra's accidental-deletion prevention: they count [ACC]
    evidence: tuple[int, ...] = ()
    if cycle.rejected_credentials or cycle.lookup_404s or failed:
        conn = session.connection()  # Core, not the ORM: plain ids, without the ORM's per-statement work
        evidence = tuple(conn.execute(_EXCHANGE_EVIDENCE, {"cycle_id": cycle.id}).scalars().all())
        if len(evidence) < EVIDENCE and cycle.failed_events:  # Entra events: negated ids (entra_load.evidence_ref)
            evidence += tuple(-event_id for event_id in conn.execute(
                _EVENT_EVIDENCE, {"cycle_id": cycle.id}).scalars().all()[: EVIDENCE - len(evidence)])
    return CycleFacts(
        id=cycle.id, started_us=cycle.started_us, ended_us=cycle.ended_us,
        requests=cycle.requests + (cycle.events or 0),
        rejected_credentials=cycle.rejected_credentials, lookup_404s=cycle.lookup_404s, succeeded=succeeded,
        failed=failed, reference_failures=cycle.reference_failures, deletes=deletes, evidence=evidence,
    )


# A cycle's first failures, the evidence of a transition it causes. Built once: a page that judges
# many cycles (a job the scheduler has not judged yet: 223 cycles on a 10M-line database) spent more
# building these statements than running them.
EVIDENCE = 5
_X, _E = Exchange.__table__.c, EntraEvent.__table__.c
_EXCHANGE_EVIDENCE = (select(_X.id).where(_X.cycle_id == bindparam("cycle_id"), _X.failed | (_X.status == 404))
                      .order_by(_X.ts_us).limit(EVIDENCE))
_EVENT_EVIDENCE = (select(_E.id).where(_E.cycle_id == bindparam("cycle_id"), _E.failed)
                   .order_by(_E.activity_us).limit(EVIDENCE))


def _record(session: Session, job: Job, at_us: int, old: str, new: str, reason: str | None, detail: str,
            evidence: list[int], cycle_id: int | None) -> None:
    """Insert a transition unless it is there already; concurrent evaluations (a page view and
    the scheduler) may both try, so the database decides (INSERT ... ON CONFLICT DO NOTHING)."""
    session.flush()
    session.execute(
        insert_ignoring(session.get_bind().dialect.name, HealthTransition.__table__).values(
            job_id=job.id, at_us=at_us, old=old, new=new, reason=reason, detail=detail,
            evidence=json.dumps(evidence), cycle_id=cycle_id, created_at=utc_now(),
        )
    )


def evaluate(session: Session, job: Job, now: datetime, settings: Settings) -> HealthStatus:
    """Judge, record the transitions (cycle and clock ones) and return the status: the scheduler's
    minute-by-minute evaluation. Commits."""
    snapshot = refresh_health(session, job, now, settings)
    status = status_of(session, job, snapshot, now, settings)
    last = last_transition(session, job)
    clock = clock_transition(last.new if last else None, status)
    if clock is not None:
        _record(session, job, clock.at_us, clock.old.value, clock.new.value, "clock", clock.detail, [], None)
        session.commit()
    return status


def status_of(session: Session, job: Job, snapshot: Snapshot, now: datetime, settings: Settings) -> HealthStatus:
    last = session.scalar(select(func.max(Cycle.ended_us)).where(Cycle.job_id == job.id))
    return status_at(snapshot, now_us=to_us(now), last_traffic_us=last, timing=timing_for(job, settings),
                     thresholds=thresholds_for(job, settings))


def last_transition(session: Session, job: Job) -> HealthTransition | None:
    return session.scalars(select(HealthTransition).where(HealthTransition.job_id == job.id)
                           .order_by(HealthTransition.at_us.desc(), HealthTransition.id.desc()).limit(1)).first()


def clock_transition(last_state: str | None, status: HealthStatus) -> Transition | None:
    """Stalls, resumptions and the 28-day disable come from the clock, not from a cycle: the
    transition the clock makes now, given the last recorded state."""
    last_state = last_state or State.UNKNOWN.value
    if status.state in (State.STALLED, State.DISABLED) and last_state != status.state.value and status.since:
        return Transition(to_us(status.since), State(last_state), status.state, "clock", status.explanation)
    if last_state == State.STALLED.value and status.state is not State.STALLED and status.last_traffic:
        return Transition(to_us(status.last_traffic), State(last_state), status.state, "clock", "traffic resumed")
    return None
