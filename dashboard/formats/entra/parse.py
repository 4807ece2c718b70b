"""Turn Entra provisioning-log files into ProvisioningEvents or ParseProblems; never raise.

Formats (the CLI's --format names):
  entra-graph        Graph `GET /auditLogs/provisioning` pages {"value": [...], "@odata.nextLink"}
                     (v1.0 and beta names, also mixed), or JSON Lines of such records;
  entra-portal-json  the portal's JSON download: an array of records (older names such as `action`);
  entra-csv          the portal's CSV download: logs file + steps file + modified-properties file;
  log-analytics      AADProvisioningLogs rows (JSON array, JSON Lines, the query API's
                     {"tables": [{"columns", "rows"}]}, or a CSV export) and raw diagnostic events
                     ({"properties": {...}}, also wrapped in {"records": [...]}).
A problem's `line_no` is the record number in its file (1-based; for JSON Lines the line);
its reason repeats it and names the field. A file that does not decode whole is read record by
record (jsonscan.py), so a truncated or damaged file loses only its damaged records.
"""
from __future__ import annotations

import gzip
import io
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from dashboard.formats.dedupe import stable_hash
from dashboard.formats.entra.jobstatus import JobStatusError, parse_job_status
from dashboard.formats.entra.jsonscan import find_array, iter_array
from dashboard.formats.entra.normalize import RecordError, event_from_record
from dashboard.formats.entra.parts import nul_field
from dashboard.formats.entra.portal_csv import csv_kind, read_portal_csv, read_rows
from dashboard.formats.entra.records import ProvisioningEvent, RawFormat
from dashboard.formats.entra.redact import Redactor, redactor_for
from dashboard.formats.entra.values import squash
from dashboard.formats.gunzip import gunzip_head
from dashboard.formats.scim.records import ParseProblem
from dashboard.formats.scim.redact import (
    DEFAULT_RULES,
    MAX_NESTING,
    RedactionRules,
    bounded_raw,
    cut_nesting,
    deeper_than,
    redact_body,
    too_deep,
)

__all__ = [
    "FORMATS", "UNKNOWN", "JobStatusError", "convert_record", "dedupe_key", "detect_format", "parse_job_status", "read_events",
    "read_paths", "standalone_files",
]

FORMATS = tuple(f.value for f in RawFormat)
UNKNOWN = "unknown"
RAW_KEEP = 2000
_GZIP = b"\x1f\x8b"
_LA_JSON = re.compile(rb'"(?:TimeGenerated|ResultType|ResultSignature|AADTenantId|ProvisioningStatusInfo|tables)"\s*:')
_DIAGNOSTIC = re.compile(rb'"(?:operationName|category)"\s*:\s*"[^"]*"')
_GRAPH_RECORD = re.compile(rb'"(?:activityDateTime|provisioningAction|changeId|cycleId|provisioningStatusInfo)"\s*:')
_LA_COLUMNS = frozenset({"timegenerated", "resulttype", "resultsignature", "resultdescription", "aadtenantid",
                         "provisioningstatusinfo", "provisioningsteps"})


def detect_format(head: bytes) -> str:
    """The format of a file from its first bytes (64 KiB is plenty), or UNKNOWN."""
    if head[:2] == _GZIP:
        head = gunzip_head(head, 1 << 20)  # as far as it goes (the file's start; perhaps damaged)
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text[:1] in (b"{", b"["):
        if _LA_JSON.search(text) or b'"properties"' in text and _DIAGNOSTIC.search(text):
            return RawFormat.LOG_ANALYTICS.value
        if text[:1] == b"[":
            return RawFormat.PORTAL_JSON.value
        # a SCIM request log line may hold "value": [ too (PatchOp): ask for a Graph field name
        if _GRAPH_RECORD.search(text) or b'"@odata.context"' in text and re.search(rb'"value"\s*:\s*\[', text):
            return RawFormat.GRAPH.value
        return UNKNOWN
    first = text.split(b"\n", 1)[0].decode("utf-8", "replace")
    columns = {squash(c) for c in re.split(r"[,;\t]", first)}
    if columns & _LA_COLUMNS:
        return RawFormat.LOG_ANALYTICS.value
    if columns & {"changeid", "cycleid", "jobid", "activitydatetime", "date", "action", "status"}:
        return RawFormat.CSV.value
    return UNKNOWN


