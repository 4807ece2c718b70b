"""The Entra import's two ways of reading: in this process, or in a worker process (`import_paths`
on large inputs) while the loader writes. Neither the way, nor the batch size, nor the order of the
records changes what is stored: the events, cycles, per-user outcomes and user states are the same.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select

from dashboard.admin.jobs import get_job, sync_jobs
from dashboard.db import db
from dashboard.demo.entra_pages import generate_records, write_record_pages
from dashboard.formats import codec
from dashboard.formats.entra.parse import read_paths
from dashboard.ingest.entra import import_events, import_paths
from dashboard.ingest.entra_prepare import ROW_COLUMNS, EntraPreparer, Prepared
from dashboard.ingest.prepare import Workers
from dashboard.ingest.scim import options_from
from dashboard.models import Cycle, EntraEvent, ScimUser, UserCycle
from dashboard.settings import JobSettings

RECORDS = 900


def _pages(directory: Path, *, reverse: bool = False) -> list[Path]:
    records = list(generate_records(RECORDS, seed=11))
    return write_record_pages(directory, reversed(records) if reverse else records, RECORDS, page_size=150)


def _snapshot(job_id: int) -> dict[str, Any]:
    """What a job's import stored, by natural keys (row ids differ from job to job)."""
    db.session.rollback()
    cycles = {row.id: row for row in db.session.scalars(select(Cycle).where(Cycle.job_id == job_id))}
    users = {row.id: row for row in db.session.scalars(select(ScimUser).where(ScimUser.job_id == job_id))}
    events = db.session.scalars(select(EntraEvent).where(EntraEvent.job_id == job_id)).all()
    dedupe_of = {-event.id: event.dedupe for event in events}
    ignore = {"id", "job_id", "_sa_instance_state"}

    def plain(row: Any, **named: Any) -> tuple:
        values = {k: v for k, v in vars(row).items() if k not in ignore and not k.endswith("_id")}
        return tuple(sorted({**values, **named}.items(), key=lambda kv: kv[0]))

    def who(user_id: int | None) -> str | None:
        return users[user_id].user_name if user_id is not None else None

    def summary(text: str) -> list:
        data = orjson.loads(text)
        return [[*mark[:1], dedupe_of.get(mark[1], mark[1]), *mark[2:]] if isinstance(mark, list) else mark
                for mark in data]

    # A user's fold (scim_user.fold) is a cache of their state: forgotten when a cycle's start moves
    # back, which depends on the order records arrive in; tests/tracking/test_user_fold.py checks it.
    def details(blob: bytes) -> str:  # the record's number in its file differs with the order of the file
        return repr(sorted((k, v) for k, v in codec.unpack(blob).items() if k != "record_no"))

    outcomes = db.session.scalars(select(UserCycle).where(UserCycle.cycle_id.in_(list(cycles)))).all()
    return {
        "events": sorted(plain(e, user=who(e.user_id), cycle=cycles[e.cycle_id].key if e.cycle_id else None,
                               blob=details(e.blob)) for e in events),
        "cycles": sorted(plain(c) for c in cycles.values()),
        "users": sorted((plain(u, last_cycle=cycles[u.last_cycle_id].key if u.last_cycle_id else None,
                               fold=None) for u in users.values()), key=repr),  # fold: a cache (below)
        "outcomes": sorted((cycles[o.cycle_id].key, who(o.user_id), o.operation, o.outcome, repr(summary(o.summary)))
                           for o in outcomes),
    }


def test_the_worker_the_batch_size_and_the_order_change_nothing(app, settings, tmp_path):  # type: ignore[no-untyped-def]
    sync_jobs([*settings.jobs, JobSettings(name="worker"), JobSettings(name="reversed")])
    forward = tmp_path / "forward"
    _pages(forward)
    _pages(tmp_path / "backward", reverse=True)
    options = options_from(settings.ingest, cycles=settings.cycles)

    # in this process, batches of 50 (the test settings), file by file
    items = ((str(where), item) for where, item in read_paths([forward], "entra-graph", rules=options.rules))
    first = import_events(db.engine, get_job("uniflow-prod"), items, source="t", via="cli", options=options)
    # through import_paths with a worker whenever this machine has a processor to spare, batches of 97
    second = import_paths(db.engine, get_job("worker"), [forward], "entra-graph", source="t", via="cli",
                          options=replace(options, batch_size=97, workers=1), parallel_after_bytes=0)
    # the records in the opposite order, batches of 333
    third = import_paths(db.engine, get_job("reversed"), [tmp_path / "backward"], None, source="t", via="cli",
                         options=replace(options, batch_size=333), parallel_after_bytes=1 << 40)
    assert first.accepted == second.accepted == third.accepted == RECORDS
    assert first.rejected == second.rejected == third.rejected == 0
    expected = _snapshot(get_job("uniflow-prod").id)
    assert expected["events"] and expected["outcomes"]
    assert _snapshot(get_job("worker").id) == expected
    assert _snapshot(get_job("reversed").id) == expected

    again = import_paths(db.engine, get_job("worker"), [forward], "entra-graph", source="t", via="cli",
                         options=replace(options, workers=1), parallel_after_bytes=0)
    assert (again.accepted, again.duplicates, again.rejected) == (0, RECORDS, 0)  # re-importing adds nothing
    assert _snapshot(get_job("worker").id) == expected


def test_a_worker_process_prepares_exactly_what_this_process_does(app, settings, tmp_path):  # type: ignore[no-untyped-def]
    pages = _pages(tmp_path / "pages")
    damaged = tmp_path / "damaged.json"
    damaged.write_bytes(b'{"value": [{"id": "x1", "activityDateTime": "yesterday", "provisioningStatusInfo": '
                        b'{"status": "success"}}, 17, {"id": "x2", "activityDateTime": "2026-03-01T05:03:46Z", '
                        b'"provisioningStatusInfo": {"status": "failure", "reason": "{\\"pin\\":\\"4321\\"}"}}]}')
    options = options_from(settings.ingest, cycles=settings.cycles)
    preparer = EntraPreparer(get_job("uniflow-prod").id, options.rules, "entra-graph", None)
    tasks = [(number, path.read_bytes(), str(path)) for number, path in enumerate([*pages, damaged])]
    here = preparer.prepare(tasks)
    with Workers(preparer, 1, ahead_lines=1, ahead_bytes=1 << 20) as pool:  # a real second process
        there = list(pool.prepare(iter(tasks)))
    assert there == here
    entries = [entry for file_entries in here for entry in file_entries]
    assert sum(entry.__class__ is Prepared for entry in entries) == RECORDS + 1
    problems = [entry[1] for entry in entries if entry.__class__ is not Prepared]
    assert [problem.line_no for problem in problems] == [1, 2]  # each named by its record number
    rows = [dict(zip(ROW_COLUMNS, entry.row, strict=True)) for entry in entries if entry.__class__ is Prepared]
    x2 = next(row for row in rows if row["entra_id"] == "x2")
    assert "4321" not in x2["reason"] and "[REDACTED]" in x2["reason"]  # redacted before it leaves the worker
