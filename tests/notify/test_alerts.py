"""Failure and health notifications, end to end: traffic in, emails out through a real SMTP server."""
from __future__ import annotations

import html
from datetime import timedelta

from sqlalchemy import func, select

from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.models import Episode, HealthTransition, Notification, ScimUser
from dashboard.notify.alerts import evaluate_health
from dashboard.notify.mailer import SmtpMailer
from dashboard.notify.outbox import deliver_pending
from dashboard.notify.recipients import subscribe
from tests.notify.helpers import (
    BAD_DEPARTMENT,
    PIN,
    T0,
    _line,
    after_cycle,
    cycle_end,
    cycle_lines,
    ingest,
)


class Step:
    """Evaluate at `now`, deliver, and hand back the messages the SMTP server got meanwhile."""

    def __init__(self, settings, server):  # type: ignore[no-untyped-def]
        self.settings, self.server, self.seen = settings, server, 0

    def __call__(self, now):  # type: ignore[no-untyped-def]
        evaluate_health(db.session, now, self.settings)
        deliver_pending(db.session, SmtpMailer(self.server.settings()), now, settings=self.settings.notifications)
        new = self.server.messages[self.seen:]
        self.seen += len(new)
        return new


def test_it_tells_a_persistent_failure_once_reminds_after_the_interval_and_says_when_it_is_fixed(app, settings, smtp_server):
    # user2's department is rejected in cycles 0-3 and fixed in cycle 4; reminders every hour,
    # cycles every 40 minutes: told at cycle 0, reminded at cycle 2 (80 min), resolved at cycle 4.
    step = Step(settings, smtp_server)
    got = []
    for index in range(5):
        ingest(settings, cycle_lines(index, failing={2: BAD_DEPARTMENT} if index < 4 else {}))
        got.append([m.subject for m in step(after_cycle(index))])

    assert got == [
        ["[uniFLOW production] New failures: attribute values rejected (1 user)"],
        [],
        ["[uniFLOW production] Still failing: attribute values rejected (1 user)"],
        [],
        ["[uniFLOW production] Failures resolved: Invalid value (400)"],
    ]
    assert {tuple(m.rcpt_tos) for m in smtp_server.messages} == {("idm-team@example.com",)}


def test_it_puts_what_when_whom_the_signature_action_and_links_in_both_bodies(app, settings, smtp_server):
    ingest(settings, cycle_lines(0, failing={2: BAD_DEPARTMENT, 3: BAD_DEPARTMENT}))

    [message] = Step(settings, smtp_server)(after_cycle(0))

    for body in (message.text, html.unescape(message.html)):
        assert "uniFLOW production" in body  # which job
        assert "Since 2026-11-28 08:00 UTC" in body  # since when
        assert "Attribute value rejected (400 invalidValue), 2 users" in body  # the cause and its count
        assert "Attribute 'department' value 'Sales2' is not a cost center" in body  # a real message
        assert "Fix the value in Entra or the attribute mapping" in body  # the action (admin)
        assert "https://monitor.example.com/jobs/uniflow-prod" in body
    assert "3 succeeded, 2 failed" in message.text


def test_it_gives_support_staff_the_evidence_and_admins_the_action(app, settings, smtp_server):
    subscribe(db.session, get_job("uniflow-prod"), "helpdesk@example.com", kinds=["failures"], role="support")
    ingest(settings, cycle_lines(0, failing={2: BAD_DEPARTMENT}))

    messages = {m.rcpt_tos[0]: m for m in Step(settings, smtp_server)(after_cycle(0))}

    support, admin = messages["helpdesk@example.com"], messages["idm-team@example.com"]
    user2 = db.session.scalars(select(ScimUser).where(ScimUser.user_name == "user2@contoso.com")).one()
    # the failing person's own page (by a key only they have: a userName may be shared)
    assert f"https://monitor.example.com/jobs/uniflow-prod/users/{user2.key}\r\n" in support.text
    assert "user2@contoso.com" in support.text
    assert "https://monitor.example.com/jobs/uniflow-prod/exchanges/" in support.html
    assert "What to do" not in support.text
    assert "What to do" in admin.text and "user2%40contoso.com" not in admin.text


def test_it_tells_quarantine_entered_and_lifted_once_each(app, settings, smtp_server):
    step = Step(settings, smtp_server)
    ingest(settings, cycle_lines(0))
    assert step(after_cycle(0)) == []  # first seen healthy: nothing to tell

    ingest(settings, cycle_lines(1, status_all=401))
    entered = step(after_cycle(1))
    assert [m.subject for m in entered] == [
        "[uniFLOW production] Quarantined (inferred from the traffic): credentials rejected (5 users)"]
    assert "Regenerate" in entered[0].text or "secret token" in entered[0].text
    assert "Next expected attempt by Entra: 2026-11-28 14:40 UTC" in entered[0].text  # 6 h after the cycle
    assert step(after_cycle(1) + timedelta(minutes=5)) == []  # one email per episode, not per evaluation

    ingest(settings, cycle_lines(2))
    lifted = step(after_cycle(2))
    assert [m.subject for m in lifted] == ["[uniFLOW production] Quarantine lifted"]
    assert "The quarantine lasted from 2026-11-28 08:40 UTC" in lifted[0].text


