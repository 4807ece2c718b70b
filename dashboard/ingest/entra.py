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

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

import orjson
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection, Engine

from dashboard.db import insert_ignoring
from dashboard.formats import codec
from dashboard.formats.dedupe import stable_hash
from dashboard.formats.entra.facts import detail_of, fact_of, reference_failure
from dashboard.formats.entra.jobstatus import read_job_status_file
from dashboard.formats.entra.parse import dedupe_key
from dashboard.formats.entra.records import JobStatus, ProvisioningEvent
from dashboard.formats.limits import fit
from dashboard.formats.scim.records import ParseProblem
from dashboard.formats.scim.redact import RedactionRules, redact_body
from dashboard.ingest.prepare import future_reason
from dashboard.ingest.resolve import UserResolver
from dashboard.ingest.scim import (
    DATABASE_DOWN,
    IngestOptions,
    IngestResult,
    save_rejects,
)
from dashboard.models import Cycle, EntraEvent, EntraJobStatus, IngestRun, Job, Reject
from dashboard.times import to_us, utc_now
from dashboard.tracking.fold import BatchAnalyzer, _mark_dirty

_events = EntraEvent.__table__
_cycles = Cycle.__table__
_rejects = Reject.__table__
_runs = IngestRun.__table__
_statuses = EntraJobStatus.__table__
PROBLEMS_KEPT = 1000
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
    while batch := list(islice(iterator, max(options.batch_size, 1))):
        loader.load_batch(batch, result)
        if progress:
            progress(result.lines)
    loader.finish()
    return result


class _EventLoader:
    def __init__(self, engine: Engine, job: Job, *, source: str, via: str, options: IngestOptions) -> None:
        self.engine = engine
        self.job_id = job.id
        self.source = fit(source, 500)
        self.options = options
        tolerance = options.future_tolerance_us
        self.not_after_us = None if tolerance is None else to_us(utc_now()) + tolerance  # a clock ahead: a reject
        self.resolver = UserResolver(job.id, options.gap_us)
        self.analyzer = BatchAnalyzer(options.gap_us)
        self.dialect = engine.dialect.name
        with engine.begin() as conn:
            self.run_id = conn.execute(
                insert(_runs).values(job_id=job.id, source=self.source, via=via[:10], started_at=utc_now())
            ).inserted_primary_key[0]

    def load_batch(self, batch: list[Item], result: IngestResult) -> None:
        """Store one batch in one transaction. When anything in it fails (a record the database
        refuses, a constraint...), it is rolled back and its records are stored one by one, each in
        its own transaction: those that fail again are rejects naming the record and the error."""
        problems: list[tuple[str, ParseProblem]] = []
        prepared: dict[int, _Prepared] = {}  # dedupe key -> the record ready to store
        duplicates = 0
        for where, item in batch:
            if isinstance(item, ParseProblem):
                problems.append((where, item))
                continue
            if self.not_after_us is not None and to_us(item.activity_at) > self.not_after_us:
                problems.append((where, ParseProblem(item.record_no, f"record {item.record_no}: "
                                                     + future_reason(item.activity_at, self.not_after_us), "")))
                continue
            try:
                key = dedupe_key(item)
                row, view, names = _prepare(self.job_id, key, item)
            except Exception as exc:  # noqa: BLE001 - one odd record is a reject, never the whole file
                problems.append((where, _record_problem(item, "cannot be stored", exc)))
                continue
            if key in prepared:
                duplicates += 1
            prepared[key] = _Prepared(where, item, row, view, names)
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
                    problems.append((entry.where, _record_problem(entry.event, "cannot be stored", exc)))
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

    def _store(self, conn: Connection, entries: list[_Prepared]) -> tuple[int, int]:
        """Store the records not stored yet, with their users and their analysis; (accepted,
        already stored). The one place where a batch's events are inserted."""
        stored = self._existing(conn, [entry.row["dedupe"] for entry in entries])
        fresh = [entry for entry in entries if entry.row["dedupe"] not in stored]
        if not fresh:
            return 0, len(stored)
        self._resolve_users(conn, fresh)
        rows = [entry.row for entry in fresh]
        views = [entry.view for entry in fresh]
        self._assign(conn, views)
        for row, view in zip(rows, views, strict=True):
            row["cycle_id"], row["sig_id"] = view["cycle_id"], view["sig_id"]
        ids = {dedupe: event_id for event_id, dedupe in conn.execute(
            self._insert_ignoring(_events).returning(_events.c.id, _events.c.dedupe), rows)}
        inserted = []
        for row, view in zip(rows, views, strict=True):
            if row["dedupe"] in ids:
                view["id"] = -ids[row["dedupe"]]
                inserted.append(view)
        self._fold(conn, inserted)
        self.resolver.finish_batch(conn)  # merges and aliases, now that the events are in
        # (a row the insert ignored was stored meanwhile by a concurrent import: a duplicate)
        return len(inserted), len(stored) + len(rows) - len(inserted)

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
        found: set[int] = set()
        for start in range(0, len(keys), 500):
            found.update(conn.scalars(select(_events.c.dedupe).where(
                _events.c.job_id == self.job_id, _events.c.dedupe.in_(keys[start : start + 500]))))
        return found

    def _resolve_users(self, conn: Connection, entries: list[_Prepared]) -> None:
        """The user of each event: the SCIM traffic's user with its userName, externalId or target id."""
        self.resolver.prefetch_names(conn, (entry.names for entry in entries if entry.names))
        for entry in entries:
            names = entry.names
            user_id = self.resolver.resolve_names(conn, *names, entry.row["activity_us"]) if names else None
            entry.row["user_id"] = entry.view["user_id"] = user_id

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


