"""What /metrics and /healthz show (read-only): per job ingest, health, failing users and the
current cycle; the outbox; the scheduler's lease and run counts; the database itself.

The scheduler runs in its own process: what it knows reaches the web workers through its rows
(`scheduler_lease`, `scheduler_run_stat`), never through memory.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from dashboard.models import (
    Cycle,
    EntraEvent,
    Exchange,
    IngestRun,
    Job,
    Notification,
    SchedulerLease,
    SchedulerRunStat,
    ScimUser,
)
from dashboard.queries.cycles import current_cycle
from dashboard.queries.health import health_json
from dashboard.settings import Settings
from dashboard.times import US, aware, to_us

LEASE = "scheduler"  # the lease's name (dashboard/lease.py)


def scheduler_state(session: Session, now: datetime) -> dict[str, Any]:
    """The lease: who holds it, whether it is live, seconds since its last renewal (None: never held)."""
    row = session.get(SchedulerLease, LEASE)
    if row is None or not row.holder:
        return {"holder": None, "held": False, "heartbeat_age_s": None, "takeovers": 0, "active_since_s": None}
    now_us = to_us(now)
    return {
        "holder": row.holder,
        "held": row.expires_us >= now_us,
        "heartbeat_age_s": max(now_us - row.heartbeat_us, 0) / US,
        "takeovers": row.takeovers,
        "active_since_s": max(now_us - row.acquired_us, 0) / US,
    }


def run_stats(session: Session) -> list[dict[str, Any]]:
    """Each scheduled job's runs and errors since the database was created."""
    return [{"job": r.job, "runs": r.runs, "errors": r.errors, "last_duration_s": (r.last_duration_ms or 0) / 1000}
            for r in session.scalars(select(SchedulerRunStat).order_by(SchedulerRunStat.job))]


def outbox_state(session: Session, now: datetime) -> dict[str, Any]:
    """Emails not sent yet, and the age of the oldest one (None: the outbox is empty)."""
    pending, oldest = session.execute(select(func.count(), func.min(Notification.created_at))
                                      .where(Notification.sent_at.is_(None))).one()
    return {"pending": pending, "oldest_age_s": (now - aware(oldest)).total_seconds() if oldest is not None else None}


def database_ok(session: Session) -> bool:
    try:
        session.execute(text("SELECT 1"))
        return True
    except SQLAlchemyError:
        session.rollback()
        return False


def job_metrics(session: Session, now: datetime, settings: Settings) -> list[dict[str, Any]]:
    """Per job: ingested lines by way in and result (the ingest runs kept by retention), the state
    the pages show, failing users, the current cycle's progress, the last completed cycle's
    duration, and the ingest lag (seconds since the newest exchange or Entra event)."""
    ingested: dict[int, list[dict[str, Any]]] = {}
    for job_id, via, lines, accepted, duplicates, rejected in session.execute(
            select(IngestRun.job_id, IngestRun.via, func.sum(IngestRun.lines), func.sum(IngestRun.accepted),
                   func.sum(IngestRun.duplicates), func.sum(IngestRun.rejected))
            .group_by(IngestRun.job_id, IngestRun.via).order_by(IngestRun.job_id, IngestRun.via)):
        ingested.setdefault(job_id, []).append({"via": via, "lines": lines or 0, "accepted": accepted or 0,
                                                "duplicates": duplicates or 0, "rejected": rejected or 0})
    failing = dict(session.execute(select(ScimUser.job_id, func.count()).where(ScimUser.state == "failing")
                                   .group_by(ScimUser.job_id)).all())
    out = []
    for job in session.scalars(select(Job).order_by(Job.name)):
        current = current_cycle(session, job, now, settings)
        running = bool(current and current.get("running"))
        completed = session.execute(select(Cycle.started_us, Cycle.ended_us).where(
            Cycle.job_id == job.id, Cycle.ended_us < to_us(now - timedelta(minutes=settings.cycles.gap_minutes)))
            .order_by(Cycle.started_us.desc()).limit(1)).first()
        newest = max((v for v in (
            session.scalar(select(func.max(Exchange.ts_us)).where(Exchange.job_id == job.id)),
            session.scalar(select(func.max(EntraEvent.activity_us)).where(EntraEvent.job_id == job.id)),
        ) if v is not None), default=None)
        progress = current["progress"] if running and current else None
        out.append({
            "job": job.name,
            "ingested": ingested.get(job.id, []),
            "state": health_json(session, job, now, settings)["state"],
            "failing_users": failing.get(job.id, 0),
            "cycle_running": running,
            "cycle_processed_users": progress["processed_users"] if progress else 0,
            "cycle_expected_users": progress["expected_users"] if progress else None,
            "last_cycle_duration_s": (completed.ended_us - completed.started_us) / US if completed else None,
            "ingest_lag_s": max(to_us(now) - newest, 0) / US if newest is not None else None,
        })
    return out
