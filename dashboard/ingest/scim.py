"""Load a source of log lines into the database: parse, redact, classify, dedupe, save.

One code path serves the CLI, the HTTP push and the demo loader. Lines are committed in
batches, each batch in one transaction together with the users it revealed, its rejects and the
run's counters: a crash loses at most the batch in flight, and re-running the same source
completes it (duplicates are recognised by their dedupe key and skipped).
"""
from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from itertools import islice
from operator import itemgetter

import orjson
from sqlalchemy import Table, exc, func, insert, select, text, update
from sqlalchemy.engine import Connection, Engine

from dashboard.analysis.identity import says_gone
from dashboard.db import insert_ignoring, sqlite_insert_returning
from dashboard.formats import codec
from dashboard.formats.limits import fit
from dashboard.formats.scim.classify import classify
from dashboard.formats.scim.records import ParseProblem
from dashboard.formats.scim.redact import (
    RedactionRules,
    redact_text,
)
from dashboard.formats.scim.redact import redact_raw as _redact_raw
from dashboard.ingest.prepare import (
    DEFERRED_LEN,
    P_BLOB,
    P_CYCLE_KEY,
    P_DEDUPE,
    P_DURATION_MS,
    P_ERROR_DETAIL,
    P_EXTERNAL_ID,
    P_FAILED,
    P_FOUND,
    P_JOB_ID,
    P_LINE_NO,
    P_METHOD,
    P_OPERATION,
    P_REQUEST_ID,
    P_SCIM_ID,
    P_SCIM_TYPE,
    P_STATUS,
    P_TS_US,
    P_USER_NAME,
    Preparer,
    Workers,
    blob_of,
    dedupe_key,
    stable_hash,
)
from dashboard.ingest.resolve import UserResolver, pad
from dashboard.models import Exchange as ExchangeRow
from dashboard.models import IngestRun, Job, Reject, ScimUser
from dashboard.settings import CycleSettings, IngestSettings, Settings
from dashboard.times import to_us, utc_now
from dashboard.tracking.fold import BatchAnalyzer

log = logging.getLogger(__name__)
_exchanges = ExchangeRow.__table__
_rejects = Reject.__table__
_runs = IngestRun.__table__
_people = ScimUser.__table__
# PostgreSQL advisory lock of the SCIM ingest's batches (any job): see _Loader._exclusive.
INGEST_LOCK = 0x5C1A_0001
PROBLEMS_KEPT = 1000  # problems returned to the caller; all of them are stored
# Worker processes prepare the lines of an input only once it has proved this long: below, their
# start-up would cost more than they save. An HTTP push never uses them.
PARALLEL_AFTER_LINES = 4_000
_ROWS_PER_INSERT = (500, 50, 5, 1)  # rows per INSERT statement on SQLite (each size a statement)
# SQLite page cache for a large input (KiB; SQLite's default is 2 MB): each insert updates a
# dozen indexes, some at random places (the dedupe key is a hash; the user/time index), and finds
# more of their pages in a larger cache. Set on the connection while such an input is loaded,
# then restored. With the resolver's CACHE_LIMIT and the workers' read-ahead it bounds an
# ingest's memory whatever the input's size (docs/ingest.md, "Memory"): with 32 MiB the process
# group peaked at about 210 MB at 1M lines (with the resolver's cache at 20,000 people; 10,000 now).
LARGE_INPUT_CACHE_KIB = 16_384
# ... and its WAL checkpoint threshold (pages; SQLite's default is 1,000, about one batch): an index
# page that every batch changes is copied into the database once per 16,000 pages of WAL, not once
# per batch. The WAL file grows to about 64 MB meanwhile; readers are not blocked.
LARGE_INPUT_CHECKPOINT_PAGES = 16_000
# Python's cyclic garbage collector, while a large input loads: a collection of the youngest
# generation after this many allocations instead of 700. An ingest allocates a few tuples and
# dicts per line, nearly all freed by reference counting; at 700 the collector ran 1,400 times per
# 100,000 lines, and its older generations walked every object of the app each time: 16% of the
# loader's CPU (bench/ingest.py). Restored when the input is done; an HTTP push never changes it.
LARGE_INPUT_GC_THRESHOLD = 100_000
# The database itself failing (gone, locked, timed out): nothing is wrong with the lines, so a
# batch is not retried line by line and the ingest stops; a re-run completes it.
DATABASE_DOWN = (exc.OperationalError, exc.InterfaceError, exc.TimeoutError)