@dataclass(slots=True)
class _Prepared:
    """A record ready to store: where it came from, the event, its row, analysis view and names."""

    where: str
    event: ProvisioningEvent
    row: dict
    view: dict
    names: tuple | None


def _record_problem(event: ProvisioningEvent, what: str, exc: BaseException) -> ParseProblem:
    """The reject of a record that could not be stored: its number and Entra id, and the error's class."""
    ident = f" (id {_printable(event.id)[:80]})" if event.id else ""
    return ParseProblem(event.record_no, f"record {event.record_no}{ident}: {what} ({_describe(exc)})",
                        _identifying(event))


def _describe(exc: BaseException) -> str:
    """An error's class and first line; a database error's driver class too (the SQL and its
    parameters, which hold the record's values, are left out)."""
    inner = getattr(exc, "orig", None)  # SQLAlchemy's error: the driver's own
    inner = inner if isinstance(inner, BaseException) else None
    name = type(exc).__name__
    if inner is not None and type(inner).__name__ != name:
        name = f"{name} ({type(inner).__name__})"
    text = str(inner if inner is not None else exc).strip().split("\n", 1)[0]
    text = text.split(" [SQL: ", 1)[0]
    return f"{name}: {_printable(text)[:300]}" if text else name


def _identifying(event: ProvisioningEvent) -> str:
    """What finds the record in its file again (its raw text is not kept once it is an event)."""
    fields = {"id": event.id, "changeId": event.change_id, "cycleId": event.cycle_id,
              "activityDateTime": event.activity_at.isoformat(), "action": event.action_raw or event.action.value}
    return orjson.dumps({k: _printable(v) if isinstance(v, str) else v for k, v in fields.items() if v}).decode()


