"""The scheduler lease: exactly one scheduler process works at a time, others wait as hot standbys.

A lease is a row (`scheduler_lease`) on SQLite and PostgreSQL alike. Taking or renewing it is one
conditional UPDATE ("mine already, or expired"), which only one process can win: PostgreSQL
re-checks the condition on the row it locked, SQLite writes one transaction at a time. The holder
renews every `[scheduler] renew_seconds`; a standby polls as often and takes over once the lease
has gone `lease_seconds` without renewal. Every scheduled job renews the lease before it works
(`renew`): a holder that lost it (paused, cut off from the database) skips the work instead of
doing it twice. Times are the machine's real clock (a lease is about processes being alive, not
about the data), in microseconds like every stored moment.

The run counts (`scheduler_run_stat`) are written here too: the web workers' `/metrics` read them.
"""
from __future__ import annotations

import os
import secrets
import socket
from sqlalchemy import case, or_, select, update
from sqlalchemy.engine import Engine

from dashboard.db import insert_ignoring
from dashboard.models import SchedulerLease, SchedulerRunStat

NAME = "scheduler"
_lease = SchedulerLease.__table__
_stats = SchedulerRunStat.__table__


def new_holder() -> str:
    """This process's name in the lease: host, pid and a nonce (a pid can come back after a restart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def acquire(engine: Engine, holder: str, now_us: int, ttl_us: int, *, name: str = NAME) -> bool:
    """Take the lease when it is free or expired, or renew it when `holder` has it; True when held."""
    with engine.begin() as conn:
        conn.execute(insert_ignoring(conn.dialect.name, _lease).values(
            name=name, holder="", expires_us=0, heartbeat_us=0, acquired_us=0, takeovers=0))
    with engine.begin() as conn:
        mine = _lease.c.holder == holder
        won = conn.execute(update(_lease).where(_lease.c.name == name, or_(mine, _lease.c.expires_us < now_us)).values(
            holder=holder, expires_us=now_us + ttl_us, heartbeat_us=now_us,
            acquired_us=case((mine, _lease.c.acquired_us), else_=now_us),
            takeovers=_lease.c.takeovers + case((mine, 0), else_=1),
        )).rowcount
    return won == 1


def renew(engine: Engine, holder: str, now_us: int, ttl_us: int, *, name: str = NAME) -> bool:
    """Extend the lease only while `holder` still has it (not expired): the fence before each job."""
    with engine.begin() as conn:
        return conn.execute(update(_lease).where(
            _lease.c.name == name, _lease.c.holder == holder, _lease.c.expires_us >= now_us,
        ).values(expires_us=now_us + ttl_us, heartbeat_us=now_us)).rowcount == 1


def release(engine: Engine, holder: str, *, name: str = NAME) -> None:
    """Give the lease up (a clean stop): a standby takes it at its next poll, not after the TTL."""
    with engine.begin() as conn:
        conn.execute(update(_lease).where(_lease.c.name == name, _lease.c.holder == holder).values(expires_us=0))


def holder_of(engine: Engine, now_us: int, *, name: str = NAME) -> str | None:
    """Who holds the lease now (None: nobody, or it expired)."""
    with engine.connect() as conn:
        row = conn.execute(select(_lease.c.holder, _lease.c.expires_us).where(_lease.c.name == name)).first()
    return row.holder if row is not None and row.holder and row.expires_us >= now_us else None


def record_run(engine: Engine, job: str, holder: str, *, ended_us: int, duration_ms: int,
               error: BaseException | None = None) -> None:
    """Count one run of `job` (and its error, by type only: a message may quote a secret)."""
    with engine.begin() as conn:
        conn.execute(insert_ignoring(conn.dialect.name, _stats).values(job=job, runs=0, errors=0, last_holder=""))
        values = {"runs": _stats.c.runs + 1, "last_run_us": ended_us, "last_duration_ms": duration_ms,
                  "last_holder": holder}
        if error is not None:
            values.update(errors=_stats.c.errors + 1, last_error_us=ended_us, last_error=type(error).__name__)
        conn.execute(update(_stats).where(_stats.c.job == job).values(**values))
