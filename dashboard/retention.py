"""Retention: prune what is older than `retention.days`, daily, keeping the analysis consistent.

Exchanges go with their cycle: only whole cycles that ended before the cutoff are pruned (the
cycle, its per-user outcomes and its exchanges together), so every cycle left still has all its
exchanges and its counts stay true. Signatures touched are recounted from the exchanges left (and
dropped when none is left). User rows stay: they are identities, and their state is a summary
that does not need the old cycles. Unsent emails are never pruned (an outbox never drops mail);
sent ones, reports, resolved episodes, processed transitions (except each job's latest),
digests, rejected lines and ingest runs are, by age.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy import delete, distinct, func, insert, select, update
from sqlalchemy.orm import Session

from .models import (
    Cycle, DigestRun, Episode, Exchange, HealthTransition, IngestRun, Job, Notification, Reject, ReportRun,
    Signature, SignatureUser, UserCycle, to_us,
)
from .settings import Settings

CHUNK = 50  # cycles per transaction


@dataclass
class PruneResult:
    cycles: int = 0
    exchanges: int = 0
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
        session.execute(delete(UserCycle).where(UserCycle.cycle_id.in_(chunk)))
        result.cycles += session.execute(delete(Cycle).where(Cycle.id.in_(chunk))).rowcount
        session.commit()
    # Exchanges the analysis never placed in a cycle (none, normally): by their own time.
    stray = select(Exchange.id).where(Exchange.job_id == job_id, Exchange.cycle_id.is_(None), Exchange.ts_us < cutoff_us)
    touched.update(session.scalars(select(Exchange.sig_id).where(
        Exchange.id.in_(stray), Exchange.sig_id.is_not(None)).distinct()).all())
    result.exchanges += _delete(session, delete(Exchange).where(Exchange.id.in_(stray)))
    for sig_id in sorted(touched):
        result.signatures += _recount_signature(session, sig_id)
    session.commit()


def _recount_signature(session: Session, sig_id: int) -> int:
    """Counts from the exchanges left; 1 when the signature had none left and was dropped."""
    count, users, first, last, sample = session.execute(
        select(func.count(), func.count(distinct(Exchange.user_id)), func.min(Exchange.ts_us), func.max(Exchange.ts_us),
               func.min(Exchange.id)).where(Exchange.sig_id == sig_id)).one()
    session.execute(delete(SignatureUser).where(SignatureUser.sig_id == sig_id))
    if not count:
        session.execute(delete(Signature).where(Signature.id == sig_id))
        return 1
    session.execute(insert(SignatureUser).from_select(
        ["sig_id", "user_id"],
        select(Exchange.sig_id, Exchange.user_id).where(Exchange.sig_id == sig_id, Exchange.user_id.is_not(None))
        .distinct()))
    session.execute(update(Signature).where(Signature.id == sig_id).values(
        exchanges=count, users=users, first_us=first, last_us=last, sample_exchange_id=sample))
    return 0


def _delete(session: Session, statement) -> int:  # type: ignore[no-untyped-def]
    count = session.execute(statement).rowcount
    session.commit()
    return count
