"""HTML pages: the overview in urgency order, the job page's progress bar, escaping, 404."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from argon2 import PasswordHasher

from dashboard.admin import accounts
from dashboard.admin.jobs import add_job, get_job
from dashboard.db import db
from dashboard.demo.simulate import simulate_lines
from dashboard.demo.truth import SimConfig
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.notify.brief import first_screen
from tests.web.signin import signed_in

SCRIPT = "<script>alert(1)</script>"
START = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_login_state(monkeypatch):  # type: ignore[no-untyped-def]
    # Argon2 with its default cost takes half a second per hash; these tests are not about that.
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))



def load(settings, job_name: str, lines) -> None:  # type: ignore[no-untyped-def]
    ingest_lines(db.engine, get_job(job_name), enumerate(lines, start=1), source="test.jsonl", via="cli",
                 options=options_from(settings.ingest, cycles=settings.cycles))


def simulate(settings, job_name: str, **config) -> datetime:  # type: ignore[no-untyped-def]
    """Ingest a simulated log for the job; the end of its last cycle."""
    lines, truth = simulate_lines(SimConfig(users=20, cycles=2, seed=7, job=job_name, failure_rate=0.0, **config))
    load(settings, job_name, lines)
    return truth.cycles[-1].ended_at


def set_clock(app, moment: datetime) -> None:  # type: ignore[no-untyped-def]
    app.extensions["clock"] = lambda: moment


def overview_rows(html: str) -> list[tuple[str, str]]:
    """(job name, state badge) of each job card, in page order."""
    return re.findall(r'<article class="card job"[^>]*>\s*<h2><a href="/jobs/([^"]+)">.*?badge state-(\w+)', html, re.S)


# -- overview -------------------------------------------------------------------------------------


def test_it_lists_the_jobs_in_urgency_order(app, client, settings):  # type: ignore[no-untyped-def]
    # Names sort the other way round: alphabetical order would put the healthy job first.
    add_job("a-healthy")
    add_job("c-quarantined")
    ended = simulate(settings, "a-healthy")
    simulate(settings, "c-quarantined", auth_outage_cycles=(1,))  # its last cycle answered 401
    set_clock(app, ended + timedelta(minutes=30))  # both logs' last cycles have completed
    signed_in(client, "viewer")

    html = client.get("/").get_data(as_text=True)

    assert overview_rows(html) == [
        ("c-quarantined", "quarantined"),
        ("uniflow-prod", "unknown"),  # no traffic yet
        ("a-healthy", "healthy"),
    ]


# -- the job page ---------------------------------------------------------------------------------


def test_it_renders_the_progress_bar_of_the_current_cycle(app, client, settings):  # type: ignore[no-untyped-def]
    set_clock(app, simulate(settings, "uniflow-prod") + timedelta(minutes=30))
    signed_in(client, "viewer")

    html = client.get("/jobs/uniflow-prod").get_data(as_text=True)

    assert 'data-progress-url="/api/v1/jobs/uniflow-prod/cycles/current"' in html
    assert re.search(r'role="progressbar"[^>]*aria-valuenow="100(\.0)?"', html)


def test_it_renders_a_job_without_traffic(app, client):  # type: ignore[no-untyped-def]
    signed_in(client, "viewer")

    response = client.get("/jobs/uniflow-prod")

    assert response.status_code == 200
    assert 'role="progressbar"' not in response.get_data(as_text=True)


def failing_create(user_name: str, external_id: str = "x-1", second: int = 0) -> list[bytes]:
    """A lookup that finds nothing and a create that fails with 409: the user is failing."""
    return [
        orjson.dumps({"ts": f"2026-11-28T08:00:{second:02d}Z", "method": "GET", "path": "/scim/v2/Users",
                      "query": f'filter=userName eq "{user_name}"', "status": 200, "request_id": f"{external_id}-1",
                      "response_body": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                                        "totalResults": 0, "Resources": []}}),
        orjson.dumps({"ts": f"2026-11-28T08:00:{second + 1:02d}Z", "method": "POST", "path": "/scim/v2/Users",
                      "status": 409, "request_id": f"{external_id}-2",
                      "request_body": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                       "userName": user_name, "externalId": external_id},
                      "response_body": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "409",
                                        "scimType": "uniqueness", "detail": f"User '{user_name}' already exists"}}),
    ]


def test_it_escapes_a_user_name_that_is_markup(app, client, settings):  # type: ignore[no-untyped-def]
    load(settings, "uniflow-prod", failing_create(SCRIPT))
    set_clock(app, START + timedelta(minutes=30))
    signed_in(client, "support")  # failing users are listed for support

    html = client.get("/jobs/uniflow-prod").get_data(as_text=True)

    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert SCRIPT not in html


@pytest.mark.parametrize(("role", "shown"), [("viewer", False), ("support", True)])
def test_it_shows_failing_users_to_support_only(app, client, settings, role, shown):  # type: ignore[no-untyped-def]
    load(settings, "uniflow-prod", failing_create("clara.wang@contoso.com"))
    set_clock(app, START + timedelta(minutes=30))
    signed_in(client, role)

    html = client.get("/jobs/uniflow-prod").get_data(as_text=True)

    assert ("clara.wang@contoso.com" in html) is shown


def test_two_failing_people_sharing_a_user_name_are_told_apart(app, client, settings):  # type: ignore[no-untyped-def]
    # the second person's create alone (a lookup of its own before it would be given to the first
    # holder of the name: the resolver moves lookups only where one of the holders wrote)
    load(settings, "uniflow-prod", failing_create("sam@contoso.com", "ext-sam-1")
         + failing_create("Sam@Contoso.com", "ext-sam-2", second=10)[1:])
    set_clock(app, START + timedelta(minutes=30))
    signed_in(client, "support")

    html = client.get("/jobs/uniflow-prod").get_data(as_text=True)
    card = html[html.index("<h2>Failing users</h2>"):]
    names = re.findall(r'<li><a href="/jobs/uniflow-prod/users/[^"]+">([^<]+)</a>', card)

    assert sorted(names) == ["Sam@Contoso.com (externalId ext-sam-2)", "sam@contoso.com (externalId ext-sam-1)"]


def test_it_answers_404_for_an_unknown_job(client):  # type: ignore[no-untyped-def]
    signed_in(client, "viewer")

    response = client.get("/jobs/nope")

    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "No job named nope." in response.get_data(as_text=True)


def test_the_failure_email_tells_two_people_sharing_a_user_name_apart(app, settings):  # type: ignore[no-untyped-def]
    load(settings, "uniflow-prod", failing_create("sam@contoso.com", "ext-sam-1")
         + failing_create("Sam@Contoso.com", "ext-sam-2", second=10)[1:])

    brief = first_screen(db.session, get_job("uniflow-prod"), START + timedelta(minutes=30), settings,
                         {"state": "degraded"}, since=None)

    assert brief["who"]["count"] == 2
    assert sorted(brief["who"]["names"]) == ["Sam@Contoso.com (externalId ext-sam-2)",
                                             "sam@contoso.com (externalId ext-sam-1)"]
