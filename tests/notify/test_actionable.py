"""Issue 17: emails a recipient can act on without opening the dashboard.

Each email goes through a real SMTP server (aiosmtpd on loopback), is parsed, its headers
checked as they arrived, and both parts checked for the three answers (what is wrong, who is
affected, what to do first). One test per item of the issue; the browser renders each HTML part
in test_email_screens.py.
"""
from __future__ import annotations

import html
import json
import re
from datetime import timedelta

import orjson
import pytest
from sqlalchemy import select

from dashboard.admin.jobs import get_job
from dashboard.analysis.causes import (
    cause_of,
    example_message,
    group_causes,
    list_id,
    processed_words,
    subject_line,
)
from dashboard.db import db
from dashboard.formats.entra.jobstatus import parse_job_status
from dashboard.ingest.entra import import_job_status
from dashboard.ingest.scim import options_from
from dashboard.models import Episode
from dashboard.notify.alerts import evaluate_health
from dashboard.notify.digest import send_due_digests
from dashboard.notify.mailer import SmtpMailer
from dashboard.notify.outbox import deliver_pending
from dashboard.notify.recipients import subscribe
from dashboard.notify.reports import send_due_reports
from tests.formats.entra.conftest import DATA
from tests.notify.helpers import (
    BAD_DEPARTMENT,
    T0,
    Received,
    _line,
    after_cycle,
    cycle_end,
    cycle_lines,
    ingest,
)

JOB = "uniflow-prod"
SUBJECT = "[uniFLOW production] Quarantined by Entra: credentials rejected (5 users)"
TOKEN_PLACE = "Extensions > Identity Providers"  # where the secret token is renewed in uniFLOW Online
ENTRA_PLACE = "Admin Credentials > Secret Token"  # where it is entered in Entra
THREE = (("WHAT IS WRONG:", "WHO IS AFFECTED:", "WHAT TO DO FIRST:"),  # the text part
         ("What is wrong:", "Who is affected:", "What to do first:"))  # the HTML part


class Step:
    """Run what the scheduler runs at `now` (evaluation, reports, digests), deliver, return what arrived."""

    def __init__(self, settings, server):  # type: ignore[no-untyped-def]
        self.settings, self.server, self.seen = settings, server, 0

    def __call__(self, now, *, reports: bool = False, digests: bool = False) -> list[Received]:  # type: ignore[no-untyped-def]
        evaluate_health(db.session, now, self.settings)
        if reports:
            send_due_reports(db.session, now, self.settings)
        if digests:
            send_due_digests(db.session, now, self.settings)
        deliver_pending(db.session, SmtpMailer(self.server.settings()), now, settings=self.settings.notifications)
        new = self.server.messages[self.seen:]
        self.seen += len(new)
        return new


def entra_status(settings, *, quarantined: bool, observed, next_attempt=None) -> None:  # type: ignore[no-untyped-def]
    """Entra's synchronizationJob status as imported: Quarantine (EncounteredQuarantineException) or Active."""
    data = orjson.loads((DATA / "job-quarantined.json").read_bytes())
    stamp = observed.strftime("%Y-%m-%dT%H:%M:%SZ")
    data["status"]["progress"][0]["progressObservationDateTime"] = stamp
    if quarantined:
        q = data["status"]["quarantine"]
        q["reason"] = q["error"]["code"] = "EncounteredQuarantineException"
        q["error"]["message"] = "The credentials were rejected by the application"
        q["currentBegan"] = q["seriesBegan"] = stamp
        q["nextAttempt"] = next_attempt.strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        data["status"]["code"] = "Active"
        data["status"]["quarantine"] = None
    options = options_from(settings.ingest, cycles=settings.cycles)
    import_job_status(db.engine, get_job(JOB), data, parse_job_status(data), source="test", rules=options.rules,
                      now=observed)


def credentials_scenario(settings):  # type: ignore[no-untyped-def]
    """Cycle 0 healthy but for a DELETE->500 and a PATCH->400 (noise); cycle 1: every lookup and two
    deletes answered 401 (one with 'EncounteredQuarantineException'); Entra's status says Quarantine."""
    noise = [_line(T0 + timedelta(seconds=20), "DELETE", "/scim/v2/Users/id-77", 500, "noise-del", JOB,
                   response_body={"detail": "Internal error 4711"}),
             _line(T0 + timedelta(seconds=21), "PATCH", "/scim/v2/Users/id-1", 400, "noise-patch", JOB,
                   response_body={"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "400",
                                  "detail": "Attribute 'title' is too long"})]
    ingest(settings, cycle_lines(0) + noise)
    start = T0 + timedelta(minutes=40)
    deletes = [_line(start + timedelta(seconds=3), "DELETE", "/scim/v2/Users/id-3", 401, "del-401-a", JOB,
                     response_body={"detail": "Bearer token for tenant emea has expired"}),
               _line(start + timedelta(seconds=4), "DELETE", "/scim/v2/Users/id-4", 401, "del-401-b", JOB,
                     response_body={"detail": "401 EncounteredQuarantineException: token rejected"})]
    ingest(settings, cycle_lines(1, status_all=401) + deletes)
    entra_status(settings, quarantined=True, observed=cycle_end(1) + timedelta(minutes=5),
                 next_attempt=cycle_end(1) + timedelta(hours=6))


