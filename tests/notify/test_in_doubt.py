"""Email exactly once: a server that takes the message but answers after the client's time-out
leaves the email "in doubt"; it is not sent again by itself, only when an admin asks."""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from flask import g

from dashboard.admin import accounts
from dashboard.admin.accounts import add_account
from dashboard.db import db
from dashboard.models import Notification
from dashboard.notify.emails import RenderedEmail
from dashboard.notify.mailer import DeliveryInDoubt, MemoryMailer, SmtpMailer
from dashboard.notify.outbox import counts, deliver_pending, enqueue
from tests.factories import NOW

from .helpers import Sink, SmtpServer, wait_for

EMAIL = RenderedEmail("[Provisioning] in doubt", "text body\n", "<p>html body</p>")
PASSWORD = "correct horse battery"
LATER = NOW + timedelta(hours=2)  # long after any back-off: a failing email would be due again


@dataclass
class SlowSink(Sink):
    """Takes the message, then answers DATA only after `delay` seconds (or with `answer`)."""

    delay: float = 0.0
    answer: str = "250 2.0.0 Ok: queued as SLOW"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        await super().handle_DATA(server, session, envelope)
        await asyncio.sleep(self.delay)
        return self.answer


@pytest.fixture
def slow_server():  # type: ignore[no-untyped-def]
    server = SmtpServer()
    server.sink = SlowSink(delay=4.0)  # the client gives up after 1 s (smtp.timeout_seconds)
    server.start()
    yield server
    server.sink.delay = 0.0
    server.stop()


def mailer_for(server: SmtpServer) -> SmtpMailer:
    return SmtpMailer(replace(server.settings(), timeout_seconds=1))


def queue() -> Notification:
    row = enqueue(db.session, EMAIL, to="idm-team@example.com", kind="failures", now=NOW)
    db.session.commit()
    assert row is not None
    return row


def test_it_leaves_an_email_answered_after_the_time_out_in_doubt(app, settings, slow_server):  # type: ignore[no-untyped-def]
    row = queue()

    result = deliver_pending(db.session, mailer_for(slow_server), NOW, settings=settings.notifications)

    db.session.refresh(row)
    assert (result.sent, result.failed, result.in_doubt) == (0, 0, 1)
    assert row.status == "in doubt" and row.sent_at is None and row.in_doubt_at is not None
    assert "may have arrived" in (row.last_error or "")
    assert counts(db.session, NOW)["in_doubt"] == 1
    assert wait_for(lambda: len(slow_server.messages) == 1)  # the server did take it


def test_it_does_not_send_an_email_in_doubt_again_by_itself(app, settings, slow_server):  # type: ignore[no-untyped-def]
    queue()
    mailer = mailer_for(slow_server)
    deliver_pending(db.session, mailer, NOW, settings=settings.notifications)
    slow_server.sink.delay = 0.0  # the server is prompt again: a resend would now succeed

    again = deliver_pending(db.session, mailer, LATER, settings=settings.notifications)

    assert (again.sent, again.failed, again.in_doubt) == (0, 0, 0)
    assert wait_for(lambda: len(slow_server.messages) == 1)
    assert len({m.message["Message-ID"] for m in slow_server.messages}) == 1
    assert len(slow_server.messages) == 1


def test_it_retries_an_error_answer_after_data_by_itself(app, settings, slow_server):  # type: ignore[no-untyped-def]
    # A 451 is an answer: the server said it did not take the message, so sending again is safe.
    row = queue()
    slow_server.sink.delay, slow_server.sink.answer = 0.0, "451 4.3.0 try again later"
    first = deliver_pending(db.session, mailer_for(slow_server), NOW, settings=settings.notifications)
    slow_server.sink.answer = "250 2.0.0 Ok"

    second = deliver_pending(db.session, mailer_for(slow_server), LATER, settings=settings.notifications)

    db.session.refresh(row)
    assert (first.failed, first.in_doubt, second.sent) == (1, 0, 1)
    assert row.status == "sent" and row.in_doubt_at is None


def test_it_treats_an_in_doubt_answer_from_any_mailer_the_same(app, settings):  # type: ignore[no-untyped-def]
    row = queue()
    mailer = MemoryMailer(failures=[DeliveryInDoubt("timed out")])

    deliver_pending(db.session, mailer, NOW, settings=settings.notifications)
    again = deliver_pending(db.session, mailer, LATER, settings=settings.notifications)

    db.session.refresh(row)
    assert again.sent == 0 and mailer.outbox == [] and row.status == "in doubt"


# -- the notifications page: an admin sends it again ------------------------------------------------


@pytest.fixture
def admin(app, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    app.extensions["clock"] = lambda: LATER
    add_account("admin@example.com", "admin", PASSWORD)
    client = app.test_client()
    response = client.post("/login", data={"email": "admin@example.com", "password": PASSWORD,
                                           "csrf_token": csrf_token(client, "/login")})
    assert response.status_code == 302
    return client


def csrf_token(client, path: str) -> str:  # type: ignore[no-untyped-def]
    g.pop("csrf_token", None)  # the test's app context outlives a request: get this session's token
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


def test_it_lets_an_admin_send_an_email_in_doubt_again(app, settings, slow_server, admin):  # type: ignore[no-untyped-def]
    row = queue()
    deliver_pending(db.session, mailer_for(slow_server), NOW, settings=settings.notifications)
    page = admin.get("/notifications").get_data(as_text=True)
    assert f'action="/notifications/{row.id}/retry"' in page and "Send again" in page
    slow_server.sink.delay = 0.0

    response = admin.post(f"/notifications/{row.id}/retry", data={"csrf_token": csrf_token(admin, "/notifications")})
    result = deliver_pending(db.session, mailer_for(slow_server), LATER, settings=settings.notifications)

    assert response.status_code == 302
    assert result.sent == 1
    db.session.refresh(row)
    assert row.status == "sent" and row.in_doubt_at is None
    assert wait_for(lambda: len(slow_server.messages) == 2)  # the admin asked for the second copy
    assert len({m.message["Message-ID"] for m in slow_server.messages}) == 1


def test_it_does_not_send_again_on_a_post_without_its_csrf_token(app, settings, slow_server, admin):  # type: ignore[no-untyped-def]
    row = queue()
    deliver_pending(db.session, mailer_for(slow_server), NOW, settings=settings.notifications)
    slow_server.sink.delay = 0.0

    response = admin.post(f"/notifications/{row.id}/retry")
    result = deliver_pending(db.session, mailer_for(slow_server), LATER, settings=settings.notifications)

    assert response.status_code == 400
    assert result.sent == 0
    db.session.refresh(row)
    assert row.status == "in doubt"
