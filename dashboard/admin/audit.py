"""The audit log: every change an admin makes from the pages, recorded with the change itself.

`audited` writes the entry in the same transaction as the change: a change that fails (an
`AccountError`, a database error) leaves no entry, and an entry never lacks its change. The
words are ours (the action, the thing changed, what changed): no password, token or SMTP
secret is ever passed in.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import select

from dashboard.db import db
from dashboard.models import AuditEntry
from dashboard.times import utc_now

T = TypeVar("T")


def audited(actor: str, action: str, target: str, detail: str | Callable[[T], str], change: Callable[[], T]) -> T:
    """Run `change` (which commits) with an audit entry in its transaction; undo both on error.
    `detail` may be a function of the change's result (a new token's prefix, known only after)."""
    entry = AuditEntry(at=utc_now(), actor=actor[:320], action=action[:50], target=target[:400],
                       detail=detail if isinstance(detail, str) else "")
    db.session.add(entry)
    try:
        result = change()
        if not isinstance(detail, str):
            entry.detail = detail(result)
    except Exception:
        db.session.rollback()
        raise
    db.session.commit()  # a change that had nothing to write (a token revoked twice) still leaves its entry
    return result


def recent(*, limit: int = 200, before: int | None = None) -> list[AuditEntry]:
    """Newest first; `before` (an entry id) pages back."""
    query = select(AuditEntry)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    return list(db.session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit)))


def record(actor: str, action: str, target: str, detail: str) -> None:
    """An entry for something done that changed no row (an SMTP test)."""
    audited(actor, action, target, detail, lambda: None)