@pytest.fixture
def two_roles(app, settings):  # type: ignore[no-untyped-def]
    """The job's admin (its notification recipient) and a support subscriber."""
    subscribe(db.session, get_job(JOB), "helpdesk@example.com", kinds=["quarantine", "failures", "reports"],
              role="support")
    return settings


def by_recipient(messages: list[Received]) -> dict[str, Received]:
    return {m.rcpt_tos[0]: m for m in messages}


def parts(message: Received) -> tuple[str, str]:
    """The text part, and the HTML part as a reader sees its words (tags out, entities decoded)."""
    words = html.unescape(re.sub(r"<[^>]+>", "", message.html))
    return message.text, re.sub(r"[ \t]+", " ", words)


def first_screen(body: str, answers: tuple[str, str, str]) -> str:
    """The three answers, in order, before anything else of substance; returns that screen."""
    at = [body.index(a) for a in answers]
    assert at == sorted(at), "the three answers come in order"
    blank = re.compile(r"\r?\n\s*\r?\n").search(body, body.index(answers[2]))  # the answer's paragraph ends
    screen = body[:blank.start() if blank else len(body)]
    for later in ("Causes", "Health:", "Compared with the cycle before", "Cycles:"):
        assert later not in screen
    return screen


# -- item 1: the first screen answers what is wrong, who is affected, what to do first ------------


def test_item1_the_quarantine_email_says_entra_confirms_it_since_the_episode_began_who_and_what_to_do(two_roles, smtp_server):
    settings = two_roles
    step = Step(settings, smtp_server)
    credentials_scenario(settings)

    got = by_recipient(step(after_cycle(1)))

    admin = got["idm-team@example.com"]
    for body, answers in zip(parts(admin), THREE):
        screen = first_screen(body, answers)
        assert "Quarantined by Entra (credentials or connection (EncounteredQuarantineException))" in screen
        assert "confirmed by Entra's job status" in screen
        assert "Since 2026-11-28 08:40 UTC" in screen  # when the episode began, not the send time (08:56)
        assert "Entra's next attempt: 2026-11-28 14:40 UTC" in screen
        assert "5 users: user0@contoso.com, user1@contoso.com" in screen
        assert TOKEN_PLACE in screen and ENTRA_PLACE in screen


def test_item1_every_kind_of_email_starts_with_the_three_answers(two_roles, smtp_server):
    settings = two_roles
    subscribe(db.session, get_job(JOB), "lead@example.com", kinds=["digest"], role="admin")
    step = Step(settings, smtp_server)
    ingest(settings, cycle_lines(0, failing={2: BAD_DEPARTMENT}))
    kinds: dict[str, Received] = {}
    for m in step(after_cycle(0), reports=True):
        kinds.setdefault("report" if "Cycle report" in m.subject else "failures", m)
    ingest(settings, cycle_lines(1, status_all=401))
    entra_status(settings, quarantined=True, observed=cycle_end(1) + timedelta(minutes=5),
                 next_attempt=cycle_end(1) + timedelta(hours=6))
    kinds["quarantine"] = next(m for m in step(after_cycle(1)) if "Quarantined by Entra" in m.subject)
    kinds["reminder"] = next(m for m in step(after_cycle(1) + timedelta(minutes=61)) if "Still" in m.subject)
    kinds["digest"] = next(m for m in step(T0.replace(hour=9, minute=30), digests=True) if "digest" in m.subject)
    ingest(settings, cycle_lines(3))
    entra_status(settings, quarantined=False, observed=cycle_end(3) + timedelta(minutes=1))
    kinds["resolved"] = next(m for m in step(after_cycle(3)) if "lifted" in m.subject)

    assert set(kinds) == {"report", "failures", "quarantine", "reminder", "digest", "resolved"}
    for kind, message in kinds.items():
        for body, answers in zip(parts(message), THREE):
            screen = first_screen(body, answers)
            assert "Since 2026-11-28" in screen or kind == "resolved", kind
        if kind != "resolved":  # item 5: every email about an open problem shows its cause's requests
            assert "Failing requests of the main cause" in message.text, kind
    resolved = parts(kinds["resolved"])[0]
    assert "WHAT IS WRONG: Quarantine lifted" in resolved and "was: Credentials rejected (401)" in resolved
    assert "WHAT TO DO FIRST: nothing" in resolved and "Entra's next attempt" not in resolved


