"""The administration pages through the test client: what an admin changes happens, ends what it
must end, is in the audit log without a secret, and a new subscriber hears of an open problem."""
from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import replace

import pytest
from argon2 import PasswordHasher
from flask import g
from sqlalchemy import select

from dashboard.admin import accounts
from dashboard.admin.accounts import add_account
from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.models import AuditEntry, Notification
from dashboard.notify.alerts import evaluate_health
from dashboard.notify.mailer import SmtpMailer
from dashboard.notify.outbox import deliver_pending
from dashboard.settings import JobSettings, NotificationSettings, thresholds_for
from tests.notify.helpers import SmtpServer, after_cycle, cycle_lines, ingest
from tests.web.signin import PASSWORD, csrf_token, sign_in, signed_in

PUSH = "/api/v1/jobs/uniflow-prod/exchanges"
LINE = b'{"ts": "2026-11-28T09:00:00Z", "method": "GET", "path": "/scim/v2/Users", "status": 200}'
NEW_PASSWORD = "a brand new password"


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def settings(base_settings, smtp_server):  # type: ignore[no-untyped-def]
    # Small thresholds so five users can be quarantined; a real SMTP server on loopback.
    return replace(
        base_settings,
        app=replace(base_settings.app, secret_key="test-secret", base_url="https://monitor.example.com"),
        jobs=(JobSettings(name="uniflow-prod", display_name="uniFLOW production",
                          notification_recipients=("idm-team@example.com",), quarantine={"min_failures": 5}),),
        notifications=NotificationSettings(reminder_hours=1),
        smtp=smtp_server.settings(),
    )


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def admin(client):  # type: ignore[no-untyped-def]
    return signed_in(client, "admin")


def post(client, url: str, **data):  # type: ignore[no-untyped-def]
    g.pop("csrf_token", None)
    return client.post(url, data={"csrf_token": csrf_token(client, "/admin/accounts")} | data, follow_redirects=True)


def audit_rows() -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def audit_text() -> str:
    return "\n".join(f"{e.actor} {e.action} {e.target} {e.detail}" for e in audit_rows())


# -- accounts -----------------------------------------------------------------------------------------


def test_it_adds_an_account_that_can_sign_in_and_records_who_did_it_without_the_password(admin, app):
    page = post(admin, "/admin/accounts", email="Support@Example.com", role="support", password=NEW_PASSWORD)

    assert "Added support@example.com (support)." in page.get_data(as_text=True)
    assert [(e.actor, e.action, e.target, e.detail) for e in audit_rows()] == [
        ("admin@example.com", "account.add", "support@example.com", "role support")]
    assert NEW_PASSWORD not in audit_text()
    other = app.test_client()
    assert sign_in(other, "support@example.com", NEW_PASSWORD).status_code == 302


def test_it_refuses_a_short_password_and_records_nothing(admin):
    page = post(admin, "/admin/accounts", email="x@example.com", role="viewer", password="short")

    assert "Account not added: the password must have at least 10 characters." in page.get_data(as_text=True)
    assert audit_rows() == []


def test_disabling_an_account_ends_its_sessions_and_its_sign_in(admin, app):
    viewer = signed_in(app.test_client(), "viewer")
    assert viewer.get("/").status_code == 200

    page = post(admin, "/admin/accounts/active", email="viewer@example.com", active="0")

    assert "viewer@example.com disabled; its sessions ended." in page.get_data(as_text=True)
    assert viewer.get("/").headers["Location"].startswith("/login")
    assert sign_in(app.test_client(), "viewer@example.com").status_code == 401
    assert audit_rows()[-1].action == "account.disable"


def test_a_password_reset_ends_the_sessions_and_the_new_password_works(admin, app):
    viewer = signed_in(app.test_client(), "viewer")

    page = post(admin, "/admin/accounts/password", email="viewer@example.com", password=NEW_PASSWORD)

    assert "every session of the account has ended" in page.get_data(as_text=True)
    assert viewer.get("/").status_code == 302
    assert sign_in(app.test_client(), "viewer@example.com", PASSWORD).status_code == 401
    assert sign_in(app.test_client(), "viewer@example.com", NEW_PASSWORD).status_code == 302
    assert [e.detail for e in audit_rows()] == ["password reset; its sessions ended"]
    assert NEW_PASSWORD not in audit_text()


