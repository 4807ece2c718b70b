"""The database-free half of an Entra import: records to rows ready to insert.

Reading a file (decode, validate, normalise, redact), the dedupe key, the row, its analysis view
and packing the details need nothing but the record and the settings, so for a large import they
run in a worker process (ingest/prepare.py's `Workers`, one file per task) while the loader does
the database work of the batch before; small imports (a Graph pull, a test) are prepared
in-process, the same way. Like ingest/prepare.py this module is PURE, which keeps a worker small.

`prepare_item` turns one item of `read_events` into one entry:
  Prepared             the record's row, its analysis view, the names that find its user, and
                       what names it in a reject (`who`),
  (where, ParseProblem) a rejected record.
"""
from __future__ import annotations

import gc
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from dashboard.formats import codec
from dashboard.formats.entra.facts import detail_of, fact_of
from dashboard.formats.entra.parse import dedupe_key, read_events
from dashboard.formats.entra.records import ProvisioningEvent
from dashboard.formats.limits import fit
from dashboard.formats.scim.records import ParseProblem
from dashboard.formats.scim.redact import RedactionRules
from dashboard.ingest.prepare import future_reason
from dashboard.times import to_us

# What names a record in a reject: (record_no, id, changeId, cycleId, activity time, action)
Who = tuple[int, "str | None", "str | None", "str | None", datetime, str]


class Prepared(NamedTuple):
    """A record ready to store: where it came from, what names it, its dedupe key, its row's
    values (`ROW_COLUMNS`; the loader adds the user, cycle and signature), analysis view and names.

    The row is a tuple, not a dict: a worker pickles and the loader unpickles one per record, and
    the loader hands it to the driver as it is (dashboard/ingest/entra.py `_insert_events`).
    """

    where: str
    who: Who
    dedupe: int
    row: tuple
    view: dict
    names: tuple | None


Entry = Prepared | tuple[str, ParseProblem]


@dataclass(frozen=True)
class EntraPreparer:
    """Everything preparing a file's records needs; pickled once to the worker.

    `prepare` takes tasks (number, file bytes, where) and answers, per task, the entries of that
    file in file order (what `read_paths` and `prepare_item` give in-process).
    """

    job_id: int
    rules: RedactionRules
    fmt: str | None = None
    not_after_us: int | None = None
    # Pause the cyclic garbage collector while a file is prepared (a worker process, or the
    # loader's own when none could start): a decoded page is about a million containers, all
    # alive until the file is done, which the collector otherwise walks again and again (it cost
    # 15% of a worker's time at 1,000 records a page); they are freed by reference counting.
    pause_gc: bool = False

    def prepare(self, tasks: list[tuple[int, bytes, str]]) -> list[list[Entry]]:
        job_id, not_after_us, rules, fmt = self.job_id, self.not_after_us, self.rules, self.fmt
        paused = self.pause_gc and gc.isenabled()
        if paused:
            gc.disable()
        try:
            return [
                [prepare_item(job_id, where, item, not_after_us)
                 for item in read_events(io.BytesIO(data), fmt, rules=rules)]
                for _number, data, where in tasks
            ]
        finally:
            if paused:
                gc.enable()


def prepare_item(job_id: int, where: str, item: ProvisioningEvent | ParseProblem, not_after_us: int | None) -> Entry:
    """One item of `read_events` as an entry: the record ready to store, or (where, its problem)."""
    if item.__class__ is ParseProblem:
        return (where, item)  # type: ignore[return-value]
    event: ProvisioningEvent = item  # type: ignore[assignment]
    who = who_of(event)
    if not_after_us is not None and to_us(event.activity_at) > not_after_us:  # a clock ahead: a reject
        return (where, ParseProblem(event.record_no, f"record {event.record_no}: "
                                    + future_reason(event.activity_at, not_after_us), ""))
    try:
        key = dedupe_key(event)
        row, view, names = _prepare(job_id, key, event)
    except Exception as exc:  # noqa: BLE001 - one odd record is a reject, never the whole file
        return (where, record_problem(who, "cannot be stored", exc))
    return Prepared(where, who, key, tuple(map(row.__getitem__, ROW_COLUMNS)), view, names)


def who_of(event: ProvisioningEvent) -> Who:
    return (event.record_no, event.id, event.change_id, event.cycle_id, event.activity_at,
            event.action_raw or event.action.value)