def test_it_tells_a_crossed_deletion_threshold(app, settings, smtp_server):
    step = Step(settings, smtp_server)
    ingest(settings, cycle_lines(0, users=12))
    step(after_cycle(0, users=12))
    start = T0 + timedelta(minutes=40)
    ingest(settings, [_line(start + timedelta(seconds=n), "DELETE", f"/scim/v2/Users/id-{n}", 204, f"del-{n}",
                            "uniflow-prod") for n in range(12)])

    got = step(start + timedelta(seconds=11, minutes=16))

    assert [m.subject for m in got] == [
        "[uniFLOW production] Deletion threshold crossed: too many deletes (12 users)"]
    assert "12 deletes and disables in one cycle (threshold 10)" in got[0].text


def test_it_tells_a_stall_and_its_end(app, settings, smtp_server):
    step = Step(settings, smtp_server)
    ingest(settings, cycle_lines(0))
    step(after_cycle(0))

    stalled = step(cycle_end(0) + timedelta(minutes=61))  # interval 40 + grace 20 minutes of silence
    ingest(settings, cycle_lines(3))
    resumed = step(after_cycle(3))

    assert [m.subject for m in stalled] == [
        "[uniFLOW production] Provisioning stalled: no traffic since 2026-11-28 08:00 UTC"]
    assert [m.subject for m in resumed] == ["[uniFLOW production] Provisioning resumed"]


def test_it_warns_early_while_a_cycle_heads_for_quarantine_and_clears_the_warning(app, settings, smtp_server):
    step = Step(settings, smtp_server)
    ingest(settings, cycle_lines(0, users=10))
    step(after_cycle(0, users=10))
    # Cycle 1 is running: its first 6 users all failed (expected 10: projected 10 failures, 100 %).
    error = (500, None, "Internal error")
    ingest(settings, cycle_lines(1, users=6, failing={n: error for n in range(6)}))

    warned = step(cycle_end(1, users=6) + timedelta(minutes=1))
    more = []  # the rest of the cycle: 14 users created, so 6 failed of 20 is no quarantine
    for n in range(6, 20):
        at = cycle_end(1, users=6) + timedelta(minutes=2, seconds=n)
        more.append(_line(at, "POST", "/scim/v2/Users", 201, f"late-{n}", "uniflow-prod",
                          request_body={"userName": f"new{n}@contoso.com"}, response_body={"id": f"new-{n}"}))
    ingest(settings, more)
    cleared = step(cycle_end(1, users=6) + timedelta(minutes=2, seconds=20) + timedelta(minutes=16))

    assert [m.subject for m in warned] == [
        "[uniFLOW production] Quarantine likely in the running cycle: target errors (6 users)"]
    assert "100% of users failing, projected 10 failures" in warned[0].text
    assert [m.subject for m in cleared] == [
        "[uniFLOW production] Early warning cleared"]


def test_it_does_not_mail_a_throttling_blip_but_mails_throttling_that_persists(app, settings, smtp_server):
    step = Step(settings, smtp_server)
    throttled = (429, None, "Too many requests")
    ingest(settings, cycle_lines(0, failing={1: throttled}))
    ingest(settings, cycle_lines(1))
    blip = step(after_cycle(0)) + step(after_cycle(1))

    ingest(settings, cycle_lines(2, failing={1: throttled}))
    ingest(settings, cycle_lines(3, failing={1: throttled}))
    persisted = step(after_cycle(2)) + step(after_cycle(3))

    assert blip == []
    assert [m.subject for m in persisted] == [
        "[uniFLOW production] New failures: throttled (1 user)"]


def test_it_claims_each_transition_once_and_queues_nothing_twice(app, settings):
    ingest(settings, cycle_lines(0))
    ingest(settings, cycle_lines(1, status_all=401))
    now = after_cycle(1)

    first = evaluate_health(db.session, now, settings)
    second = evaluate_health(db.session, now, settings)

    assert (first, second) == (1, 0)
    assert db.session.scalar(select(func.count()).select_from(HealthTransition)
                             .where(HealthTransition.processed_at.is_(None))) == 0
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 1


def test_it_tells_an_address_that_wants_only_the_digest_nothing_at_once(app, settings):
    job = get_job("uniflow-prod")
    subscribe(db.session, job, "idm-team@example.com", kinds=["digest"], role="admin")
    ingest(settings, cycle_lines(0, failing={2: BAD_DEPARTMENT}))

    assert evaluate_health(db.session, after_cycle(0), settings) == 0
    assert db.session.scalar(select(func.count()).select_from(Episode)) == 1  # recorded for the digest


def test_it_never_puts_a_secret_in_an_email(app, settings, smtp_server):
    step = Step(settings, smtp_server)
    ingest(settings, cycle_lines(0, failing={2: BAD_DEPARTMENT}))
    ingest(settings, cycle_lines(1, status_all=401))
    step(after_cycle(0))
    step(after_cycle(1))

    assert len(smtp_server.messages) == 2
    for message in smtp_server.messages:
        raw = message.message.as_string()
        assert PIN not in raw and "SECRET-TOKEN" not in raw