def test_a_role_change_takes_effect_on_the_next_request(admin, app):
    viewer = signed_in(app.test_client(), "viewer")
    assert viewer.get("/jobs/uniflow-prod/logs").status_code == 403

    post(admin, "/admin/accounts/role", email="viewer@example.com", role="support")

    assert viewer.get("/jobs/uniflow-prod/logs").status_code == 200
    assert audit_rows()[-1].detail == "role set to support"


def test_the_last_admin_cannot_demote_or_disable_itself(admin):
    demoted = post(admin, "/admin/accounts/role", email="admin@example.com", role="viewer")
    disabled = post(admin, "/admin/accounts/active", email="admin@example.com", active="0")

    assert "admin@example.com is the last active admin" in demoted.get_data(as_text=True)
    assert "admin@example.com is the last active admin" in disabled.get_data(as_text=True)
    assert admin.get("/admin/accounts").status_code == 200
    assert audit_rows() == []


# -- jobs and thresholds --------------------------------------------------------------------------------


def test_it_adds_a_job_and_sets_its_display_name_scope_size_and_thresholds(admin, settings):
    post(admin, "/admin/jobs", name="uniflow-emea", display_name="EMEA", scope_size="3000")
    page = post(admin, "/admin/jobs/uniflow-emea", display_name="uniFLOW EMEA", scope_size="3100",
                thresholds='{"min_failures": 50, "failure_proportion": 0.2}')

    assert "Saved." in page.get_data(as_text=True)
    job = get_job("uniflow-emea")
    assert (job.display_name, job.scope_size) == ("uniFLOW EMEA", 3100)
    assert (thresholds_for(job, settings).min_failures, thresholds_for(job, settings).proportion) == (50, 0.2)
    assert [e.action for e in audit_rows()] == ["job.add", "job.update"]
    assert audit_rows()[1].detail == ("display name 'EMEA', scope size 3000, thresholds {} → display name 'uniFLOW EMEA', "
                                      'scope size 3100, thresholds {"failure_proportion": 0.2, "min_failures": 50}')


@pytest.mark.parametrize(("thresholds", "named"), [
    ('{"min_failure": 5}', "unknown threshold 'min_failure'"),
    ('{"failure_proportion": 2}', "threshold 'failure_proportion' is out of range"),
    ('{"min_failures": 5.5}', "threshold 'min_failures' must be a whole number"),
    ('[1, 2]', "the thresholds must be a JSON object"),
    ('{min_failures: 5}', "the thresholds are not JSON"),
])
def test_it_names_the_bad_threshold_and_changes_nothing(admin, thresholds, named):
    page = post(admin, "/admin/jobs/uniflow-prod", display_name="Changed", scope_size="", thresholds=thresholds)

    assert named in html.unescape(page.get_data(as_text=True))
    job = get_job("uniflow-prod")
    assert job.display_name == "uniFLOW production" and json.loads(job.quarantine_overrides) == {"min_failures": 5}
    assert audit_rows() == []


def test_it_refuses_a_job_name_that_is_no_url_segment(admin):
    page = post(admin, "/admin/jobs", name="a/b", display_name="")

    assert "Job not added: a job name is letters" in page.get_data(as_text=True)


# -- ingest tokens ------------------------------------------------------------------------------------


