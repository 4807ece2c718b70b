"""Read the portal's CSV download: three files (logs, steps, modified properties) joined on change ID.

Microsoft documents the three files and the join on change ID [DL][ANALYZE] but not their header
names, so columns are matched loosely (case, spaces, dots, underscores ignored) against alias
tables: `normalize._KEYS` for the logs file, `STEP_COLUMNS` and `PROPERTY_COLUMNS` here.
Unknown columns of the logs file are kept in the event's `extra`. Record numbers count data rows
(the header is not a record); reasons also give the physical line, which differs when a quoted
field (a reason with its "\\r\\n") spans lines.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import IO, Any

import orjson

from dashboard.formats.entra.normalize import (
    RecordError,
    canonical_key,
    event_from_record,
)
from dashboard.formats.entra.parts import nul_field
from dashboard.formats.entra.records import ProvisioningEvent
from dashboard.formats.entra.redact import Redactor
from dashboard.formats.entra.values import squash
from dashboard.formats.scim.records import ParseProblem
from dashboard.formats.scim.redact import MAX_NESTING, deeper_than

RAW_KEEP = 2000
if csv.field_size_limit() < 16 << 20:
    csv.field_size_limit(16 << 20)  # process-wide: a reason quoting a large SCIM answer is one field

CHANGE_COLUMNS = frozenset({"changeid", "provisioningchangeid", "change"})
STEP_COLUMNS = {
    "name": "name", "stepname": "name", "provisioningstepname": "name", "step": "name",
    "type": "provisioningStepType", "steptype": "provisioningStepType",
    "provisioningsteptype": "provisioningStepType",
    "status": "status", "stepstatus": "status", "provisioningstepstatus": "status",
    "description": "description", "stepdescription": "description", "provisioningstepdescription": "description",
    "details": "details", "stepdetails": "details", "provisioningstepdetails": "details",
    "order": "_order", "stepnumber": "_order", "stepindex": "_order", "index": "_order", "sequence": "_order",
}
PROPERTY_COLUMNS = {
    "displayname": "displayName", "name": "displayName", "propertyname": "displayName", "property": "displayName",
    "attribute": "displayName", "attributename": "displayName", "modifiedproperty": "displayName",
    "modifiedpropertyname": "displayName", "targetattribute": "displayName",
    "oldvalue": "oldValue", "old": "oldValue", "previousvalue": "oldValue", "modifiedpropertyoldvalue": "oldValue",
    "newvalue": "newValue", "new": "newValue", "value": "newValue", "modifiedpropertynewvalue": "newValue",
}


def csv_kind(header: list[str]) -> str:
    """"logs", "steps" or "modified", judged by the header of a file of the download."""
    names = {squash(h) for h in header}
    if names & {"oldvalue", "newvalue", "modifiedpropertyoldvalue", "modifiedpropertynewvalue", "previousvalue"}:
        return "modified"
    if any(canonical_key(h) == "activity" for h in header):
        return "logs"
    if names & {"stepname", "steptype", "provisioningsteptype", "stepstatus", "stepdescription", "stepdetails",
                "provisioningstepname"} or {"name", "description"} <= names:
        return "steps"
    return "logs"


def read_rows(stream: IO[bytes]) -> Iterator[tuple[int, int, list[str]] | ParseProblem]:
    """(record number, line number, fields) per data row; the header comes first as record 0."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")  # type: ignore[arg-type]
    try:
        yield from _rows(text)
    finally:
        try:
            text.detach()  # the caller's stream stays open: closing it is the caller's business
        except ValueError:
            pass  # closed already (the caller stopped reading and closed it first)


def _rows(text: IO[str]) -> Iterator[tuple[int, int, list[str]] | ParseProblem]:
    first = text.readline()
    if not first.strip():
        return
    delimiter = max((",", ";", "\t"), key=first.count)
    rows = csv.reader(_chain(first, text), delimiter=delimiter)
    record = -1
    line = 0
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            record += 1
            yield ParseProblem(record, f"record {record} (line {rows.line_num}): unreadable CSV: {exc}", "")
            line = rows.line_num
            continue
        start, line = line + 1, rows.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        record += 1
        yield record, start, row


def _chain(first: str, rest: IO[str]) -> Iterator[str]:
    yield first
    yield from rest


