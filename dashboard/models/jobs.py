"""Rows that configure a provisioning job: the job and its ingest tokens."""
from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from dashboard.db import db
from dashboard.times import utc_now


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


class EndpointCredential(db.Model):
    """The target's tenant URL and secret token for the endpoint check (one per job).

    The token is stored encrypted (Fernet, key from DASHBOARD_SECRET_ENCRYPTION_KEY) and never
    shown again: pages say only that one is stored, and since when."""

    __tablename__ = "endpoint_credential"

    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    tenant_url: Mapped[str] = mapped_column(String(500))
    token_encrypted: Mapped[str] = mapped_column(Text)
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    set_by: Mapped[str] = mapped_column(String(320), default="")
    token_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class EndpointCheck(db.Model):
    """One run of the endpoint check: each check's outcome, result and consequence (JSON)."""

    __tablename__ = "endpoint_check"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(10))  # pass, warn, fail
    tenant_url: Mapped[str] = mapped_column(String(500))
    checks: Mapped[str] = mapped_column(Text, default="[]")
    by: Mapped[str] = mapped_column(String(320), default="")  # who ran it (an account, or "cli")