def test_a_token_is_shown_once_listed_by_prefix_and_last_use_and_stops_working_when_revoked(admin, app):
    created = post(admin, "/admin/jobs/uniflow-prod/tokens").get_data(as_text=True)
    token = re.search(r'id="new-token">(pmd_[^<]+)<', created).group(1)  # type: ignore[union-attr]
    pusher = app.test_client()

    assert pusher.post(PUSH, data=LINE, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    listing = admin.get("/admin/jobs/uniflow-prod").get_data(as_text=True)
    assert token not in listing and f"<code>{token[:12]}…</code>" in listing
    assert "never" not in re.search(r'<tr data-prefix=.*?</tr>', listing, re.S).group(0)  # type: ignore[union-attr]

    token_id = re.search(r'name="token_id" value="(\d+)"', listing).group(1)  # type: ignore[union-attr]
    revoked = post(admin, "/admin/jobs/uniflow-prod/tokens/revoke", token_id=token_id).get_data(as_text=True)

    assert f"Token {token[:12]}… revoked" in revoked
    assert pusher.post(PUSH, data=LINE, headers={"Authorization": f"Bearer {token}"}).status_code == 403
    assert [e.action for e in audit_rows()] == ["token.create", "token.revoke"]
    assert audit_rows()[0].detail == f"ingest token {token[:12]}… created"
    assert token not in audit_text()


def test_it_does_not_revoke_another_job_s_token(admin):
    post(admin, "/admin/jobs", name="other", display_name="")
    post(admin, "/admin/jobs/other/tokens")
    listing = admin.get("/admin/jobs/other").get_data(as_text=True)
    token_id = re.search(r'name="token_id" value="(\d+)"', listing).group(1)  # type: ignore[union-attr]

    page = post(admin, "/admin/jobs/uniflow-prod/tokens/revoke", token_id=token_id).get_data(as_text=True)

    assert "No such token of this job." in page
    assert "Revoke" in admin.get("/admin/jobs/other").get_data(as_text=True)


# -- CSRF and roles -------------------------------------------------------------------------------------


def test_a_form_without_its_csrf_token_changes_nothing(admin):
    response = admin.post("/admin/accounts", data={"email": "x@example.com", "role": "admin", "password": NEW_PASSWORD})

    assert response.status_code == 400
    assert audit_rows() == [] and "x@example.com" not in admin.get("/admin/accounts").get_data(as_text=True)


@pytest.mark.parametrize("role", ["viewer", "support"])
def test_a_lower_role_gets_403_naming_the_admin_role(client, role):
    signed_in(client, role)
    g.pop("csrf_token", None)
    token = csrf_token(client, "/")

    page = client.get("/admin/jobs")
    posted = client.post("/admin/jobs", data={"csrf_token": token, "name": "sneaky"})

    assert page.status_code == 403 and posted.status_code == 403
    assert f"This page needs the admin role; you are signed in as {role}." in page.get_data(as_text=True)
    assert audit_rows() == []


# -- subscriptions ---------------------------------------------------------------------------------------


def quarantined(settings, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """uniflow-prod quarantined (every request 401), its email sent to the job's recipient."""
    ingest(settings, cycle_lines(0))
    evaluate_health(db.session, after_cycle(0), settings)
    ingest(settings, cycle_lines(1, status_all=401))
    evaluate_health(db.session, after_cycle(1), settings)
    deliver_pending(db.session, SmtpMailer(smtp_server.settings()), after_cycle(1), settings=settings.notifications)
    assert [m.rcpt_tos for m in smtp_server.messages] == [["idm-team@example.com"]]


def test_a_new_subscriber_to_a_quarantined_job_is_told_at_once_and_once(admin, app, settings, smtp_server):
    quarantined(settings, smtp_server)
    app.extensions["clock"] = lambda: after_cycle(1)

    page = post(admin, "/admin/jobs/uniflow-prod/subscriptions", address="oncall@example.com", role="support",
                kinds=["quarantine", "failures"]).get_data(as_text=True)
    post(admin, "/admin/jobs/uniflow-prod/subscriptions", address="oncall@example.com", role="support",
         kinds=["quarantine", "failures", "digest"])
    deliver_pending(db.session, SmtpMailer(smtp_server.settings()), after_cycle(1), settings=settings.notifications)

    assert "oncall@example.com subscribed to uniflow-prod (failures, quarantine). 1 email about the open problem" in page
    told = [m for m in smtp_server.messages if m.rcpt_tos == ["oncall@example.com"]]
    assert [m.subject for m in told] == ["[uniFLOW production] Quarantined (inferred from the traffic): credentials rejected (5 users)"]
    assert "oncall@example.com" in admin.get("/admin/jobs/uniflow-prod").get_data(as_text=True)
    assert [e.action for e in audit_rows()] == ["subscription.add", "subscription.add"]


def test_the_command_line_subscribe_tells_a_new_subscriber_too(app, runner, settings, smtp_server):
    quarantined(settings, smtp_server)
    app.extensions["clock"] = lambda: after_cycle(1)

    result = runner.invoke(args=["notify", "subscribe", "--job", "uniflow-prod", "--to", "cli@example.com"])

    assert result.exit_code == 0, result.output
    assert "queued 1 email(s) about the job's open problem for cli@example.com" in result.output
    assert db.session.scalars(select(Notification.recipient).order_by(Notification.id)).all() == [
        "idm-team@example.com", "cli@example.com"]


def test_an_address_already_told_or_wanting_only_reports_is_not_told_again(admin, app, settings, smtp_server):
    quarantined(settings, smtp_server)
    app.extensions["clock"] = lambda: after_cycle(1)

    post(admin, "/admin/jobs/uniflow-prod/subscriptions", address="idm-team@example.com", role="admin",
         kinds=["quarantine", "failures"])
    post(admin, "/admin/jobs/uniflow-prod/subscriptions", address="reports-only@example.com", role="admin",
         kinds=["reports"])

    assert db.session.scalars(select(Notification.recipient)).all() == ["idm-team@example.com"]


def test_a_subscriber_to_a_healthy_job_gets_nothing_and_can_unsubscribe(admin, app, settings):
    ingest(settings, cycle_lines(0))
    app.extensions["clock"] = lambda: after_cycle(0)

    post(admin, "/admin/jobs/uniflow-prod/subscriptions", address="new@example.com", role="admin", kinds=["quarantine"])
    page = post(admin, "/admin/jobs/uniflow-prod/subscriptions/remove", address="new@example.com").get_data(as_text=True)

    assert db.session.scalars(select(Notification)).all() == []
    assert "new@example.com unsubscribed." in page
    assert [e.action for e in audit_rows()] == ["subscription.add", "subscription.remove"]


def test_it_names_a_bad_subscription(admin):
    page = post(admin, "/admin/jobs/uniflow-prod/subscriptions", address="not-an-address", role="admin",
                kinds=["quarantine"]).get_data(as_text=True)

    assert "Not subscribed: &#39;not-an-address&#39; is not an email address." in page
    assert audit_rows() == []


# -- SMTP test and the audit page ------------------------------------------------------------------------


def test_the_smtp_test_reaches_a_real_server_and_says_so_and_a_dead_server_is_reported(admin, smtp_server):
    sent = post(admin, "/admin/email/test", to="me@example.com").get_data(as_text=True)
    smtp_server.stop()
    failed = post(admin, "/admin/email/test", to="me@example.com").get_data(as_text=True)

    assert "Test email to me@example.com accepted: 250 2.0.0 Ok: queued as TEST" in sent
    assert [m.rcpt_tos for m in smtp_server.messages] == [["me@example.com"]]
    assert "Test email to me@example.com failed: ConnectionRefusedError" in failed
    assert [e.detail.split(": ")[1] for e in audit_rows()] == ["accepted", "failed"]


def test_the_audit_page_shows_who_what_and_when_newest_first(admin):
    post(admin, "/admin/jobs", name="first-job", display_name="")
    add_account("viewer@example.com", "viewer", PASSWORD)
    post(admin, "/admin/accounts/role", email="viewer@example.com", role="support")

    page = admin.get("/admin/audit").get_data(as_text=True)

    assert page.index("account.role") < page.index("job.add")
    assert page.count("admin@example.com") >= 3  # the signed-in header once, and each entry's actor
    assert re.search(r"<time datetime=\"\d{4}-\d\d-\d\dT", page)
