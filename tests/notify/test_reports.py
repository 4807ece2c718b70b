"""The scheduled cycle report: what it covers, idempotence, due times, the pages that list it."""
from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

import orjson
import pytest
from argon2 import PasswordHasher
from flask import g
from sqlalchemy import func, select

from dashboard.admin import accounts
from dashboard.admin.accounts import add_account
from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.models import Cycle, Notification, ReportRun, ScimUser
from dashboard.notify.mailer import MemoryMailer
from dashboard.notify.outbox import deliver_pending
from dashboard.notify.reports import send_due_reports, send_report_if_due
from dashboard.queries.cycles import cycle_detail
from dashboard.settings import JobSettings, ReportSettings
from tests.notify.helpers import BAD_DEPARTMENT, after_cycle, cycle_lines, ingest

PASSWORD = "correct horse battery"


@pytest.fixture
def settings(settings):  # type: ignore[no-untyped-def]
    return replace(settings, reports=ReportSettings(recipients=("reports@example.com",)),
                   jobs=(JobSettings(name="uniflow-prod", display_name="uniFLOW production"),))


def reports() -> list[ReportRun]:
    return list(db.session.scalars(select(ReportRun).order_by(ReportRun.id)))


def test_it_reports_the_cycles_completed_since_the_last_report(app, settings):
    for index in range(3):
        ingest(settings, cycle_lines(index, failing={2: BAD_DEPARTMENT} if index else {}))

    [run] = send_due_reports(db.session, after_cycle(2), settings)

    document = orjson.loads(run.data)
    assert (run.cycles, run.failed_users, run.health, run.recipients) == (3, 2, "warning", 1)
    assert [c["totals"] for c in document["cycles"]] == [{"success": 5, "failure": 0, "skipped": 0},
                                                         {"success": 4, "failure": 1, "skipped": 0},
                                                         {"success": 4, "failure": 1, "skipped": 0}]
    assert document["counts"]["update"] == {"success": 13, "failure": 2, "skipped": 0}
    assert document["diff"]["still_failing"]["count"] == 1
    assert document["signatures"][0]["in_cycle"] == {"exchanges": 2, "users": 2}
    assert document["signatures"][0]["action"]["code"] == "SystemForCrossDomainIdentityManagementBadRequest"


def test_it_takes_its_numbers_from_the_cycle_detail_of_the_pages(app, settings):
    ingest(settings, cycle_lines(0))
    ingest(settings, cycle_lines(1, failing={2: BAD_DEPARTMENT}))
    now = after_cycle(1)

    [run] = send_due_reports(db.session, now, settings)

    cycle = db.session.scalars(select(Cycle).order_by(Cycle.started_us.desc())).first()
    detail = cycle_detail(db.session, get_job("uniflow-prod"), cycle, now, settings)  # type: ignore[arg-type]
    reported = orjson.loads(run.data)["cycles"][-1]
    assert reported["counts"] == detail["counts"]
    assert {k: v["count"] for k, v in reported["diff"].items()} == {k: len(v) for k, v in detail["diff"].items()}
    assert reported["progress"]["percent"] == 100.0


def test_it_makes_nothing_twice_for_the_same_cycles(app, settings):
    ingest(settings, cycle_lines(0))
    job = get_job("uniflow-prod")

    first = send_report_if_due(db.session, job, after_cycle(0), settings, force=True)
    second = send_report_if_due(db.session, job, after_cycle(0), settings, force=True)

    assert first is not None and second is None
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 1


def test_it_neither_skips_nor_repeats_a_report_across_a_restart(app, settings):
    # The due time lives in the database: a fresh process (here: a new session) sees it.
    ingest(settings, cycle_lines(0))
    ingest(settings, cycle_lines(1))
    first = [(r.first_cycle_id, r.last_cycle_id) for r in send_due_reports(db.session, after_cycle(1), settings)]
    db.session.remove()

    too_soon = send_due_reports(db.session, after_cycle(1) + timedelta(minutes=10), settings)
    ingest(settings, cycle_lines(2))
    due = send_due_reports(db.session, after_cycle(1) + timedelta(minutes=40), settings)
    idle = send_due_reports(db.session, after_cycle(1) + timedelta(minutes=80), settings)  # nothing new completed

    assert first == [(1, 2)]
    assert too_soon == []
    assert [(r.first_cycle_id, r.last_cycle_id) for r in due] == [(3, 3)]
    assert idle == []


