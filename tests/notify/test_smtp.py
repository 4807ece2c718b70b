"""Delivery through a real SMTP server on loopback (aiosmtpd): what arrives, and outages."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from dashboard.db import db
from dashboard.models import Notification
from dashboard.notify.alerts import evaluate_health
from dashboard.notify.mailer import SmtpMailer
from dashboard.notify.outbox import deliver_pending
from dashboard.notify.reports import send_due_reports
from tests.notify.helpers import (
    BAD_DEPARTMENT,
    PIN,
    SmtpServer,
    after_cycle,
    cycle_lines,
    ingest,
)


def deliver(settings, server, now):  # type: ignore[no-untyped-def]
    return deliver_pending(db.session, SmtpMailer(server.settings()), now, settings=settings.notifications)


def test_it_delivers_the_cycle_report_with_its_counts_and_signatures_in_both_bodies(app, settings, smtp_server):
    ingest(settings, cycle_lines(0, failing={2: BAD_DEPARTMENT, 4: BAD_DEPARTMENT}))
    send_due_reports(db.session, after_cycle(0), settings)

    deliver(settings, smtp_server, after_cycle(0))

    [message] = smtp_server.messages
    assert message.rcpt_tos == ["reports@example.com"] and message.mail_from == "monitor@example.com"
    assert message.subject == "[uniFLOW production] Cycle report, failures: attribute values rejected (2 users)"
    assert message.message["Message-ID"]
    for body in (message.text, message.html):
        assert "3 succeeded, 2 failed, 0 skipped" in body
        assert "is not a cost center" in body and "Attribute value rejected (400 invalidValue), 2 users" in body
        assert "https://monitor.example.com/reports/" in body
    assert "  update            3        2        0" in message.text  # the operation x outcome matrix


def test_it_delivers_each_message_exactly_once_to_a_server_that_was_down_then_up(app, settings):
    server = SmtpServer()  # not started: connections are refused
    ingest(settings, cycle_lines(0, failing={2: BAD_DEPARTMENT}))
    now = after_cycle(0)
    send_due_reports(db.session, now, settings)
    evaluate_health(db.session, now, settings)
    queued = db.session.scalars(select(Notification)).all()

    down = deliver(settings, server, now)
    server.start()
    try:
        too_early = deliver(settings, server, now + timedelta(seconds=30))  # the back-off is 1 minute
        up = deliver(settings, server, now + timedelta(minutes=1))
        again = deliver(settings, server, now + timedelta(hours=1))
    finally:
        server.stop()

    assert len(queued) == 2
    assert (down.failed, down.sent) == (2, 0)
    assert too_early.sent + too_early.failed == 0
    assert (up.sent, again.sent) == (2, 0)
    assert sorted(m.rcpt_tos[0] for m in server.messages) == ["idm-team@example.com", "reports@example.com"]
    rows = db.session.scalars(select(Notification)).all()
    assert all(r.attempts == 2 and r.sent_at is not None and r.last_error is None for r in rows)


def test_it_records_the_error_of_a_refused_delivery(app, settings):
    server = SmtpServer()
    ingest(settings, cycle_lines(0))
    send_due_reports(db.session, after_cycle(0), settings)

    deliver(settings, server, after_cycle(0))

    row = db.session.scalars(select(Notification)).one()
    assert row.status == "failing" and "ConnectionRefusedError" in row.last_error  # type: ignore[operator]


def test_it_never_puts_an_ingested_pin_or_token_in_a_report_or_notification(app, settings, smtp_server):
    for index in range(3):
        ingest(settings, cycle_lines(index, failing={2: BAD_DEPARTMENT} if index != 1 else {},
                                     status_all=401 if index == 1 else None))
        send_due_reports(db.session, after_cycle(index), settings)
        evaluate_health(db.session, after_cycle(index), settings)
    deliver(settings, smtp_server, after_cycle(2))

    assert len(smtp_server.messages) >= 5
    stored = db.session.scalars(select(Notification)).all()
    for text in [m.message.as_string() for m in smtp_server.messages] + [r.text + r.html for r in stored]:
        assert PIN not in text and "SECRET-TOKEN" not in text


class TestNotifyTestCommand:
    @pytest.fixture
    def settings(self, settings, smtp_server):  # type: ignore[no-untyped-def]
        return replace(settings, smtp=smtp_server.settings())

    def test_it_sends_a_test_email_and_prints_the_servers_answer(self, runner, smtp_server):
        result = runner.invoke(args=["notify", "test", "--to", "me@example.com"])

        assert result.exit_code == 0, result.output
        assert "accepted: 250 2.0.0 Ok: queued as TEST" in result.output
        [message] = smtp_server.messages
        assert message.rcpt_tos == ["me@example.com"]
        assert message.subject == "[Provisioning] Test email from the provisioning monitor"
        assert "127.0.0.1" in message.text and "127.0.0.1" in message.html

    def test_it_exits_1_with_the_error_when_the_server_is_down(self, runner, smtp_server):
        smtp_server.stop()

        result = runner.invoke(args=["notify", "test", "--to", "me@example.com"])

        assert result.exit_code == 1
        assert "failed: ConnectionRefusedError" in result.output


def test_it_refuses_to_test_without_an_smtp_host(runner):
    result = runner.invoke(args=["notify", "test", "--to", "me@example.com"])

    assert result.exit_code == 1
    assert "smtp.host is not set" in result.output
