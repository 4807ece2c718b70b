"""The canary test (issue 12): fixed canary secrets, put into every input form (the CLI, the HTTP
push, Entra's Graph JSON and CSV exports, rejected lines, a token in a push's query string), then
searched for everywhere they could come out: every table and column of the database (compressed
blobs decoded), the CLI's output, rejects and exports, every page and API answer an admin can
reach, the emails a real SMTP server received, and the application's log. Any hit fails, naming
the canary's form and where it was found.
"""
from __future__ import annotations

import html
import logging
import re
import urllib.error
import urllib.request
from dataclasses import replace
from datetime import timedelta

import orjson
from sqlalchemy import select

from dashboard.admin.jobs import create_token, get_job
from dashboard.admin.scraper import make_token
from dashboard.db import db
from dashboard.formats import codec
from dashboard.models import EntraEvent, Exchange
from dashboard.notify.alerts import evaluate_health
from dashboard.notify.mailer import SmtpMailer
from dashboard.notify.outbox import deliver_pending
from dashboard.notify.reports import send_due_reports
from dashboard.settings import OpsSettings
from tests.local_http import serving_app

from .canaries import (
    T0,
    all_canaries,
    canary,
    scim_lines,
    write_entra_csv,
    write_entra_page,
)
from .conftest import sign_in_as_admin

JOB = "uniflow-prod"
CHANNELS = ("cli", "push", "entra")
MAX_PAGES = 600


class Findings:
    """Where each canary was seen."""

    def __init__(self, canaries: dict[str, str]) -> None:
        self.canaries = canaries
        self.pattern = re.compile("|".join(re.escape(v) for v in canaries.values()))
        self.by_value = {v: k for k, v in canaries.items()}
        self.hits: list[str] = []
        self.places = 0

    def search(self, where: str, text: str | bytes | None) -> None:
        if text is None:
            return
        self.places += 1
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        for match in self.pattern.finditer(text):
            self.hits.append(f"{self.by_value[match.group()]} in {where}")

    def report(self) -> str:
        return "canaries found:\n  " + "\n  ".join(sorted(set(self.hits)))


def test_no_canary_leaves_by_any_path(app, settings, client, runner, smtp_server, tmp_path, caplog):  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    canaries = all_canaries(CHANNELS)
    token = create_token(get_job(JOB))[1]
    canaries["push:ingest-token-in-query"] = token
    found = Findings(canaries)

    # -- in: the CLI, the push API, Entra's exports, a token in a query string -----------------------
    log = tmp_path / "canaries.jsonl"
    log.write_bytes(b"\n".join(scim_lines("cli")) + b"\n")
    found.search("the output of flask ingest (SCIM)", runner.invoke(args=["ingest", str(log), "--job", JOB]).output)
    pushed = client.post(f"/api/v1/jobs/{JOB}/exchanges", data=b"\n".join(scim_lines("push")),
                         headers={"Authorization": f"Bearer {token}"})
    assert pushed.status_code == 200 and pushed.json["accepted"] >= 15, pushed.json
    found.search("the push API's answer", pushed.get_data())
    page = write_entra_page(tmp_path / "graph-page.json", "entra")
    found.search("the output of flask ingest (Graph JSON)", runner.invoke(args=["ingest", str(page), "--job", JOB]).output)
    folder = write_entra_csv(tmp_path / "csv", "entra")
    found.search("the output of flask ingest (CSV)",
                 runner.invoke(args=["ingest", str(folder), "--job", JOB, "--format", "entra-csv"]).output)
    _push_with_the_token_in_the_query(app, token, found)
    assert db.session.scalar(select(Exchange.id).limit(1)) is not None
    stored = set(db.session.scalars(select(EntraEvent.entra_id)))
    assert {"entra-event-1", "csv-canary"} <= stored, stored  # both Entra forms were imported, not rejected

    # -- emails: health, failures and the cycle report, through a real SMTP server -------------------
    for now in (T0 + timedelta(minutes=20), T0 + timedelta(minutes=60)):
        send_due_reports(db.session, now, settings)
        evaluate_health(db.session, now, settings)
        deliver_pending(db.session, SmtpMailer(settings.smtp), now, settings=settings.notifications)
    assert smtp_server.messages, "no email was sent: the emails were not searched"
    for message in smtp_server.messages:
        found.search(f"the email {message.subject!r}", message.message.as_bytes())

    # -- out: database, CLI, exports, pages, API, log ---------------------------------------------------
    _search_the_database(found)
    found.search("flask rejects", runner.invoke(args=["rejects", "--job", JOB, "--limit", "1000"]).output)
    out = tmp_path / "export.jsonl"
    runner.invoke(args=["export", "--job", JOB, "--out", str(out)])
    found.search("flask export", out.read_bytes())
    sign_in_as_admin(client)
    _crawl(client, found)
    _read_the_api(client, found)
    _read_the_scrapers_answers(app, settings, client, found)
    for record in caplog.records:
        if not record.name.startswith("mail.log"):  # the test SMTP server's own debugging, not the app's
            found.search(f"the log ({record.name})", record.getMessage())

    assert found.places > 100
    assert not found.hits, found.report()