def record_problem(who: Who, what: str, exc: BaseException) -> ParseProblem:
    """The reject of a record that could not be stored: its number and Entra id, and the error's class."""
    record_no, ident = who[0], who[1]
    named = f" (id {printable(ident)[:80]})" if ident else ""
    return ParseProblem(record_no, f"record {record_no}{named}: {what} ({describe(exc)})", identifying(who))


def describe(exc: BaseException) -> str:
    """An error's class and first line; a database error's driver class too (the SQL and its
    parameters, which hold the record's values, are left out)."""
    inner = getattr(exc, "orig", None)  # SQLAlchemy's error: the driver's own
    inner = inner if isinstance(inner, BaseException) else None
    name = type(exc).__name__
    if inner is not None and type(inner).__name__ != name:
        name = f"{name} ({type(inner).__name__})"
    text = str(inner if inner is not None else exc).strip().split("\n", 1)[0]
    text = text.split(" [SQL: ", 1)[0]
    return f"{name}: {printable(text)[:300]}" if text else name


def identifying(who: Who) -> str:
    """What finds the record in its file again (its raw text is not kept once it is an event)."""
    _record_no, ident, change_id, cycle_id, activity_at, action = who
    fields = {"id": ident, "changeId": change_id, "cycleId": cycle_id, "activityDateTime": activity_at.isoformat(),
              "action": action}
    return orjson.dumps({k: printable(v) if isinstance(v, str) else v for k, v in fields.items() if v}).decode()


def printable(text: str) -> str:
    """`text` as any database stores it: a lone surrogate or a NUL written as its escape."""
    if text.isascii() and "\x00" not in text:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


# -- the row and the analysis's view of it ---------------------------------------------------------

# The columns of a Prepared row, in its order: those of `_prepare`'s row but the user (found by
# the loader, which adds it with the cycle and the signature: LOADER_COLUMNS).
ROW_COLUMNS = (
    "job_id", "dedupe", "activity_us", "entra_id", "change_id", "cycle_key", "entra_job_id", "action", "outcome",
    "operation", "status", "failed", "error_code", "reason", "recommended_action", "retry_count", "next_retry_us",
    "duration_ms", "source_id", "target_id", "display_name", "user_name", "external_id", "blob",
)
LOADER_COLUMNS = ("user_id", "cycle_id", "sig_id")


def _prepare(job_id: int, key: int, event: ProvisioningEvent) -> tuple[dict, dict, tuple | None]:
    """The row to insert, the analysis's view of it, and the names that find its user."""
    fact = fact_of(event)
    is_user = _is_user(event)
    ts_us = to_us(event.activity_at)
    source, target = event.source, event.target
    row = {
        "job_id": job_id, "dedupe": key, "activity_us": ts_us, "entra_id": _cut(event.id, 200),
        "change_id": _cut(event.change_id, 200), "cycle_key": _cut(event.cycle_id, 200),
        "entra_job_id": _cut(event.job_id, 300), "action": fit(event.action_raw or event.action.value, 20),
        "outcome": event.status.value, "operation": fact.operation, "status": fact.status,
        "failed": fact.failed, "error_code": _cut(event.error_code, 200), "reason": event.reason,
        "recommended_action": event.recommended_action, "retry_count": _int32(event.retry_count),
        "next_retry_us": to_us(event.next_retry_at) if event.next_retry_at else None,
        "duration_ms": _int32(event.duration_ms), "source_id": _cut(source.id, 200),
        "target_id": _cut(target.id, 512),
        "display_name": _cut(source.display_name or target.display_name, 512),
        "user_name": _cut(event.user_name, 512), "external_id": _cut(event.external_id, 512),
        "user_id": None, "blob": codec.pack(_details(event), codec.ENTRA_VERSION),
    }
    view = view_of(job_id, ts_us, row["cycle_key"], fact.operation, fact.status, fact.failed,
                   reference=fact.reference or not is_user, error_code=event.error_code, reason=event.reason,
                   duration_ms=event.duration_ms)
    names = (row["user_name"], row["external_id"], row["target_id"]) if is_user else None
    return row, view, names


def view_of(job_id: int, ts_us: int, cycle_key: str | None, operation: str, status: int, failed: bool, *,
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