# -- item 2: people by name, with their reason and streak ----------------------------------------


def test_item2_the_cycle_report_names_new_fixed_and_still_failing_people_with_reason_and_streak(two_roles, smtp_server):
    settings = two_roles
    step = Step(settings, smtp_server)
    conflict = (409, "uniqueness", "User 'user{n}@contoso.com' already exists")
    ingest(settings, cycle_lines(0, failing={1: conflict, 2: BAD_DEPARTMENT}))
    step(after_cycle(0), reports=True)
    ingest(settings, cycle_lines(1, users=14, failing={2: BAD_DEPARTMENT, **{n: conflict for n in range(3, 14)}}))

    report = next(m for m in step(after_cycle(1, users=14), reports=True) if m.rcpt_tos == ["reports@example.com"])

    text, words = parts(report)
    for body in (text, words):
        assert "New failures: 11" in body and "Fixed: 1" in body and "Still failing: 1" in body
        assert "user3@contoso.com: User already exists in uniFLOW Online (409) on update (1 cycle failing)" in body
        assert "user2@contoso.com: Attribute value rejected (400 invalidValue) on update (2 cycles failing)" in body
        assert "user1@contoso.com: was: User already exists in uniFLOW Online (409) on update" in body
        assert "and 1 more" in body  # 11 new failures: the first 10, then a link to the rest
    assert "- user12@contoso.com:" in text and "- user13@contoso.com:" not in text
    assert "https://monitor.example.com/jobs/uniflow-prod/cycles/" in text


# -- item 3: humane signatures ---------------------------------------------------------------------


def sig(id_: int, operation: str, status: int, scim_type: str | None, users: int, example: str | None = None) -> dict:
    return {"id": id_, "operation": operation, "status": status, "scimType": scim_type, "users": users,
            "exchanges": users, "action": {"title": "t", "action": "a"}, "example": example}


def test_item3_one_cause_one_line_across_operations():
    causes = group_causes(
        [sig(1, "lookup", 401, None, 17), sig(2, "delete", 401, None, 2),
         sig(3, "delete", 401, "EncounteredQuarantineException", 1, "401 EncounteredQuarantineException: token rejected"),
         sig(4, "create", 409, "uniqueness", 3, "User '<value>' already exists")],
        users_by_sig={1: set(range(17)), 2: {3, 4}, 3: {5}, 4: {100, 101, 102}},
    )

    assert [c["line"] for c in causes] == ["Credentials rejected (401), 17 users",
                                          "User already exists in uniFLOW Online (409), 3 users"]
    assert causes[0]["operations"] == ["lookup", "delete"] and causes[0]["requests"] == 20
    assert causes[0]["example"] == "401 EncounteredQuarantineException: token rejected"  # a real message
    assert causes[1]["example"] is None  # a template is for grouping, never shown as the example


def test_item3_the_example_is_a_real_message_and_cause_words_are_plain():
    assert example_message(["User '<value>' already exists", "User 'anna@contoso.com'\n already exists"]) == \
        "User 'anna@contoso.com' already exists"
    assert example_message(["Retry after <n> seconds", None, ""]) is None
    assert cause_of("lookup", 403, None).label == "Credentials rejected (403)"
    assert cause_of("update", 400, "SystemForCrossDomainIdentityManagementCredentialValidationFailure").key == "credentials"
    assert cause_of("lookup", 404, None).key == "lookup_404" and cause_of("update", 404, None).key == "gone"


def test_item3_the_email_shows_one_credentials_line_and_a_real_message_not_a_template(two_roles, smtp_server):
    settings = two_roles
    credentials_scenario(settings)

    admin = by_recipient(Step(settings, smtp_server)(after_cycle(1)))["idm-team@example.com"]

    for body in parts(admin):
        assert body.count("Credentials rejected (401), 5 users") == 2  # the first screen and the causes, once each
        assert "Credentials rejected (401)," not in body.replace("Credentials rejected (401), 5 users", "")
        assert "lookup, delete" in body  # grouped across operations
        assert "Bearer token for tenant emea has expired" in body or "token rejected" in body
        assert "<value>" not in body and "<n>" not in body


