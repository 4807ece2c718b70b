"""Retention: prune what is older than `retention.days`, daily, keeping the analysis consistent.

Exchanges (and imported Entra events) go with their cycle: only whole cycles that ended before the cutoff are pruned (the
cycle, its per-user outcomes and its exchanges together), so every cycle left still has all its
exchanges and its counts stay true. Signatures touched are recounted from the exchanges left (and
dropped when none is left). User rows stay: they are identities, and their state is a summary
that does not need the old cycles. Unsent emails are never pruned (an outbox never drops mail);
sent ones, reports, resolved episodes, processed transitions (except each job's latest),
digests, rejected lines, ingest runs and Entra job statuses (except each job's latest) are, by age.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta

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

CHUNK = 50  # cycles per transaction


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
    result = PruneResult()
    for job_id in session.scalars(select(Job.id).order_by(Job.id)).all():
        _prune_job(session, job_id, to_us(cutoff), result)
    result.rejects += _delete(session, delete(Reject).where(Reject.created_at < cutoff))
    result.notifications += _delete(session, delete(Notification).where(Notification.sent_at < cutoff))
    result.reports += _delete(session, delete(ReportRun).where(ReportRun.created_at < cutoff))
    result.episodes += _delete(session, delete(Episode).where(Episode.resolved_at < cutoff))
    latest = select(func.max(HealthTransition.id)).group_by(HealthTransition.job_id)
    result.transitions += _delete(session, delete(HealthTransition).where(
        HealthTransition.at_us < to_us(cutoff), HealthTransition.processed_at.is_not(None),
        HealthTransition.id.not_in(latest)))
    result.other += _delete(session, delete(DigestRun).where(DigestRun.created_at < cutoff))
    newest_status = select(func.max(EntraJobStatus.id)).group_by(EntraJobStatus.job_id)
    result.other += _delete(session, delete(EntraJobStatus).where(
        EntraJobStatus.observed_us < to_us(cutoff), EntraJobStatus.id.not_in(newest_status)))
    result.other += _delete(session, delete(IngestRun).where(IngestRun.started_at < cutoff,
                                                            IngestRun.finished_at.is_not(None)))
    return result


def _prune_job(session: Session, job_id: int, cutoff_us: int, result: PruneResult) -> None:
    old = session.scalars(select(Cycle.id).where(Cycle.job_id == job_id, Cycle.ended_us < cutoff_us)
                          .order_by(Cycle.ended_us)).all()
    touched: set[int] = set()
    for start in range(0, len(old), CHUNK):
        chunk = old[start:start + CHUNK]
        touched.update(session.scalars(select(Exchange.sig_id).where(
            Exchange.cycle_id.in_(chunk), Exchange.sig_id.is_not(None)).distinct()).all())
        result.exchanges += session.execute(delete(Exchange).where(Exchange.cycle_id.in_(chunk))).rowcount
        touched.update(session.scalars(select(EntraEvent.sig_id).where(
            EntraEvent.cycle_id.in_(chunk), EntraEvent.sig_id.is_not(None)).distinct()).all())
        result.events += session.execute(delete(EntraEvent).where(EntraEvent.cycle_id.in_(chunk))).rowcount
        session.execute(delete(UserCycle).where(UserCycle.cycle_id.in_(chunk)))
        result.cycles += session.execute(delete(Cycle).where(Cycle.id.in_(chunk))).rowcount
        session.commit()
    # Exchanges the analysis never placed in a cycle (none, normally): by their own time.
    stray = select(Exchange.id).where(Exchange.job_id == job_id, Exchange.cycle_id.is_(None), Exchange.ts_us < cutoff_us)
    touched.update(session.scalars(select(Exchange.sig_id).where(
        Exchange.id.in_(stray), Exchange.sig_id.is_not(None)).distinct()).all())
    result.exchanges += _delete(session, delete(Exchange).where(Exchange.id.in_(stray)))
    stray_events = select(EntraEvent.id).where(EntraEvent.job_id == job_id, EntraEvent.cycle_id.is_(None),
                                               EntraEvent.activity_us < cutoff_us)
    touched.update(session.scalars(select(EntraEvent.sig_id).where(
        EntraEvent.id.in_(stray_events), EntraEvent.sig_id.is_not(None)).distinct()).all())
    result.events += _delete(session, delete(EntraEvent).where(EntraEvent.id.in_(stray_events)))
    for sig_id in sorted(touched):
        result.signatures += _recount_signature(session, sig_id)
    session.commit()


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


def _delete(session: Session, statement) -> int:  # type: ignore[no-untyped-def]
    count = session.execute(statement).rowcount
    session.commit()
    return count
