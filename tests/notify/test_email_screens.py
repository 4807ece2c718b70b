"""Each email's HTML part in headless Chromium (/usr/bin/chromium, Playwright), as a mail client
would show it: the three answers are visible on the first screen (a 800 x 600 window, no
scrolling), and a screenshot of each lands in test-artifacts/emails/ for a person to look at.
In CI a missing browser is an error, never a skip.
"""
from __future__ import annotations

from datetime import timedelta

from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.notify.recipients import subscribe
from tests.browser import ARTIFACTS as SHOTS  # noqa: E402
from tests.browser import browser, require_chromium  # noqa: E402, F401 (a fixture)
from tests.notify.helpers import (
    BAD_DEPARTMENT,
    T0,
    after_cycle,
    cycle_end,
    cycle_lines,
    ingest,
)
from tests.notify.test_actionable import Step, entra_status

ARTIFACTS = SHOTS / "emails"

require_chromium()

from playwright.sync_api import Browser  # noqa: E402


def show(browser: Browser, name: str, html: str) -> dict[str, object]:
    """Render `html` offline in an 800 x 600 window, keep a screenshot, and say where the answers are."""
    context = browser.new_context(viewport={"width": 800, "height": 600}, java_script_enabled=False,
                                  offline=True)
    page = context.new_page()
    page.set_content(html, wait_until="load")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    found = {}
    for answer in ("What is wrong:", "Who is affected:", "What to do first:"):
        box = page.get_by_text(answer, exact=True).first.bounding_box()
        found[answer] = box
    visible = page.evaluate("document.body.innerText")
    context.close()
    return {"boxes": found, "text": visible}


def test_every_email_shows_the_three_answers_on_its_first_screen(app, settings, smtp_server, browser):
    subscribe(db.session, get_job("uniflow-prod"), "helpdesk@example.com", kinds=["quarantine", "failures", "reports"],
              role="support")
    subscribe(db.session, get_job("uniflow-prod"), "lead@example.com", kinds=["digest"], role="admin")
    step = Step(settings, smtp_server)
    ingest(settings, cycle_lines(0, failing={2: BAD_DEPARTMENT}))
    emails = {}
    for m in step(after_cycle(0), reports=True):
        kind = "cycle-report" if "Cycle report" in m.subject else "failures"
        emails.setdefault(f"{kind}-{'support' if m.rcpt_tos[0].startswith('helpdesk') else 'admin'}", m)
    ingest(settings, cycle_lines(1, status_all=401))
    entra_status(settings, quarantined=True, observed=cycle_end(1) + timedelta(minutes=5),
                 next_attempt=cycle_end(1) + timedelta(hours=6))
    for m in step(after_cycle(1)):
        emails[f"quarantine-{'support' if m.rcpt_tos[0].startswith('helpdesk') else 'admin'}"] = m
    emails["reminder-admin"] = next(m for m in step(after_cycle(1) + timedelta(minutes=61)) if "Still" in m.subject)
    emails["digest-admin"] = next(m for m in step(T0.replace(hour=9, minute=30), digests=True) if "digest" in m.subject)
    ingest(settings, cycle_lines(3))
    entra_status(settings, quarantined=False, observed=cycle_end(3) + timedelta(minutes=1))
    emails["resolved-admin"] = next(m for m in step(after_cycle(3)) if "lifted" in m.subject)

    assert {"failures-admin", "failures-support", "cycle-report-admin", "cycle-report-support", "quarantine-admin",
            "quarantine-support", "reminder-admin", "digest-admin", "resolved-admin"} <= set(emails)
    for name, message in emails.items():
        seen = show(browser, name, message.html)
        for answer, box in seen["boxes"].items():  # type: ignore[union-attr]
            assert box is not None and box["y"] + box["height"] <= 600, f"{name}: {answer} below the first screen"
        assert "{{" not in seen["text"] and "<value>" not in seen["text"]  # type: ignore[operator]
    assert "Quarantined by Entra" in show(browser, "quarantine-admin", emails["quarantine-admin"].html)["text"]  # type: ignore[operator]
    assert (ARTIFACTS / "quarantine-support.png").stat().st_size > 10_000
