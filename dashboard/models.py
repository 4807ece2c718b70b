"""The stored rows: jobs, ingest tokens, SCIM users, exchanges, rejected lines, ingest runs."""
from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column

from dashboard.db import db
from dashboard.formats import codec
from dashboard.times import from_us, utc_now


class Job(db.Model):
    __tablename__ = "job"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    source_system: Mapped[str] = mapped_column(String(100), default="Microsoft Entra ID")
    target_system: Mapped[str] = mapped_column(String(100), default="uniFLOW Online")
    notification_recipients: Mapped[str] = mapped_column(Text, default="")  # comma-separated
    scope_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    quarantine_overrides: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")  # JSON
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    @property
    def recipients(self) -> list[str]:
        return [r.strip() for r in self.notification_recipients.split(",") if r.strip()]

    @property
    def title(self) -> str:
        return self.display_name or self.name


class IngestToken(db.Model):
    """A per-job bearer token for HTTP push; only its SHA-256 is stored.

    The tokens are 32 random bytes, so a fast hash is the right one: there is nothing to
    brute-force, unlike a password.
    """

    __tablename__ = "ingest_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))  # shown in listings to tell tokens apart
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    @staticmethod
    def hash_token(token: str) -> str:
        return hashlib.sha256(token.encode("utf-8")).hexdigest()

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class ScimUser(db.Model):
    """A person as the traffic reveals them (see ingest/resolve.py for the rules).

    Identity is durable: Entra's source object (the externalId) and the target's SCIM id. The
    userName is an attribute that changes (renames, corrections) and that two people may briefly
    share, so it is not unique; its history, and every SCIM id the person had, are kept as
    aliases (ScimUserAlias). The columns hold the current values: `user_name` and `scim_id` are
    those of the latest exchange that named them (`name_us`, `scim_us`: since when), whatever the arrival
    order. A row may start with only a userName (a lookup that found nothing) or only a SCIM id
    (a PATCH seen before the create that named it): a provisional identity, merged into the
    durable one when an exchange links them. Two rows with an externalId are never merged.
    """

    __tablename__ = "scim_user"
    __table_args__ = (
        Index("ix_scim_user_job_name_key", "job_id", "name_key"),
        Index("ix_scim_user_job_scim_id", "job_id", "scim_id"),
        Index("ix_scim_user_job_external_id", "job_id", "external_id"),
        Index("ix_scim_user_job_state", "job_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    user_name: Mapped[str | None] = mapped_column(String(512), nullable=True)
    name_key: Mapped[str | None] = mapped_column(String(512), nullable=True)  # ingest.identity.name_key
    external_id: Mapped[str | None] = mapped_column(String(512), nullable=True)
    scim_id: Mapped[str | None] = mapped_column(String(512), nullable=True)
    name_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # since when user_name is current
    scim_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # since when scim_id is current
    # Derived from the user's cycles (analysis.users.user_state); kept current by ingestion.
    state: Mapped[str] = mapped_column(String(20), default="unknown", server_default="unknown")
    provisioned: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    last_cycle_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_seen_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    failing_since_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    failing_since_cycle_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    streak: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_failure_exchange_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    @property
    def label(self) -> str:
        return self.user_name or self.external_id or self.scim_id or f"user #{self.id}"

    @property
    def key(self) -> str:
        """What names this person in a URL (/users/<key>): the externalId, never shared, else our
        id; not the userName, which two people may hold at once."""
        return self.external_id or str(self.id)


class ScimUserAlias(db.Model):
    """One name a person went by, or one SCIM id they had, and when it was seen.

    kind: "n" a userName (key: its name key), "s" a SCIM id of the target. Written only once a
    person's name (or id) changes, for all of their names (ids) from then on; the current values
    are on the person's row. The history of names ("alice until cycle 5, alice.smith since") and
    the search by any past name or id read this table; so does the resolver, to find a person by
    a name or id they once had.
    """

    __tablename__ = "scim_user_alias"
    __table_args__ = (
        UniqueConstraint("user_id", "kind", "key"),
        Index("ix_scim_user_alias_job_kind_key", "job_id", "kind", "key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("scim_user.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(1))
    key: Mapped[str] = mapped_column(String(512))
    value: Mapped[str] = mapped_column(String(512))
    first_us: Mapped[int] = mapped_column(BigInteger)
    last_us: Mapped[int] = mapped_column(BigInteger)


class Exchange(db.Model):
    """One stored exchange: the columns pages filter on, and one compressed, redacted blob.

    `dedupe` is a 64-bit hash of the request_id (or, without one, of the redacted content), unique
    per job: re-ingesting is a no-op. Times are microseconds since the epoch (`ts_us`).
    """

    __tablename__ = "exchange"
    __table_args__ = (
        UniqueConstraint("job_id", "dedupe"),
        Index("ix_exchange_job_ts", "job_id", "ts_us"),
        Index("ix_exchange_user_ts", "user_id", "ts_us"),
        Index("ix_exchange_cycle_ts", "cycle_id", "ts_us"),
        Index("ix_exchange_sig", "sig_id"),
        # One index per logs filter, so each filtered page reads only its own rows. Failures are
        # a few percent of the traffic: a partial index keeps that one small.
        Index("ix_exchange_job_operation_ts", "job_id", "operation", "ts_us"),
        Index("ix_exchange_job_status_ts", "job_id", "status", "ts_us"),
        Index(
            "ix_exchange_job_failures_ts", "job_id", "ts_us",
            sqlite_where=text("status = 0 OR status >= 400"), postgresql_where=text("status = 0 OR status >= 400"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    dedupe: Mapped[int] = mapped_column(BigInteger)
    ts_us: Mapped[int] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(7))
    operation: Mapped[str] = mapped_column(String(16))
    status: Mapped[int] = mapped_column(SmallInteger)
    failed: Mapped[bool] = mapped_column(Boolean)
    duration_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("scim_user.id", ondelete="SET NULL"), nullable=True
    )
    request_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    cycle_key: Mapped[str | None] = mapped_column(String(200), nullable=True)  # cycle_id from the log
    scim_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    # A lookup's answer: True found the account, False an empty ListResponse; None otherwise.
    found: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    cycle_id: Mapped[int | None] = mapped_column(ForeignKey("cycle.id", ondelete="SET NULL"), nullable=True)
    sig_id: Mapped[int | None] = mapped_column(ForeignKey("signature.id", ondelete="SET NULL"), nullable=True)

    @property
    def ts(self) -> datetime:
        return from_us(self.ts_us)

    def details(self) -> dict[str, Any]:
        """path, query, client, request_headers, request_body, response_body, extra (redacted)."""
        return codec.unpack(self.blob)


class Reject(db.Model):
    """A line that was not accepted: its number, the reason, and its start (redacted)."""

    __tablename__ = "reject"
    __table_args__ = (UniqueConstraint("job_id", "dedupe"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    dedupe: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(500))
    line_no: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class IngestRun(db.Model):
    """One ingest of one source, for the history and for a crash to be seen (no finished_at)."""

    __tablename__ = "ingest_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(500))
    via: Mapped[str] = mapped_column(String(10))  # cli, push, demo
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lines: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)


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


class Account(db.Model):
    """A person who signs in: admin (everything), support (read all, diagnostics), viewer."""

    __tablename__ = "account"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    role: Mapped[str] = mapped_column(String(10))
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ApiToken(db.Model):
    """A personal token for the JSON API (scripts, monitoring); only its SHA-256 is stored."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


# -- notifications, reports and their bookkeeping (dashboard/notify, dashboard/reports.py) -------

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
    sent: `sent_at` set. `dedupe_key` makes queueing the same email twice a no-op.
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
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    smtp_response: Mapped[str | None] = mapped_column(String(500), nullable=True)

    @property
    def status(self) -> str:
        if self.sent_at is not None:
            return "sent"
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


# -- Microsoft Entra's own view: imported provisioning events, job status, Graph pull state -------


class EntraEvent(db.Model):
    """One Entra provisioning event (a provisioning-log row), redacted, of one of our jobs.

    `dedupe` (dashboard.formats.entra.parse.dedupe_key: Entra's activity id, else change id...) is unique
    per job, so re-importing, or importing the same records from another export format, is a
    no-op. `operation` and `status` are the analysis's view (dashboard.formats.entra.facts); `action`
    and `outcome` are Entra's words. The rest (steps, modified properties, identities, other
    fields) is one compressed JSON blob.
    """

    __tablename__ = "entra_event"
    __table_args__ = (
        UniqueConstraint("job_id", "dedupe"),
        Index("ix_entra_event_job_ts", "job_id", "activity_us"),
        Index("ix_entra_event_user_ts", "user_id", "activity_us"),
        Index("ix_entra_event_cycle_ts", "cycle_id", "activity_us"),
        Index("ix_entra_event_job_change", "job_id", "change_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    dedupe: Mapped[int] = mapped_column(BigInteger)
    activity_us: Mapped[int] = mapped_column(BigInteger)
    entra_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    change_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    cycle_key: Mapped[str | None] = mapped_column(String(200), nullable=True)  # Entra's cycleId
    entra_job_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    action: Mapped[str] = mapped_column(String(20))  # create, update, delete, disable, stagedDelete, other
    outcome: Mapped[str] = mapped_column(String(10))  # success, failure, skipped, warning
    operation: Mapped[str] = mapped_column(String(16))
    status: Mapped[int] = mapped_column(SmallInteger)  # HTTP-like (entra.facts)
    failed: Mapped[bool] = mapped_column(Boolean)
    error_code: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    recommended_action: Mapped[str | None] = mapped_column(Text, nullable=True)
    retry_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    next_retry_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    source_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    target_id: Mapped[str | None] = mapped_column(String(512), nullable=True)
    display_name: Mapped[str | None] = mapped_column(String(512), nullable=True)
    user_name: Mapped[str | None] = mapped_column(String(512), nullable=True)
    external_id: Mapped[str | None] = mapped_column(String(512), nullable=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("scim_user.id", ondelete="SET NULL"), nullable=True)
    cycle_id: Mapped[int | None] = mapped_column(ForeignKey("cycle.id", ondelete="SET NULL"), nullable=True)
    sig_id: Mapped[int | None] = mapped_column(ForeignKey("signature.id", ondelete="SET NULL"), nullable=True)
    blob: Mapped[bytes] = mapped_column(LargeBinary)

    @property
    def activity_at(self) -> datetime:
        return from_us(self.activity_us)

    def details(self) -> dict[str, Any]:
        """steps, modified_properties, source, target, service_principal, error_category, extra (redacted)."""
        return codec.unpack(self.blob)


class EntraJobStatus(db.Model):
    """Entra's synchronizationJob status as imported or pulled: one row per observation."""

    __tablename__ = "entra_job_status"
    __table_args__ = (
        UniqueConstraint("job_id", "observed_us", "digest"),
        Index("ix_entra_job_status_job_observed", "job_id", "observed_us"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    observed_us: Mapped[int] = mapped_column(BigInteger)  # progress observation time, else import time
    digest: Mapped[int] = mapped_column(BigInteger)  # of the redacted document: the same status twice is one row
    entra_job_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    code: Mapped[str | None] = mapped_column(String(40), nullable=True)  # Active, Quarantine, Paused, ...
    quarantine_reason: Mapped[str | None] = mapped_column(String(100), nullable=True)
    source: Mapped[str] = mapped_column(String(500), default="")
    data: Mapped[str] = mapped_column(Text)  # the redacted synchronizationJob JSON
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class EntraPullState(db.Model):
    """Where the scheduled Graph pull of a job stands: its watermark and its last result."""

    __tablename__ = "entra_pull_state"

    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    watermark: Mapped[str] = mapped_column(Text, default="{}")  # {"activity_at": iso, "seen_ids": [...]}
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_records: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