def test_it_reminds_of_a_quarantine_that_lasts_without_new_traffic(app, settings, smtp_server):
    # Quarantined jobs are silent for hours (Entra's back-off): the reminder comes from the clock.
    step = Step(settings, smtp_server)
    ingest(settings, cycle_lines(0))
    step(after_cycle(0))
    ingest(settings, cycle_lines(1, status_all=401))
    step(after_cycle(1))

    quiet = step(after_cycle(1) + timedelta(minutes=59))
    reminded = step(after_cycle(1) + timedelta(minutes=61))

    assert quiet == []
    assert [m.subject for m in reminded] == [
        "[uniFLOW production] Still quarantined (inferred from the traffic): credentials rejected (5 users)"]
    assert "reminder 1" in reminded[0].text


def test_it_tells_a_changed_quarantine_reason_within_the_same_episode(app, settings, smtp_server):
    step = Step(settings, smtp_server)
    ingest(settings, cycle_lines(0, users=12))
    step(after_cycle(0, users=12))
    ingest(settings, cycle_lines(1, users=12, status_all=401))
    entered = step(after_cycle(1, users=12))
    start = T0 + 2 * timedelta(minutes=40)  # the next cycle deletes 12 users: another reason
    ingest(settings, [_line(start + timedelta(seconds=n), "DELETE", f"/scim/v2/Users/id-{n}", 204, f"del-{n}",
                            "uniflow-prod") for n in range(12)])

    changed = step(start + timedelta(seconds=11, minutes=16))

    assert [m.subject for m in entered] == ["[uniFLOW production] Quarantined (inferred from the traffic): credentials rejected (12 users)"]
    assert [m.subject for m in changed] == [
        "[uniFLOW production] Deletion threshold crossed: too many deletes (12 users)"]
    assert db.session.scalar(select(func.count()).select_from(Episode).where(Episode.kind == "quarantine")) == 1


def test_it_tells_failures_seen_only_in_entra_s_provisioning_logs_with_a_link_to_the_event(app, settings, smtp_server):
    # An identity-provider-side job: no SCIM traffic, only Entra's events; a support subscriber
    # gets the sample failure as a link to the event page.
    from dashboard.formats.entra.parse import convert_record
    from dashboard.ingest.entra import import_events
    from dashboard.ingest.scim import options_from

    subscribe(db.session, get_job("uniflow-prod"), "helpdesk@example.com", kinds=["failures"], role="support")
    records = []
    for n in range(4):
        failed = n < 2
        records.append({
            "id": f"ev-{n}", "activityDateTime": (T0 + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "cycleId": "c-1", "changeId": f"ch-{n}", "provisioningAction": "update",
            "provisioningStatusInfo": {"status": "failure" if failed else "success", "errorInformation": {
                "errorCode": "SystemForCrossDomainIdentityManagementBadRequest",
                "reason": "StatusCode: BadRequest\r\nMessage: department is not a cost center. This operation was "
                          f"retried {n} times."} if failed else None},
            "sourceIdentity": {"id": f"s{n}", "identityType": "User", "details": {"UserPrincipalName": f"user{n}@contoso.com"}},
            "targetIdentity": {"id": f"id-{n}", "identityType": "User"},
        })
    options = options_from(settings.ingest, cycles=settings.cycles)
    import_events(db.engine, get_job("uniflow-prod"), (("t", convert_record(r, i)) for i, r in enumerate(records, 1)),
                  source="t", via="cli", options=options)

    got = Step(settings, smtp_server)(T0 + timedelta(hours=1))
    messages = {m.rcpt_tos[0]: m for m in got}

    support, admin = messages["helpdesk@example.com"], messages["idm-team@example.com"]
    assert admin.subject == "[uniFLOW production] New failures: requests rejected (2 users)"
    assert "Request rejected (400), 2 users" in admin.text and "What to do" in admin.text
    assert "department is not a cost center. This operation was retried" in admin.text  # Entra's own words
    assert "https://monitor.example.com/jobs/uniflow-prod/entra-events/" in support.text
    assert "/exchanges/-" not in support.text + support.html


def test_it_tells_a_new_failure_beside_a_reminder_of_an_older_one_in_one_email(app, settings, smtp_server):
    """An episode read back from the database (naive times on SQLite) and one opened in this
    evaluation (aware) are told together: the email's 'since' is the older one's start."""
    step = Step(settings, smtp_server)
    conflict = (409, "uniqueness", "User already exists")
    got = []
    for index in range(3):
        failing = {2: BAD_DEPARTMENT} | ({3: conflict} if index == 2 else {})
        ingest(settings, cycle_lines(index, failing=failing))
        got.append([m.subject for m in step(after_cycle(index))])

    assert got[0] == ["[uniFLOW production] New failures: attribute values rejected (1 user)"]
    assert len(got[2]) == 1 and got[2][0].startswith("[uniFLOW production] New failures"), got
    body = smtp_server.messages[-1].text
    assert "uniqueness" in body.lower() or "already exists" in body.lower()
