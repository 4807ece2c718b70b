"""Every page fits the screen: at 1280 px and at 390 px nothing makes the page wider than the
viewport (`scrollWidth <= clientWidth`), with demo-like data that includes the long values that
used to widen pages: a 120-character userName, a long error detail, a long path, JSON bodies, an
Entra event with a long reason. Screenshots land in test-artifacts/layout-<page>-<width>.png.

Headless Chromium is Debian's /usr/bin/chromium; without it the module is skipped locally and is
an error in CI.
"""
from __future__ import annotations

import os
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest
from sqlalchemy import select

from dashboard.admin.accounts import add_account
from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.demo.simulate import SimConfig, simulate_lines
from dashboard.formats.entra.parse import convert_record
from dashboard.ingest.entra import import_events
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.models import Cycle, EntraEvent, Exchange, ReportRun
from dashboard.notify.emails import RenderedEmail
from dashboard.notify.outbox import enqueue
from dashboard.notify.reports import send_report_if_due

PASSWORD = "layout-password-1"
LONG_NAME = "firstname.middlename.lastname.with.a.very.long.department.suffix@emea-subsidiary.contoso-enterprises.example.com"
LONG_DETAIL = ("Attribute 'urn:ietf:params:scim:schemas:extension:uniFLOWOnline:2.0:User:costCenterIdentifierForPrintAccounting'"
               " value 'CC-" + "0123456789" * 12 + "' is not valid: " + "the cost centre does not exist in the tenant; " * 6)
LONG_PATH = "/scim/v2/Users/" + "9f0c2a1e-5b7d-4c3a-8e6f-" * 4 + "000000000000"

from tests.browser import ARTIFACTS, browser, require_chromium, sign_in_page  # noqa: E402, F401 (a fixture)
from tests.local_http import serving_app  # noqa: E402

require_chromium()

def _line(at: datetime, method: str, path: str, status: int, request_id: str, **extra: object) -> bytes:
    record = {"ts": at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z", "method": method, "path": path, "status": status,
              "duration_ms": 31.5, "request_id": request_id, "job": "uniflow-prod", **extra}
    return orjson.dumps(record)


def long_lines(start: datetime) -> list[bytes]:
    """One person with a long userName: looked up, created, then a PATCH refused with a long detail."""
    found = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 0, "Resources": []}
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": LONG_NAME, "externalId": LONG_NAME,
            "displayName": "Firstname Middlename Lastname " * 4, "emails": [{"value": LONG_NAME, "primary": True}]}
    created = {**body, "id": LONG_PATH.rsplit("/", 1)[1]}
    error = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "400", "scimType": "invalidValue",
             "detail": LONG_DETAIL}
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
             "Operations": [{"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:uniFLOWOnline:2.0:User:"
                             "costCenterIdentifierForPrintAccounting", "value": "CC-" + "0123456789" * 12}]}
    return [
        _line(start, "GET", "/scim/v2/Users", 200, "long-get", query=f'filter=userName eq "{LONG_NAME}"',
              response_body=found),
        _line(start + timedelta(seconds=1), "POST", "/scim/v2/Users", 201, "long-post", request_body=body,
              response_body=created),
        _line(start + timedelta(seconds=2), "PATCH", LONG_PATH, 400, "long-patch-" + "x" * 80, request_body=patch,
              response_body=error),
    ]


def entra_event(at: datetime) -> dict:
    return {
        "id": "layout-ev-1", "activityDateTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "cycleId": "layout-cycle-" + "f" * 40,
        "changeId": "layout-change-" + "0" * 50, "provisioningAction": "update",
        "provisioningStatusInfo": {"status": "failure", "errorInformation": {
            "errorCode": "SystemForCrossDomainIdentityManagementBadRequest",
            "reason": "StatusCode: BadRequest\r\nMessage: " + LONG_DETAIL + " This operation was retried 3 times."}},
        "provisioningSteps": [{"name": "EntryExportUpdate", "provisioningStepType": "export", "status": "failure",
                               "description": "User '" + LONG_NAME + "' was not updated: " + LONG_DETAIL,
                               "details": {"ReportableIdentifier": LONG_NAME, "SkipReason": "x" * 200}}],
        "modifiedProperties": [{"displayName": "costCenterIdentifierForPrintAccounting", "oldValue": "CC-1",
                                "newValue": "CC-" + "0123456789" * 12}],
        "sourceIdentity": {"id": "src-" + "a" * 60, "displayName": LONG_NAME, "identityType": "User",
                           "details": {"UserPrincipalName": LONG_NAME}},
        "targetIdentity": {"id": "tgt-" + "b" * 60, "identityType": "User"},
    }


