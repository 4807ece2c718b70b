"""The pages in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

Screenshots of each page land in test-artifacts/ for a person to look at. In CI a missing
browser is an error, never a skip.
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from dashboard.admin.accounts import add_account
from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.demo.simulate import simulate_lines
from dashboard.demo.truth import SimConfig
from dashboard.ingest.scim import ingest_lines, options_from

PASSWORD = "browser-password-1"

from tests.browser import ARTIFACTS, browser, require_chromium, sign_in_page  # noqa: E402, F401 (a fixture)
from tests.local_http import serving_app  # noqa: E402

require_chromium()

from playwright.sync_api import Browser, Page  # noqa: E402


class Clock:
    """The app's clock, moved by the test (no sleeping until a cycle is old enough)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now




@pytest.fixture
def site(app):  # type: ignore[no-untyped-def]
    """The app served on 127.0.0.1 in a thread, with a controllable clock and a support account."""
    clock = Clock(datetime(2026, 11, 28, 12, 0, tzinfo=UTC))
    app.extensions["clock"] = clock
    add_account("support@example.com", "support", PASSWORD)
    with serving_app(app) as base:
        yield base, clock


@pytest.fixture
def page(browser: Browser, site) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.problems = problems  # type: ignore[attr-defined]
    yield page
    context.close()
    assert problems == [], f"console errors or dialogs: {problems}"


def sign_in(page: Page, base: str) -> None:
    sign_in_page(page, base, "support@example.com", PASSWORD)


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def feed(settings, lines: list[bytes], start: int = 0) -> None:  # type: ignore[no-untyped-def]
    options = options_from(settings.ingest, cycles=settings.cycles)
    ingest_lines(db.engine, get_job("uniflow-prod"), [(start + i + 1, line) for i, line in enumerate(lines)],
                 source="browser-test", via="cli", options=options)


def ts_of(line: bytes) -> datetime:
    return datetime.fromisoformat(orjson.loads(line)["ts"].replace("Z", "+00:00"))


def test_it_signs_in_and_shows_the_overview_and_job_page(page, site, settings):  # type: ignore[no-untyped-def]
    base, clock = site
    lines = list(simulate_lines(SimConfig(users=40, cycles=4, seed=2, job="uniflow-prod", auth_outage_cycles=(3,)))[0])
    feed(settings, lines)
    clock.now = ts_of(lines[-1]) + timedelta(minutes=30)

    sign_in(page, base)
    shot(page, "overview")
    assert page.locator("article.job h2").first.inner_text().startswith("uniFLOW production")
    assert "quarantined" in page.locator("article.job .badge").first.inner_text().lower()  # "Quarantined (inferred from traffic)"

    page.click("text=uniFLOW production")
    page.wait_for_selector("#chart-outcomes .main-svg")  # Plotly drew the chart
    shot(page, "job")
    assert "EncounteredQuarantineException" in page.locator("section.health").inner_text()
    assert page.locator(".progress .bar").get_attribute("aria-valuenow") == "100.0"


def test_it_moves_the_progress_bar_while_a_cycle_is_ingested(page, site, settings, app):  # type: ignore[no-untyped-def]
    base, clock = site
    job = get_job("uniflow-prod")
    job.scope_size = 200
    db.session.commit()
    lines = list(simulate_lines(SimConfig(users=200, cycles=1, seed=9, job="uniflow-prod", failure_rate=0.0))[0])
    feed(settings, lines[:100])
    clock.now = ts_of(lines[99]) + timedelta(seconds=1)
    sign_in(page, base)
    page.goto(base + "/jobs/uniflow-prod")
    first = float(page.locator(".progress .bar").get_attribute("aria-valuenow"))

    feed(settings, lines[100:300], start=100)
    clock.now = ts_of(lines[299]) + timedelta(seconds=1)
    second = first
    for _ in range(40):  # the page polls every 2 s; no reload. (wait_for_function would eval: CSP forbids it)
        page.wait_for_timeout(250)
        second = float(page.locator(".progress .bar").get_attribute("aria-valuenow"))
        if second > first:
            break

    shot(page, "progress-moving")
    assert 0 < first < second < 100
    assert "running" in page.locator(".progress .state").inner_text()