def read_events(
    stream: IO[bytes],
    fmt: str | None = None,
    *,
    rules: RedactionRules = DEFAULT_RULES,
    steps: IO[bytes] | None = None,
    modified: IO[bytes] | None = None,
) -> Iterator[ProvisioningEvent | ParseProblem]:
    """The events of one file (gzip or not), in file order, redacted with `rules`.

    `fmt` None: detected. `steps` and `modified` are the CSV download's other two files.
    An undetectable format is one problem (record 0), not an exception.
    """
    for item in _read_events(stream, fmt, rules=rules, steps=steps, modified=modified):
        yield _clean(item) if item.__class__ is ParseProblem else item


def _clean(problem: ParseProblem) -> ParseProblem:
    """A problem as it may be stored: NUL characters (which PostgreSQL refuses) shown escaped, and
    a raw text that is JSON nested too deep cut below the limit (see redact.bounded_raw)."""
    raw = bounded_raw(problem.raw)
    if "\x00" in problem.reason or "\x00" in raw:
        return ParseProblem(problem.line_no, problem.reason.replace("\x00", "\\x00"), raw.replace("\x00", "\\x00"))
    return problem if raw is problem.raw else ParseProblem(problem.line_no, problem.reason, raw)


def _read_events(
    stream: IO[bytes],
    fmt: str | None,
    *,
    rules: RedactionRules,
    steps: IO[bytes] | None,
    modified: IO[bytes] | None,
) -> Iterator[ProvisioningEvent | ParseProblem]:
    try:
        data = stream.read()
        if data[:2] == _GZIP:
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        yield ParseProblem(0, f"unreadable file: {exc}", "")
        return
    fmt = fmt or detect_format(data[:65536])
    if fmt not in FORMATS:
        yield ParseProblem(0, f"cannot tell the format (pass one of {', '.join(FORMATS)})",
                           data[:200].decode("utf-8", "replace"))
        return
    redactor = redactor_for(rules)
    if data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"["):
        yield from _read_json(data, fmt, redactor)
    elif fmt in (RawFormat.CSV, RawFormat.LOG_ANALYTICS):
        yield from read_portal_csv(io.BytesIO(data), steps=steps, modified=modified, redactor=redactor, raw_format=fmt)
    elif data.strip():
        yield ParseProblem(1, f"a {fmt} file must be JSON", data[:200].decode("utf-8", "replace"))


def read_paths(
    paths: Iterable[Path | str], fmt: str | None = None, *, rules: RedactionRules = DEFAULT_RULES
) -> Iterator[tuple[Path, ProvisioningEvent | ParseProblem]]:
    """The events of several files or directories (e.g. Graph page files, a CSV download).

    CSV files are sorted by their header into logs, steps and modified-properties files; each
    companion joins the logs file of its directory whose name shares the longest start with its
    own. A companion without a logs file is one problem.
    """
    files = sorted(_expand(paths))
    csvs: dict[Path, str] = {}
    for path in files:
        kind = _csv_kind_of(path)
        if kind is not None:
            csvs[path] = kind
    logs = [p for p, k in csvs.items() if k == "logs"]
    companions: dict[Path, dict[str, Path]] = {p: {} for p in logs}
    for path, kind in csvs.items():
        if kind == "logs":
            continue
        owner = _owner(path, logs)
        if owner is None or kind in companions[owner]:
            yield path, ParseProblem(0, f"{kind} file without a logs file to join it to", "")
        else:
            companions[owner][kind] = path
    for path in files:
        if path in csvs and csvs[path] != "logs":
            continue
        with open(path, "rb") as stream:
            extra = companions.get(path, {})
            steps = open(extra["steps"], "rb") if "steps" in extra else None
            modified = open(extra["modified"], "rb") if "modified" in extra else None
            try:
                for item in read_events(stream, fmt, rules=rules, steps=steps, modified=modified):
                    yield path, item
            finally:
                for companion in (steps, modified):
                    if companion is not None:
                        companion.close()


def standalone_files(paths: Iterable[Path | str]) -> list[Path] | None:
    """The files `read_paths` reads, in its order, when each is read on its own (`read_events`);
    None when a CSV download is among them (its files join)."""
    files = sorted(_expand(paths))
    if any(_csv_kind_of(path) is not None for path in files):
        return None
    return files