@pytest.fixture
def site(app, settings):  # type: ignore[no-untyped-def]
    """Four simulated cycles (the first an initial one, failures, a credentials outage), the long
    values, an Entra event, a report and an undelivered email; the app served on 127.0.0.1."""
    job = get_job("uniflow-prod")
    options = options_from(settings.ingest, cycles=settings.cycles)
    lines = list(simulate_lines(SimConfig(users=40, cycles=4, seed=2, job="uniflow-prod", failure_rate=0.2,
                                          auth_outage_cycles=(3,)))[0])
    last = datetime.fromisoformat(orjson.loads(lines[-1])["ts"].replace("Z", "+00:00"))
    lines += long_lines(last + timedelta(seconds=5))
    ingest_lines(db.engine, job, enumerate(lines, 1), source="layout", via="cli", options=options)
    import_events(db.engine, job, [("t", convert_record(entra_event(last + timedelta(seconds=10)), 1))], source="t",
                  via="cli", options=options)
    now = last + timedelta(minutes=30)
    app.extensions["clock"] = lambda: now
    send_report_if_due(db.session, get_job("uniflow-prod"), now, settings, force=True)
    mail = enqueue(db.session, RenderedEmail(subject="[uniFLOW production] " + LONG_DETAIL[:180], text="t", html="<p>t</p>"),
                   to=LONG_NAME, kind="failures", now=now, job_id=job.id)
    mail.attempts, mail.last_error = 3, "SMTPRecipientsRefused: " + LONG_DETAIL
    db.session.commit()
    add_account("admin@example.com", "admin", PASSWORD)

    ids = {
        "exchange": db.session.scalars(select(Exchange.id).where(Exchange.request_id.like("long-patch-%"))).one(),
        "event": db.session.scalars(select(EntraEvent.id)).first(),
        "cycle": db.session.scalars(select(Cycle.id).order_by(Cycle.started_us.desc())).first(),
        "report": db.session.scalars(select(ReportRun.id)).first(),
    }
    with serving_app(app) as base:
        yield base, ids


def pages(ids: dict[str, int]) -> list[tuple[str, str]]:
    job = "/jobs/uniflow-prod"
    return [
        ("overview", "/"),
        ("job", job),
        ("logs", job + "/logs"),
        ("logs-failures", job + "/logs?outcome=failure"),
        ("exchange", f"{job}/exchanges/{ids['exchange']}"),
        ("entra-event", f"{job}/entra-events/{ids['event']}"),
        ("users", job + "/users"),
        ("user", f"{job}/users/{LONG_NAME}"),
        ("cycles", job + "/cycles"),
        ("cycle", f"{job}/cycles/{ids['cycle']}"),
        ("diagnostics", job + "/diagnostics"),
        ("reports", "/reports"),
        ("report", f"/reports/{ids['report']}"),
        ("notifications", "/notifications"),
        ("not-found", "/jobs/no-such-job"),
        ("bad-filter", job + "/logs?status=abc"),
    ]


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)])
def test_it_keeps_every_page_within_the_viewport(browser, site, width, height):  # type: ignore[no-untyped-def]
    base, ids = site
    assert all(ids.values()), ids
    context = browser.new_context(viewport={"width": width, "height": height}, is_mobile=width < 600)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    ARTIFACTS.mkdir(exist_ok=True)

    page.goto(base + "/login")
    wide = {"login": _overflow(page)}
    page.screenshot(path=str(ARTIFACTS / f"layout-login-{width}.png"), full_page=True)
    page.fill("input[name=email]", "admin@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")
    statuses, hidden = {}, {}
    for name, path in pages(ids):
        statuses[name] = page.goto(base + path).status
        page.wait_for_load_state("networkidle")
        if page.locator(".chart[data-figure]").count():
            page.wait_for_selector(".chart .main-svg")
        wide[name] = _overflow(page)
        if name in ("logs", "logs-failures", "cycles") and width >= 1280:  # every column in view, none scrolled off
            hidden[name] = page.evaluate("(() => { const box = document.querySelector('table.logs, table.cycles')"
                                         ".parentElement; return box.scrollWidth - box.clientWidth; })()")
        if wide[name] and os.environ.get("LAYOUT_DEBUG"):
            print(name, page.evaluate(_WIDEST))
        page.screenshot(path=str(ARTIFACTS / f"layout-{name}-{width}.png"), full_page=True)
        if width < 600:  # one screen too (a phone's full page is too tall to look at whole): the cards if any
            if page.locator("table.cards").count():
                page.locator("table.cards").first.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / f"layout-{name}-{width}-screen.png"))
    context.close()

    assert statuses == {name: 404 if name == "not-found" else 400 if name == "bad-filter" else 200 for name in statuses}
    assert {name: w for name, w in wide.items() if w} == {}  # page: px wider than the viewport
    assert {name: w for name, w in hidden.items() if w > 0} == {}  # the logs and cycles tables fit their card
    assert errors == []


