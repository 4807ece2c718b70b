"""Store Entra provisioning events and job statuses, and fold the events into the analysis.

The same guarantees as the SCIM log loader (ingest/load.py): records are committed in batches,
each in one transaction with its users, cycles, signatures, rejects and the run's counters; a
bad record is a reject with its file and record number and loses nothing else; re-importing is
a no-op (the dedupe key, unique per job); a crash loses at most the batch in flight and a re-run
completes it.

Events join the job's analysis through the same folds as exchanges (entra/facts.py maps each
to an operation and an HTTP-like status): an event with Entra's `cycleId` belongs to the cycle
with that key, one without joins the inferred cycles by time. Users are matched to the SCIM
traffic's users by userName, externalId and the target's id, so a user's timeline shows both.
In the per-user summaries and a signature's sample an event is written as its id negated: a
negative "exchange id" there is an Entra event (see `evidence_ref`).
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection, Engine

from dashboard.db import insert_ignoring, sqlite_insert_returning
from dashboard.formats import codec
from dashboard.formats.dedupe import stable_hash
from dashboard.formats.entra.facts import reference_failure
from dashboard.formats.entra.jobstatus import read_job_status_file
from dashboard.formats.entra.parse import read_paths, standalone_files
from dashboard.formats.entra.records import JobStatus, ProvisioningEvent
from dashboard.formats.limits import fit
from dashboard.formats.scim.records import ParseProblem
from dashboard.formats.scim.redact import RedactionRules, redact_body
from dashboard.ingest.entra_prepare import (  # noqa: F401 - _prepare: the fuzz harness checks rows with it
    LOADER_COLUMNS,
    ROW_COLUMNS,
    EntraPreparer,
    Entry,
    Prepared,
    _cut,
    _prepare,
    describe,
    prepare_item,
    printable,
    record_problem,
    view_of,
)
from dashboard.ingest.prepare import Workers
from dashboard.ingest.resolve import UserResolver
from dashboard.ingest.scim import (
    DATABASE_DOWN,
    IngestOptions,
    IngestResult,
    LargeInputPragmas,
    _worker_count,
    fewer_collections,
    save_rejects,
    stored_dedupes,
)
from dashboard.models import Cycle, EntraEvent, EntraJobStatus, IngestRun, Job, Reject
from dashboard.times import to_us, utc_now
from dashboard.tracking.fold import BatchAnalyzer, _mark_dirty

log = logging.getLogger(__name__)
_events = EntraEvent.__table__
_cycles = Cycle.__table__
_rejects = Reject.__table__
_runs = IngestRun.__table__
_statuses = EntraJobStatus.__table__
PROBLEMS_KEPT = 1000
_COLUMNS = ROW_COLUMNS + LOADER_COLUMNS  # a stored event's columns, in the order of its values
_ROWS_PER_INSERT = (200, 50, 5, 1)  # events per INSERT statement on SQLite (each size a statement)
PARALLEL_AFTER_BYTES = 16 << 20  # files this large in all are read by a worker process (import_paths)
# The loader prepares every LOADER_SHARE-th file itself, between batches; the worker the others.
# Preparing (decode, validate, redact, pack) costs more per record than storing on SQLite, so the
# worker alone kept the loader waiting: at 100k records (bench/entra_import.py) the worker used
# 13.3 CPU s and the loader 7.9; with one file in five here, 10.2 and 10.4. Since packing got
# cheaper (codec: a primed compressor, copied) one in four is quicker: 10.08 s against 10.54 for
# the import's 100k records, mean of four interleaved runs each (three in one: 10.9 s).
LOADER_SHARE = 4
# A large import's garbage collector (ingest/scim.py fewer_collections, with freeze): the objects
# alive before it (the app, SQLAlchemy's metadata, the modules) are left out of its walks, and it
# runs after 50,000 new containers rather than 700. A batch holds tens of thousands (its records,
# their views and rows), which the default walked again and again: about a tenth of the loader's
# time. Restored after; memory is still freed by reference counting, cycles by the collector.
ENTRA_GC_THRESHOLD = 50_000
WORKER_AHEAD_BYTES = 24 << 20  # file bytes out at the worker or waiting in its answers, at most
Item = tuple[str, "ProvisioningEvent | ParseProblem"]  # (source file, record or problem)


def evidence_ref(value: int) -> tuple[str, int]:
    """("event", id) for a negated event id, ("exchange", id) otherwise."""
    return ("event", -value) if value < 0 else ("exchange", value)


def import_events(
    engine: Engine,
    job: Job,
    items: Iterable[Item],
    *,
    source: str,
    via: str,
    options: IngestOptions,
    progress: Callable[[int], None] | None = None,
) -> IngestResult:
    """Store `items` (from entra.parse.read_paths / read_events, or a Graph pull) for `job`."""
    loader = _EventLoader(engine, job, source=source, via=via, options=options)
    result = IngestResult()
    iterator = iter(items)
    job_id, not_after_us = loader.job_id, loader.not_after_us
    while batch := list(islice(iterator, max(options.batch_size, 1))):
        loader.load_batch([prepare_item(job_id, where, item, not_after_us) for where, item in batch], result)
        if progress:
            progress(result.lines)
    loader.finish()
    return result


def import_paths(
    engine: Engine,
    job: Job,
    paths: Iterable[Path | str],
    fmt: str | None,
    *,
    source: str,
    via: str,
    options: IngestOptions,
    progress: Callable[[int], None] | None = None,
    parallel_after_bytes: int = PARALLEL_AFTER_BYTES,
) -> IngestResult:
    """Store the events of files and directories (what `flask ingest` reads) for `job`.

    The same as `import_events` over `read_paths`, record for record. When the files are large
    (`parallel_after_bytes` in all) and each can be read on its own (no CSV download whose files
    join), a worker process (`ingest.workers`) reads and prepares them, a file per task, while
    this process writes the batch before; memory stays bounded (ingest/prepare.py `Workers`).
    """
    paths = list(paths)
    files = standalone_files(paths)
    workers = _worker_count(options) if files else 0
    if not workers or sum(_size(path) for path in files) < parallel_after_bytes:  # type: ignore[union-attr]
        items = ((str(where), item) for where, item in read_paths(paths, fmt, rules=options.rules))
        return import_events(engine, job, items, source=source, via=via, options=options, progress=progress)
    loader = _EventLoader(engine, job, source=source, via=via, options=options)
    loader.large = True
    preparer = EntraPreparer(loader.job_id, options.rules, fmt, loader.not_after_us, pause_gc=True)
    result = IngestResult()
    size = max(options.batch_size, 1)
    tasks = ((number, path.read_bytes(), str(path)) for number, path in enumerate(files)  # type: ignore[union-attr]
             if number % LOADER_SHARE != LOADER_SHARE - 1)
    try:
        with fewer_collections(ENTRA_GC_THRESHOLD, freeze=True):
            try:
                pool = Workers(preparer, workers, ahead_lines=1, ahead_bytes=WORKER_AHEAD_BYTES)
            except OSError as exc:  # no interpreter to start (embedded Python): carry on here
                log.warning("entra import: could not start a worker process (%s); reading in-process", exc)
                entries: Iterator[Entry] = (entry for task in _tasks(files) for entry in preparer.prepare([task])[0])
                pool = None
            with pool or nullcontext():
                if pool is not None:
                    entries = _shared(files, preparer, pool.prepare(tasks))  # type: ignore[arg-type]
                while batch := list(islice(entries, size)):
                    loader.load_batch(batch, result)
                    if progress:
                        progress(result.lines)
            loader.finish()
    finally:
        loader.restore()
    return result


def _tasks(files: list[Path]) -> Iterator[tuple[int, bytes, str]]:
    return ((number, path.read_bytes(), str(path)) for number, path in enumerate(files))


def _shared(files: list[Path], preparer: EntraPreparer, answers: Iterator[list[Entry]]) -> Iterator[Entry]:
    """The entries of `files` in order: every LOADER_SHARE-th file prepared here, the others'
    answers (`answers`, the worker's, in their order) taken as they come."""
    for number, task in enumerate(_tasks(files)):
        if number % LOADER_SHARE == LOADER_SHARE - 1:
            yield from preparer.prepare([task])[0]
        else:
            yield from next(answers)
    for _rest in answers:  # none: the worker had one task per file not prepared here
        raise AssertionError("the worker answered more files than it was given")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class _EventLoader:
    def __init__(self, engine: Engine, job: Job, *, source: str, via: str, options: IngestOptions) -> None:
        self.engine = engine
        self.job_id = job.id
        self.source = fit(source, 500)
        self.options = options
        tolerance = options.future_tolerance_us
        self.not_after_us = None if tolerance is None else to_us(utc_now()) + tolerance  # a clock ahead: a reject
        self.resolver = UserResolver(job.id, options.gap_us, alive_ids=False)  # (no gone ids: see UserResolver)
        self.analyzer = BatchAnalyzer(options.gap_us)
        self.dialect = engine.dialect.name
        self._sqlite = self.dialect == "sqlite"
        self.large = False  # a large input: SQLite's page cache and WAL threshold as ingest/scim.py sets them
        self.pragmas = LargeInputPragmas()  # a large import's SQLite settings (ingest/scim.py)
        with engine.begin() as conn:
            self.run_id = conn.execute(
                insert(_runs).values(job_id=job.id, source=self.source, via=via[:10], started_at=utc_now())
            ).inserted_primary_key[0]

    def load_batch(self, batch: list[Entry], result: IngestResult) -> None:
        """Store one batch (entries of `prepare_item`) in one transaction. When anything in it fails
        (a record the database refuses, a constraint...), it is rolled back and its records are
        stored one by one, each in its own transaction: those that fail again are rejects naming
        the record and the error."""
        problems: list[tuple[str, ParseProblem]] = []
        prepared: dict[int, Prepared] = {}  # dedupe key -> the record ready to store
        duplicates = 0
        for entry in batch:
            if entry.__class__ is not Prepared:
                problems.append(entry)  # type: ignore[arg-type]
                continue
            key = entry.dedupe  # type: ignore[union-attr]
            if key in prepared:
                duplicates += 1
            prepared[key] = entry  # type: ignore[assignment]
        before = duplicates
        try:
            with self.engine.begin() as conn:
                accepted, stored = self._store(conn, list(prepared.values()))
                duplicates = before + stored
                self._account(conn, len(batch), accepted, duplicates, problems)
        except DATABASE_DOWN:  # the database itself: nothing wrong with the records; a re-run completes
            self._forget()
            raise
        except Exception:  # noqa: BLE001 - rolled back; now record by record, so one record loses nothing else
            self._forget()
            accepted, duplicates = 0, before
            for entry in prepared.values():
                try:
                    with self.engine.begin() as conn:
                        one_accepted, one_stored = self._store(conn, [entry])
                except DATABASE_DOWN:
                    self._forget()
                    raise
                except Exception as exc:  # noqa: BLE001 - this record alone fails: a reject naming it
                    self._forget()
                    problems.append((entry.where, record_problem(entry.who, "cannot be stored", exc)))
                    continue
                accepted += one_accepted
                duplicates += one_stored
            with self.engine.begin() as conn:
                self._account(conn, len(batch), accepted, duplicates, problems)
        result.lines += len(batch)
        result.accepted += accepted
        result.duplicates += duplicates
        result.rejected += len(problems)
        room = PROBLEMS_KEPT - len(result.problems)
        if room > 0:
            result.problems.extend(
                ParseProblem(problem.line_no, f"{where}: {problem.reason}" if where else problem.reason, problem.raw)
                for where, problem in problems[:room]
            )

    def _store(self, conn: Connection, entries: list[Prepared]) -> tuple[int, int]:
        """Store the records not stored yet, with their users and their analysis; (accepted,
        already stored). The one place where a batch's events are inserted."""
        if self.large and self._sqlite:
            self.pragmas.apply(conn)
        stored = self._existing(conn, [entry.dedupe for entry in entries])
        fresh = [entry for entry in entries if entry.dedupe not in stored] if stored else entries
        if not fresh:
            return 0, len(stored)
        self._resolve_users(conn, fresh)
        views = [entry.view for entry in fresh]
        self._assign(conn, views)
        ids = dict(self._insert_events(conn, [
            entry.row + (view["user_id"], view["cycle_id"], view["sig_id"]) for entry, view in zip(fresh, views)]))
        inserted = []
        for entry in fresh:
            event_id = ids.get(entry.dedupe)
            if event_id is not None:
                entry.view["id"] = -event_id
                inserted.append(entry.view)
        self._fold(conn, inserted)
        self.resolver.finish_batch(conn)  # merges and aliases, now that the events are in
        # (a row the insert ignored was stored meanwhile by a concurrent import: a duplicate)
        return len(inserted), len(stored) + len(fresh) - len(inserted)

    def _insert_events(self, conn: Connection, rows: list[tuple]) -> Iterable[tuple[int, int]]:
        """Insert the rows (values of _COLUMNS), skipping any key stored already; (dedupe, id) of each new one."""
        names = _COLUMNS
        if self._sqlite:
            return sqlite_insert_returning(conn, _events.name, names, rows, "dedupe, id", _ROWS_PER_INSERT)
        return conn.execute(self._insert_ignoring(_events).returning(_events.c.dedupe, _events.c.id),
                            [dict(zip(names, row)) for row in rows]).all()  # (a Result has keys(): dict() misreads it)

    def restore(self) -> None:
        self.pragmas.restore(self.engine)

    def _account(self, conn: Connection, lines: int, accepted: int, duplicates: int,
                 problems: list[tuple[str, ParseProblem]]) -> None:
        """The batch's rejects and the run's counters, in the transaction that ends the batch."""
        self._save_problems(conn, problems)
        conn.execute(update(_runs).where(_runs.c.id == self.run_id).values(
            lines=_runs.c.lines + lines, accepted=_runs.c.accepted + accepted,
            duplicates=_runs.c.duplicates + duplicates, rejected=_runs.c.rejected + len(problems),
        ))

    def _forget(self) -> None:
        """After a rollback: the users cached from that transaction may not exist."""
        self.resolver.forget()

    def _existing(self, conn: Connection, keys: list[int]) -> set[int]:
        return stored_dedupes(conn, _events, self.job_id, keys)

    def _resolve_users(self, conn: Connection, entries: list[Prepared]) -> None:
        """The user of each event: the SCIM traffic's user with its userName, externalId or target id."""
        self.resolver.prefetch_names(conn, (entry.names for entry in entries if entry.names))
        for entry in entries:
            names = entry.names
            entry.view["user_id"] = self.resolver.resolve_names(conn, *names, entry.view["ts_us"]) if names else None

    def _assign(self, conn: Connection, views: list[dict]) -> None:
        assign_views(conn, self.analyzer, self.job_id, views)

    def _fold(self, conn: Connection, views: list[dict]) -> None:
        fold_views(conn, self.analyzer, self.job_id, views)

    def _save_problems(self, conn: Connection, problems: list[tuple[str, ParseProblem]]) -> None:
        save_rejects(conn, self._insert_ignoring(_rejects), self.job_id,
                     ((where or self.source, _storable(problem)) for where, problem in problems), self.options.rules)

    def _insert_ignoring(self, table):  # type: ignore[no-untyped-def]
        return insert_ignoring(self.dialect, table)

    def finish(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(_runs).where(_runs.c.id == self.run_id).values(finished_at=utc_now()))


def _storable(problem: ParseProblem) -> ParseProblem:
    """A reject that no database refuses (PostgreSQL takes no NUL in text)."""
    reason, raw = printable(problem.reason), printable(problem.raw)
    if reason is problem.reason and raw is problem.raw:
        return problem
    return ParseProblem(problem.line_no, reason, raw)


def _insert_ignoring_for(engine: Engine):  # type: ignore[no-untyped-def]
    return lambda table: insert_ignoring(engine.dialect.name, table)


def assign_views(conn: Connection, analyzer: BatchAnalyzer, job_id: int, views: list[dict]) -> None:
    """Give each event's view its cycle (Entra's cycleId, else inferred by time) and signature."""
    for view in views:
        view["cycle_id"] = None
        view["sig_id"] = None
    analyzer.place(conn, job_id, views, adopt=True)


def refold_events(engine: Engine, job_id: int, *, gap_us: int, batch: int = 5000) -> int:
    """Fold a job's stored events into its (reset) analysis again, for `flask recompute`."""
    analyzer = BatchAnalyzer(gap_us)
    e = _events.c
    last = (-1, -1)
    count = 0
    while True:
        with engine.begin() as conn:
            rows = conn.execute(
                select(e.id, e.activity_us, e.cycle_key, e.user_id, e.operation, e.status, e.failed, e.error_code,
                       e.reason, e.duration_ms, e.blob)
                .where(e.job_id == job_id, (e.activity_us > last[0]) | ((e.activity_us == last[0]) & (e.id > last[1])))
                .order_by(e.activity_us, e.id).limit(batch)
            ).all()
            if not rows:
                return count
            views = []
            for row in rows:
                steps = codec.unpack(row.blob).get("steps") or [] if row.failed else []
                view = view_of(job_id, row.activity_us, row.cycle_key, row.operation, row.status, row.failed,
                             reference=row.user_id is None or (row.failed and reference_failure(
                                 row.error_code, [(s.get("type"), s.get("status")) for s in steps])),
                             error_code=row.error_code, reason=row.reason, duration_ms=row.duration_ms)
                views.append({**view, "id": -row.id, "user_id": row.user_id})
            assign_views(conn, analyzer, job_id, views)
            conn.execute(update(_events).where(_events.c.id == bindparam("eid")).values(
                cycle_id=bindparam("cid"), sig_id=bindparam("sid")),
                [{"eid": -v["id"], "cid": v["cycle_id"], "sid": v["sig_id"]} for v in views])
            fold_views(conn, analyzer, job_id, views)
            last = (rows[-1].activity_us, rows[-1].id)
            count += len(rows)


def fold_views(conn: Connection, analyzer: BatchAnalyzer, job_id: int, views: list[dict]) -> None:
    """Fold stored events (their analysis views, with `id` = -event id) into cycles and users."""
    if not views:
        return
    deltas: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for view in views:
        d = deltas[view["cycle_id"]]
        d["events"] += 1
        d["failed_events"] += 1 if view["failed"] else 0
        d["staged_deletes"] += 1 if view["staged_delete"] else 0
        d["rejected_credentials"] += 1 if view["status"] in (401, 403) else 0
        d["reference_failures"] += 1 if view["failed"] and view["reference"] else 0
    for cycle_id, d in deltas.items():
        conn.execute(update(_cycles).where(_cycles.c.id == cycle_id).values(
            **{name: getattr(_cycles.c, name) + value for name, value in d.items()}))
    # Users: reference failures and group events stay out of the per-user outcomes (as the
    # exchanges' group updates do); a held delete is not a write (the user is still there).
    analyzer.fold_outcomes(conn, views, user_rows=[
        v for v in views if v["user_id"] is not None and not v["reference"] and not v["staged_delete"]])
    _mark_dirty(conn, job_id, min(v["ts_us"] for v in views))



# -- job status ---------------------------------------------------------------------------------


@dataclass
class StatusResult:
    stored: bool
    status: JobStatus
    row_id: int | None = None
    notes: list[str] = field(default_factory=list)


def import_job_status(
    engine: Engine, job: Job, data: dict[str, Any], status: JobStatus, *, source: str, rules: RedactionRules,
    now: datetime,
) -> StatusResult:
    """Store one synchronizationJob document (redacted); the same document twice is one row."""
    redacted = redact_body(data, rules)
    text = orjson.dumps(redacted, option=orjson.OPT_SORT_KEYS).decode()
    observed = _observed_at(status) or now
    digest = stable_hash(text.encode())
    values = {
        "job_id": job.id, "observed_us": to_us(observed), "digest": digest, "entra_job_id": _cut(status.job_id, 300),
        "code": _cut(status.code, 40), "quarantine_reason": _cut(status.quarantine.reason if status.quarantine else None, 100),
        "source": fit(source, 500), "data": text, "created_at": now,
    }
    with engine.begin() as conn:
        statement = insert_ignoring(engine.dialect.name, _statuses)
        inserted = conn.execute(statement.values(**values).returning(_statuses.c.id)).first()
    return StatusResult(stored=inserted is not None, status=status, row_id=inserted[0] if inserted else None)


@dataclass
class StatusFileResult:
    """A job status file's import: its counts, the statuses stored, and its rejects (also stored)."""

    result: IngestResult = field(default_factory=IngestResult)
    statuses: list[StatusResult] = field(default_factory=list)
    problems: list[ParseProblem] = field(default_factory=list)


def import_job_status_file(
    engine: Engine, job: Job, data: bytes, *, source: str, rules: RedactionRules, now: datetime,
) -> StatusFileResult:
    """Store the synchronizationJob documents of a file (`--format entra-job-status`). What is not
    one (not JSON, a page of provisioning events...) or cannot be stored is a reject, listed by
    `flask rejects` under `source`, and never touches the stored status."""
    out = StatusFileResult()
    for item in read_job_status_file(data):
        out.result.lines += 1
        if isinstance(item, ParseProblem):
            out.problems.append(item)
            continue
        try:
            stored = import_job_status(engine, job, item.data, item.status, source=source, rules=rules, now=now)
        except Exception as exc:  # noqa: BLE001 - a document the database refuses is a reject, never a traceback
            out.problems.append(ParseProblem(item.number, f"job {item.number}: cannot be stored ({describe(exc)})",
                                             ""))
            continue
        out.statuses.append(stored)
        out.result.accepted += 1 if stored.stored else 0
        out.result.duplicates += 0 if stored.stored else 1
    if out.problems:
        out.result.rejected = len(out.problems)
        out.result.problems = list(out.problems)
        insert_ignoring = _insert_ignoring_for(engine)
        with engine.begin() as conn:
            save_rejects(conn, insert_ignoring(_rejects), job.id, ((source, _storable(p)) for p in out.problems), rules)
    return out


def _observed_at(status: JobStatus) -> datetime | None:
    """When Entra observed this status: its progress observation, else the end of its last run."""
    times = [p.observed_at for p in status.progress if p.observed_at]
    if times:
        return max(times)
    execution = status.last_execution
    if execution is not None:
        return execution.ended_at or execution.began_at
    return None
