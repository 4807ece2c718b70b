"""Rows the tracking step keeps current from the traffic: cycles, per-user outcomes, signatures, health."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from dashboard.db import db
from dashboard.times import from_us, utc_now


class Cycle(db.Model):
    """A provisioning cycle of a job: explicit (`key`, the log's cycle_id) or inferred from gaps.

    Counters are kept current batch by batch (dashboard/incremental.py); `counts` is the operation x
    outcome matrix of its users as JSON: {"create": {"success": n, "failure": n, "skipped": n}, ...}.
    """

    __tablename__ = "cycle"
    __table_args__ = (
        UniqueConstraint("job_id", "key"),
        Index("ix_cycle_job_started", "job_id", "started_us"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    started_us: Mapped[int] = mapped_column(BigInteger)
    ended_us: Mapped[int] = mapped_column(BigInteger)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    failed_requests: Mapped[int] = mapped_column(Integer, default=0)
    rejected_credentials: Mapped[int] = mapped_column(Integer, default=0)  # 401 and 403 answers
    lookup_404s: Mapped[int] = mapped_column(Integer, default=0)
    connection_tests: Mapped[int] = mapped_column(Integer, default=0)
    reference_failures: Mapped[int] = mapped_column(Integer, default=0)  # group membership, manager
    users: Mapped[int] = mapped_column(Integer, default=0)
    looked_up_users: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[str] = mapped_column(Text, default="{}")
    duration_ms_total: Mapped[float] = mapped_column(Float, default=0.0)
    # Imported Entra provisioning events of the cycle (dashboard/entra_load.py): a cycle with a
    # key from Entra's cycleId has only these; `requests` counts exchanges only.
    events: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    failed_events: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    staged_deletes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    @property
    def started_at(self) -> datetime:
        return from_us(self.started_us)

    @property
    def ended_at(self) -> datetime:
        return from_us(self.ended_us)


class UserCycle(db.Model):
    """One user's exchanges in one cycle, folded (analysis.outcomes.Summary) with its outcome."""

    __tablename__ = "user_cycle"
    __table_args__ = (
        UniqueConstraint("cycle_id", "user_id"),
        Index("ix_user_cycle_user", "user_id"),
        Index("ix_user_cycle_cycle_outcome", "cycle_id", "outcome"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycle.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("scim_user.id", ondelete="CASCADE"))
    operation: Mapped[str] = mapped_column(String(16))  # create, update, disable, enable, delete, none
    outcome: Mapped[str] = mapped_column(String(10))  # success, failure, skipped
    summary: Mapped[str] = mapped_column(Text)  # JSON of analysis.outcomes.Summary


class Signature(db.Model):
    """Failures grouped by cause: operation, HTTP status, scimType and the normalised detail."""

    __tablename__ = "signature"
    __table_args__ = (UniqueConstraint("job_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    key: Mapped[int] = mapped_column(BigInteger)
    operation: Mapped[str] = mapped_column(String(16))
    status: Mapped[int] = mapped_column(SmallInteger)
    scim_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pattern: Mapped[str] = mapped_column(Text)
    first_us: Mapped[int] = mapped_column(BigInteger)
    last_us: Mapped[int] = mapped_column(BigInteger)
    exchanges: Mapped[int] = mapped_column(Integer, default=0)
    users: Mapped[int] = mapped_column(Integer, default=0)
    sample_exchange_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class SignatureUser(db.Model):
    __tablename__ = "signature_user"

    sig_id: Mapped[int] = mapped_column(ForeignKey("signature.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("scim_user.id", ondelete="CASCADE"), primary_key=True)


class HealthTransition(db.Model):
    """A change of a job's health: old and new state, the reason, its evidence, when.

    Written by analysis.health_store; the history behind the health panel and the emails.
    """

    __tablename__ = "health_transition"
    __table_args__ = (
        UniqueConstraint("job_id", "at_us", "new"),
        Index("ix_health_transition_job_at", "job_id", "at_us"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    at_us: Mapped[int] = mapped_column(BigInteger)
    old: Mapped[str] = mapped_column(String(20))
    new: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of exchange ids
    cycle_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    @property
    def at(self) -> datetime:
        return from_us(self.at_us)


class JobAnalysis(db.Model):
    """Per-job bookkeeping of the analysis: which cycles need judging again."""

    __tablename__ = "job_analysis"

    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    dirty_from_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # re-judge cycles from here
    judged_until_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # end of the last judged cycle
    snapshot: Mapped[str] = mapped_column(Text, default="{}")  # analysis.health.Snapshot as JSON
