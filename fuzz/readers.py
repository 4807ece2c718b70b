"""The readers under test, how each is called (as the loaders call it), and what each input must give.

A reader's `run(case)` returns (accepted, rejected) counts, and raises:
  Unstorable   the reader accepted something the database would refuse (a NUL character, a value
               longer than its column, an integer beyond its column) or that a loader's own
               safety net would turn into a "cannot be stored" reject (packing failed);
  anything else: an exception that escaped the reader: a traceback in production.
Storage is checked against the model's column types (dashboard/models.py), as PostgreSQL
enforces them, without a database: the fuzz run stays fast.
"""
from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import BigInteger as _BigInteger
from sqlalchemy import Boolean, Float, Integer, LargeBinary, String

from dashboard.formats import codec
from dashboard.formats.entra import parse as entra_parse
from dashboard.formats.entra.records import ProvisioningEvent
from dashboard.formats.scim.classify import classify
from dashboard.formats.scim.records import ParseProblem
from dashboard.formats.scim.redact import DEFAULT_RULES, redact_body
from dashboard.ingest import prepare
from dashboard.ingest.graph.client import (
    GraphClient,
    GraphConfig,
    GraphError,
    ProvisioningPull,
)
from dashboard.models import EntraEvent, EntraJobStatus, Exchange, Reject, ScimUser
from dashboard.times import to_us

from . import hostile
from .hostile import Raw, dumps, loads, mutate, mutate_bytes

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
RULES = DEFAULT_RULES


class Unstorable(Exception):
    """Accepted by the reader, refused by the database (or by a loader's safety net).

    `where`: the column (or step) that refuses it; `kind`: a short name of the reason, which
    with `where` tells two failures apart."""

    def __init__(self, where: str, kind: str, detail: str = "") -> None:
        super().__init__(f"{where}: {kind}{': ' + detail if detail else ''}")
        self.where, self.kind = where, kind


