"""Preparing lines in worker processes: the same items and rows as in-process, errors surface."""
from __future__ import annotations

import dataclasses
import os
import signal
import threading

import orjson
import pytest
from sqlalchemy import select, text

from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.formats.scim.parse import parse_line
from dashboard.formats.scim.redact import DEFAULT_RULES, redact
from dashboard.ingest import prepare
from dashboard.ingest import scim as load
from dashboard.ingest.prepare import Preparer, WorkerError, Workers
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.models import Exchange, Reject, ScimUser
from dashboard.settings import IngestSettings

URN = "urn:ietf:params:scim:schemas:extension:uniFLOWOnline:2.0:User"


def line(n: int, **fields) -> bytes:  # type: ignore[no-untyped-def]
    base = {"ts": f"2026-11-28T09:{n // 60 % 60:02d}:{n % 60:02d}.000Z", "method": "GET", "path": "/scim/v2/Users",
            "status": 200, "request_id": f"r{n}", "query": f'filter=userName eq "u{n % 7}@x"'}
    base.update(fields)
    return orjson.dumps(base)


def mixed(count: int) -> list[tuple[int, bytes]]:
    raw = []
    for n in range(count):
        kind = n % 9
        if kind == 0:
            raw.append(line(n, method="POST", status=201, query=None, request_body={"userName": f"u{n % 7}@x", URN: {"pin": "1"}},
                            response_body={"id": f"id-{n % 7}", "userName": f"u{n % 7}@x"}))
        elif kind == 1:
            raw.append(b"not json")
        elif kind == 2:
            raw.append(line(n, job="nope"))
        elif kind == 3:
            raw.append(b"")
        elif kind == 4:
            raw.append(line(n - 4))  # a duplicate of an earlier line
        elif kind == 5:
            raw.append(line(n, method="PATCH", path=f"/scim/v2/Users/id-{n % 7}", query=None, status=500,
                            request_body={"Operations": [{"op": "Replace", "path": "active", "value": "False"}]}))
        else:
            raw.append(line(n, request_id=None))
    return list(enumerate(raw, start=1))


def preparer() -> Preparer:
    return Preparer(rules=DEFAULT_RULES, guid_lookups_are_tests=True, job_id=1, job_name="uniflow-prod",
                    jobs={"uniflow-prod": 1, "other": 2})


