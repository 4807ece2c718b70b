"""Retention: prune what is older than `retention.days`, daily, keeping the analysis consistent.

Exchanges (and imported Entra events) go with their cycle: only whole cycles that ended before the cutoff are pruned (the
cycle, its per-user outcomes and its exchanges together), so every cycle left still has all its
exchanges and its counts stay true. Signatures touched are recounted from the exchanges left (and
dropped when none is left). User rows stay: they are identities, and their state is a summary
that does not need the old cycles. Unsent emails are never pruned (an outbox never drops mail);
sent ones, reports, resolved episodes, processed transitions (except each job's latest),
digests, rejected lines, ingest runs and Entra job statuses (except each job's latest) are, by age.

Every delete is batched: at most `retention.batch_rows` rows per transaction (ids first, then a
DELETE of those ids), so no lock is held for long and a first prune of a large backlog does not
stall the pushes and pages beside it. A cycle's exchanges go in batches before the cycle row; a
page may meanwhile see a cycle past the cutoff with part of its exchanges (its stored counts stay).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, literal, select, update
from sqlalchemy.orm import Session

from dashboard.models import (
    Cycle,
    DigestRun,
    EntraEvent,
    EntraJobStatus,
    Episode,
    Exchange,
    HealthTransition,
    IngestRun,
    Job,
    Notification,
    Reject,
    ReportRun,
    Signature,
    SignatureUser,
    UserCycle,
)
from dashboard.settings import Settings
from dashboard.times import to_us

CHUNK = 50  # cycles whose rows are deleted together (in batches of retention.batch_rows)


@dataclass
class PruneResult:
    cycles: int = 0
    exchanges: int = 0
    events: int = 0  # Entra provisioning events, with their cycle like the exchanges
    signatures: int = 0
    rejects: int = 0
    notifications: int = 0
    reports: int = 0
    episodes: int = 0
    transitions: int = 0
    other: int = 0  # digests and ingest runs

    def __str__(self) -> str:
        return ", ".join(f"{f.name} {getattr(self, f.name)}" for f in fields(self))


def prune(session: Session, now: datetime, settings: Settings) -> PruneResult:
    cutoff = now - timedelta(days=settings.retention.days)
    batch = settings.retention.batch_rows
    result = PruneResult()
    for job_id in session.scalars(select(Job.id).order_by(Job.id)).all():
        _prune_job(session, job_id, to_us(cutoff), result, batch)
    result.rejects += _delete(session, Reject, batch, Reject.created_at < cutoff)
    result.notifications += _delete(session, Notification, batch, Notification.sent_at < cutoff)
    result.reports += _delete(session, ReportRun, batch, ReportRun.created_at < cutoff)
    result.episodes += _delete(session, Episode, batch, Episode.resolved_at < cutoff)
    latest = select(func.max(HealthTransition.id)).group_by(HealthTransition.job_id)
    result.transitions += _delete(session, HealthTransition, batch, HealthTransition.at_us < to_us(cutoff),
                                  HealthTransition.processed_at.is_not(None), HealthTransition.id.not_in(latest))
    result.other += _delete(session, DigestRun, batch, DigestRun.created_at < cutoff)
    newest_status = select(func.max(EntraJobStatus.id)).group_by(EntraJobStatus.job_id)
    result.other += _delete(session, EntraJobStatus, batch, EntraJobStatus.observed_us < to_us(cutoff),
                            EntraJobStatus.id.not_in(newest_status))
    result.other += _delete(session, IngestRun, batch, IngestRun.started_at < cutoff, IngestRun.finished_at.is_not(None))
    return result


def _prune_job(session: Session, job_id: int, cutoff_us: int, result: PruneResult, batch: int) -> None:
    old = session.scalars(select(Cycle.id).where(Cycle.job_id == job_id, Cycle.ended_us < cutoff_us)
                          .order_by(Cycle.ended_us)).all()
    touched: set[int] = set()
    for start in range(0, len(old), CHUNK):
        chunk = old[start:start + CHUNK]
        touched.update(session.scalars(select(Exchange.sig_id).where(
            Exchange.cycle_id.in_(chunk), Exchange.sig_id.is_not(None)).distinct()).all())
        result.exchanges += _delete(session, Exchange, batch, Exchange.cycle_id.in_(chunk))
        touched.update(session.scalars(select(EntraEvent.sig_id).where(
            EntraEvent.cycle_id.in_(chunk), EntraEvent.sig_id.is_not(None)).distinct()).all())
        result.events += _delete(session, EntraEvent, batch, EntraEvent.cycle_id.in_(chunk))
        _delete(session, UserCycle, batch, UserCycle.cycle_id.in_(chunk))
        result.cycles += _delete(session, Cycle, batch, Cycle.id.in_(chunk))
    # Exchanges the analysis never placed in a cycle (none, normally): by their own time.
    stray = (Exchange.job_id == job_id, Exchange.cycle_id.is_(None), Exchange.ts_us < cutoff_us)
    touched.update(session.scalars(select(Exchange.sig_id).where(*stray, Exchange.sig_id.is_not(None)).distinct()).all())
    result.exchanges += _delete(session, Exchange, batch, *stray)
    stray_events = (EntraEvent.job_id == job_id, EntraEvent.cycle_id.is_(None), EntraEvent.activity_us < cutoff_us)
    touched.update(session.scalars(select(EntraEvent.sig_id).where(
        *stray_events, EntraEvent.sig_id.is_not(None)).distinct()).all())
    result.events += _delete(session, EntraEvent, batch, *stray_events)
    for sig_id in sorted(touched):
        result.signatures += _recount_signature(session, sig_id)
        session.commit()  # one signature per transaction: short, like the deletes


def _recount_signature(session: Session, sig_id: int) -> int:
    """Counts from the exchanges and Entra events left; 1 when it had none left and was dropped."""
    count, first, last, sample = session.execute(
        select(func.count(), func.min(Exchange.ts_us), func.max(Exchange.ts_us), func.min(Exchange.id))
        .where(Exchange.sig_id == sig_id)).one()
    events, first_event, last_event, sample_event = session.execute(
        select(func.count(), func.min(EntraEvent.activity_us), func.max(EntraEvent.activity_us), func.min(EntraEvent.id))
        .where(EntraEvent.sig_id == sig_id)).one()
    session.execute(delete(SignatureUser).where(SignatureUser.sig_id == sig_id))
    if not count and not events:
        session.execute(delete(Signature).where(Signature.id == sig_id))
        return 1
    users = select(Exchange.user_id.label("user_id")).where(Exchange.sig_id == sig_id, Exchange.user_id.is_not(None)).union(
        select(EntraEvent.user_id).where(EntraEvent.sig_id == sig_id, EntraEvent.user_id.is_not(None)))
    session.execute(insert(SignatureUser).from_select(["sig_id", "user_id"], select(literal(sig_id), users.subquery().c.user_id)))
    distinct_users = session.scalar(select(func.count()).select_from(SignatureUser).where(SignatureUser.sig_id == sig_id))
    session.execute(update(Signature).where(Signature.id == sig_id).values(
        exchanges=count + events, users=distinct_users,
        first_us=min(v for v in (first, first_event) if v is not None),
        last_us=max(v for v in (last, last_event) if v is not None),
        sample_exchange_id=sample if sample is not None else -sample_event))
    return 0


def _delete(session: Session, model: Any, batch: int, *where: Any) -> int:
    """Delete the rows of `model` matching `where`, `batch` rows per transaction; how many went."""
    count = 0
    while True:
        ids = session.scalars(select(model.id).where(*where).order_by(model.id).limit(batch)).all()
        if not ids:
            return count
        count += session.execute(delete(model).where(model.id.in_(ids))).rowcount
        session.commit()