def dedupe_key(event: ProvisioningEvent) -> int:
    """The event's key, unique per job, the same whichever export it came from.

    Entra's activity id when there is one; else change id + cycle + action + target (or source)
    id; else a hash of the content. Stored keys must stay reproducible: never change this formula.
    """
    if event.id:
        return stable_hash(b"e\0i\0" + event.id.lower().encode("utf-8", "replace"))
    if event.change_id:
        parts = (event.change_id, event.cycle_id or "", event.action.value, event.target.id or event.source.id or "")
        return stable_hash(b"e\0c\0" + "\0".join(parts).lower().encode("utf-8", "replace"))
    content = orjson.dumps(
        [
            event.activity_at.isoformat(), event.action.value, event.status.value, event.job_id, event.source.id,
            event.target.id, event.user_name, event.error_code, event.reason,
            [step.name for step in event.steps],
            [[p.display_name, str(p.old_value), str(p.new_value)] for p in event.modified_properties],
        ],
    )
    return stable_hash(b"e\0h\0" + content)


# -- JSON shapes ------------------------------------------------------------------------------------


def _read_json(data: bytes, fmt: str, redactor: Redactor) -> Iterator[ProvisioningEvent | ParseProblem]:
    if data[:3] == b"\xef\xbb\xbf":
        data = data[3:]  # a UTF-8 byte order mark (Windows tools write one); orjson refuses it
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        document = _MISSING
    if document is not _MISSING:
        yield from _records(document, fmt, redactor)
        return
    text = data.decode("utf-8", "replace").lstrip("\ufeff")
    if _is_json_lines(text):
        yield from _json_lines(text, fmt, redactor)
    else:
        yield from _salvage(text, fmt, redactor)


_MISSING = object()


def _records(document: Any, fmt: str, redactor: Redactor) -> Iterator[ProvisioningEvent | ParseProblem]:
    if isinstance(document, list):
        items: Iterable[Any] = document
    elif isinstance(document, dict) and isinstance(document.get("value"), list):
        items = document["value"]
    elif isinstance(document, dict) and isinstance(document.get("records"), list):
        items = document["records"]
    elif isinstance(document, dict) and isinstance(document.get("tables"), list):
        items = _table_rows(document["tables"])
    elif isinstance(document, dict):
        items = (document,)
    else:
        yield ParseProblem(1, "record 1: the file is neither a JSON object nor an array", str(document)[:RAW_KEEP])
        return
    for number, item in enumerate(items, 1):
        yield _convert(item, number, fmt, redactor)


def _table_rows(tables: list[Any]) -> Iterator[Any]:
    """Rows of the Log Analytics query API's answer as objects keyed by column name."""
    for table in tables:
        if not isinstance(table, dict):
            yield table  # becomes "must be a JSON object"
            continue
        columns = _column_names(table.get("columns"))
        rows = table.get("rows")
        if not isinstance(rows, list):
            if rows not in (None, "", {}):
                yield rows if not isinstance(rows, dict) else [rows]  # "must be a JSON object"
            continue
        for row in rows:
            yield dict(zip(columns, row)) if isinstance(row, list) and len(row) == len(columns) else row


def _column_names(columns: Any) -> list[str]:
    """The query API's column names ({"name": ..., "type": ...} or plain names), as strings."""
    if not isinstance(columns, list):
        return []
    names = []
    for column in columns:
        name = column.get("name") if isinstance(column, dict) else column
        names.append(name if isinstance(name, str) else orjson.dumps(cut_nesting(name, 2)).decode())
    return names


def convert_record(
    item: Any, number: int, *, fmt: str = RawFormat.GRAPH, rules: RedactionRules = DEFAULT_RULES, where: str = ""
) -> ProvisioningEvent | ParseProblem:
    """One decoded record (a dict in any of the shapes above) as an event, or the problem with it."""
    result = _convert(item, number, fmt, redactor_for(rules), where)
    return _clean(result) if result.__class__ is ParseProblem else result


def _convert(item: Any, number: int, fmt: str, redactor: Redactor, where: str = "") -> ProvisioningEvent | ParseProblem:
    where = where or f"record {number}"
    if not isinstance(item, dict):
        return ParseProblem(number, f"{where}: must be a JSON object", _raw(item, redactor))
    deep = too_deep(item)
    if deep is not None:
        return ParseProblem(number, f"{where}: {deep}", _raw(item, redactor))
    try:
        event = event_from_record(item, number, fmt, redactor)
    except RecordError as exc:
        return ParseProblem(number, f"{where}: {exc}", _raw(item, redactor))
    except Exception as exc:  # the reader's promise: no input raises out of it
        return ParseProblem(number, f"{where}: unreadable record ({type(exc).__name__})", _raw(item, redactor))
    nul = nul_field(event)
    if nul is not None:
        return ParseProblem(number, f"{where}: field '{nul}' contains a NUL character", _raw(item, redactor))
    return event


