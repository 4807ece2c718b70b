"""The outbox: queue an email as a row, then deliver pending rows, each at most once.

Delivery claims a row (a conditional UPDATE that only one process can win), sends it, and
records the result. An email is "in doubt" when the server may have it and we cannot know:
the whole message went out after DATA and no answer came in time (a time-out, a lost
connection: `DeliveryInDoubt`), or a process died between the claim and recording the result.
An email in doubt is never sent again by itself (a second copy with the same Message-ID is what
this prevents): the notifications page shows it and an admin may send it again (or `flask --app
app notify retry ID`). Every other failure (server down, refused, an error answer, a time-out
before the message was complete) is recorded and retried with exponential back-off; nothing is
ever dropped.
"""
from __future__ import annotations

import json
import logging
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import make_msgid

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from dashboard.models import Notification
from dashboard.notify.emails import RenderedEmail
from dashboard.notify.mailer import DeliveryInDoubt, Mailer, Message, domain_of
from dashboard.notify.rules import retry_delay
from dashboard.settings import NotificationSettings
from dashboard.times import aware

log = logging.getLogger(__name__)
IN_DOUBT_AFTER = timedelta(minutes=10)  # a claim older than any SMTP conversation can last


@dataclass
class DeliveryResult:
    sent: int = 0
    failed: int = 0
    in_doubt: int = 0
    skipped: int = 0  # claimed by someone else meanwhile


def enqueue(session: Session, email: RenderedEmail, *, to: str, kind: str, now: datetime, job_id: int | None = None,
            dedupe_key: str | None = None, from_address: str = "monitor@localhost", message_id: str | None = None,
            headers: dict[str, str] | None = None) -> Notification | None:
    """Add one email to the outbox (in the caller's transaction); None when `dedupe_key` is queued already.
    `message_id`: this email's Message-ID (the first of an episode's); `headers`: threading and list headers."""
    if dedupe_key is not None and session.scalar(
            select(Notification.id).where(Notification.dedupe_key == dedupe_key)) is not None:
        return None
    row = Notification(
        job_id=job_id, kind=kind, recipient=to, subject=email.subject, text=email.text, html=email.html,
        message_id=message_id or make_msgid(domain=domain_of(from_address)), dedupe_key=dedupe_key, created_at=now,
        next_attempt_at=now, attempts=0, headers=json.dumps(headers) if headers else None,
    )
    session.add(row)
    session.flush()
    return row


def deliver_pending(session: Session, mailer: Mailer, now: datetime, *, settings: NotificationSettings,
                    limit: int = 500) -> DeliveryResult:
    """Send the due rows, oldest first; each in its own transactions (claim, then result)."""
    result = DeliveryResult()
    due = session.scalars(
        select(Notification.id).where(Notification.sent_at.is_(None), Notification.claimed_at.is_(None),
                                      Notification.in_doubt_at.is_(None), Notification.next_attempt_at <= now)
        .order_by(Notification.next_attempt_at, Notification.id).limit(limit)
    ).all()
    session.commit()
    for notification_id in due:
        if not _claim(session, notification_id, now):
            result.skipped += 1
            continue
        row = session.get(Notification, notification_id)
        assert row is not None
        message = Message(row.recipient, row.subject, row.text, row.html, row.message_id,
                          tuple(json.loads(row.headers).items()) if row.headers else ())
        try:
            answer = mailer.send(message)
        except DeliveryInDoubt as exc:
            _in_doubt(session, row, now, exc)
            result.in_doubt += 1
            continue
        except (smtplib.SMTPException, OSError) as exc:
            _failed(session, row, now, exc, settings)
            result.failed += 1
            continue
        row.sent_at, row.smtp_response, row.last_error = now, answer[:500], None
        session.commit()
        result.sent += 1
    return result


def retry_now(session: Session, notification_id: int, now: datetime) -> bool:
    """Make an unsent row (failing, or in doubt) due at once. False if sent or unknown."""
    changed = session.execute(
        update(Notification).where(Notification.id == notification_id, Notification.sent_at.is_(None))
        .values(claimed_at=None, in_doubt_at=None, next_attempt_at=now)
    ).rowcount
    session.commit()
    return changed == 1


def undelivered(session: Session, *, limit: int = 200) -> list[Notification]:
    """Rows not sent: failing (with their last error), waiting, or in doubt; oldest first."""
    return list(session.scalars(select(Notification).where(Notification.sent_at.is_(None))
                                .order_by(Notification.created_at, Notification.id).limit(limit)))


def recent(session: Session, *, limit: int = 50) -> list[Notification]:
    return list(session.scalars(select(Notification).where(Notification.sent_at.is_not(None))
                                .order_by(Notification.sent_at.desc(), Notification.id.desc()).limit(limit)))


def counts(session: Session, now: datetime) -> dict[str, int]:
    n = Notification
    waiting = and_(n.sent_at.is_(None), n.claimed_at.is_(None), n.in_doubt_at.is_(None))
    row = session.execute(select(
        func.count().filter(n.sent_at.is_not(None)),
        func.count().filter(and_(waiting, n.last_error.is_(None))),
        func.count().filter(and_(waiting, n.last_error.is_not(None))),
        func.count().filter(and_(n.sent_at.is_(None), or_(
            n.in_doubt_at.is_not(None), and_(n.claimed_at.is_not(None), n.claimed_at < now - IN_DOUBT_AFTER)))),
    )).one()
    return {"sent": row[0], "pending": row[1], "failing": row[2], "in_doubt": row[3]}


def is_in_doubt(row: Notification, now: datetime) -> bool:
    if row.sent_at is not None:
        return False
    claimed = aware(row.claimed_at)
    return row.in_doubt_at is not None or (claimed is not None and now - claimed >= IN_DOUBT_AFTER)


def _claim(session: Session, notification_id: int, now: datetime) -> bool:
    claimed = session.execute(
        update(Notification).where(
            Notification.id == notification_id, Notification.sent_at.is_(None), Notification.claimed_at.is_(None),
            Notification.in_doubt_at.is_(None), Notification.next_attempt_at <= now,
        ).values(claimed_at=now, attempts=Notification.attempts + 1)
    ).rowcount
    session.commit()  # the claim is durable before a byte goes to the server
    return claimed == 1


def _failed(session: Session, row: Notification, now: datetime, exc: Exception, settings: NotificationSettings) -> None:
    delay = retry_delay(row.attempts, base=timedelta(seconds=settings.retry_base_seconds),
                        cap=timedelta(minutes=settings.retry_max_minutes))
    row.claimed_at = None
    row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
    row.next_attempt_at = now + delay
    session.commit()
    log.warning("notification %s to %s not delivered (attempt %s, next in %s): %s",
                row.id, row.recipient, row.attempts, delay, row.last_error)


def _in_doubt(session: Session, row: Notification, now: datetime, exc: DeliveryInDoubt) -> None:
    row.claimed_at, row.in_doubt_at = None, now
    row.last_error = str(exc)[:2000]
    session.commit()
    log.warning("notification %s to %s in doubt (not sent again unless an admin asks): %s",
                row.id, row.recipient, row.last_error)
