"""Labels are text: what a SCIM server or a log line says never becomes a link in a chart.

Plotly renders a subset of HTML (<a href>, <b>, <br>, ...) in tick labels, hover text, legends and
titles. A `scimType` such as `<a href="https://evil.example/...">Click here to fix</a>` must reach
the page's SVG as the characters it is, not as a link.
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from dashboard.admin.accounts import add_account
from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.web import charts
from tests.browser import browser, sign_in_page  # noqa: F401 (a fixture)
from tests.local_http import serving_app

PASSWORD = "browser-password-1"
T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
LINK = '<a href="https://evil.example/fix">Click here to fix</a>'
HOSTILE = [LINK, "<b>bold</b><br>", "&lt;a href=x&gt;entity&lt;/a&gt;", '<span style="font-size:90px">big</span>']


# -- the figure JSON ------------------------------------------------------------------------------


def signature(scim_type: str, **overrides: Any) -> dict[str, Any]:
    row = {"operation": "update", "status": 400, "scimType": scim_type, "users": 3,
           "action": {"title": "Fix the attribute in Entra"}}
    return {**row, **overrides}


def strings(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """Every (key, string) in a figure, nested lists and dicts included."""
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v, key)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_it_escapes_every_signature_label(hostile):  # type: ignore[no-untyped-def]
    figure = charts.signatures_figure([signature(hostile, operation=hostile, action={"title": hostile})])

    texts = [s for k, s in strings(figure) if k != "hovertemplate"]  # the template is ours (%{y}, <br>)
    assert not [s for s in texts if "<" in s or ">" in s]
    label = figure["data"][0]["y"][0]
    assert label.count(hostile.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")) == 3


def test_it_keeps_the_hover_template_free_of_data(app):  # type: ignore[no-untyped-def]
    # The hover text shows %{y}, the escaped label; the template itself holds no value from a log.
    figure = charts.signatures_figure([signature(LINK)])

    assert figure["data"][0]["hovertemplate"] == "%{y}<br>%{x} %{customdata}<extra></extra>"
    assert figure["data"][0]["customdata"] == ["users"]  # the word for the count, never a value from a log


def test_it_says_user_for_one_and_users_for_more(app):  # type: ignore[no-untyped-def]
    one, three = signature("one"), signature("three")
    one["users"], three["users"] = 1, 3

    figure = charts.signatures_figure([one, three])

    assert dict(zip(figure["data"][0]["x"], figure["data"][0]["customdata"], strict=True)) == {1: "user", 3: "users"}


def test_it_escapes_a_cycle_charts_text(app):  # type: ignore[no-untyped-def]
    cycles = [{"started_at": "2026-11-28T08:00:00Z", "totals": {"success": 1, "failure": 1, "skipped": 0},
               "users": 2, "duration_s": 60}] * 2
    for figure in (charts.outcomes_figure(cycles), charts.rate_and_duration_figure(cycles), charts.trend_figure(cycles)):
        texts = [s for k, s in strings(figure) if k != "hovertemplate"]
        assert not [s for s in texts if "<" in s]


# -- the page in headless Chromium ------------------------------------------------------------------


@pytest.fixture
def site(app):  # type: ignore[no-untyped-def]
    app.extensions["clock"] = lambda: T0 + timedelta(hours=1)  # the cycle below has completed
    add_account("support@example.com", "support", PASSWORD)
    with serving_app(app) as base:
        yield base


def failing_cycle(scim_types: list[str]) -> list[bytes]:
    """One cycle: each user looked up, then a PATCH refused with one of the hostile scimTypes."""
    lines = []
    for n, scim_type in enumerate(scim_types * 2):
        at, name = T0 + timedelta(seconds=2 * n), f"user{n}@contoso.com"
        found = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 1,
                 "Resources": [{"id": f"id-{n}", "userName": name}]}
        error = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "400", "scimType": scim_type,
                 "detail": f"refused {scim_type}"}
        lines.append(_line(at, "GET", "/scim/v2/Users", 200, f"get-{n}", query=f'filter=userName eq "{name}"',
                           response_body=found))
        lines.append(_line(at + timedelta(seconds=1), "PATCH", f"/scim/v2/Users/id-{n}", 400, f"patch-{n}",
                           request_body={"Operations": [{"op": "replace", "path": "title", "value": "x"}]},
                           response_body=error))
    return lines


def _line(at: datetime, method: str, path: str, status: int, request_id: str, **extra: object) -> bytes:
    record = {"ts": at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z", "method": method, "path": path, "status": status,
              "duration_ms": 20.0, "request_id": request_id, "job": "uniflow-prod", **extra}
    return orjson.dumps(record) + b"\n"


def test_it_draws_hostile_scim_types_as_text_not_links(browser, site, settings):  # type: ignore[no-untyped-def]
    options = options_from(settings.ingest, cycles=settings.cycles)
    ingest_lines(db.engine, get_job("uniflow-prod"), enumerate(failing_cycle(HOSTILE), start=1), source="test",
                 via="cli", options=options)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("popup", lambda p: problems.append(f"popup: {p.url}"))
    sign_in_page(page, site, "support@example.com", PASSWORD)

    page.goto(site + "/jobs/uniflow-prod")
    page.wait_for_selector("#chart-signatures .main-svg")
    page.locator("#chart-signatures").scroll_into_view_if_needed()
    box = page.locator("#chart-signatures .bars path").first.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 5, box["y"] + 5)
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=5)  # Plotly draws the hover label
    page.wait_for_selector("#chart-signatures .hoverlayer .hovertext", state="attached")
    chart = page.locator("#chart-signatures")
    labels = chart.locator(".ytick text").all_text_contents()
    hover = chart.locator(".hoverlayer").text_content()
    links = page.locator(".chart svg a").count()  # every chart on the page
    styled = chart.locator(".ytick tspan[style*='font-size']").count()
    context.close()

    assert links == 0
    assert styled == 0
    assert any(LINK in label for label in labels)  # shown as the characters it is
    assert any("&lt;a href=x&gt;entity&lt;/a&gt;" in label for label in labels)  # entities stay as typed
    assert any(label in (hover or "") and "<" in label for label in labels)  # the hover label, literal too
    assert problems == []
