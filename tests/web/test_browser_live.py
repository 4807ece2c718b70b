"""Issue 13 items 2 and 3 in headless Chromium: times in the reader's zone with the zone's name
(two zones, UTC on hover and on a toggle), and the whole job card refreshed live by one poll.
Screenshots at 1280 and 390 px land in test-artifacts/."""
from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest

from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.demo.simulate import SimConfig, simulate_lines
from tests.browser import sign_in_page
from tests.web.test_browser import ARTIFACTS, PASSWORD, browser, feed, site, ts_of  # noqa: F401 (fixtures)

# zone: (its short name in the browser's locale, offset from UTC on 2026-11-28, locale)
ZONES = {"Europe/Berlin": ("CET", 1, "en-GB"), "America/New_York": ("EST", -5, "en-US")}


@pytest.fixture
def open_page(browser, site) -> Iterator:  # type: ignore[no-untyped-def]  # noqa: F811
    """open_page(zone, width) -> a signed-in page in that time zone and viewport width."""
    contexts = []
    problems: list[str] = []

    def opener(zone: str, width: int = 1280):  # type: ignore[no-untyped-def]
        context = browser.new_context(viewport={"width": width, "height": 900}, timezone_id=zone,
                                      locale=ZONES.get(zone, ("", 0, "en-GB"))[2])
        contexts.append(context)
        page = context.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        base = site[0]
        sign_in_page(page, base, "support@example.com", PASSWORD)
        return page

    yield opener
    for context in contexts:
        context.close()
    assert problems == [], f"console errors: {problems}"


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("zone", sorted(ZONES))
def test_times_show_in_the_reader_s_zone_with_its_name_and_utc_on_hover_and_toggle(open_page, site, settings, zone):  # type: ignore[no-untyped-def]
    base, clock = site
    lines = list(simulate_lines(SimConfig(users=30, cycles=3, seed=5, job="uniflow-prod"))[0])
    feed(settings, lines)
    clock.now = ts_of(lines[-1]) + timedelta(hours=3)  # stalled: the server writes a sentence with a moment
    name, offset, _ = ZONES[zone]
    for width in (1280, 390):
        page = open_page(zone, width)
        page.goto(base + "/jobs/uniflow-prod/diagnostics")
        _shot(page, f"diagnostics-{zone.replace('/', '-')}-{width}")

    stamp = page.locator("dd time[datetime]").first  # "Why: No traffic since <time>"
    iso = stamp.get_attribute("datetime")
    text = stamp.inner_text()
    assert text.endswith(name), text
    utc_hour = int(iso[11:13])
    assert re.search(rf"\b{(utc_hour + offset) % 24:02d}:{iso[14:16]}\b", text), (iso, text)
    assert stamp.get_attribute("title") == iso[:19].replace("T", " ") + " UTC"
    assert "UTC" not in page.locator("dd").first.inner_text().replace("UTC)", "")  # no preformatted UTC

    page.click("button.tz-toggle")
    assert page.locator("button.tz-toggle").inner_text() == "Times: UTC"
    assert stamp.inner_text().endswith("UTC") and f"{iso[11:13]}:{iso[14:16]}" in stamp.inner_text()
    page.reload()  # the choice is remembered
    assert page.locator("dd time[datetime]").first.inner_text().endswith("UTC")


def test_the_whole_card_refreshes_live(open_page, site, settings):  # type: ignore[no-untyped-def]
    base, clock = site
    job = get_job("uniflow-prod")
    job.scope_size = 200
    db.session.commit()
    lines = list(simulate_lines(SimConfig(users=200, cycles=1, seed=9, job="uniflow-prod", failure_rate=0.2))[0])
    feed(settings, lines[:60])
    clock.now = ts_of(lines[59]) + timedelta(seconds=1)
    page = open_page("Europe/Berlin", 1280)
    page.goto(base + "/jobs/uniflow-prod")
    counts_before = page.locator("[data-live=counts]").inner_text()
    traffic_before = page.locator("[data-live=last-traffic] time").get_attribute("datetime")
    summary_before = page.locator(".progress .summary").inner_text()
    assert "of 200 users" in summary_before
    assert "(expected from configured scope size)" in page.locator(".progress .basis").inner_text()

    feed(settings, lines[60:], start=60)
    clock.now = ts_of(lines[-1]) + timedelta(seconds=1)
    counts_after = counts_before
    for _ in range(40):  # the page polls every 2 s; no reload (wait_for_function would eval: CSP forbids it)
        page.wait_for_timeout(250)
        counts_after = page.locator("[data-live=counts]").inner_text()
        if counts_after != counts_before:
            break
    page.wait_for_timeout(300)
    _shot(page, "job-card-live-1280")
    assert counts_after != counts_before
    assert page.locator("[data-live=last-traffic] time").get_attribute("datetime") > traffic_before
    assert page.locator(".progress .summary").inner_text() != summary_before
    badge = page.locator("h1 [data-live=state]")
    assert "inferred from traffic" in badge.inner_text()  # the badge is the poll's too

    clock.now = ts_of(lines[-1]) + timedelta(minutes=14)  # quiet: no ETA, said so
    for _ in range(40):
        page.wait_for_timeout(250)
        if "no ETA while quiet" in page.locator(".progress .eta").inner_text():
            break
    assert "no ETA while quiet" in page.locator(".progress .eta").inner_text()
    assert "ETA" not in page.locator(".progress .eta time").all_inner_texts()
    page.set_viewport_size({"width": 390, "height": 900})
    _shot(page, "job-card-quiet-390")


def test_the_logs_filters_and_cycle_dropdown_speak_the_reader_s_zone(open_page, site, settings):  # type: ignore[no-untyped-def]
    base, clock = site
    lines = list(simulate_lines(SimConfig(users=30, cycles=2, seed=3, job="uniflow-prod"))[0])
    feed(settings, lines)
    clock.now = ts_of(lines[-1]) + timedelta(minutes=30)
    page = open_page("America/New_York", 1280)
    page.goto(base + "/jobs/uniflow-prod/logs")

    option = page.locator("select[name=cycle] option").nth(1)
    assert option.inner_text().split(" · ")[0].endswith("EST") and "UTC" not in option.inner_text()
    assert option.get_attribute("title").endswith(" UTC")
    assert "(EST)" in page.locator("form.filters label").first.inner_text()
    _shot(page, "logs-filters-new-york-1280")

    page.fill("input.local-time[data-for=since]", "2026-11-28T04:00")  # 04:00 EST = 09:00 UTC
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**since=2026-11-28T09%3A00%3A00Z**")
    assert page.locator("input.local-time[data-for=since]").input_value() == "2026-11-28T04:00"

    page.click("button.tz-toggle")  # UTC: the field shows the same moment in UTC
    assert page.locator("input.local-time[data-for=since]").input_value() == "2026-11-28T09:00"
    assert "(UTC)" in page.locator("form.filters label").first.inner_text()
    page.click("button.tz-toggle")
