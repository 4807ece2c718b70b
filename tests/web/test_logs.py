"""The provisioning logs: filters, keyset pages, streamed exports."""
from __future__ import annotations

import csv
import io

import orjson
import pytest
from sqlalchemy import func, select

from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.demo.simulate import simulate_lines
from dashboard.demo.truth import SimConfig
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.models import Exchange
from dashboard.queries import logs


@pytest.fixture
def loaded(app, settings):  # type: ignore[no-untyped-def]
    lines = list(simulate_lines(SimConfig(users=60, cycles=4, seed=3, job="uniflow-prod", failure_rate=0.2))[0])
    ingest_lines(db.engine, get_job("uniflow-prod"), enumerate(lines, 1), source="t", via="cli",
                 options=options_from(settings.ingest, cycles=settings.cycles))
    return get_job("uniflow-prod")


def all_pages(job, f: logs.LogFilter, limit: int = 7) -> list[dict]:  # type: ignore[no-untyped-def]
    rows, cursor = [], None
    while True:
        page = logs.page(db.session, job, f, cursor=cursor, limit=limit)
        rows.extend(page.rows)
        if page.next_cursor is None:
            return rows
        cursor = page.next_cursor


def test_it_pages_through_failures_newest_first_without_gaps_or_repeats(loaded):  # type: ignore[no-untyped-def]
    failures = db.session.scalar(select(func.count()).select_from(Exchange).where((Exchange.status == 0) | (Exchange.status >= 400)))

    rows = all_pages(loaded, logs.LogFilter(outcome="failure"))

    assert len(rows) == failures > 10
    assert len({r["id"] for r in rows}) == len(rows)
    assert [r["ts"] for r in rows] == sorted((r["ts"] for r in rows), reverse=True)
    assert all(r["status"] == 0 or r["status"] >= 400 for r in rows)


@pytest.mark.parametrize(
    ("args", "check"),
    [
        ({"operation": "create"}, lambda r: r["operation"] == "create"),
        ({"status": "409"}, lambda r: r["status"] == 409),
        ({"outcome": "success"}, lambda r: 0 < r["status"] < 400),
        ({"since": "2026-11-28T09:00:00Z"}, lambda r: r["ts"] >= "2026-11-28T09:00:00"),
    ],
)
def test_it_applies_each_filter(loaded, args, check):  # type: ignore[no-untyped-def]
    rows = all_pages(loaded, logs.LogFilter.from_args(args), limit=50)

    assert rows and all(check(r) for r in rows)


def test_it_filters_by_user_and_cycle(loaded):  # type: ignore[no-untyped-def]
    some = logs.page(db.session, loaded, logs.LogFilter(operation="create"), limit=1).rows[0]

    mine = all_pages(loaded, logs.LogFilter(user=some["user"].upper()))
    in_cycle = all_pages(loaded, logs.LogFilter(cycle=some["cycle"]), limit=100)

    assert mine and {r["user"] for r in mine} == {some["user"]}
    assert in_cycle and {r["cycle"] for r in in_cycle} == {some["cycle"]}


def test_it_names_the_field_of_a_bad_filter():
    with pytest.raises(logs.FilterError, match="'status'"):
        logs.LogFilter.from_args({"status": "abc"})
    with pytest.raises(logs.FilterError, match="'since'"):
        logs.LogFilter.from_args({"since": "yesterday"})
    with pytest.raises(logs.FilterError, match="'outcome'"):
        logs.LogFilter.from_args({"outcome": "meh"})


def test_it_exports_the_filtered_set_as_csv_and_json_lines(loaded):  # type: ignore[no-untyped-def]
    f = logs.LogFilter(outcome="failure")
    expected = len(all_pages(loaded, f, limit=100))

    text = "".join(logs.export_csv(db.session, loaded, f, batch=5))
    lines = b"".join(logs.export_json(db.session, loaded, f, batch=5)).splitlines()

    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(lines) == expected
    assert all(int(r["status"]) == 0 or int(r["status"]) >= 400 for r in rows)
    assert all(orjson.loads(line)["job"] == "uniflow-prod" for line in lines)


def test_it_defuses_spreadsheet_formulas_in_csv():
    assert logs._safe_cell("=HYPERLINK(\"http://x\")") == "'=HYPERLINK(\"http://x\")"
    assert logs._safe_cell("ryan@contoso.com") == "ryan@contoso.com"