def test_it_leaves_a_running_cycle_to_the_next_report(app, settings):
    ingest(settings, cycle_lines(0))

    assert send_due_reports(db.session, after_cycle(0) - timedelta(minutes=10), settings) == []
    assert len(send_due_reports(db.session, after_cycle(0) + timedelta(minutes=40), settings)) == 1


def test_it_emails_the_report_to_subscribers_of_reports_only(app, settings):
    from dashboard.notify.recipients import subscribe

    job = get_job("uniflow-prod")
    subscribe(db.session, job, "help@example.com", kinds=["reports"], role="support")
    subscribe(db.session, job, "ops@example.com", kinds=["failures"], role="admin")
    ingest(settings, cycle_lines(0, failing={2: BAD_DEPARTMENT}))
    send_due_reports(db.session, after_cycle(0), settings)
    mailer = MemoryMailer()

    deliver_pending(db.session, mailer, after_cycle(0), settings=settings.notifications)

    sent = {m.to: m for m in mailer.outbox}
    assert sorted(sent) == ["help@example.com", "reports@example.com"]
    user2 = db.session.scalars(select(ScimUser).where(ScimUser.user_name == "user2@contoso.com")).one()
    help_text = sent["help@example.com"].text  # evidence for support staff: the failing person, linked
    assert "user2@contoso.com" in help_text and f"/jobs/uniflow-prod/users/{user2.key}\n" in help_text
    assert "What to do:" in sent["reports@example.com"].text  # actions for admins


# -- pages -----------------------------------------------------------------------------------------


@pytest.fixture
def fast_hashes(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def sign_in(client, role: str):  # type: ignore[no-untyped-def]
    add_account(f"{role}@example.com", role, PASSWORD)
    g.pop("csrf_token", None)
    token = csrf(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": f"{role}@example.com", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302
    return client


def csrf(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


@pytest.mark.parametrize(("role", "status"), [("viewer", 403), ("support", 200), ("admin", 200)])
def test_it_lists_reports_for_support_staff(app, client, settings, fast_hashes, role, status):
    ingest(settings, cycle_lines(0, failing={2: BAD_DEPARTMENT}))
    [run] = send_due_reports(db.session, after_cycle(0), settings)
    sign_in(client, role)

    listing = client.get("/reports?job=uniflow-prod")
    detail = client.get(f"/reports/{run.id}")

    assert (listing.status_code, detail.status_code) == (status, status)
    if status == 200:
        assert f'href="/reports/{run.id}"' in listing.get_data(as_text=True)
        page = detail.get_data(as_text=True)
        assert "is not a cost center" in page and "user2@contoso.com" in page
    assert client.get("/reports/999").status_code == (404 if status == 200 else 403)


@pytest.mark.parametrize(("role", "status"), [("support", 403), ("admin", 200)])
def test_it_shows_undelivered_emails_with_their_error_to_admins(app, client, settings, fast_hashes, role, status):
    ingest(settings, cycle_lines(0))
    send_due_reports(db.session, after_cycle(0), settings)
    deliver_pending(db.session, MemoryMailer(failures=[ConnectionRefusedError(111, "Connection refused")]),
                    after_cycle(0), settings=settings.notifications)
    sign_in(client, role)
    g.pop("csrf_token", None)  # signing in starts a new session: a new CSRF token

    response = client.get("/notifications")

    assert response.status_code == status
    if status == 200:
        page = response.get_data(as_text=True)
        assert "ConnectionRefusedError: [Errno 111] Connection refused" in page and "reports@example.com" in page
        row = db.session.scalars(select(Notification)).one()
        retried = client.post(f"/notifications/{row.id}/retry", data={"csrf_token": csrf(page)})
        assert retried.status_code == 302
