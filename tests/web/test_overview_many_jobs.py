"""The overview of many jobs (a desk watching many tenants): a line per job from the health the
scheduler last recorded, the most urgent first, every job counted in the summary strip; a few
jobs keep their cards, judged now."""
from __future__ import annotations

import re

import pytest

from dashboard.admin.accounts import add_account
from dashboard.admin.jobs import add_job, get_job
from dashboard.db import db
from dashboard.models import HealthTransition
from dashboard.web.pages import OVERVIEW_CARDS
from tests.browser import require_chromium, sign_in_page
from tests.notify.helpers import cycle_lines, ingest
from tests.web.test_overview_search import strip

PASSWORD = "many-jobs-password-1"
require_chromium()
from tests.browser import ARTIFACTS, browser  # noqa: E402, F401 (a fixture)
from tests.local_http import serving_app  # noqa: E402


def _lines(page: str) -> list[tuple[str, str]]:
    return re.findall(r'<tr data-job="([^"]+)">.*?class="badge state-(\w+)"', page, re.S)


def test_many_jobs_are_a_line_each_the_recorded_most_urgent_first_all_counted(client, auth, app, settings):
    names = [f"tenant-{n:03d}" for n in range(OVERVIEW_CARDS)]  # and uniflow-prod, from the settings
    for name in names:
        add_job(name)
    ingest(settings, cycle_lines(0))  # uniflow-prod has traffic
    db.session.add_all([
        HealthTransition(job_id=get_job(names[-1]).id, at_us=1_000, old="healthy", new="quarantined",
                         reason="EncounteredQuarantineException", detail=""),
        HealthTransition(job_id=get_job("uniflow-prod").id, at_us=2_000, old="unknown", new="healthy", detail=""),
    ])
    db.session.commit()
    auth(client, "viewer")

    page = client.get("/").get_data(as_text=True)

    lines = _lines(page)
    assert len(lines) == OVERVIEW_CARDS + 1 and '<article class="card job"' not in page
    assert lines[0] == (names[-1], "quarantined"), "the job recorded quarantined comes first"
    assert lines[-1] == ("uniflow-prod", "healthy"), "a healthy job last, after the ones never judged"
    assert {state for _name, state in lines[1:-1]} == {"unknown"}
    assert strip(page) == f"1 quarantined · {OVERVIEW_CARDS - 1} unknown · 1 healthy"
    assert "EncounteredQuarantineException" in page
    row = re.search(r'<tr data-job="uniflow-prod">.*?</tr>', page, re.S).group(0)
    assert "<time" in row and "none yet" not in row, "its last traffic is shown"


def test_a_few_jobs_keep_their_cards_judged_now(client, auth, app):
    add_job("emea")
    auth(client, "viewer")

    page = client.get("/").get_data(as_text=True)

    assert sorted(re.findall(r'<article class="card job" data-job="([^"]+)">', page)) == ["emea", "uniflow-prod"]
    assert "<tr data-job=" not in page


def test_a_stall_line_says_why_in_words_not_an_internal_code(client, auth, app):
    for n in range(OVERVIEW_CARDS):
        add_job(f"tenant-{n:03d}")
    db.session.add(HealthTransition(job_id=get_job("uniflow-prod").id, at_us=1_000, old="healthy", new="stalled",
                                    reason="clock", detail="No traffic since 2026-12-05T16:09:02Z"))
    db.session.commit()
    auth(client, "viewer")

    row = re.search(r'<tr data-job="uniflow-prod">.*?</tr>', client.get("/").get_data(as_text=True), re.S).group(0)

    assert "No traffic since" in row and "clock" not in row


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)])
def test_the_lines_fit_the_screen_in_chromium(browser, app, width, height):  # type: ignore[no-untyped-def]
    for n in range(OVERVIEW_CARDS):
        add_job(f"tenant-{n:03d}-" + "a-rather-long-tenant-name-" * 3, display_name="Contoso " * 12)
    db.session.add(HealthTransition(job_id=get_job("uniflow-prod").id, at_us=1_000, old="healthy", new="stalled",
                                    reason="clock", detail="No traffic since 2026-12-05T16:09:02Z: " + "longer " * 40))
    add_account("admin@example.com", "admin", PASSWORD)
    db.session.commit()
    with serving_app(app) as base:
        context = browser.new_context(viewport={"width": width, "height": height}, is_mobile=width < 600)
        page = context.new_page()
        sign_in_page(page, base, "admin@example.com", PASSWORD)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"overview-many-jobs-{width}.png"), full_page=True)
        wider = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        lines = page.locator("tr[data-job]").count()
        context.close()

    assert (wider, lines) == (0, OVERVIEW_CARDS + 1)