def test_it_filters_logs_to_failures_opens_a_detail_and_exports_csv(page, site, settings):  # type: ignore[no-untyped-def]
    base, clock = site
    lines = list(simulate_lines(SimConfig(users=40, cycles=3, seed=4, job="uniflow-prod", failure_rate=0.2))[0])
    feed(settings, lines)
    clock.now = ts_of(lines[-1]) + timedelta(minutes=30)
    sign_in(page, base)

    page.goto(base + "/jobs/uniflow-prod/logs")
    page.select_option("select[name=outcome]", "failure")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**outcome=failure**")
    shot(page, "logs-failures")
    statuses = page.locator("table.logs tbody tr td.status").all_inner_texts()
    assert statuses and all(s.split()[-1] in ("failed", "tolerated") for s in statuses)  # a word, not only a colour
    assert all(s.startswith("no response") or int(s.split()[0]) >= 400 for s in statuses)

    with page.expect_download(timeout=15_000) as download:
        page.click("p.exports a:text-is('CSV')", timeout=5_000)
    csv_text = Path(download.value.path()).read_text()
    assert csv_text.splitlines()[0].startswith("ts,method,path")
    assert len(csv_text.splitlines()) == len(statuses) + 1 or len(statuses) == 50

    page.locator("table.logs tbody tr td:first-child a").first.click()
    page.wait_for_selector("h2:text('Response')")
    shot(page, "exchange-detail")
    body = page.content()
    assert "Recommended action" in body
    assert "[REDACTED]" in body  # the bearer token


def test_it_answers_why_a_user_failed_on_their_timeline(page, site, settings):  # type: ignore[no-untyped-def]
    base, clock = site
    lines = list(simulate_lines(SimConfig(users=40, cycles=4, seed=2, job="uniflow-prod", auth_outage_cycles=(3,)))[0])
    feed(settings, lines)
    clock.now = ts_of(lines[-1]) + timedelta(minutes=30)
    sign_in(page, base)

    page.goto(base + "/jobs/uniflow-prod/users?state=failing")
    page.locator("table tbody tr td:first-child a").first.click()
    page.wait_for_selector("ol.timeline")
    shot(page, "user-timeline")

    assert page.locator("ol.timeline li.outcome-failure").count() >= 1
    assert "Credentials rejected" in page.locator("ol.timeline").inner_text()


def test_it_renders_a_hostile_username_as_text(page, site, settings):  # type: ignore[no-untyped-def]
    base, clock = site
    hostile = "<script>alert(1)</script>"
    line = orjson.dumps({"ts": "2026-11-28T11:00:00Z", "method": "POST", "path": "/scim/v2/Users", "status": 409,
                         "request_body": {"userName": hostile},
                         "response_body": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "409",
                                           "detail": "User '<img src=x onerror=alert(2)>' exists"}})
    feed(settings, [line])
    clock.now = datetime(2026, 11, 28, 11, 30, tzinfo=UTC)
    sign_in(page, base)

    for path in ("/jobs/uniflow-prod/logs", "/jobs/uniflow-prod/users", "/jobs/uniflow-prod"):
        page.goto(base + path)
        page.wait_for_load_state("networkidle")
    page.goto(base + "/jobs/uniflow-prod/logs")
    shot(page, "hostile-username")

    assert hostile in page.locator("table.logs").inner_text()  # shown as text; the dialog handler saw nothing


def test_it_fits_a_phone_screen(browser, site, settings):  # type: ignore[no-untyped-def]
    base, clock = site
    lines = list(simulate_lines(SimConfig(users=30, cycles=3, seed=5, job="uniflow-prod"))[0])
    feed(settings, lines)
    clock.now = ts_of(lines[-1]) + timedelta(minutes=30)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    sign_in(page, base)
    page.goto(base + "/jobs/uniflow-prod")
    page.wait_for_selector("#chart-outcomes .main-svg")
    shot(page, "job-phone")

    width = page.evaluate("document.documentElement.scrollWidth")
    context.close()
    assert width <= 390  # nothing forces sideways scrolling of the page (tables scroll inside their card)


