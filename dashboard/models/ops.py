"""The scheduler's own rows: its lease (which process is the one scheduler) and its run counts.

Both are written by `dashboard/lease.py` (the scheduler process) and read by `/metrics` and
`/healthz` in the web workers, which cannot see the scheduler's memory.
"""
from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dashboard.db import db


class SchedulerLease(db.Model):
    """One row per lease name ("scheduler"): who holds it, until when, and its last renewal.

    A scheduler holds the lease while `expires_us` is in the future; it renews it every
    `[scheduler] renew_seconds`. Another takes it (a conditional UPDATE only one process can win)
    once it has expired. `takeovers` counts the changes of holder.
    """

    __tablename__ = "scheduler_lease"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200), default="")  # host:pid:nonce; "" when never held
    expires_us: Mapped[int] = mapped_column(BigInteger, default=0)
    heartbeat_us: Mapped[int] = mapped_column(BigInteger, default=0)  # the last renewal
    acquired_us: Mapped[int] = mapped_column(BigInteger, default=0)  # when the holder took it
    takeovers: Mapped[int] = mapped_column(BigInteger, default=0)


class SchedulerRunStat(db.Model):
    """Per scheduled job (cycle-reports, deliver-email, ...): how often it ran and failed, ever."""

    __tablename__ = "scheduler_run_stat"

    job: Mapped[str] = mapped_column(String(50), primary_key=True)
    runs: Mapped[int] = mapped_column(BigInteger, default=0)
    errors: Mapped[int] = mapped_column(BigInteger, default=0)
    last_run_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # when the last run ended
    last_error_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_holder: Mapped[str] = mapped_column(String(200), default="")
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)  # the exception's type only: no secret in it
