"""Load a source of log lines into the database: parse, redact, classify, dedupe, save.

One code path serves the CLI, the HTTP push and the demo loader. Lines are committed in
batches, each batch in one transaction together with the users it revealed, its rejects and the
run's counters: a crash loses at most the batch in flight, and re-running the same source
completes it (duplicates are recognised by their dedupe key and skipped).
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from ..models import Exchange as ExchangeRow
from ..models import IngestRun, Job, Reject, to_us
from ..settings import CycleSettings, IngestSettings
from ..analysis.incremental import BatchAnalyzer
from . import codec
from .classify import classify
from .parse import parse_line
from .redact import RedactionRules, redact, redact_body, redact_text
from .records import Classified, Exchange, ParseProblem
from .resolve import UserResolver

log = logging.getLogger(__name__)
_exchanges = ExchangeRow.__table__
_rejects = Reject.__table__
_runs = IngestRun.__table__
PROBLEMS_KEPT = 1000  # problems returned to the caller; all of them are stored


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


def options_from(config: IngestSettings, *, only_job: bool = False, cycles: CycleSettings | None = None) -> IngestOptions:
    """Ingest options from the `[ingest]` (and `[cycles]`) settings."""
    return IngestOptions(
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
    batch: list[tuple[int, bytes]] = []
    for numbered in lines:
        batch.append(numbered)
        if len(batch) >= options.batch_size:
            loader.load_batch(batch, result)
            batch = []
            if progress:
                progress(result.lines)
    if batch:
        loader.load_batch(batch, result)
    loader.finish()
    if progress:
        progress(result.lines)
    return result


class _Loader:
    def __init__(self, engine: Engine, job: Job, *, source: str, via: str, options: IngestOptions) -> None:
        self.engine = engine
        self.job = job
        self.source = source[:500]
        self.options = options
        self.resolvers: dict[int, UserResolver] = {}
        self.analyzer = BatchAnalyzer(options.gap_us)
        dialect = engine.dialect.name
        self._insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}.get(dialect)
        with engine.begin() as conn:
            self.jobs = {name: job_id for job_id, name in conn.execute(select(Job.id, Job.name))}
            self.run_id = conn.execute(
                insert(_runs).values(job_id=job.id, source=self.source, via=via, started_at=_now())
            ).inserted_primary_key[0]

    def load_batch(self, batch: list[tuple[int, bytes]], result: IngestResult) -> None:
        rows: dict[tuple[int, int], dict] = {}
        problems: list[ParseProblem] = []
        parsed: list[tuple[Exchange, tuple[int, int]]] = []
        for line_no, raw in batch:
            item = parse_line(line_no, raw)
            if item is None:
                continue
            if isinstance(item, ParseProblem):
                problems.append(item)
                continue
            job_id, reason = self._job_of(item)
            if job_id is None:
                problems.append(ParseProblem(line_no, reason, raw.decode("utf-8", "replace")[:2000]))
                continue
            clean = redact(item, self.options.rules, hint=raw)
            parsed.append((clean, (job_id, _dedupe_key(clean))))
        with self.engine.begin() as conn:
            fresh = self._new_keys(conn, parsed)
            duplicates = 0
            todo: list[tuple[Exchange, tuple[int, int], Classified]] = []
            for exchange, key in parsed:
                if key not in fresh or key in rows:
                    duplicates += 1
                    continue
                rows[key] = {}
                found = classify(exchange, guid_lookups_are_tests=self.options.guid_lookups_are_tests)
                todo.append((exchange, key, found))
            for job_id in {key[0] for _e, key, _f in todo}:
                self._resolver(job_id).prefetch(conn, (f for _e, k, f in todo if k[0] == job_id))
            for exchange, key, found in todo:
                rows[key] = self._row(conn, exchange, found, *key)
            if rows:
                new_rows = list(rows.values())
                self.analyzer.before_insert(conn, new_rows)
                inserted = conn.execute(
                    self._insert_ignoring(_exchanges).returning(_exchanges.c.id, _exchanges.c.dedupe, _exchanges.c.job_id),
                    new_rows,
                )
                for exchange_id, dedupe, job_id in inserted:
                    rows[(job_id, dedupe)]["id"] = exchange_id
                self.analyzer.after_insert(conn, [row for row in new_rows if "id" in row])
            self._save_problems(conn, problems)
            result.lines += len(batch)
            result.accepted += len(rows)
            result.duplicates += duplicates
            result.rejected += len(problems)
            conn.execute(
                update(_runs)
                .where(_runs.c.id == self.run_id)
                .values(
                    lines=_runs.c.lines + len(batch),
                    accepted=_runs.c.accepted + len(rows),
                    duplicates=_runs.c.duplicates + duplicates,
                    rejected=_runs.c.rejected + len(problems),
                )
            )
        room = PROBLEMS_KEPT - len(result.problems)
        if room > 0:
            result.problems.extend(problems[:room])

    def finish(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(_runs).where(_runs.c.id == self.run_id).values(finished_at=_now()))

    def _job_of(self, exchange: Exchange) -> tuple[int | None, str]:
        if not exchange.job or exchange.job == self.job.name:
            return self.job.id, ""
        if self.options.only_job:
            return None, f"field 'job' names '{exchange.job[:100]}', but this token is for job '{self.job.name}'"
        job_id = self.jobs.get(exchange.job)
        if job_id is None:
            return None, f"field 'job' names an unknown job '{exchange.job[:100]}' (add it with `flask job add`)"
        return job_id, ""

    def _new_keys(self, conn: Connection, parsed: list[tuple[Exchange, tuple[int, int]]]) -> set[tuple[int, int]]:
        keys = {key for _exchange, key in parsed}
        existing: set[tuple[int, int]] = set()
        by_job: dict[int, list[int]] = {}
        for job_id, key in keys:
            by_job.setdefault(job_id, []).append(key)
        for job_id, job_keys in by_job.items():
            for start in range(0, len(job_keys), 500):
                chunk = job_keys[start : start + 500]
                found = conn.execute(
                    select(_exchanges.c.dedupe).where(
                        _exchanges.c.job_id == job_id, _exchanges.c.dedupe.in_(chunk)
                    )
                )
                existing.update((job_id, key) for (key,) in found)
        return keys - existing

    def _resolver(self, job_id: int) -> UserResolver:
        resolver = self.resolvers.get(job_id)
        if resolver is None:
            resolver = self.resolvers[job_id] = UserResolver(job_id)
        return resolver

    def _row(self, conn: Connection, exchange: Exchange, found: Classified, job_id: int, dedupe: int) -> dict:
        error = found.error
        return {
            "job_id": job_id,
            "dedupe": dedupe,
            "ts_us": to_us(exchange.ts),
            "method": exchange.method,
            "operation": found.operation.value,
            "status": exchange.status,
            "failed": found.failed,
            "duration_ms": exchange.duration_ms,
            "user_id": self._resolver(job_id).resolve(conn, found),
            "request_id": exchange.request_id[:200] if exchange.request_id else None,
            "cycle_key": exchange.cycle_id[:200] if exchange.cycle_id else None,
            "scim_type": error.scim_type if error else None,
            "error_detail": error.detail if error else None,
            "blob": codec.pack(blob_of(exchange)),
        }

    def _save_problems(self, conn: Connection, problems: list[ParseProblem]) -> None:
        if not problems:
            return
        rows = {}
        for problem in problems:
            raw = redact_raw(problem.raw, self.options.rules)
            dedupe = _hash(f"{self.source}\0{problem.line_no}\0{raw}".encode())
            rows[dedupe] = {
                "job_id": self.job.id,
                "dedupe": dedupe,
                "source": self.source,
                "line_no": problem.line_no,
                "reason": problem.reason[:1000],
                "raw": raw,
                "created_at": _now(),
            }
        conn.execute(self._insert_ignoring(_rejects), list(rows.values()))

    def _insert_ignoring(self, table):  # type: ignore[no-untyped-def]
        if self._insert is None:
            return insert(table)
        return self._insert(table).on_conflict_do_nothing()


def blob_of(exchange: Exchange) -> dict:
    """What is kept of an exchange beyond its columns (all of it redacted already)."""
    blob = {
        "path": exchange.path,
        "query": exchange.query,
        "client": exchange.client,
        "request_headers": exchange.request_headers,
        "request_body": exchange.request_body,
        "response_body": exchange.response_body,
        "extra": exchange.extra or None,
    }
    return {k: v for k, v in blob.items() if v is not None}


def redact_raw(raw: str, rules: RedactionRules) -> str:
    """A rejected line as it may be stored: redacted structurally when it is JSON, else by text."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return redact_text(raw, rules)
    if isinstance(data, dict | list):
        return orjson.dumps(redact_body(data, rules)).decode()
    return redact_text(raw, rules)


def _dedupe_key(exchange: Exchange) -> int:
    if exchange.request_id:
        return _hash(b"r\0" + exchange.request_id.encode("utf-8", "replace"))
    content = orjson.dumps(
        [
            exchange.ts.isoformat(), exchange.method, exchange.path, exchange.query, exchange.status,
            exchange.duration_ms, exchange.client, exchange.cycle_id, exchange.request_headers,
            exchange.request_body, exchange.response_body,
        ],
        option=orjson.OPT_SORT_KEYS,
    )
    return _hash(b"c\0" + content)


def _hash(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big", signed=True)


def _now() -> datetime:
    return datetime.now(UTC)
