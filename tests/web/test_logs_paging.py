"""The logs page pages both ways: older ('after' the last row shown) and newer ('before' the first)."""
from __future__ import annotations

import re

import pytest
from argon2 import PasswordHasher

from dashboard.admin import accounts
from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.demo.simulate import SimConfig, simulate_lines
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.queries import logs


@pytest.fixture(autouse=True)
def _cheap_hashes(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def loaded(app, settings):  # type: ignore[no-untyped-def]
    lines = list(simulate_lines(SimConfig(users=30, cycles=3, seed=3, job="uniflow-prod", failure_rate=0.2))[0])
    ingest_lines(db.engine, get_job("uniflow-prod"), enumerate(lines, 1), source="t", via="cli",
                 options=options_from(settings.ingest, cycles=settings.cycles))
    return get_job("uniflow-prod")


def ids(page: logs.LogPage) -> list[int]:
    return [r["id"] for r in page.rows]


def test_it_has_no_newer_link_on_the_first_page(loaded):  # type: ignore[no-untyped-def]
    first = logs.page(db.session, loaded, logs.LogFilter(), limit=10)

    assert first.prev_cursor is None and first.next_cursor is not None


@pytest.mark.parametrize("f", [logs.LogFilter(), logs.LogFilter(outcome="failure")], ids=["all", "failures"])
def test_it_walks_back_to_newer_pages_without_gaps_or_repeats(loaded, f):  # type: ignore[no-untyped-def]
    pages = [logs.page(db.session, loaded, f, limit=2)]
    while pages[-1].next_cursor:
        pages.append(logs.page(db.session, loaded, f, cursor=pages[-1].next_cursor, limit=2))
    assert len(pages) >= 3

    back = [pages[-1]]
    while back[-1].prev_cursor:
        back.append(logs.page(db.session, loaded, f, before=back[-1].prev_cursor, limit=2))

    older = [i for p in pages for i in ids(p)]
    newer = [i for p in reversed(back) for i in ids(p)]
    assert newer == older  # every row once, newest first, whichever way one walked
    assert [ids(p) for p in reversed(back)][0] == ids(pages[0])  # back at the first page, a full one
    assert back[-1].prev_cursor is None


def test_it_shows_a_full_first_page_when_newer_rows_run_out(loaded):  # type: ignore[no-untyped-def]
    # Page 2 of 7-row pages, then "newer" 10 at a time: only 7 rows are newer, not a page of 10,
    # so the newest 10 are shown, with no "newer" link.
    first = logs.page(db.session, loaded, logs.LogFilter(), limit=7)
    second = logs.page(db.session, loaded, logs.LogFilter(), cursor=first.next_cursor, limit=7)

    again = logs.page(db.session, loaded, logs.LogFilter(), before=second.prev_cursor, limit=10)

    assert ids(again) == ids(first) + ids(second)[:3] and again.prev_cursor is None


def test_it_names_a_bad_before_cursor(loaded):  # type: ignore[no-untyped-def]
    with pytest.raises(logs.FilterError, match="'before'"):
        logs.page(db.session, loaded, logs.LogFilter(), before="yesterday")


def test_the_page_says_what_it_shows_and_links_both_ways(client, auth, loaded):  # type: ignore[no-untyped-def]
    auth(client, "support")
    first = client.get("/jobs/uniflow-prod/logs").get_data(as_text=True)
    older = re.search(r'class="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    second = client.get(older).get_data(as_text=True)

    assert "50 entries shown, newest first · more older" in first
    assert 'class="newer"' not in first
    assert "newer entries above" in second and 'class="newer"' in second
    assert client.get("/jobs/uniflow-prod/logs?before=nonsense").status_code == 400


def test_the_page_marks_failures_in_words_not_only_colour(client, auth, loaded):  # type: ignore[no-untyped-def]
    html = auth(client, "support").get("/jobs/uniflow-prod/logs?outcome=failure").get_data(as_text=True)

    badges = re.findall(r'<span class="badge result-(\w+)"[^>]*>([^<]+)</span>', html)
    assert badges and {kind for kind, _ in badges} <= {"failed", "tolerated"}
    assert all(text.split()[-1] == kind for kind, text in badges)
    header = re.search(r"<thead><tr>(.*?)</tr></thead>", html).group(1)  # type: ignore[union-attr]
    assert re.findall(r"<th[^>]*>([^<]+)</th>", header)[:5] == ["Time", "Status", "Operation", "User", "Error"]