@dataclass(frozen=True)
class Case:
    """One generated input: named parts (a line, a file, the CSV download's companions) and a format."""

    reader: str
    parts: dict[str, bytes]
    fmt: str | None = None
    as_text: bool = False  # v1: the line given as str (as the demo feeder does), not bytes

    def to_json(self) -> dict[str, Any]:
        return {"reader": self.reader, "fmt": self.fmt, "as_text": self.as_text,
                "parts": {k: v.decode("latin-1") for k, v in self.parts.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Case:
        return cls(data["reader"], {k: v.encode("latin-1") for k, v in data["parts"].items()}, data.get("fmt"),
                   data.get("as_text", False))


# -- storage checks -----------------------------------------------------------------------------------

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


def check_row(table: Any, row: dict[str, Any]) -> None:
    """Raise Unstorable unless PostgreSQL would take `row`'s values into `table`'s columns."""
    for name, value in row.items():
        column = table.c.get(name)
        if column is None:
            continue
        where = f"{table.name}.{name}"
        if value is None:
            if not column.nullable and not column.primary_key:
                raise Unstorable(where, "null in a NOT NULL column")
            continue
        kind = column.type
        if isinstance(kind, String):
            if not isinstance(value, str):
                raise Unstorable(where, f"{type(value).__name__} in a text column")
            check_text(where, value, kind.length)
        elif isinstance(kind, Boolean):
            if not isinstance(value, bool):
                raise Unstorable(where, f"{type(value).__name__} in a boolean column")
        elif isinstance(kind, Integer):
            low, high = _INT64 if isinstance(kind, _BigInteger) else _INT32
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise Unstorable(where, "does not fit the integer column", f"{value!r:.60}")
        elif isinstance(kind, Float):
            if not isinstance(value, int | float) or value != value:
                raise Unstorable(where, "not a number in a float column", f"{value!r:.60}")
        elif isinstance(kind, LargeBinary):
            if not isinstance(value, bytes):
                raise Unstorable(where, f"{type(value).__name__} in a binary column")


def check_text(where: str, value: str, length: int | None = None) -> None:
    if "\x00" in value:
        raise Unstorable(where, "holds a NUL character (PostgreSQL refuses it)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Unstorable(where, "not UTF-8", exc.reason) from None
    if length is not None and len(value) > length:
        raise Unstorable(where, f"longer than the column's {length} characters", str(len(value)))


# Rejects whose reason is a reader's last resort ("unreadable line (ValueError)"): an exception
# caught, not a traceback, but a reason that names no field. Counted per case (see __main__).
CATCH_ALL = re.compile(r"unreadable (?:line|record) \((\w+)\)")
caught: list[str] = []


def check_problem(problem: ParseProblem, *, entra: bool = False) -> None:
    """A reject must say why, and be storable as the loaders store it (redacted; the Entra loader
    also escapes NUL and lone surrogates first, entra_load._storable)."""
    if not isinstance(problem.reason, str) or not problem.reason.strip():
        raise AssertionError(f"a reject without a reason: {problem!r:.200}")
    last_resort = CATCH_ALL.search(problem.reason)
    if last_resort:
        caught.append(last_resort.group(1))
    if entra:
        from dashboard.ingest import entra as entra_load

        storable = getattr(entra_load, "_storable", None)
        if storable is not None:
            problem = storable(problem)
    if not isinstance(problem.line_no, int) or not isinstance(problem.raw, str):
        raise AssertionError(f"a malformed reject: {problem!r:.200}")
    try:
        raw = _redact_raw(problem.raw)
    except Exception as exc:
        raise Unstorable("reject.raw", "redacting it for storage raised", f"{type(exc).__name__}: {exc}") from exc
    check_row(Reject.__table__, {"line_no": problem.line_no, "reason": problem.reason[:1000], "raw": raw})


def _redact_raw(raw: str) -> str:
    from dashboard.ingest.scim import redact_raw

    return redact_raw(raw, RULES)


# -- SCIM request log v1 ------------------------------------------------------------------------------

_PREPARER: Any = None


def _preparer() -> Any:
    global _PREPARER
    if _PREPARER is None:
        names = {f.name for f in dataclasses.fields(prepare.Preparer)}
        extra: dict[str, Any] = {}
        if "not_after_us" in names:  # lines dated after the ingest (plus a tolerance) are rejected
            extra["not_after_us"] = to_us(NOW) + 3600 * 1_000_000
        _PREPARER = prepare.Preparer(rules=RULES, guid_lookups_are_tests=True, job_id=1, job_name="uniflow-prod",
                                     jobs={"uniflow-prod": 1, "other": 2, "uniflow-demo": 3}, **extra)
    return _PREPARER


_EXCHANGE_COLUMNS = {
    "job_id": "P_JOB_ID", "dedupe": "P_DEDUPE", "ts_us": "P_TS_US", "method": "P_METHOD", "operation": "P_OPERATION",
    "status": "P_STATUS", "failed": "P_FAILED", "duration_ms": "P_DURATION_MS", "request_id": "P_REQUEST_ID",
    "cycle_key": "P_CYCLE_KEY", "scim_type": "P_SCIM_TYPE", "error_detail": "P_ERROR_DETAIL", "blob": "P_BLOB",
    "found": "P_FOUND",
}
_USER_COLUMNS = {"user_name": "P_USER_NAME", "external_id": "P_EXTERNAL_ID", "scim_id": "P_SCIM_ID"}


def run_v1(case: Case) -> tuple[int, int]:
    line = case.parts["line"]
    raw: bytes | str = line.decode("utf-8", "replace") if case.as_text else line
    (item,) = _preparer().prepare([(1, raw)])
    if item is None:
        return 0, 0
    if item.__class__ is ParseProblem:
        check_problem(item)
        return 0, 1
    if len(item) == prepare.DEFERRED_LEN:  # classify or pack raised: the loader repeats them and fails
        exchange = item[2]
        try:
            classify(exchange, guid_lookups_are_tests=True)
            codec.pack(prepare.blob_of(exchange))
        except Exception as exc:
            raise Unstorable("exchange", "accepted, but classify or pack raised", f"{type(exc).__name__}: {exc}") from exc
        raise Unstorable("exchange", "accepted, but its preparation was deferred")
    row = {column: item[getattr(prepare, index)] for column, index in _EXCHANGE_COLUMNS.items()
           if hasattr(prepare, index)}
    check_row(Exchange.__table__, row)
    names = {column: item[getattr(prepare, index)] for column, index in _USER_COLUMNS.items()}
    check_row(ScimUser.__table__, {k: v[:512] if isinstance(v, str) else v for k, v in names.items()})
    for name, value in names.items():
        if value is not None:
            check_text(f"scim_user.{name}", value)
    codec.unpack(row["blob"])
    return 1, 0


# -- Entra provisioning logs --------------------------------------------------------------------------


def _check_event(event: ProvisioningEvent) -> None:
    from dashboard.ingest import entra as entra_load

    key = entra_parse.dedupe_key(event)
    try:
        prepared = entra_load._prepare(1, key, event)
    except Exception as exc:
        raise Unstorable("entra_event", "accepted, but preparing its row raised", f"{type(exc).__name__}: {exc}") from exc
    row = prepared[0] if isinstance(prepared, tuple) else prepared.row
    check_row(EntraEvent.__table__, row)
    codec.unpack(row["blob"])


def _check_items(items: Any) -> tuple[int, int]:
    accepted = rejected = 0
    for item in items:
        if isinstance(item, ParseProblem):
            check_problem(item, entra=True)
            rejected += 1
        elif isinstance(item, ProvisioningEvent):
            _check_event(item)
            accepted += 1
        else:
            raise AssertionError(f"the reader yielded a {type(item).__name__}")
    return accepted, rejected


def run_entra(case: Case) -> tuple[int, int]:
    parts = case.parts
    companions = {name: io.BytesIO(parts[name]) for name in ("steps", "modified") if name in parts}
    accepted, rejected = _check_items(entra_parse.read_events(io.BytesIO(parts["data"]), case.fmt, rules=RULES,
                                                              **companions))
    if case.reader == "graph":
        pulled = _pull(parts["data"])
        accepted += pulled[0]
        rejected += pulled[1]
    return accepted, rejected


class _OnePage(GraphClient):
    """A Graph client whose first page is the given document (then an empty page)."""

    def __init__(self, page: dict[str, Any]) -> None:
        super().__init__(GraphConfig("tenant", "client", "secret", max_attempts=1), now=lambda: NOW,
                         sleep=lambda _s: None)
        self.page = page
        self.calls = 0

    def get_json(self, url: str) -> dict[str, Any]:
        self.calls += 1
        return self.page if self.calls == 1 else {"value": []}

    def token(self) -> str:
        return "token"


def _pull(data: bytes) -> tuple[int, int]:
    """The Graph pull's path (entra/graph.py): the page as Graph would answer it."""
    page = loads(data)
    if not isinstance(page, dict):
        return 0, 0  # the pull's JSON reader refuses it (GraphError) before any record is read
    pull = ProvisioningPull(_OnePage(page), None, RULES, since=NOW)
    try:
        return _check_items(pull)
    except GraphError as exc:  # the documented failure of a pull: it keeps its watermark
        if not str(exc):
            raise
        return 0, 1


# -- job status ---------------------------------------------------------------------------------------


def run_job_status(case: Case) -> tuple[int, int]:
    """As `flask ingest --format entra-job-status` reads a file, and what storing it computes."""
    from dashboard.formats.entra import jobstatus

    data = case.parts["data"]
    reader = getattr(jobstatus, "read_job_status_file", None)
    if reader is None:  # the reader of the CLI before it moved into entra/jobstatus.py
        items = _old_job_status_reader(data)
    else:
        items = reader(data)
    accepted = rejected = 0
    for item in items:
        if isinstance(item, ParseProblem):
            check_problem(item, entra=True)
            rejected += 1
            continue
        status = item.status
        try:
            text = orjson.dumps(redact_body(item.data, RULES), option=orjson.OPT_SORT_KEYS).decode()
        except Exception as exc:
            raise Unstorable("entra_job_status", "accepted, but storing it raised", f"{type(exc).__name__}: {exc}") from exc
        check_row(EntraJobStatus.__table__, {
            "entra_job_id": (status.job_id or "")[:300] or None, "code": (status.code or "")[:40] or None,
            "quarantine_reason": ((status.quarantine.reason if status.quarantine else None) or "")[:100] or None,
            "data": text,
        })
        accepted += 1
    return accepted, rejected


@dataclass
class _Doc:
    data: Any
    status: Any


def _old_job_status_reader(data: bytes) -> list[Any]:
    from dashboard.formats.entra.jobstatus import JobStatusError, parse_job_status

    try:
        document = orjson.loads(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
    except (orjson.JSONDecodeError, OSError, EOFError) as exc:
        return [ParseProblem(0, f"not JSON ({exc})", "")]
    documents = document.get("value") if isinstance(document, dict) and isinstance(document.get("value"), list) \
        else [document]
    out: list[Any] = []
    for number, item in enumerate(documents, 1):
        try:
            out.append(_Doc(item, parse_job_status(item)))
        except JobStatusError as exc:
            out.append(ParseProblem(number, str(exc), ""))
    return out


# -- seeds --------------------------------------------------------------------------------------------


def _files(*patterns: str) -> list[bytes]:
    found: list[bytes] = []
    for pattern in patterns:
        found.extend(path.read_bytes() for path in sorted(DATA.glob(pattern)) if path.is_file())
    return found


def v1_seeds() -> list[bytes]:
    from dashboard.demo import simulate

    lines: list[bytes] = []
    for seed, config in enumerate(_sim_configs(simulate)):
        produced, _truth = simulate.simulate_lines(config)
        for number, line in enumerate(produced):
            if number % (7 + seed) == 0:
                lines.append(line.rstrip(b"\n"))
            if number > 4000:
                break
    for sample in _files("samples/**/*.jsonl"):
        lines.extend(line for line in sample.splitlines()[:200] if line.strip())
    lines.extend(_V1_EXTRA)
    return lines


def _sim_configs(simulate: Any) -> list[Any]:
    configs = [simulate.SimConfig(users=40, cycles=3, seed=5, with_cycle_ids=True, auth_outage_cycles=(2,),
                                  lookup_404_cycles=(1,))]
    realistic = getattr(simulate.SimConfig, "realistic", None)
    if realistic is not None:
        try:
            configs.append(realistic(users=30, cycles=3, seed=9))
        except Exception:  # noqa: BLE001 - the simulator's realities are optional seeds
            pass
    return configs


_V1_EXTRA = [
    b'{"timestamp":"2026-11-28T09:00:00+01:00","method":"get","url":"/scim/v2/Users?filter=userName%20eq%20%22a%22",'
    b'"status_code":"200","user_agent":"Microsoft Entra SCIM Client","response":"{\\"totalResults\\":0,\\"Resources\\":[]}"}',
    b'{"time":"2026-11-28T09:00:00Z","method":"PATCH","path":"/scim/v2/Users/1","status":204,"request":'
    b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":'
    b'"urn:ietf:params:scim:schemas:extension:uniFLOWOnline:2.0:User:pin","value":"1234"},{"op":"Replace",'
    b'"value":{"active":false,"cardNumber":"12345678"}}]},"request_headers":{"Authorization":"Bearer x"}}',
    b'{"ts":"2026-11-28T09:00:00Z","method":"POST","path":"/scim/v2/Users","status":409,"duration_ms":41.0,'
    b'"job":"other","cycle_id":"c1","request_id":"r1","request_body":{"userName":"ryan@contoso.com","externalId":"r"},'
    b'"response_body":{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"409",'
    b'"scimType":"uniqueness","detail":"userName already exists"},"unknown":{"kept":[1,2,3]}}',
    b'{"ts":"2026-11-28T09:00:00Z","method":"DELETE","path":"/scim/v2/Users/9","status":0}',
]


def graph_seeds() -> list[bytes]:
    from dashboard.demo.entra_pages import generate_records

    pages = _files("entra/graph-*.json", "samples/graph/provisioningobjectsummary*.json")
    rng = random.Random(11)
    records = list(generate_records(60, seed=3))
    for start in range(0, 60, 4):
        chunk = records[start:start + rng.randrange(1, 5)]
        page: dict[str, Any] = {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#auditLogs/provisioning",
                                "value": chunk}
        if start % 8 == 0:
            page["@odata.nextLink"] = "https://graph.microsoft.com/v1.0/auditLogs/provisioning?$skiptoken=x"
        pages.append(orjson.dumps(page, option=orjson.OPT_INDENT_2 if start % 3 else 0))
    pages.append(b"\n".join(orjson.dumps(r) for r in records[:3]) + b"\n")  # JSON Lines of records
    return pages


def portal_seeds() -> list[bytes]:
    from dashboard.demo.entra_pages import generate_records

    seeds = _files("entra/portal-download.json")
    records = list(generate_records(12, seed=5))
    for start in range(0, 12, 3):
        chunk = []
        for record in records[start:start + 3]:
            record = dict(record)
            record["action"] = str(record.pop("provisioningAction", "create")).capitalize()
            record["statusInfo"] = record.pop("provisioningStatusInfo", {})
            chunk.append(record)
        seeds.append(orjson.dumps(chunk))
    return seeds


def la_seeds() -> list[bytes]:
    return _files("entra/la-*.json", "entra/diagnostic-events.jsonl", "entra/la-export.csv")


def csv_seeds() -> list[dict[str, bytes]]:
    folder = DATA / "entra" / "csv"
    logs = sorted(p for p in folder.glob("*.csv") if "Steps" not in p.name and "Modified" not in p.name)
    seeds = []
    for path in logs:
        steps = next(iter(folder.glob("*Steps*.csv")), None)
        modified = next(iter(folder.glob("*Modified*.csv")), None)
        seed = {"data": path.read_bytes()}
        if steps:
            seed["steps"] = steps.read_bytes()
        if modified:
            seed["modified"] = modified.read_bytes()
        seeds.append(seed)
    return seeds


def job_seeds() -> list[bytes]:
    docs = _files("entra/job-*.json", "samples/graph/synchronization*.json")
    decoded = [d for d in (loads(doc) for doc in docs) if isinstance(d, dict)]
    docs.append(orjson.dumps({"value": decoded}))
    for doc in decoded:
        if isinstance(doc.get("status"), dict):
            docs.append(orjson.dumps(doc["status"]))
    return docs


# -- generators ---------------------------------------------------------------------------------------

V1_KEYS = ("ts", "timestamp", "time", "method", "path", "url", "query", "status", "status_code", "duration_ms",
           "request_id", "client", "user_agent", "job", "cycle_id", "request_headers", "request_body", "request",
           "response_body", "response", "userName", "externalId", "id", "Operations", "op", "value", "Resources",
           "totalResults", "schemas", "detail", "scimType", "active", "members", "pin", "password")
ENTRA_KEYS = ("id", "activityDateTime", "changeId", "cycleId", "jobId", "provisioningAction", "action",
              "provisioningStatusInfo", "statusInfo", "status", "errorInformation", "errorCode", "reason",
              "durationInMilliseconds", "sourceIdentity", "targetIdentity", "servicePrincipal", "provisioningSteps",
              "modifiedProperties", "details", "displayName", "oldValue", "newValue", "identityType",
              "provisioningStepType", "name", "TimeGenerated", "ResultType", "ResultSignature", "ResultDescription",
              "ProvisioningSteps", "ModifiedProperties", "SourceIdentity", "TargetIdentity", "properties", "records",
              "category", "operationName", "tables", "columns", "rows", "value", "@odata.nextLink", "userName",
              "externalId", "UserPrincipalName", "additionalDetails", "key", "Key", "Value")
JOB_KEYS = ("id", "templateId", "status", "code", "quarantine", "reason", "currentBegan", "nextAttempt", "seriesBegan",
            "seriesCount", "error", "message", "tenantActionable", "progress", "completedUnits", "totalUnits", "units",
            "progressObservationDateTime", "lastExecution", "lastSuccessfulExecution", "timeBegan", "timeEnded",
            "countEntitled", "countExported", "schedule", "interval", "state", "expiration",
            "steadyStateFirstAchievedTime", "countSuccessiveCompleteFailures", "escrowsPruned",
            "synchronizedEntryCountByType", "synchronizationJobSettings", "value", "key", "troubleshootingUrl")


@dataclass
class Reader:
    name: str
    run: Callable[[Case], tuple[int, int]]
    generate: Callable[[random.Random, int, Reader], Case]
    seeds: Callable[[], list[Any]]
    fmt: str | None = None
    keys: tuple[str, ...] = ()
    _seeds: list[Any] | None = field(default=None, repr=False)
    _fragments: list[Any] | None = field(default=None, repr=False)

    def seed_list(self) -> list[Any]:
        if self._seeds is None:
            self._seeds = self.seeds()
        return self._seeds

    def fragments(self) -> list[Any]:
        """Parts of the seeds (records, steps, bodies) to splice into other documents."""
        if self._fragments is None:
            found: list[Any] = []
            for seed in self.seed_list()[:40]:
                value = loads(seed) if isinstance(seed, bytes) else None
                if value is None:
                    continue
                for path in hostile.paths(value, 60)[1:]:
                    node = hostile.get(value, path)
                    if isinstance(node, dict | list) and node:
                        found.append(node)
            self._fragments = found[:500]
        return self._fragments


def _json_document(rng: random.Random, index: int, reader: Reader, seed: bytes, *, compact: bool) -> bytes:
    """A mutant of a JSON seed: structural mutations, then (sometimes) byte-level ones."""
    roll = rng.random()
    value = loads(seed)
    if value is None or roll < 0.1:  # not JSON as a whole (JSON Lines, CSV): bytes only
        data = seed
        for _ in range(rng.randrange(1, 4)):
            data = mutate_bytes(rng, data, index)
        return data
    if roll < 0.15:  # from scratch, with the reader's field names
        value = {rng.choice(reader.keys): hostile.random_value(rng, 3) for _ in range(rng.randrange(1, 8))}
        if rng.random() < 0.5:
            value = {"value": [value]} if reader.name == "graph" else [value]
    else:
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
            value = mutate(rng, value, reader.keys, reader.fragments())
    text = dumps(value, indent=not compact and rng.random() < 0.3).encode("utf-8", "surrogatepass")
    if rng.random() < 0.15:
        text = mutate_bytes(rng, text, index)
    if rng.random() < 0.03:
        text = gzip.compress(text)
        if rng.random() < 0.3:
            text = text[: rng.randrange(len(text))]
    return text


def gen_v1(rng: random.Random, index: int, reader: Reader) -> Case:
    seed = rng.choice(reader.seed_list())
    roll = rng.random()
    if roll < 0.05:  # the line as a JSON string: escaped JSON
        line = orjson.dumps(seed.decode("utf-8", "replace"))
    elif roll < 0.08:  # a value where a key belongs
        line = seed.replace(b'{"', b'{1:"', 1) if rng.random() < 0.5 else seed.replace(b'":', b'"', 1)
    elif roll < 0.1:
        line = b"\xef\xbb\xbf" + seed
    else:
        line = _json_document(rng, index, reader, seed, compact=True)
    return Case("v1", {"line": line}, as_text=rng.random() < 0.1)


def gen_json_file(rng: random.Random, index: int, reader: Reader) -> Case:
    seed = rng.choice(reader.seed_list())
    if seed.lstrip(b"\xef\xbb\xbf")[:1] in (b"{", b"["):
        data = _json_document(rng, index, reader, seed, compact=False)
    else:  # Log Analytics' CSV export
        data = _csv_mutant(rng, index, seed)
    return Case(reader.name, {"data": data}, reader.fmt if rng.random() < 0.9 else None)


def gen_csv(rng: random.Random, index: int, reader: Reader) -> Case:
    seed = dict(rng.choice(reader.seed_list()))
    for name in list(seed):
        if rng.random() < 0.5:
            seed[name] = _csv_mutant(rng, index, seed[name])
    if rng.random() < 0.1:
        seed.pop(rng.choice(list(seed)))
        if "data" not in seed:
            seed["data"] = b""
    return Case("portal-csv", seed, reader.fmt if rng.random() < 0.9 else None)


def gen_job(rng: random.Random, index: int, reader: Reader) -> Case:
    seed = rng.choice(reader.seed_list())
    return Case("job-status", {"data": _json_document(rng, index, reader, seed, compact=False)})


def _csv_mutant(rng: random.Random, index: int, data: bytes) -> bytes:
    """A CSV file with cells, rows or columns changed, then (sometimes) its bytes."""
    text = data.decode("utf-8", "replace")
    bom = text.startswith("\ufeff")
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), delimiter=delimiter))
    for _ in range(rng.randrange(1, 5)):
        if not rows:
            break
        op = rng.randrange(7)
        row = rng.choice(rows)
        if op <= 2 and row:  # a cell
            at = rng.randrange(len(row))
            value = hostile.hostile(rng)
            row[at] = value if isinstance(value, str) else (value.text if isinstance(value, Raw) else dumps(value))
        elif op == 3:  # a row repeated
            rows.insert(rng.randrange(len(rows) + 1), list(row))
        elif op == 4 and row:  # a cell dropped or added
            if rng.random() < 0.5:
                row.pop(rng.randrange(len(row)))
            else:
                row.insert(rng.randrange(len(row) + 1), "extra")
        elif op == 5 and rows[0]:  # a header renamed
            rows[0][rng.randrange(len(rows[0]))] = rng.choice(ENTRA_KEYS + ("Change ID", "Date (UTC)", "", "Status"))
        else:  # a JSON cell nested deep, or a reason quoting a secret
            if row:
                row[rng.randrange(len(row))] = hostile.deep(rng).text if rng.random() < 0.5 else \
                    '{"pin": "1234", "password": "' + "x" * rng.randrange(50) + '"}'
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=rng.choice((delimiter,) * 4 + (",", ";", "\t")),
                        lineterminator=rng.choice(("\r\n", "\n")))
    writer.writerows(rows)
    result = (("\ufeff" if bom else "") + out.getvalue()).encode("utf-8", "surrogatepass")
    if rng.random() < 0.3:
        result = mutate_bytes(rng, result, index)
    return result


READERS: dict[str, Reader] = {
    reader.name: reader
    for reader in (
        Reader("v1", run_v1, gen_v1, v1_seeds, keys=V1_KEYS),
        Reader("graph", run_entra, gen_json_file, graph_seeds, fmt="entra-graph", keys=ENTRA_KEYS),
        Reader("portal-json", run_entra, gen_json_file, portal_seeds, fmt="entra-portal-json", keys=ENTRA_KEYS),
        Reader("portal-csv", run_entra, gen_csv, csv_seeds, fmt="entra-csv", keys=ENTRA_KEYS),
        Reader("log-analytics", run_entra, gen_json_file, la_seeds, fmt="log-analytics", keys=ENTRA_KEYS),
        Reader("job-status", run_job_status, gen_job, job_seeds, keys=JOB_KEYS),
    )
}


def run_case(case: Case) -> tuple[int, int]:
    return READERS[case.reader].run(case)