def read_portal_csv(
    logs: IO[bytes],
    *,
    steps: IO[bytes] | None,
    modified: IO[bytes] | None,
    redactor: Redactor,
    raw_format: str,
) -> Iterator[ProvisioningEvent | ParseProblem]:
    """Events of the logs file, each with its steps and modified properties joined on change ID.

    Rows of the steps or modified-properties file with no change ID, or whose change ID has no
    row in the logs file, become problems (prefixed with the file they come from).
    """
    joined_steps, step_problems = _companion(steps, "steps", STEP_COLUMNS) if steps else ({}, [])
    joined_props, prop_problems = _companion(modified, "modified properties", PROPERTY_COLUMNS) if modified else ({}, [])
    yield from step_problems
    yield from prop_problems
    used: set[str] = set()
    header: list[str] | None = None
    change_at: int | None = None
    for item in read_rows(logs):
        if isinstance(item, ParseProblem):
            yield item
            continue
        record, line, row = item
        if header is None:
            header = [h.strip() for h in row]
            change_at = next((i for i, h in enumerate(header) if squash(h) in CHANGE_COLUMNS), None)
            if not any(canonical_key(h) == "activity" for h in header):  # not the download's logs file
                yield _problem(0, "the header names no date column of Entra's provisioning logs (Date, "
                                  "activityDateTime...): not a provisioning-log CSV", row, redactor)
            continue
        where = f"record {record} (line {line})"
        if len(row) != len(header):
            yield _problem(record, f"{where}: has {len(row)} fields, the header has {len(header)}"
                           + (" (truncated?)" if len(row) < len(header) else ""), row, redactor)
            continue
        data: dict[str, Any] = dict(zip(header, row))
        key = row[change_at].strip().lower() if change_at is not None else ""
        if key:
            if key in joined_steps:
                data["provisioningSteps"] = [s for _, s in sorted(joined_steps[key], key=_order)]
            if key in joined_props:
                data["modifiedProperties"] = joined_props[key]
            used.add(key)
        try:
            event = event_from_record(data, record, raw_format, redactor)
        except RecordError as exc:
            yield _problem(record, f"{where}: {exc}", row, redactor)
            continue
        except Exception as exc:  # noqa: BLE001 - the reader's promise: no input raises out of it
            yield _problem(record, f"{where}: unreadable record ({type(exc).__name__})", row, redactor)
            continue
        nul = nul_field(event)
        if nul is not None:
            yield _problem(record, f"{where}: field '{nul}' contains a NUL character", row, redactor)
            continue
        yield event
    for label, joined in (("steps", joined_steps), ("modified properties", joined_props)):
        for key in joined.keys() - used:
            yield ParseProblem(0, f"{label} file: change ID {key!r} has no row in the logs file", "")


def _companion(
    stream: IO[bytes], label: str, columns: dict[str, str]
) -> tuple[dict[str, list[Any]], list[ParseProblem]]:
    joined: dict[str, list[Any]] = {}
    problems: list[ParseProblem] = []
    header: list[str] | None = None
    slots: list[str | None] = []
    change_at: int | None = None
    for item in read_rows(stream):
        if isinstance(item, ParseProblem):
            problems.append(ParseProblem(item.line_no, f"{label} file {item.reason}", item.raw))
            continue
        record, line, row = item
        if header is None:
            header = [h.strip() for h in row]
            change_at = next((i for i, h in enumerate(header) if squash(h) in CHANGE_COLUMNS), None)
            slots = [columns.get(squash(h)) for h in header]
            if change_at is None:
                problems.append(ParseProblem(0, f"{label} file: no change ID column among {header[:20]}", ""))
                return {}, problems
            continue
        where = f"{label} file record {record} (line {line})"
        if len(row) != len(header):
            problems.append(ParseProblem(record, f"{where}: has {len(row)} fields, the header has {len(header)}", ""))
            continue
        key = row[change_at].strip().lower()
        if not key:
            problems.append(ParseProblem(record, f"{where}: no change ID", ""))
            continue
        entry: dict[str, Any] = {}
        for slot, value in zip(slots, row):
            if slot is not None and slot not in entry:
                entry[slot] = value if value != "" else None
        if "details" in entry:
            try:
                entry["details"] = _details_cell(entry["details"])
            except ValueError as exc:
                problems.append(ParseProblem(record, f"{where}: field 'details' {exc}", ""))
                continue
        order = entry.pop("_order", None)
        if label == "steps":
            joined.setdefault(key, []).append(((_number(order), record), entry))
        else:
            joined.setdefault(key, []).append(entry)
    return joined, problems


def _order(item: tuple[tuple[float, int], Any]) -> tuple[float, int]:
    return item[0]


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("inf")  # no order column: keep the file's order (the record number breaks ties)


def _details_cell(value: str | None) -> Any:
    """A step's details cell: JSON when it is JSON, else "Key: value" lines, else the text."""
    if not value:
        return None
    text = value.strip()
    if text[:1] in "{[":
        try:
            decoded = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            if exc.msg.startswith("depth limit"):
                raise ValueError(f"is nested deeper than {MAX_NESTING} levels") from None
        else:
            if deeper_than(decoded, MAX_NESTING):
                raise ValueError(f"is nested deeper than {MAX_NESTING} levels")
            return decoded
    pairs = [part.split(":", 1) for part in text.replace(";", "\n").splitlines() if ":" in part]
    if pairs and len(pairs) == len([p for p in text.replace(";", "\n").splitlines() if p.strip()]):
        return {k.strip(): v.strip() for k, v in pairs}
    return {"text": text}


def _problem(record: int, reason: str, row: list[str], redactor: Redactor) -> ParseProblem:
    raw = redactor.raw_text(",".join(row))
    return ParseProblem(record, reason, raw[:RAW_KEEP])
