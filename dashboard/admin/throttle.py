"""Sign-in throttling: may this email be tried again from this address, now?

Refused sign-ins are rows (`SignInFailure`), so every worker sees the same counts and a restart
forgets nothing. Two limits, both per email: a few failures from one address (a person who
mistyped, or one guesser), and more from all addresses together (a guesser spread over many).
Neither counts failures on other emails: behind a proxy every client has the proxy's address,
and one address's failures on one account must not lock anybody else out.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select

from dashboard.db import db
from dashboard.models import SignInFailure


@dataclass(frozen=True)
class ThrottleLimits:
    window: timedelta = timedelta(minutes=15)
    per_address: int = 5  # failures on one email from one address
    per_account: int = 20  # failures on one email from every address


def is_throttled(email: str, address: str, *, now: datetime, limits: ThrottleLimits) -> bool:
    email, address = _key(email, address)
    since = now - limits.window
    recent = select(func.count()).select_from(SignInFailure).where(
        SignInFailure.email == email, SignInFailure.failed_at > since)
    if (db.session.scalar(recent) or 0) >= limits.per_account:
        return True
    return (db.session.scalar(recent.where(SignInFailure.address == address)) or 0) >= limits.per_address


def record_failure(email: str, address: str, *, now: datetime, limits: ThrottleLimits) -> None:
    email, address = _key(email, address)
    # Old rows count for nothing; dropping them here keeps the table as small as the window.
    db.session.execute(delete(SignInFailure).where(SignInFailure.failed_at <= now - limits.window))
    db.session.add(SignInFailure(email=email, address=address, failed_at=now))
    db.session.commit()


def forget_failures(email: str, address: str) -> None:
    """After a successful sign-in: that address's earlier failures on the email no longer count."""
    email, address = _key(email, address)
    db.session.execute(delete(SignInFailure).where(SignInFailure.email == email, SignInFailure.address == address))
    db.session.commit()


def _key(email: str, address: str) -> tuple[str, str]:
    return email.strip().lower()[:320], address[:64]
