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


def health_context(**extra):  # type: ignore[no-untyped-def]
    ctx = {"job": JOB, "health": HEALTH, "signatures": [], "links": {"job": "https://m/jobs/uniflow-prod",
           "diagnostics": "https://m/jobs/uniflow-prod/diagnostics"}, "base_url": "https://m", "role": "admin",
           "event": "quarantine_entered", "notice": "opened", "warning": None,
           "episode": {"kind": "quarantine", "title": "Quarantined", "began_at": "2026-11-28T09:00:00.000Z",
                       "resolved_at": None, "reminders": 0, "detail": {"reason": "EncounteredQuarantineException",
                                                                        "detail": "credentials rejected"}}}
    return ctx | extra


def test_it_renders_subject_text_and_html_from_one_context():
    email = render_email("health-event", health_context())

    assert email.subject == "[Provisioning] uniFLOW <production>: Quarantined: EncounteredQuarantineException"
    assert "Next expected attempt by Entra: 2026-11-28 15:00 UTC" in email.text
    assert "2026-11-28 15:00 UTC" in email.html


def test_it_escapes_html_but_not_the_plain_text():
    email = render_email("health-event", health_context())

    assert "uniFLOW &lt;production&gt;" in email.html and "<production>" not in email.html
    assert "Regenerate &lt;the&gt; token." in email.html
    assert "uniFLOW <production>" in email.text and "Regenerate <the> token." in email.text


@pytest.mark.parametrize(("event", "subject"), [
    ("quarantine_lifted", "Quarantine lifted"),
    ("stalled", "Provisioning stalled: no traffic since 2026-11-28 09:00 UTC"),
    ("resumed", "Provisioning resumed"),
    ("disabled", "Job disabled after four weeks in quarantine"),
    ("deletion_threshold", "Deletion threshold crossed: quarantined (TooManyDeletes)"),
    ("reason_changed", "Quarantine reason changed: EncounteredQuarantineException"),
    ("early_warning", "Quarantine likely in the running cycle"),
    ("reminder", "Still quarantined since 2026-11-28 09:00 UTC"),
])
def test_it_names_each_health_event_in_the_subject(event, subject):
    assert render_email("health-event", health_context(event=event)).subject == f"[Provisioning] uniFLOW <production>: {subject}"


def test_it_refuses_to_render_with_a_missing_variable():
    ctx = health_context()
    del ctx["episode"]

    with pytest.raises(UndefinedError):
        render_email("health-event", ctx)


def test_it_builds_links_from_the_base_url_with_quoted_parts():
    assert link("https://m.example.com/", "jobs", "prod", "users", "a b@c.com") == \
        "https://m.example.com/jobs/prod/users/a%20b%40c.com"