def _push_with_the_token_in_the_query(app, token: str, found: Findings) -> None:  # type: ignore[no-untyped-def]
    """The push with `?token=`, through a real server so that werkzeug writes its request line."""
    with serving_app(app) as base:
        url = f"{base}/api/v1/jobs/{JOB}/exchanges?token={token}"
        request = urllib.request.Request(url, data=b"\n".join(scim_lines("push")), method="POST")
        try:
            urllib.request.urlopen(request, timeout=30)
            status, body = 200, b""
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
    assert status == 401 and b"Authorization header" in body
    found.search("the answer to a push with the token in the query", body)


def _search_the_database(found: Findings) -> None:
    db.session.rollback()
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for column, value in zip(table.columns, row, strict=True):
                    where = f"the database, {table.name}.{column.name}"
                    if isinstance(value, bytes | memoryview):
                        value = bytes(value)
                        try:
                            value = orjson.dumps(codec.unpack(value))
                        except Exception:  # noqa: BLE001 - not a packed record: searched as it is
                            pass
                    if value is not None:
                        found.search(where, value if isinstance(value, bytes) else str(value))


_LINK = re.compile(r'(?:href|src|action)="(/[^"#]*)"')
_SKIP = ("/logout", "/static/", "/login")


def _crawl(client, found: Findings) -> None:  # type: ignore[no-untyped-def]
    """Every page reachable by links from / and the job's pages, as an admin (GET only)."""
    queue = ["/", f"/jobs/{JOB}", f"/jobs/{JOB}/logs", f"/jobs/{JOB}/logs?failed=1",
             f"/jobs/{JOB}/logs/export.csv", f"/jobs/{JOB}/logs/export.jsonl"]
    seen = set(queue)
    pages = 0
    while queue and pages < MAX_PAGES:
        url = queue.pop(0)
        response = client.get(url)
        pages += 1
        body = response.get_data()
        response.close()
        found.search(f"the page {url} ({response.status_code})", body)
        if not response.mimetype.startswith("text/html"):
            continue
        for link in _LINK.findall(body.decode("utf-8", "replace")):
            link = html.unescape(link)
            if link not in seen and not link.startswith(_SKIP):
                seen.add(link)
                queue.append(link)
    assert pages >= 20, f"only {pages} pages reached"


def _read_the_api(client, found: Findings) -> None:  # type: ignore[no-untyped-def]
    base = f"/api/v1/jobs/{JOB}"
    urls = ["/api/v1/jobs", f"{base}/health", f"{base}/cycles/current", f"{base}/cycles", f"{base}/users",
            f"{base}/signatures", f"{base}/report", f"{base}/entra/status", f"{base}/entra/events"]
    for cycle in client.get(f"{base}/cycles?limit=500").json["cycles"]:
        urls.append(f"{base}/cycles/{cycle['id']}")
    for user in client.get(f"{base}/users?limit=1000").json["users"]:
        urls.append(f"{base}/users/{user['key']}/timeline")
    urls += [f"{base}/exchanges/{i}" for i in db.session.scalars(select(Exchange.id))]
    urls += [f"{base}/entra/events/{i}" for i in db.session.scalars(select(EntraEvent.id))]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        found.search(f"the API answer {url}", response.get_data())


def _read_the_scrapers_answers(app, settings, client, found: Findings) -> None:  # type: ignore[no-untyped-def]
    """/metrics and /healthz, with the scraper token (job names and counts only, never a secret)."""
    token, digest = make_token()
    app.extensions["dashboard"] = replace(settings, ops=OpsSettings(scraper_token_hash=digest))
    for url in ("/metrics", "/healthz"):
        response = client.get(url, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code in (200, 503), (url, response.status_code)
        found.search(f"the scraper's answer {url}", response.get_data())
    app.extensions["dashboard"] = settings


def test_the_canaries_are_found_where_they_are_put():
    # The search itself: a canary in a text is found and named by its form.
    canaries = all_canaries(("cli",))
    found = Findings(canaries)

    found.search("a text", f"... {canary('query-pin', 'cli')} ...")

    assert found.hits == ["cli:query-pin in a text"]


def test_the_canary_forms_are_all_distinct():
    values = list(all_canaries(CHANNELS).values())

    assert len(values) == len(set(values))
    assert not any(a != b and a in b for a in values for b in values)