@dataclass
class IngestResult:
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    problems: list[ParseProblem] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.rejected else 0


@dataclass(frozen=True)
class IngestOptions:
    rules: RedactionRules
    batch_size: int = 2000
    guid_lookups_are_tests: bool = True
    only_job: bool = False  # HTTP push: a token is for one job, lines naming another are rejected
    gap_us: int = 15 * 60 * 1_000_000  # quiet time that ends an inferred cycle
    workers: int = 0  # processes that prepare the lines of a large input (0: all in this process)
    future_tolerance_us: int | None = 60 * 60 * 1_000_000  # lines dated later than now + this are rejected


def options_for(settings: Settings, *, only_job: bool = False) -> IngestOptions:
    """Ingest options from the running app's settings (`[ingest]` and `[cycles]`)."""
    return options_from(settings.ingest, only_job=only_job, cycles=settings.cycles)


def options_from(config: IngestSettings, *, only_job: bool = False, cycles: CycleSettings | None = None) -> IngestOptions:
    """Ingest options from the `[ingest]` (and `[cycles]`) settings."""
    return IngestOptions(
        workers=config.workers,
        gap_us=(cycles or CycleSettings()).gap_minutes * 60 * 1_000_000,
        rules=RedactionRules.build(
            attributes=list(config.redact_attributes),
            masked=list(config.mask_attributes),
            headers=list(config.redact_headers),
            mask_keep=config.mask_keep,
        ),
        batch_size=config.batch_size,
        guid_lookups_are_tests=config.guid_lookups_are_connection_tests,
        only_job=only_job,
        future_tolerance_us=config.future_tolerance_minutes * 60 * 1_000_000,
    )


Progress = Callable[[int], None]  # called with the number of lines done so far


def ingest_lines(
    engine: Engine,
    job: Job,
    lines: Iterable[tuple[int, bytes]],
    *,
    source: str,
    via: str,
    options: IngestOptions,
    progress: Progress | None = None,
) -> IngestResult:
    """Ingest numbered raw lines for `job` (lines naming another known job go to that job)."""
    loader = _Loader(engine, job, source=source, via=via, options=options)
    result = IngestResult()
    size = options.batch_size
    try:
        with closing(_prepared_batches(iter(lines), loader.preparer, options, parallel=via != "push")) as batches, \
                ExitStack() as large:
            for batch, count in batches:
                loader.load_batch(batch, count, result)
                if progress and count >= size:
                    progress(result.lines)
                if result.lines >= PARALLEL_AFTER_LINES and not loader.large:
                    loader.large = True
                    if via != "push":
                        large.enter_context(fewer_collections())
    finally:
        loader.restore()
    loader.finish()
    if progress:
        progress(result.lines)
    return result


