"""The outbox: queue once, deliver at most once, retry with back-off, never drop."""
from __future__ import annotations

import smtplib
from datetime import timedelta

from sqlalchemy import func, select, update

from dashboard.db import db
from dashboard.models import Notification
from dashboard.notify.emails import RenderedEmail
from dashboard.notify.mailer import MemoryMailer
from dashboard.notify.outbox import (
    counts,
    deliver_pending,
    enqueue,
    is_in_doubt,
    retry_now,
)
from dashboard.times import aware
from tests.factories import NOW

EMAIL = RenderedEmail("[Provisioning] subject", "text body\n", "<p>html body</p>")


def queue(to: str = "a@example.com", key: str | None = None) -> Notification | None:
    row = enqueue(db.session, EMAIL, to=to, kind="failures", now=NOW, dedupe_key=key)
    db.session.commit()
    return row


def test_it_queues_an_email_once_per_key(app):
    assert queue(key="k1") is not None
    assert queue(key="k1") is None
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 1


def test_it_sends_each_due_email_and_records_the_answer(app, settings):
    queue("a@example.com")
    queue("b@example.com")
    mailer = MemoryMailer()

    result = deliver_pending(db.session, mailer, NOW, settings=settings.notifications)

    assert (result.sent, result.failed) == (2, 0)
    assert [m.to for m in mailer.outbox] == ["a@example.com", "b@example.com"]
    rows = db.session.scalars(select(Notification)).all()
    assert all(r.status == "sent" and r.smtp_response == "250 kept in memory" and r.attempts == 1 for r in rows)
    assert deliver_pending(db.session, mailer, NOW + timedelta(hours=1), settings=settings.notifications).sent == 0


def test_it_keeps_a_failed_email_and_retries_it_with_growing_delays(app, settings):
    row = queue()
    mailer = MemoryMailer(failures=[smtplib.SMTPServerDisconnected("gone"), ConnectionRefusedError(111, "refused")])

    first = deliver_pending(db.session, mailer, NOW, settings=settings.notifications)
    db.session.refresh(row)
    after_first = aware(row.next_attempt_at)
    early = deliver_pending(db.session, mailer, NOW + timedelta(seconds=30), settings=settings.notifications)
    second = deliver_pending(db.session, mailer, NOW + timedelta(minutes=1), settings=settings.notifications)
    db.session.refresh(row)

    assert (first.failed, early.failed + early.sent, second.failed) == (1, 0, 1)
    assert after_first == NOW + timedelta(minutes=1)
    assert aware(row.next_attempt_at) == NOW + timedelta(minutes=3)  # then 2 minutes later
    assert row.status == "failing" and row.last_error == "ConnectionRefusedError: [Errno 111] refused"
    third = deliver_pending(db.session, mailer, NOW + timedelta(minutes=3), settings=settings.notifications)
    assert third.sent == 1 and [m.to for m in mailer.outbox] == ["a@example.com"]


def test_it_goes_on_with_the_next_recipient_when_one_fails(app, settings):
    queue("a@example.com")
    queue("b@example.com")
    mailer = MemoryMailer(failures=[smtplib.SMTPRecipientsRefused({"a@example.com": (550, b"no such user")})])

    result = deliver_pending(db.session, mailer, NOW, settings=settings.notifications)

    assert (result.sent, result.failed) == (1, 1)
    assert [m.to for m in mailer.outbox] == ["b@example.com"]


def test_it_never_sends_an_email_another_sender_has_claimed(app, settings):
    row = queue()
    db.session.execute(update(Notification).where(Notification.id == row.id).values(claimed_at=NOW))  # type: ignore[union-attr]
    db.session.commit()

    result = deliver_pending(db.session, MemoryMailer(), NOW, settings=settings.notifications)

    assert result.sent == 0


def test_it_leaves_an_email_interrupted_mid_send_in_doubt_until_an_admin_retries_it(app, settings):
    # The process died after claiming (maybe after the server said 250): resending could duplicate.
    row = queue()
    db.session.execute(update(Notification).where(Notification.id == row.id)  # type: ignore[union-attr]
                       .values(claimed_at=NOW, attempts=1))
    db.session.commit()
    mailer = MemoryMailer()
    later = NOW + timedelta(hours=2)

    assert deliver_pending(db.session, mailer, later, settings=settings.notifications).sent == 0
    db.session.refresh(row)
    assert is_in_doubt(row, later) and counts(db.session, later)["in_doubt"] == 1

    assert retry_now(db.session, row.id, later)  # type: ignore[union-attr]
    assert deliver_pending(db.session, mailer, later, settings=settings.notifications).sent == 1
    assert not retry_now(db.session, row.id, later)  # type: ignore[union-attr]  # sent: nothing to retry