# -- item 4: subjects, threading, list headers -----------------------------------------------------


def test_item4_subject_job_first_then_state_and_cause_never_folded(two_roles, smtp_server):
    settings = two_roles
    credentials_scenario(settings)

    admin = by_recipient(Step(settings, smtp_server)(after_cycle(1)))["idm-team@example.com"]

    assert admin.message["Subject"] == SUBJECT
    raw_headers = admin.raw.split(b"\r\n\r\n", 1)[0]
    assert f"\r\nSubject: {SUBJECT}\r\n".encode() in raw_headers  # on one line, no leading line break
    assert admin.message["Auto-Submitted"] == "auto-generated"
    assert admin.message["List-Id"] == '"uniFLOW production" <uniflow-prod.monitor.example.com>'
    assert admin.message["List-Unsubscribe"] == "<https://monitor.example.com/notifications>"


def test_item4_a_long_subject_stays_on_one_line_in_the_raw_message(app, settings, smtp_server):
    from dashboard.notify.mailer import Message, build_mime

    subject = subject_line("uniFLOW EMEA production tenant with a long name", "Quarantined by Entra",
                           "credentials rejected", 1234)
    raw = build_mime(Message("a@example.com", subject, "t\n", "<p>h</p>"), "m@example.com").as_bytes()

    assert len(subject) > 78
    assert f"\nSubject: {subject}\n".encode() in raw.replace(b"\r\n", b"\n")


def test_item4_reminders_and_the_resolved_email_thread_with_the_first(two_roles, smtp_server):
    settings = two_roles
    step = Step(settings, smtp_server)
    credentials_scenario(settings)

    first = by_recipient(step(after_cycle(1)))["idm-team@example.com"]
    reminder = by_recipient(step(after_cycle(1) + timedelta(minutes=61)))["idm-team@example.com"]
    ingest(settings, cycle_lines(3))
    entra_status(settings, quarantined=False, observed=cycle_end(3) + timedelta(minutes=1))
    resolved = by_recipient(step(after_cycle(3)))["idm-team@example.com"]

    opening = first.message["Message-ID"]
    stored = db.session.scalars(select(Episode.message_id).where(Episode.kind == "quarantine")).one()
    assert opening == stored and first.message["In-Reply-To"] is None
    assert reminder.subject.startswith("[uniFLOW production] Still quarantined by Entra")
    for later in (reminder, resolved):
        assert later.message["In-Reply-To"] == opening and later.message["References"] == opening
        assert later.message["Message-ID"] != opening
    assert resolved.subject == "[uniFLOW production] Quarantine lifted"


# -- item 5: evidence that matches the cause --------------------------------------------------------


def test_item5_a_credentials_quarantine_shows_the_401s_not_other_failures(two_roles, smtp_server):
    settings = two_roles
    credentials_scenario(settings)

    got = by_recipient(Step(settings, smtp_server)(after_cycle(1)))

    for message in got.values():
        text = message.text
        evidence = text[text.index("Failing requests"):]
        evidence = evidence[:evidence.index("\r\n\r\n")]
        assert evidence.count("-> 401") == 5
        assert "-> 500" not in evidence and "-> 400" not in evidence
        assert "DELETE /scim/v2/Users/id-4 -> 401" in evidence
        assert "/exchanges/" in evidence
        screen = text[:text.index("WHAT TO DO FIRST")]
        for noise in ("Internal error", "too long", "500", "(400)"):  # the noise is not the cause
            assert noise not in evidence and noise not in screen


# -- item 6: per role -----------------------------------------------------------------------------


def test_item6_admins_get_the_action_and_links_support_the_failing_requests_first(two_roles, smtp_server):
    settings = two_roles
    credentials_scenario(settings)

    got = by_recipient(Step(settings, smtp_server)(after_cycle(1)))

    admin, support = got["idm-team@example.com"], got["helpdesk@example.com"]
    for text_or_words in zip(parts(admin), parts(support)):
        a, s = text_or_words
        assert "What to do:" in a and "What to do:" not in s  # the detailed actions, per cause
        assert "For an administrator:" in s and "The failing requests below show the cause." in s
        assert a.index("Failing requests") > a.index("Causes")  # the admin reads the action first
        assert s.index("Failing requests") < s.index("Causes")  # support reads the requests first
    assert "https://monitor.example.com/jobs/uniflow-prod/diagnostics" in admin.text.split("Causes")[0]
    assert 'href="https://monitor.example.com/jobs/uniflow-prod/diagnostics"' in admin.html.split("Causes")[0]
    # the text part carries the same content as the HTML part
    for message in (admin, support):
        text, words = parts(message)
        for phrase in ("Quarantined by Entra", "Credentials rejected (401), 5 users", "user4@contoso.com",
                       "Entra's next attempt: 2026-11-28 14:40 UTC", TOKEN_PLACE):
            assert (phrase in text) == (phrase in words), phrase