def _overflow(page) -> int:  # type: ignore[no-untyped-def]
    """How many px the page is wider than its viewport (0 when it fits)."""
    return page.evaluate("Math.max(0, document.documentElement.scrollWidth - document.documentElement.clientWidth)")


_WIDEST = """(() => { const w = document.documentElement.clientWidth; const out = [];
  document.querySelectorAll('body *').forEach(el => { const r = el.getBoundingClientRect();
    let clipped = false; for (let a = el.parentElement; a; a = a.parentElement) { if (a.classList.contains('scroll') || a.tagName === 'PRE') { clipped = true; break; } }
    if (r.right > w + 1 && !clipped) { out.push(el.tagName + '.' + el.className + ' ' + Math.round(r.right)); } });
  const info = [document.documentElement.scrollWidth, document.documentElement.clientWidth, window.innerWidth, document.body.scrollWidth];
  document.querySelectorAll('main > *, main > * > *, header.top, header.top *').forEach(el => { info.push(el.tagName + '.' + el.className + ' ' + Math.round(el.getBoundingClientRect().right) + '/' + el.scrollWidth); });
  return [out.slice(0, 12), info]; })()"""


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York"])
def test_it_labels_chart_axes_in_the_viewer_s_time_zone(browser, site, zone):  # type: ignore[no-untyped-def]
    base, _ids = site
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, timezone_id=zone,
                                  locale="en-GB")
    page = context.new_page()
    sign_in_page(page, base, "admin@example.com", PASSWORD)
    page.goto(base + "/jobs/uniflow-prod")
    page.wait_for_selector("#chart-outcomes .main-svg")
    page.screenshot(path=str(ARTIFACTS / f"layout-charts-{zone.replace('/', '-')}.png"), full_page=True)
    figure = orjson.loads(page.locator("#figure-outcomes").text_content())
    ticks = page.locator("#chart-outcomes .xtick text").all_text_contents()
    titles = page.locator("#chart-outcomes .g-xtitle, #chart-outcomes .g-x2title").all_text_contents()
    modebars = page.locator(".modebar").count()
    context.close()

    utc = [x for trace in figure["data"] if trace["xaxis"] == "x" for x in trace["x"]]
    local = {datetime.fromisoformat(x.replace("Z", "+00:00")).astimezone(ZoneInfo(zone)).strftime("%H:%M") for x in utc}
    assert ticks and all(t[-5:] in local for t in ticks)  # "28 Nov, 09:00" in Berlin for 08:00Z
    assert not [t for t in ticks if "." in t]  # no "14:59:44.6845"
    assert any(f"({zone})" in t for t in titles)
    assert modebars == 0
