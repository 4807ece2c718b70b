"""Rows of what arrived: SCIM users and their aliases, exchanges, rejected lines, ingest runs, Entra events, status and pull state."""
from __future__ import annotations

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
    # The fold behind the state (tracking/fold.py advance_user_states): JSON [prefix, last cycle's
    # outcome], so a batch folds only the cycles it brings. NULL: the next batch reloads the history.
    fold: Mapped[str | None] = mapped_column(Text, nullable=True)

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
        # Only failures have a signature: the index leaves out the NULLs (migration 0014).
        Index("ix_exchange_sig", "sig_id", sqlite_where=text("sig_id IS NOT NULL"),
              postgresql_where=text("sig_id IS NOT NULL")),
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
    via: Mapped[str] = mapped_column(String(10))  # cli, push, demo, capture
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lines: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)


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