def test_workers_prepare_the_same_items_in_order(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(prepare, "CHUNK_LINES", 7)  # many chunks, spread over both workers
    lines = mixed(200)

    with Workers(preparer(), 2, ahead_lines=20) as pool:
        got = list(pool.prepare(iter(lines)))

    assert got == preparer().prepare(lines)
    assert len(got) == len(lines)


def test_the_loader_prepares_chunks_itself_while_the_worker_is_behind(monkeypatch):  # type: ignore[no-untyped-def]
    """A stopped worker cannot answer: the loader prepares the chunks after the one it waits for
    itself (stealing), keeps them until their turn, and the items still come in the lines' order."""
    monkeypatch.setattr(prepare, "CHUNK_LINES", 5)
    lines = mixed(120)
    with Workers(preparer(), 1, ahead_lines=10, steal=True) as pool:
        os.kill(pool.workers[0].proc.pid, signal.SIGSTOP)
        resume = threading.Timer(1.0, os.kill, (pool.workers[0].proc.pid, signal.SIGCONT))
        resume.start()
        try:
            got = list(pool.prepare(iter(lines)))
        finally:
            resume.join()
        stolen = pool.stolen

    assert got == preparer().prepare(lines)
    # while the worker was stopped: two chunks (ten lines) were out at it, and as many were
    # prepared here, the most that may wait
    assert stolen >= 2


def test_without_stealing_the_loader_waits_for_the_worker(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(prepare, "CHUNK_LINES", 5)
    lines = mixed(60)
    with Workers(preparer(), 1, ahead_lines=10) as pool:
        got = list(pool.prepare(iter(lines)))
        assert pool.stolen == 0
    assert got == preparer().prepare(lines)


def test_a_workers_error_is_raised_by_the_loader():  # type: ignore[no-untyped-def]
    bad = (2, b"{}", "a third member")  # unpacking it fails in the worker
    with Workers(preparer(), 1, ahead_lines=10) as pool, pytest.raises(ValueError, match="too many values"):
        list(pool.prepare(iter([(1, line(1)), bad])))  # type: ignore[list-item]


def test_a_worker_that_dies_is_reported():  # type: ignore[no-untyped-def]
    with Workers(preparer(), 1, ahead_lines=10) as pool:
        pool.workers[0].proc.kill()
        with pytest.raises(WorkerError):
            list(pool.prepare(iter(mixed(20))))


def _ingest(lines: list[tuple[int, bytes]], *, workers: int, batch_size: int = 40) -> load.IngestResult:
    options = dataclasses.replace(options_from(IngestSettings(batch_size=batch_size)), workers=workers)
    return ingest_lines(db.engine, get_job("uniflow-prod"), lines, source="t.jsonl", via="cli", options=options)


def _rows() -> list[tuple]:
    exchanges = [
        (e.id, e.dedupe, e.ts_us, e.operation, e.status, e.failed, e.user_id, e.request_id, e.blob)
        for e in db.session.scalars(select(Exchange).order_by(Exchange.id))
    ]
    users = [(u.id, u.user_name, u.external_id, u.scim_id) for u in db.session.scalars(select(ScimUser).order_by(ScimUser.id))]
    rejects = [(r.line_no, r.reason, r.raw) for r in db.session.scalars(select(Reject).order_by(Reject.line_no))]
    return [exchanges, users, rejects]


def _clear() -> None:
    """Empty every table (ids start again from 1) and add the configured job again."""
    from flask import current_app

    from dashboard.admin.jobs import sync_jobs

    db.session.remove()
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            names = ", ".join(t.name for t in db.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(table.delete())
    sync_jobs(current_app.extensions["dashboard"].jobs)


def test_an_ingest_through_workers_stores_what_one_without_them_does(app, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(load, "PARALLEL_AFTER_LINES", 80)
    monkeypatch.setattr(load, "_worker_count", lambda options: options.workers)
    monkeypatch.setattr(prepare, "CHUNK_LINES", 13)
    lines = mixed(600)

    alone = _ingest(lines, workers=0)
    expected = _rows()
    _clear()
    parallel = _ingest(lines, workers=2)

    assert (parallel.lines, parallel.accepted, parallel.duplicates, parallel.rejected) == (
        alone.lines, alone.accepted, alone.duplicates, alone.rejected)
    assert parallel.problems == alone.problems
    got = _rows()
    for a, b in zip(got, expected):
        for i, (x, y) in enumerate(zip(a, b)):
            assert x == y, (i, x, y)
    assert got == expected


def test_an_odd_response_schemas_is_stored_with_and_without_workers(app, monkeypatch):  # type: ignore[no-untyped-def]
    # A non-list "schemas" once made classify raise and stopped the whole file; it is an exchange like any other.
    monkeypatch.setattr(load, "PARALLEL_AFTER_LINES", 4)
    monkeypatch.setattr(load, "_worker_count", lambda options: options.workers)
    odd = line(9999, path="/scim/v2/Users/x", query=None, response_body={"schemas": 5})
    for workers in (0, 1):
        _clear()
        result = _ingest(list(enumerate([line(n) for n in range(10)] + [odd], start=1)), workers=workers, batch_size=2)
        assert (result.accepted, result.rejected) == (11, 0)
        again = _ingest(list(enumerate([line(n) for n in range(10)] + [odd], start=1)), workers=workers, batch_size=2)
        assert again.duplicates == 11


def test_a_name_joined_by_a_removed_filter_is_redacted_with_the_raw_line_as_hint():  # type: ignore[no-untyped-def]
    raw = line(1, method="POST", query=None, request_body={"pi[x]n": "1234", "card[0]Number": "12345678"})
    clean = redact(parse_line(1, raw), DEFAULT_RULES, hint=raw)  # type: ignore[arg-type]

    assert clean.request_body == {"pi[x]n": "[REDACTED]", "card[0]Number": "****5678"}
