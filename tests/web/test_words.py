"""Words on the logs, cycles, user, report and notifications pages: no "0.0 min", "1 users",
operation "none", or "Every email was delivered." when there was none."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from argon2 import PasswordHasher
from flask import render_template_string

from dashboard.admin import accounts
from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.notify.reports import send_report_if_due

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _cheap_hashes(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def line(at: datetime, **fields: object) -> bytes:
    record = {"ts": at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z", "method": "GET", "path": "/scim/v2/Users",
              "status": 200, "query": 'filter=userName eq "ryan@contoso.com"', "job": "uniflow-prod",
              "response_body": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 1,
                                "Resources": [{"id": "id-ryan", "userName": "ryan@contoso.com"}]}, **fields}
    return orjson.dumps(record)


@pytest.fixture
def looked_up_only(app, settings):  # type: ignore[no-untyped-def]
    """One cycle of one request: Ryan is looked up, found, and nothing is written."""
    ingest_lines(db.engine, get_job("uniflow-prod"), [(1, line(T0, request_id="r-1"))], source="t", via="cli",
                 options=options_from(settings.ingest, cycles=settings.cycles))
    app.extensions["clock"] = lambda: T0 + timedelta(hours=1)


def words(template: str, **context: object) -> str:
    return render_template_string('{% from "pages/_words.html" import count, duration, operation, processed %}'
                                  + template, **context).strip()


def test_it_shows_a_one_request_cycle_s_duration_in_seconds(client, auth, looked_up_only):  # type: ignore[no-untyped-def]
    html = auth(client, "support").get("/jobs/uniflow-prod/cycles").get_data(as_text=True)

    assert "0.0 min" not in html
    assert "<td>0 s</td>" in html


def test_it_says_a_cycle_wrote_nothing_instead_of_operation_none(client, auth, looked_up_only):  # type: ignore[no-untyped-def]
    html = auth(client, "support").get("/jobs/uniflow-prod/users/ryan@contoso.com").get_data(as_text=True)

    assert "· none ·" not in html
    assert "lookup only (no change)" in html


def test_it_does_not_claim_every_email_was_delivered_when_there_was_none(client, auth):  # type: ignore[no-untyped-def]
    html = auth(client, "admin").get("/notifications").get_data(as_text=True)

    assert "Every email was delivered." not in html
    assert "No email has been sent yet, and nobody is subscribed to any job." in html


def test_it_says_a_report_went_to_nobody_rather_than_to_0(client, auth, looked_up_only, settings):  # type: ignore[no-untyped-def]
    run = send_report_if_due(db.session, get_job("uniflow-prod"), T0 + timedelta(hours=1), settings, force=True)
    db.session.commit()

    html = auth(client, "support").get(f"/reports/{run.id}").get_data(as_text=True)

    assert "emailed to 0" not in html and "emailed to nobody" in html


@pytest.mark.parametrize(("n", "expected"), [(0, "0 users"), (1, "1 user"), (2, "2 users")])
def test_it_counts_with_the_right_plural(app, n, expected):  # type: ignore[no-untyped-def]
    assert words("{{ count(n, 'user') }}", n=n) == expected


@pytest.mark.parametrize(("seconds", "expected"), [(0, "0 s"), (44.6, "45 s"), (60, "1 min"), (2430, "40 min"),
                                                   (7500, "2 h 05 min"), (None, "–")])
def test_it_writes_durations_people_read(app, seconds, expected):  # type: ignore[no-untyped-def]
    assert words("{{ duration(s) }}", s=seconds) == expected


@pytest.mark.parametrize(("users", "expected_users", "expected"),
                         [(16, 19, "16 of 19"), (22, 19, "22 (about 19 expected)"), (300, None, "300 (expected unknown)")])
def test_it_never_shows_more_processed_than_expected(app, users, expected_users, expected):  # type: ignore[no-untyped-def]
    # The report's cycles table said "22 of 19" and "300 of ?".
    assert words("{{ processed(u, e) }}", u=users, e=expected_users) == expected


def test_it_names_group_operations_in_words(app):  # type: ignore[no-untyped-def]
    assert words("{{ operation('group_update') }}") == "group update"