def _printable(text: str) -> str:
    """`text` as any database stores it: a lone surrogate or a NUL written as its escape."""
    if text.isascii() and "\x00" not in text:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _storable(problem: ParseProblem) -> ParseProblem:
    """A reject that no database refuses (PostgreSQL takes no NUL in text)."""
    reason, raw = _printable(problem.reason), _printable(problem.raw)
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
                view = _view(job_id, row.activity_us, row.cycle_key, row.operation, row.status, row.failed,
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



def _prepare(job_id: int, key: int, event: ProvisioningEvent) -> tuple[dict, dict, tuple | None]:
    """The row to insert, the analysis's view of it, and the names that find its user."""
    fact = fact_of(event)
    is_user = _is_user(event)
    ts_us = to_us(event.activity_at)
    row = {
        "job_id": job_id, "dedupe": key, "activity_us": ts_us, "entra_id": _cut(event.id, 200),
        "change_id": _cut(event.change_id, 200), "cycle_key": _cut(event.cycle_id, 200),
        "entra_job_id": _cut(event.job_id, 300), "action": fit(event.action_raw or event.action.value, 20),
        "outcome": event.status.value, "operation": fact.operation, "status": fact.status,
        "failed": fact.failed, "error_code": _cut(event.error_code, 200), "reason": event.reason,
        "recommended_action": event.recommended_action, "retry_count": _int32(event.retry_count),
        "next_retry_us": to_us(event.next_retry_at) if event.next_retry_at else None,
        "duration_ms": _int32(event.duration_ms), "source_id": _cut(event.source.id, 200),
        "target_id": _cut(event.target.id, 512),
        "display_name": _cut(event.source.display_name or event.target.display_name, 512),
        "user_name": _cut(event.user_name, 512), "external_id": _cut(event.external_id, 512),
        "user_id": None, "blob": codec.pack(_details(event)),
    }
    view = _view(job_id, ts_us, row["cycle_key"], fact.operation, fact.status, fact.failed,
                 reference=fact.reference or not is_user, error_code=event.error_code, reason=event.reason,
                 duration_ms=event.duration_ms)
    names = (_cut(event.user_name, 512), _cut(event.external_id, 512), _cut(event.target.id, 512)) if is_user else None
    return row, view, names


def _view(job_id: int, ts_us: int, cycle_key: str | None, operation: str, status: int, failed: bool, *,
          reference: bool, error_code: str | None, reason: str | None, duration_ms: int | None) -> dict:
    """What BatchAnalyzer needs of an event (its view of an exchange row); `user_id` is set later."""
    return {
        "job_id": job_id, "ts_us": ts_us, "cycle_key": cycle_key, "user_id": None, "operation": operation,
        "status": status, "failed": failed, "reference": reference, "staged_delete": operation == "staged_delete",
        "scim_type": _cut(error_code, 64), "error_detail": detail_of(reason, error_code) if failed else None,
        "duration_ms": duration_ms,
    }


def _is_user(event: ProvisioningEvent) -> bool:
    kind = (event.source.identity_type or event.target.identity_type or "user").lower()
    return kind == "user" and bool(event.user_name or event.external_id or event.target.id)


def _details(event: ProvisioningEvent) -> dict[str, Any]:
    def identity(value: Any) -> dict[str, Any]:
        return {"id": value.id, "display_name": value.display_name, "type": value.identity_type, "details": value.details}

    return {
        "source": identity(event.source),
        "target": identity(event.target),
        "error_category": event.error_category,
        "steps": [
            {"name": s.name, "type": s.step_type, "status": s.status, "description": s.description, "details": s.details}
            for s in event.steps
        ],
        "modified_properties": [
            {"name": p.display_name, "old": p.old_value, "new": p.new_value} for p in event.modified_properties
        ],
        "service_principal": (
            {"id": event.service_principal.id, "display_name": event.service_principal.display_name}
            if event.service_principal else None
        ),
        "format": str(event.raw_format),
        "record_no": event.record_no,
        "extra": event.extra,
    }


def _int32(value: int | None) -> int | None:
    """Graph's Int32 fields; a value beyond (a damaged record) is not stored rather than failing the batch."""
    return value if value is not None and -2**31 <= value < 2**31 else None


def _cut(value: str | None, size: int) -> str | None:
    return fit(value, size) if value else None


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
            out.problems.append(ParseProblem(item.number, f"job {item.number}: cannot be stored ({_describe(exc)})",
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
