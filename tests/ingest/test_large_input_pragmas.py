"""A large input loads with a bigger SQLite page cache and WAL checkpoint threshold (ingest/scim.py),
set on the loading connection only while it loads: afterwards the pooled connection has its own
values again, so the pages the web serves do not keep the ingest's memory."""
from __future__ import annotations

import gc
from dataclasses import replace

import pytest

from dashboard import create_app
from dashboard.admin.jobs import get_job, sync_jobs
from dashboard.db import db, upgrade_schema
from dashboard.demo.simulate import simulate_lines
from dashboard.demo.truth import SimConfig
from dashboard.ingest.scim import LARGE_INPUT_GC_THRESHOLD, PARALLEL_AFTER_LINES, ingest_lines, options_from
from dashboard.settings import DatabaseSettings


def _pragmas() -> tuple[int, int]:
    with db.engine.connect() as conn:
        return (conn.exec_driver_sql("PRAGMA cache_size").scalar(),
                conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar())


@pytest.fixture
def sqlite_app(settings, tmp_path):  # type: ignore[no-untyped-def]
    """An app on a SQLite file of its own, whichever database the suite runs on (the settings
    checked here are SQLite's; PostgreSQL has neither per connection)."""
    own = replace(settings, database=DatabaseSettings(url=f"sqlite:///{tmp_path / 'own.db'}"))
    app = create_app(own)
    upgrade_schema(app)
    with app.app_context():
        sync_jobs(own.jobs)
        yield app
        db.session.remove()
        db.engine.dispose()


def test_a_large_input_leaves_the_connection_as_it_found_it(sqlite_app, settings):  # type: ignore[no-untyped-def]
    assert db.engine.dialect.name == "sqlite"
    before = _pragmas()
    lines = list(simulate_lines(SimConfig(users=1000, cycles=10, seed=3, job="uniflow-prod", change_rate=0.2))[0])
    assert len(lines) > PARALLEL_AFTER_LINES + 2 * settings.ingest.batch_size, "large enough to count as large"
    options = replace(options_from(settings.ingest, cycles=settings.cycles), workers=0)

    result = ingest_lines(db.engine, get_job("uniflow-prod"), enumerate(lines, start=1), source="big", via="cli",
                          options=options)

    assert result.accepted == len(lines) - result.duplicates
    assert _pragmas() == before


def test_a_large_input_runs_the_garbage_collector_less_often_and_restores_it(sqlite_app, settings):  # type: ignore[no-untyped-def]
    before = gc.get_threshold()
    seen: list[tuple[int, int]] = []  # (lines done, gen-0 threshold) after each batch
    lines = list(simulate_lines(SimConfig(users=1000, cycles=10, seed=3, job="uniflow-prod", change_rate=0.2))[0])
    options = replace(options_from(settings.ingest, cycles=settings.cycles), workers=0)

    ingest_lines(db.engine, get_job("uniflow-prod"), enumerate(lines, start=1), source="big", via="cli",
                 options=options, progress=lambda done: seen.append((done, gc.get_threshold()[0])))

    assert seen[0] == (settings.ingest.batch_size, before[0]), "a small input keeps the collector as it is"
    assert any(done < len(lines) and threshold == LARGE_INPUT_GC_THRESHOLD for done, threshold in seen)
    assert gc.get_threshold() == before


def test_a_push_never_changes_the_garbage_collector(sqlite_app, settings):  # type: ignore[no-untyped-def]
    before = gc.get_threshold()
    seen: list[int] = []
    lines = list(simulate_lines(SimConfig(users=1000, cycles=10, seed=3, job="uniflow-prod", change_rate=0.2))[0])
    options = replace(options_from(settings.ingest, cycles=settings.cycles), workers=0)

    ingest_lines(db.engine, get_job("uniflow-prod"), enumerate(lines, start=1), source="push", via="push",
                 options=options, progress=lambda done: seen.append(gc.get_threshold()[0]))

    assert set(seen) == {before[0]}
