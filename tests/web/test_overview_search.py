"""The overview's summary strip (jobs by the state each shows) and the search for a person across jobs."""
from __future__ import annotations

import html
import re
from dataclasses import replace

import pytest

from dashboard.admin.jobs import add_job, get_job
from dashboard.db import db
from dashboard.queries.users import find_user
from dashboard.settings import JobSettings
from tests.notify.helpers import after_cycle, cycle_lines, ingest


@pytest.fixture
def settings(base_settings):  # type: ignore[no-untyped-def]
    return replace(base_settings, app=replace(base_settings.app, secret_key="test-secret"),
                   jobs=(JobSettings(name="uniflow-prod", display_name="uniFLOW production",
                                     quarantine={"min_failures": 5}),))


@pytest.fixture
def two_jobs(app, settings):  # type: ignore[no-untyped-def]
    """uniflow-prod quarantined (its second cycle all 401), emea healthy; the same five people in both."""
    add_job("emea", display_name="uniFLOW EMEA")
    ingest(settings, cycle_lines(0))
    ingest(settings, cycle_lines(1, status_all=401))
    ingest(settings, cycle_lines(1, job="emea"), job="emea")
    app.extensions["clock"] = lambda: after_cycle(1)


def words(page: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def strip(page: str) -> str:
    found = re.search(r'<p class="summary"[^>]*>(.*?)</p>', page, re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", found.group(1))).strip() if found else ""


def test_the_strip_counts_the_state_each_job_shows_most_urgent_first(client, auth, two_jobs):
    auth(client, "viewer")

    page = client.get("/").get_data(as_text=True)

    assert strip(page) == "1 quarantined · 1 healthy"
    badges = re.findall(r'<article class="card job" data-job="([^"]+)">\s*<h2>.*?class="badge state-(\w+)"', page, re.S)
    assert sorted(state for _, state in badges) == ["healthy", "quarantined"]


def test_the_strip_counts_two_jobs_in_one_state_together(client, auth, app, settings):
    add_job("emea")
    ingest(settings, cycle_lines(0))
    ingest(settings, cycle_lines(0, job="emea"), job="emea")
    app.extensions["clock"] = lambda: after_cycle(0)
    auth(client, "viewer")

    assert strip(client.get("/").get_data(as_text=True)) == "2 healthy"


@pytest.mark.parametrize("typed", ["user3@contoso.com", "USER3@Contoso.COM", "id-3"])
def test_it_finds_a_person_in_every_job_by_name_or_scim_id_and_links_to_each_user_page(client, auth, two_jobs, typed):
    auth(client, "support")

    page = client.get("/search", query_string={"q": typed}).get_data(as_text=True)

    links = re.findall(r'href="(/jobs/[^"]+/users/[^"]+)"', page)
    expected = sorted(f"/jobs/{job}/users/{find_user(db.session, get_job(job), 'id-3').key}"  # type: ignore[union-attr]
                      for job in ("emea", "uniflow-prod"))
    assert sorted(links) == expected
    assert "2 people matching" in words(page)
    for link in links:
        assert "user3@contoso.com" in client.get(link).get_data(as_text=True)  # the person's own page


def test_it_says_when_nobody_matches(client, auth, two_jobs):
    auth(client, "support")

    page = words(client.get("/search?q=nobody-here").get_data(as_text=True))

    assert "0 people matching “nobody-here”" in page and "Nobody in any job goes or went by that name or id." in page


def test_a_viewer_sees_no_search_box_and_gets_403_naming_support(client, auth, two_jobs):
    auth(client, "viewer")

    overview = client.get("/").get_data(as_text=True)
    response = client.get("/search?q=user3@contoso.com")

    assert 'role="search"' not in overview
    assert response.status_code == 403
    assert "This page needs the support role; you are signed in as viewer." in response.get_data(as_text=True)
    assert "user3@contoso.com" not in response.get_data(as_text=True).replace("q=user3", "")
