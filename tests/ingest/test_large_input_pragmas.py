"""A large input loads with a bigger SQLite page cache and WAL checkpoint threshold (ingest/scim.py),
set on the loading connection only while it loads: afterwards the pooled connection has its own
values again, so the pages the web serves do not keep the ingest's memory."""
from __future__ import annotations

from dataclasses import replace

import pytest

from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.demo.simulate import simulate_lines
from dashboard.demo.truth import SimConfig
from dashboard.ingest.scim import PARALLEL_AFTER_LINES, ingest_lines, options_from


def _pragmas() -> tuple[int, int]:
    with db.engine.connect() as conn:
        return (conn.exec_driver_sql("PRAGMA cache_size").scalar(),
                conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar())


def test_a_large_input_leaves_the_connection_as_it_found_it(app, settings):  # type: ignore[no-untyped-def]
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's page cache and WAL: PostgreSQL has neither setting per connection")
    before = _pragmas()
    lines = list(simulate_lines(SimConfig(users=1000, cycles=10, seed=3, job="uniflow-prod", change_rate=0.2))[0])
    assert len(lines) > PARALLEL_AFTER_LINES + 2 * settings.ingest.batch_size, "large enough to count as large"
    options = replace(options_from(settings.ingest, cycles=settings.cycles), workers=0)

    result = ingest_lines(db.engine, get_job("uniflow-prod"), enumerate(lines, start=1), source="big", via="cli",
                          options=options)

    assert result.accepted == len(lines) - result.duplicates
    assert _pragmas() == before
