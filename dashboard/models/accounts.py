"""Rows of the people who sign in: accounts, their API tokens, failed sign-ins, and the audit log."""
from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from dashboard.db import db
from dashboard.times import utc_now


def new_session_key() -> str:
    return secrets.token_urlsafe(24)


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
    # In every session cookie: random, and replaced by sign-out and a password change, which ends
    # every session holding the old one. Random rather than a counter: SQLite reuses the id of a
    # removed account, and a counter would start again at the same value for the next account.
    session_key: Mapped[str] = mapped_column(String(64), default=new_session_key)


class ApiToken(db.Model):
    """A personal token for the JSON API (scripts, monitoring); only its SHA-256 is stored."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SignInFailure(db.Model):
    """One refused sign-in: the email as typed (normalised) and the client address.

    Counted per email, and per (address, email), over the throttle window; a row for an
    email that has no account counts the same, so the answer does not tell which exist.
    """

    __tablename__ = "sign_in_failure"
    __table_args__ = (
        Index("ix_sign_in_failure_email_at", "email", "failed_at"),
        Index("ix_sign_in_failure_failed_at", "failed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    address: Mapped[str] = mapped_column(String(64))
    failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditEntry(db.Model):
    """One change an admin made (from a page): who, what, to which thing, when; never a secret.

    `actor` is the email as it was then (not a key: the account may be removed later).
    """

    __tablename__ = "audit_entry"
    __table_args__ = (Index("ix_audit_entry_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(50))  # e.g. account.add, token.revoke
    target: Mapped[str] = mapped_column(String(400))  # the account, job or address changed
    detail: Mapped[str] = mapped_column(Text, default="")  # what changed, in words
