"""The daily digest: once per address and day, covering the time since the previous one."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.models import Notification
from dashboard.notify.alerts import evaluate_health
from dashboard.notify.digest import send_due_digests
from dashboard.notify.recipients import subscribe
from tests.notify.helpers import BAD_DEPARTMENT, T0, after_cycle, cycle_lines, ingest


def test_it_sends_one_digest_per_day_after_the_digest_hour(app, settings):
    subscribe(db.session, get_job("uniflow-prod"), "lead@example.com", kinds=["digest"], role="admin")
    ingest(settings, cycle_lines(0, failing={2: BAD_DEPARTMENT}))
    evaluate_health(db.session, after_cycle(0), settings)
    morning = T0.replace(hour=6)  # before the digest hour (7)
    late = T0.replace(hour=9)

    assert send_due_digests(db.session, morning, settings) == 0
    assert send_due_digests(db.session, late, settings) == 1
    assert send_due_digests(db.session, late + timedelta(hours=3), settings) == 0  # once a day
    assert send_due_digests(db.session, late + timedelta(days=1), settings) == 1

    first = db.session.scalars(select(Notification).where(Notification.kind == "digest").order_by(Notification.id)).first()
    assert first.recipient == "lead@example.com"  # type: ignore[union-attr]
    assert first.subject == "[uniFLOW production] Daily digest 2026-11-28, failures: attribute values rejected (1 user)"  # type: ignore[union-attr]
    for body in (first.text, first.html):  # type: ignore[union-attr]
        assert "uniFLOW production" in body and "is not a cost center" in body
        assert "Cycles completed: 1, failed users in them: 1" in body
