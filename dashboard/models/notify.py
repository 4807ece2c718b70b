"""Rows of the notification step: subscriptions, the outbox, reports, episodes, digests."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from dashboard.db import db
from dashboard.times import utc_now

NOTIFY_KINDS = ("reports", "failures", "quarantine", "digest")


NOTIFY_ROLES = ("admin", "support")  # admins get the actions, support staff the evidence


class Subscription(db.Model):
    """Who is told what about a job: an address, the kinds of email it gets, and its role.

    The job's `notification_recipients` are implicit admin subscriptions to failures and
    quarantine; a row here for the same address replaces that default.
    """

    __tablename__ = "subscription"
    __table_args__ = (UniqueConstraint("job_id", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(320))
    kinds: Mapped[str] = mapped_column(String(100))  # comma-separated NOTIFY_KINDS
    role: Mapped[str] = mapped_column(String(10), default="admin", server_default="admin")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    @property
    def kind_set(self) -> frozenset[str]:
        return frozenset(k.strip() for k in self.kinds.split(",") if k.strip())


class Notification(db.Model):
    """One email to one address: the outbox row, written before any attempt to send it.

    pending: `sent_at` and `claimed_at` empty, tried again from `next_attempt_at`; sending:
    claimed, no result yet (left so by a crash mid-send: "in doubt", never resent by itself);
    in doubt: `in_doubt_at` set, the server got the whole message but its answer never came
    (never resent by itself; an admin may send it again); sent: `sent_at` set. `dedupe_key`
    makes queueing the same email twice a no-op.
    """

    __tablename__ = "notification"
    __table_args__ = (
        UniqueConstraint("dedupe_key"),
        Index("ix_notification_due", "sent_at", "next_attempt_at"),
        Index("ix_notification_job_created", "job_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id", ondelete="SET NULL"), nullable=True)
    kind: Mapped[str] = mapped_column(String(20))  # report, failures, health, digest, test
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500))
    text: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(200))
    dedupe_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    in_doubt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    smtp_response: Mapped[str | None] = mapped_column(String(500), nullable=True)
    headers: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: threading and list headers

    @property
    def status(self) -> str:
        if self.sent_at is not None:
            return "sent"
        if self.in_doubt_at is not None:
            return "in doubt"
        if self.claimed_at is not None:
            return "sending"
        return "failing" if self.last_error else "pending"


class ReportRun(db.Model):
    """A cycle report: the cycles a job completed since its previous report, as sent.

    Unique per (job, last cycle): running the report twice for the same cycles is a no-op.
    Cycle ids are plain numbers (not foreign keys): retention may prune the cycles, not the report.
    """

    __tablename__ = "report_run"
    __table_args__ = (
        UniqueConstraint("job_id", "last_cycle_id"),
        Index("ix_report_run_job_created", "job_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    first_cycle_id: Mapped[int] = mapped_column(Integer)
    last_cycle_id: Mapped[int] = mapped_column(Integer)
    last_cycle_ended_us: Mapped[int] = mapped_column(BigInteger)
    cycles: Mapped[int] = mapped_column(Integer)
    health: Mapped[str] = mapped_column(String(20))
    failed_users: Mapped[int] = mapped_column(Integer, default=0)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    data: Mapped[str] = mapped_column(Text)  # the report document (JSON), rendered by page and email


class Episode(db.Model):
    """One problem of a job from when it began until it was resolved: what the emails are about.

    kind: signature (key: the signature id), quarantine, stalled, early_warning (key: the
    cycle id). One email when it opens, reminders after the reminder interval, one when resolved.
    """

    __tablename__ = "episode"
    __table_args__ = (
        UniqueConstraint("job_id", "kind", "key", "began_at"),
        Index("ix_episode_job_resolved", "job_id", "resolved_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(100), default="", server_default="")
    title: Mapped[str] = mapped_column(String(300))
    began_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reminders: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    detail: Mapped[str] = mapped_column(Text, default="{}")  # JSON: the latest facts shown in emails
    message_id: Mapped[str | None] = mapped_column(String(200), nullable=True)  # the first email's: threads the rest


class NotifyState(db.Model):
    """Per job: when the next cycle report is due, and the last cycle judged for failure emails."""

    __tablename__ = "notify_state"

    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    next_report_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    checked_until_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class DigestRun(db.Model):
    """A daily digest sent to one address; unique per (address, day), so it goes out once."""

    __tablename__ = "digest_run"
    __table_args__ = (UniqueConstraint("address", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(320))
    day: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD (UTC)
    covered_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