def test_it_shows_entra_s_view_on_the_job_page_and_an_event_beside_its_exchanges(page, site, settings):  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from dashboard.formats.entra.jobstatus import parse_job_status
    from dashboard.formats.entra.parse import convert_record
    from dashboard.ingest.entra import import_events, import_job_status
    from dashboard.models import Exchange, ScimUser

    base, clock = site
    lines = list(simulate_lines(SimConfig(users=30, cycles=2, seed=4, job="uniflow-prod", failure_rate=0.2))[0])
    feed(settings, lines)
    bad = db.session.scalars(select(Exchange).where(Exchange.failed.is_(True), Exchange.user_id.is_not(None),
                                                    Exchange.status >= 400).order_by(Exchange.ts_us)).first()
    user = db.session.get(ScimUser, bad.user_id)
    at = bad.ts + timedelta(seconds=15)
    record = {
        "id": "browser-ev-1", "activityDateTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "cycleId": "browser-cycle",
        "changeId": "browser-change-1", "provisioningAction": "update",
        "provisioningStatusInfo": {"status": "failure", "errorInformation": {
            "errorCode": "SystemForCrossDomainIdentityManagementBadRequest",
            "reason": "StatusCode: BadRequest\r\nMessage: <b>not bold</b>. This operation was retried 1 times."}},
        "provisioningSteps": [{"name": "EntryExportUpdate", "provisioningStepType": "export", "status": "failure",
                               "description": "User was not updated", "details": {}}],
        "modifiedProperties": [{"displayName": "department", "oldValue": "Sales", "newValue": "Marketing"}],
        "sourceIdentity": {"id": "src-b", "displayName": user.user_name, "identityType": "User",
                           "details": {"UserPrincipalName": user.user_name}},
        "targetIdentity": {"id": "tgt-b", "identityType": "User"},
    }
    options = options_from(settings.ingest, cycles=settings.cycles)
    import_events(db.engine, get_job("uniflow-prod"), [("t", convert_record(record, 1))], source="t", via="cli",
                  options=options)
    clock.now = ts_of(lines[-1]) + timedelta(minutes=30)
    doc = orjson.loads((Path(__file__).resolve().parents[1] / "data" / "entra" / "job-quarantined.json").read_bytes())
    doc["status"]["progress"][0]["progressObservationDateTime"] = (clock.now - timedelta(minutes=12)).strftime("%Y-%m-%dT%H:%M:%SZ")
    import_job_status(db.engine, get_job("uniflow-prod"), doc, parse_job_status(doc), source="t", rules=options.rules,
                      now=clock.now)

    sign_in(page, base)
    page.goto(base + "/jobs/uniflow-prod")
    panel = page.locator("section.entra-status")
    shot(page, "job-entra")
    assert "DISAGREEMENT" in panel.locator(".flag").inner_text()
    assert panel.locator(".bar").get_attribute("aria-valuenow") == "70.0"
    assert "7 of 10 pages" in panel.inner_text() and "12 min ago" in panel.inner_text()

    page.goto(base + f"/jobs/uniflow-prod/users/{user.user_name}")
    shot(page, "user-entra")
    assert page.locator("li.item.entra.bad details[open]").count() == 1  # the failing event, expanded
    page.locator("li.item.entra a").first.click()
    page.wait_for_selector("section.joined")
    shot(page, "entra-event")
    assert "browser-change-1" in page.locator("code.change-id").inner_text()
    assert "<b>not bold</b>" in page.locator("pre.reason").inner_text()  # shown as text, not markup
    joined = page.locator("section.joined")
    assert f"/jobs/uniflow-prod/exchanges/{bad.id}" in joined.locator("article.exchange a").first.get_attribute("href")
    assert "Request and response" in joined.inner_text()

    page.locator("section.entra-event dd a", has_text="#").first.click()  # the event's cycle
    page.wait_for_selector("section.entra-cycle")
    shot(page, "cycle-entra")
    assert "1 failed" in page.locator("section.entra-cycle").inner_text()
    assert user.user_name in page.locator("section.joined").inner_text()