@contextmanager
def fewer_collections(threshold: int = LARGE_INPUT_GC_THRESHOLD, *, freeze: bool = False) -> Iterator[None]:
    """Python's garbage collector runs less often meanwhile (LARGE_INPUT_GC_THRESHOLD); with
    `freeze`, the objects alive before are also left out of its walks (`gc.freeze`). Restored after."""
    before = gc.get_threshold()
    if freeze:
        gc.freeze()
    gc.set_threshold(max(threshold, before[0]), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        if freeze:
            gc.unfreeze()


class LargeInputPragmas:
    """SQLite's page cache and WAL checkpoint threshold while a large input loads
    (LARGE_INPUT_CACHE_KIB, LARGE_INPUT_CHECKPOINT_PAGES), set on the loading connection;
    `restore` gives the connection its own values back (SQLite frees the cache beyond them)."""

    def __init__(self) -> None:
        self._cache_size: int | None = None  # the connection's own, while ours is set
        self._checkpoint: int | None = None  # its WAL checkpoint threshold, likewise

    def apply(self, conn: Connection) -> None:
        if self._cache_size is None:
            self._cache_size = conn.exec_driver_sql("PRAGMA cache_size").scalar()
            self._checkpoint = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        conn.exec_driver_sql(f"PRAGMA cache_size = -{LARGE_INPUT_CACHE_KIB}")
        conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint = {LARGE_INPUT_CHECKPOINT_PAGES}")

    def restore(self, engine: Engine) -> None:
        if self._cache_size is None:
            return
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(f"PRAGMA cache_size = {int(self._cache_size)}")
                conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint = {int(self._checkpoint or 1000)}")
        except Exception:  # noqa: BLE001 - only a cache size; never hide the ingest's own error
            log.debug("ingest: could not restore the SQLite cache size", exc_info=True)
        self._cache_size = None


def stored_dedupes(conn: Connection, table: Table, job_id: int, keys: list[int]) -> set[int]:
    """Which of `keys` `table` (exchanges, Entra events: unique on job_id and dedupe) holds for the job.

    500 keys a statement; on SQLite through the driver, the IN list padded to a few lengths
    (resolve.pad): SQLAlchemy's compiling of 500 bound keys cost more than the lookup."""
    found: set[int] = set()
    if conn.dialect.name == "sqlite":
        cursor = conn.connection.cursor()
        try:
            for start in range(0, len(keys), 500):
                padded = pad(keys[start : start + 500])
                cursor.execute(f"SELECT dedupe FROM {table.name} WHERE job_id = ? AND dedupe IN "
                               f"({', '.join('?' * len(padded))})", [job_id, *padded])
                found.update(key for (key,) in cursor.fetchall())
        finally:
            cursor.close()
        return found
    for start in range(0, len(keys), 500):
        found.update(conn.scalars(select(table.c.dedupe).where(
            table.c.job_id == job_id, table.c.dedupe.in_(keys[start : start + 500]))))
    return found


def _prepared_batches(
    lines: Iterator[tuple[int, bytes]], preparer: Preparer, options: IngestOptions, *, parallel: bool
) -> Iterator[tuple[list, int]]:
    """(prepared items, number of lines) per batch of `options.batch_size` lines.

    The first lines are prepared here; once the input has proved large, worker processes (if
    configured) prepare the rest while the caller writes the batch before.
    """
    size = options.batch_size
    done = 0
    workers = _worker_count(options) if parallel else 0
    while True:
        batch = list(islice(lines, size))
        if not batch:
            return
        yield preparer.prepare(batch), len(batch)
        done += len(batch)
        if workers and done >= PARALLEL_AFTER_LINES and len(batch) == size:
            break
    try:
        pool = Workers(preparer, workers, ahead_lines=2 * workers * max(size, 1000), steal=True)
    except OSError as exc:  # no interpreter to start (embedded Python): carry on here
        log.warning("ingest: could not start worker processes (%s); preparing lines in-process", exc)
        while batch := list(islice(lines, size)):
            yield preparer.prepare(batch), len(batch)
        return
    with pool:
        items = pool.prepare(lines)
        while batch := list(islice(items, size)):
            yield batch, len(batch)


def _worker_count(options: IngestOptions) -> int:
    # One of the processors this process may use stays with the loader (and the database).
    try:
        processors = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        processors = os.cpu_count() or 1
    return max(0, min(options.workers, processors - 1))


class _Loader:
    def __init__(self, engine: Engine, job: Job, *, source: str, via: str, options: IngestOptions) -> None:
        self.engine = engine
        self.job = job
        self.source = fit(source, 500)
        self.options = options
        self.resolvers: dict[int, UserResolver] = {}
        self.analyzer = BatchAnalyzer(options.gap_us)
        self.dialect = engine.dialect.name
        with engine.begin() as conn:
            self.jobs = {name: job_id for job_id, name in conn.execute(select(Job.id, Job.name))}
            self.run_id = conn.execute(
                insert(_runs).values(job_id=job.id, source=self.source, via=via, started_at=utc_now())
            ).inserted_primary_key[0]
        self.preparer = Preparer(
            rules=options.rules, guid_lookups_are_tests=options.guid_lookups_are_tests, job_id=job.id,
            job_name=job.name, jobs=dict(self.jobs), only_job=options.only_job,
            not_after_us=None if options.future_tolerance_us is None else to_us(utc_now()) + options.future_tolerance_us,
        )
        self._sqlite = self.dialect == "sqlite"
        self._seen: tuple | None = None  # the database as our last batch left it: see _exclusive
        self.large = False  # the input has proved large: see LARGE_INPUT_CACHE_KIB
        self.pragmas = LargeInputPragmas()

    def load_batch(self, batch: list, count: int, result: IngestResult) -> None:
        """Store one batch of `count` lines, prepared (see prepare.py), in one transaction.

        A valid line never stops an ingest: if the batch fails for any reason but the database
        being unreachable, it is rolled back and its lines are stored one by one; a line that
        still fails becomes a reject naming the error, and the ingest goes on."""
        try:
            self._store_batch(batch, count, result)
            return
        except DATABASE_DOWN:
            self._forget()
            raise
        except Exception as error:  # noqa: BLE001 - found out line by line below
            self._forget()
            log.warning("ingest: a batch of %s failed (%s); storing its lines one by one", self.source, _brief(error))
        for item in batch:  # (one entry per line, blank lines as None)
            try:
                self._store_batch([item], 1, result)
            except DATABASE_DOWN:
                self._forget()
                raise
            except Exception as error:  # noqa: BLE001 - this line is the culprit: a reject, never a stop
                self._forget()
                self._store_batch([_failed_line(item, error)], 1, result)

    def _forget(self) -> None:
        for resolver in self.resolvers.values():
            resolver.forget()

    def _store_batch(self, batch: list, count: int, result: IngestResult) -> None:
        rows: dict[tuple[int, int], dict] = {}
        problems: list[ParseProblem] = []
        parsed: list[tuple] = []
        for item in batch:
            if item is None:
                continue
            if item.__class__ is ParseProblem:
                problems.append(item)
                continue
            parsed.append(item)
        with self.engine.begin() as conn:
            self._exclusive(conn)
            if self.large and self._sqlite:
                self.pragmas.apply(conn)
            fresh = self._new_keys(conn, parsed)
            duplicates = 0
            todo: list[tuple] = []
            for item in parsed:
                key = (item[P_JOB_ID], item[P_DEDUPE])
                if key not in fresh or key in rows:
                    duplicates += 1
                    continue
                rows[key] = {}
                if len(item) == DEFERRED_LEN:
                    item = self._finish_deferred(item)
                todo.append(item)
            for job_id in {item[P_JOB_ID] for item in todo}:
                self._resolver(job_id).prefetch_names(
                    conn, ((i[P_USER_NAME], i[P_EXTERNAL_ID], i[P_SCIM_ID]) for i in todo if i[P_JOB_ID] == job_id)
                )
            resolvers = self.resolvers
            gone = [item for item in todo if item[P_SCIM_ID] and says_gone(item[P_OPERATION], item[P_STATUS])]
            for item in gone:  # (before any line: a re-creation is one whatever the order in the batch)
                resolvers[item[P_JOB_ID]].saw_gone(((item[P_SCIM_ID], item[P_TS_US]),))
            for item in todo:
                job_id = item[P_JOB_ID]
                rows[(job_id, item[P_DEDUPE])] = {
                    "job_id": job_id,
                    "dedupe": item[P_DEDUPE],
                    "ts_us": item[P_TS_US],
                    "method": item[P_METHOD],
                    "operation": item[P_OPERATION],
                    "status": item[P_STATUS],
                    "failed": item[P_FAILED],
                    "duration_ms": item[P_DURATION_MS],
                    "user_id": resolvers[job_id].resolve_names(
                        conn, item[P_USER_NAME], item[P_EXTERNAL_ID], item[P_SCIM_ID], item[P_TS_US],
                        gone=bool(gone) and says_gone(item[P_OPERATION], item[P_STATUS])),
                    "request_id": item[P_REQUEST_ID],
                    "cycle_key": item[P_CYCLE_KEY],
                    "scim_type": item[P_SCIM_TYPE],
                    "error_detail": item[P_ERROR_DETAIL],
                    "found": item[P_FOUND],
                    "blob": item[P_BLOB],
                }
            if rows:
                new_rows = list(rows.values())
                self.analyzer.before_insert(conn, new_rows)
                for exchange_id, dedupe, job_id in self._insert_exchanges(conn, new_rows):
                    rows[(job_id, dedupe)]["id"] = exchange_id
                self.analyzer.after_insert(conn, [row for row in new_rows if "id" in row])
            for resolver in self.resolvers.values():
                resolver.finish_batch(conn)
            self._save_problems(conn, problems)
            result.lines += count
            result.accepted += len(rows)
            result.duplicates += duplicates
            result.rejected += len(problems)
            conn.execute(
                update(_runs)
                .where(_runs.c.id == self.run_id)
                .values(
                    lines=_runs.c.lines + count,
                    accepted=_runs.c.accepted + len(rows),
                    duplicates=_runs.c.duplicates + duplicates,
                    rejected=_runs.c.rejected + len(problems),
                )
            )
            self._seen = self._mark(conn)
        room = PROBLEMS_KEPT - len(result.problems)
        if room > 0:
            result.problems.extend(problems[:room])

    def _exclusive(self, conn: Connection) -> None:
        """One batch at a time across processes (pushes, `flask ingest`, the demo feeder), and
        caches that another writer made stale are dropped.

        Who is who reads the people a batch names, then creates or updates them: two writers doing
        that at once would each create the same new person. So a batch holds the writers' lock from
        its first statement to its commit (PostgreSQL: a transaction advisory lock; SQLite: a first
        write takes the database's one write lock). The resolvers cache people between batches;
        when the newest exchange or person is not the one our last batch left, another writer
        came between, and the cache is dropped (read again from the database, under the lock)."""
        if self._sqlite:
            conn.execute(update(_runs).where(_runs.c.id == self.run_id).values(lines=_runs.c.lines))
        elif self.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": INGEST_LOCK})
        if self._seen is not None and self._mark(conn) != self._seen:
            self._forget()

    @staticmethod
    def _mark(conn: Connection) -> tuple:
        return tuple(conn.execute(select(select(func.max(_exchanges.c.id)).scalar_subquery(),
                                         select(func.max(_people.c.id)).scalar_subquery())).one())

    def _finish_deferred(self, item: tuple) -> tuple:
        """Classify and pack, here, an exchange whose preparation raised (it raises again here)."""
        job_id, dedupe, exchange, line_no = item
        found = classify(exchange, guid_lookups_are_tests=self.options.guid_lookups_are_tests)
        error = found.error
        return (
            job_id, dedupe, to_us(exchange.ts), exchange.method, found.operation.value, exchange.status, found.failed,
            exchange.duration_ms, fit(exchange.request_id or None, 200),
            fit(exchange.cycle_id or None, 200), error.scim_type if error else None,
            error.detail if error else None, codec.pack(blob_of(exchange)), found.user_name, found.external_id,
            found.scim_id, found.found, line_no,
        )

    def _insert_exchanges(self, conn: Connection, rows: list[dict]) -> Iterable[tuple[int, int, int]]:
        """Insert the rows, skipping any key that is there already; (id, dedupe, job_id) of each new one."""
        names = list(rows[0])
        if self._sqlite and all(name in _exchanges.c for name in names):
            values = itemgetter(*names)
            return sqlite_insert_returning(conn, _exchanges.name, names, [values(row) for row in rows],
                                           "id, dedupe, job_id", _ROWS_PER_INSERT)
        return conn.execute(
            self._insert_ignoring(_exchanges).returning(_exchanges.c.id, _exchanges.c.dedupe, _exchanges.c.job_id),
            rows,
        )

    def restore(self) -> None:
        self.pragmas.restore(self.engine)

    def finish(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(_runs).where(_runs.c.id == self.run_id).values(finished_at=utc_now()))

    def _new_keys(self, conn: Connection, parsed: list[tuple]) -> set[tuple[int, int]]:
        keys = {(item[P_JOB_ID], item[P_DEDUPE]) for item in parsed}
        by_job: dict[int, list[int]] = {}
        for job_id, key in keys:
            by_job.setdefault(job_id, []).append(key)
        existing = {(job_id, key) for job_id, job_keys in by_job.items()
                    for key in stored_dedupes(conn, _exchanges, job_id, job_keys)}
        return keys - existing

    def _resolver(self, job_id: int) -> UserResolver:
        resolver = self.resolvers.get(job_id)
        if resolver is None:
            resolver = self.resolvers[job_id] = UserResolver(job_id, self.options.gap_us)
        return resolver

    def _save_problems(self, conn: Connection, problems: list[ParseProblem]) -> None:
        save_rejects(conn, self._insert_ignoring(_rejects), self.job.id, ((self.source, p) for p in problems),
                     self.options.rules)

    def _insert_ignoring(self, table):  # type: ignore[no-untyped-def]
        return insert_ignoring(self.dialect, table)


def _failed_line(item: tuple, error: BaseException) -> ParseProblem:
    """The reject for a prepared line that could not be stored: its number, the error, and its
    redacted content (the raw line is gone by now; what was prepared is redacted already)."""
    if item.__class__ is ParseProblem:
        return ParseProblem(item.line_no, f"{item.reason} (and the reject could not be stored as it was: "
                            f"{type(error).__name__})", "")
    if len(item) == DEFERRED_LEN:
        _job_id, _dedupe, exchange, line_no = item
        raw = orjson.dumps(blob_of(exchange), default=str).decode("utf-8", "replace")
    else:
        line_no = item[P_LINE_NO]
        try:
            raw = orjson.dumps(codec.unpack(item[P_BLOB]), default=str).decode("utf-8", "replace")
        except Exception:  # noqa: BLE001 - only the reject's sample
            raw = ""
    return ParseProblem(line_no, f"line {line_no}: could not be stored ({_brief(error)})", raw[:2000])


def _brief(error: BaseException) -> str:
    """The class and first words of an error; for the database's, its own message without the
    statement and parameters that SQLAlchemy adds."""
    cause = error.orig if isinstance(error, exc.DBAPIError) and error.orig is not None else error
    message = " ".join(str(cause).split())[:300]
    return f"{type(cause).__name__}: {message}" if message else type(cause).__name__


def save_rejects(conn: Connection, statement, job_id: int,  # type: ignore[no-untyped-def]
                 problems: Iterable[tuple[str, ParseProblem]], rules: RedactionRules) -> None:
    """Store rejected lines or records, each with its source and number, redacted; one row per
    (source, number, content), so re-ingesting the same file adds none. `statement`: an INSERT
    into the reject table that ignores conflicts."""
    rows = {}
    for source, problem in problems:
        raw = redact_raw(problem.raw, rules)
        source = fit(redact_text(source, rules) or "", 500)
        dedupe = stable_hash(f"{source}\0{problem.line_no}\0{raw}".encode())
        rows[dedupe] = {
            "job_id": job_id, "dedupe": dedupe, "source": source, "line_no": problem.line_no,
            "reason": fit(redact_text(problem.reason, rules) or "", 1000), "raw": raw, "created_at": utc_now(),
        }
    if rows:
        conn.execute(statement, list(rows.values()))


def redact_raw(raw: str, rules: RedactionRules) -> str:
    """A rejected line as it may be stored (see formats.scim.redact.redact_raw)."""
    return _redact_raw(raw, rules)


_dedupe_key = dedupe_key  # the names this module had before prepare.py
_hash = stable_hash
