"""Rendering: three templates per email, one context."""
from __future__ import annotations

import pytest
from jinja2 import UndefinedError

from dashboard.notify.emails import link, render_email

HEALTH = {"state": "quarantined", "reason": "EncounteredQuarantineException", "since": "2026-11-28T09:00:00.000Z",
          "explanation": "The target rejected Entra's credentials.", "next_expected_attempt": "2026-11-28T15:00:00.000Z",
          "disabled_at": None, "recommended_action": {"title": "Credentials rejected", "action": "Regenerate <the> token."},
          "evidence": [], "last_traffic": "2026-11-28T09:00:00.000Z"}
JOB = {"name": "uniflow-prod", "title": "uniFLOW <production>", "source": "Microsoft Entra ID", "target": "uniFLOW Online"}


BRIEF = {"state": "quarantined",
         "what": {"headline": "Quarantined by Entra", "confirmed": True, "source": "confirmed by Entra's job status",
                  "reason": "EncounteredQuarantineException", "reason_words": "credentials or connection",
                  "cause": "Credentials rejected (401), 2 users", "since": "2026-11-28T09:00:00.000Z",
                  "next_attempt": "2026-11-28T15:00:00.000Z"},
         "who": {"count": 2, "names": ["a@contoso.com", "b@contoso.com"], "more": 0, "link": "https://m/u"},
         "todo": {"title": "Credentials rejected", "action": "Regenerate <the> token."},
         "causes": [], "evidence": [], "subject_cause": "credentials rejected", "subject_users": 2}


def health_context(**extra):  # type: ignore[no-untyped-def]
    ctx = {"job": JOB, "health": HEALTH, "signatures": [], "links": {"job": "https://m/jobs/uniflow-prod",
           "diagnostics": "https://m/jobs/uniflow-prod/diagnostics", "notifications": "https://m/notifications"},
           "base_url": "https://m", "role": "admin", "brief": BRIEF,
           "subject": "[uniFLOW <production>] Quarantined by Entra: credentials rejected (2 users)",
           "event": "quarantine_entered", "notice": "opened", "warning": None,
           "episode": {"kind": "quarantine", "title": "Quarantined", "began_at": "2026-11-28T09:00:00.000Z",
                       "resolved_at": None, "reminders": 0, "detail": {"reason": "EncounteredQuarantineException",
                                                                        "detail": "credentials rejected"}}}
    return ctx | extra


def test_it_renders_subject_text_and_html_from_one_context():
    email = render_email("health-event", health_context())

    assert email.subject == "[uniFLOW <production>] Quarantined by Entra: credentials rejected (2 users)"
    assert "Next expected attempt by Entra: 2026-11-28 15:00 UTC" in email.text
    assert "Entra's next attempt: 2026-11-28 15:00 UTC" in email.text
    assert "2026-11-28 15:00 UTC" in email.html


def test_it_escapes_html_but_not_the_plain_text():
    email = render_email("health-event", health_context())

    assert "uniFLOW &lt;production&gt;" in email.html and "<production>" not in email.html
    assert "Regenerate &lt;the&gt; token." in email.html
    assert "uniFLOW <production>" in email.text and "Regenerate <the> token." in email.text


@pytest.mark.parametrize("event", ["quarantine_lifted", "stalled", "resumed", "disabled", "deletion_threshold",
                                   "reason_changed", "early_warning", "reminder"])
def test_it_renders_every_health_event_with_the_first_screen_on_top(event):
    email = render_email("health-event", health_context(event=event))

    for body in (email.text, email.html):
        head = body[:body.index("Regenerate")]
        assert "Quarantined by Entra" in head and "a@contoso.com" in head


def test_it_refuses_to_render_with_a_missing_variable():
    ctx = health_context()
    del ctx["episode"]

    with pytest.raises(UndefinedError):
        render_email("health-event", ctx)


def test_it_builds_links_from_the_base_url_with_quoted_parts():
    assert link("https://m.example.com/", "jobs", "prod", "users", "a b@c.com") == \
        "https://m.example.com/jobs/prod/users/a%20b%40c.com"