# -- the cycle report's table --------------------------------------------------------------------


def test_the_cycle_report_never_says_n_of_m(two_roles, smtp_server):
    settings = two_roles
    ingest(settings, cycle_lines(0, users=22))

    report = next(m for m in Step(settings, smtp_server)(after_cycle(0, users=22), reports=True)
                  if m.rcpt_tos == ["reports@example.com"])

    text, words = parts(report)
    for body in (text, words):
        assert not re.search(r"\b\d+ of (\d+|\?)", body)
        assert "22 users" in body
    assert processed_words(22, 19) == "22 users (about 19 expected)"
    assert processed_words(20, 300) == "20 users (about 300 expected)"
    assert processed_words(300, None) == "300 users" and processed_words(1, None) == "1 user"


def test_list_id_is_a_dot_atom_per_job():
    assert list_id("uniFLOW EMEA/prod", "example.com") == "<uniflow-emea-prod.example.com>"
    assert subject_line("uniFLOW EMEA", "Quarantined by Entra", "credentials rejected", 17) == \
        "[uniFLOW EMEA] Quarantined by Entra: credentials rejected (17 users)"


def test_headers_survive_a_retry_because_they_are_stored_with_the_email(two_roles):
    from dashboard.models import Notification

    settings = two_roles
    credentials_scenario(settings)
    evaluate_health(db.session, after_cycle(1), settings)

    rows = db.session.scalars(select(Notification).where(Notification.kind == "quarantine")).all()
    assert rows and all(json.loads(r.headers)["List-Id"].endswith("<uniflow-prod.monitor.example.com>") for r in rows)
    assert len({r.message_id for r in rows}) == 1  # one opening message, to each recipient


def test_item1_an_early_warning_says_quarantined_by_entra_when_entra_s_status_already_does(app, settings, smtp_server):
    # The case: the running cycle heads for quarantine while Entra's imported status says
    # Quarantine already; the email must not say "likely" then, and must give Entra's next attempt.
    step = Step(settings, smtp_server)
    ingest(settings, cycle_lines(0, users=10))
    step(after_cycle(0, users=10))
    ingest(settings, cycle_lines(1, users=6, failing={n: (500, None, "Internal error") for n in range(6)}))
    now = cycle_end(1, users=6) + timedelta(minutes=1)
    entra_status(settings, quarantined=True, observed=now - timedelta(minutes=2), next_attempt=now + timedelta(hours=6))

    [warned] = step(now)  # one email: the quarantine Entra confirms (no second "likely" warning beside it)

    assert warned.subject == "[uniFLOW production] Quarantined by Entra: target errors (6 users)"
    assert "Entra's next attempt: 2026-11-28 14:41 UTC" in warned.text
    assert "likely" not in warned.text.split("WHAT TO DO FIRST")[0]


def test_item1_without_entra_s_status_an_early_warning_says_it_is_inferred(app, settings, smtp_server):
    step = Step(settings, smtp_server)
    ingest(settings, cycle_lines(0, users=10))
    step(after_cycle(0, users=10))
    ingest(settings, cycle_lines(1, users=6, failing={n: (500, None, "Internal error") for n in range(6)}))

    [warned] = step(cycle_end(1, users=6) + timedelta(minutes=1))

    assert "WHAT IS WRONG: Quarantine likely in the running cycle (inferred from the traffic)" in warned.text
    assert "Since 2026-11-28 08:40 UTC" in warned.text  # when the running cycle began, not the send time (08:41)


def test_item4_a_subject_with_a_non_ascii_job_title_is_not_folded_either(app, settings):
    from email import message_from_bytes, policy

    from dashboard.notify.mailer import Message, build_mime

    subject = subject_line("uniFLOW Zürich – Produktion", "Quarantined by Entra", "credentials rejected", 17)
    raw = build_mime(Message("a@example.com", subject, "t\n", "<p>h</p>"), "m@example.com").as_bytes()

    line = next(x for x in raw.split(b"\r\n") if x.startswith(b"Subject:"))
    assert line.startswith(b"Subject: [uniFLOW ") and line.endswith(b"(17 users)")  # one line, no leading break
    assert message_from_bytes(raw, policy=policy.default)["Subject"] == subject