def _raw(item: Any, redactor: Redactor) -> str:
    """A rejected record's text, redacted; never raises (it is the last resort of a reject)."""
    if deeper_than(item, MAX_NESTING + 1):
        item = cut_nesting(item, MAX_NESTING + 1)  # what is kept of it is redacted and serialised
    try:
        text = orjson.dumps(redactor.record(redact_body(item, redactor.rules))).decode()
    except Exception:  # noqa: BLE001 - e.g. a value orjson cannot write: the text redacted as text
        try:
            text = redactor.raw_text(repr(item)[: RAW_KEEP * 2])
        except Exception:  # noqa: BLE001
            text = f"<{type(item).__name__}>"
    return text[:RAW_KEEP] + ("…" if len(text) > RAW_KEEP else "")


def _is_json_lines(text: str) -> bool:
    first = text.lstrip().split("\n", 1)[0]
    try:
        return isinstance(orjson.loads(first), dict) and text.strip().count("\n") > 0
    except orjson.JSONDecodeError:
        return False


def _json_lines(text: str, fmt: str, redactor: Redactor) -> Iterator[ProvisioningEvent | ParseProblem]:
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield ParseProblem(number, f"line {number}: malformed JSON: {exc.msg}", redactor.raw_text(line[:RAW_KEEP]))
            continue
        if isinstance(item, dict) and isinstance(item.get("records"), list):
            for inner, record in enumerate(item["records"], 1):
                yield _convert(record, number, fmt, redactor, f"line {number} record {inner}")
        else:
            yield _convert(item, number, fmt, redactor, f"line {number}")


def _salvage(text: str, fmt: str, redactor: Redactor) -> Iterator[ProvisioningEvent | ParseProblem]:
    """Read a file that does not decode whole, record by record."""
    columns: list[Any] | None = None
    start = find_array(text, None) if text.lstrip().startswith("[") else None
    for key in ("value", "records"):
        if start is None:
            start = find_array(text, key)
    if start is None:
        columns = _columns(text)
        start = find_array(text, "rows") if columns is not None else None
    if start is None:
        yield ParseProblem(1, "record 1: not valid JSON and no array of records found", redactor.raw_text(text[:RAW_KEEP]))
        return
    for element in iter_array(text, start):
        if element.problem is not None:
            yield ParseProblem(element.number, f"record {element.number}: {element.problem}", redactor.raw_text(element.raw))
        elif columns is not None and isinstance(element.value, list) and len(element.value) == len(columns):
            yield _convert(dict(zip(columns, element.value)), element.number, fmt, redactor)
        else:
            yield _convert(element.value, element.number, fmt, redactor)


def _columns(text: str) -> list[Any] | None:
    match = re.search(r'"columns"\s*:\s*\[', text)
    if not match:
        return None
    return _column_names([e.value for e in iter_array(text, match.end()) if e.problem is None]) or None


# -- files ------------------------------------------------------------------------------------------

_SUFFIXES = (".json", ".jsonl", ".ndjson", ".csv", ".txt", ".gz")


def _expand(paths: Iterable[Path | str]) -> Iterator[Path]:
    for path in map(Path, paths):
        if path.is_dir():
            yield from (p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith(_SUFFIXES))
        else:
            yield path


def _csv_kind_of(path: Path) -> str | None:
    try:
        with open(path, "rb") as stream:
            head = stream.read(65536)
            if head[:2] == _GZIP or head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"[", b""):
                return None
            stream.seek(0)
            for item in read_rows(stream):
                if isinstance(item, ParseProblem):
                    return None
                return csv_kind(item[2])
    except OSError:
        return None
    return None


def _owner(path: Path, logs: list[Path]) -> Path | None:
    candidates = [p for p in logs if p.parent == path.parent] or logs
    if not candidates:
        return None

    def shared(log: Path) -> int:
        a, b = log.stem.lower(), path.stem.lower()
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return n

    return max(candidates, key=shared)
