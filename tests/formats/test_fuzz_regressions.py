"""Hostile inputs found by `make fuzz`, ingested end to end on SQLite and PostgreSQL: each line or
record is stored or rejected with its reason, the rest of the file goes in, nothing raises."""
from __future__ import annotations

import io

import orjson
from sqlalchemy import select

from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.formats.entra.parse import read_events
from dashboard.ingest.entra import import_events
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.models import EntraEvent, Exchange, Reject
from dashboard.settings import IngestSettings

JOB = "uniflow-prod"
_HEAD = b'{"ts":"2026-11-28T09:00:%02dZ","method":"POST","path":"/scim/v2/Users","status":201'


def _line(second: int, rest: bytes = b"") -> bytes:
    return (_HEAD % second) + rest + b"}"


def _deep(levels: int) -> bytes:
    return b'{"a":' * levels + b'{"pin":"4711"}' + b"}" * levels


def _ingest(lines: list[bytes]):  # type: ignore[no-untyped-def]
    options = options_from(IngestSettings(batch_size=3, future_tolerance_minutes=10**7)
                           if "future_tolerance_minutes" in IngestSettings.__dataclass_fields__ else IngestSettings(batch_size=3))
    return ingest_lines(db.engine, get_job(JOB), list(enumerate(lines, start=1)), source="hostile.jsonl", via="cli",
                        options=options)


def test_hostile_lines_are_rejects_with_their_reason_and_the_others_are_stored(app):  # type: ignore[no-untyped-def]
    lines = [
        _line(1, b',"request_body":{"userName":"a@contoso.com"}'),
        _line(2, b',"request_body":' + _deep(253)),  # orjson could not pack it
        _line(3, b',"request_body":{"pin":"4711","x":' + _deep(400) + b"}"),
        _line(4, b',"request_body":' + _deep(990)),  # the redaction's recursion gave up
        _line(5, b',"request":' + _deep(1100)),  # beyond what orjson decodes
        _line(6, b',"response_body":{"userName":"b\\u0000@contoso.com"}'),  # PostgreSQL refuses NUL in text
        orjson.dumps(_line(7).decode()),  # escaped JSON
        _line(8)[:-9],  # truncated
        b"\xef\xbb\xbf" + _line(9, b',"request_body":{"userName":"c@contoso.com"}'),  # a BOM
    ]

    result = _ingest(lines)

    assert (result.lines, result.accepted, result.rejected) == (9, 2, 7)
    rejects = {r.line_no: r for r in db.session.scalars(select(Reject))}
    assert {n: r.reason for n, r in rejects.items() if n in (2, 3, 4, 5, 6)} == {
        2: "field 'request_body' is nested deeper than 64 levels",
        3: "field 'request_body' is nested deeper than 64 levels",
        4: "field 'request_body' is nested deeper than 64 levels",
        5: "field 'request' is nested deeper than 64 levels",
        6: "field 'response_body' contains a NUL character",
    }
    assert rejects[7].reason == "a line must be a JSON object, not a string (escaped JSON?)"
    assert rejects[8].reason.startswith("malformed JSON")
    assert all("4711" not in r.raw for r in rejects.values())  # redacted, also when cut for depth
    assert '"[REDACTED]"' in rejects[3].raw
    assert len(db.session.scalars(select(Exchange)).all()) == 2


def _record(**fields) -> dict:  # type: ignore[no-untyped-def]
    record = {"id": "r1", "activityDateTime": "2026-03-01T00:00:00Z", "provisioningAction": "create",
              "provisioningStatusInfo": {"status": "success"}, "targetIdentity": {"id": "t1", "identityType": "User"},
              "modifiedProperties": [{"displayName": "userName", "newValue": "a@contoso.com"}]}
    record.update(fields)
    return record


def _import(data: bytes, fmt: str | None = None):  # type: ignore[no-untyped-def]
    options = options_from(IngestSettings(batch_size=2))
    items = (("hostile.json", item) for item in read_events(io.BytesIO(data), fmt, rules=options.rules))
    return import_events(db.engine, get_job(JOB), items, source="hostile.json", via="cli", options=options)


def test_hostile_entra_records_are_rejects_with_their_reason_and_the_others_are_stored(app):  # type: ignore[no-untyped-def]
    deep = orjson.dumps(_record(id="r2"))[:-1] + b',"provisioningSteps":' + _deep(300) + b"}"
    page = b'{"value":[' + b",".join([
        orjson.dumps(_record()), deep,
        orjson.dumps(_record(id="r3", targetIdentity={"id": "t\u0000"})),
        orjson.dumps(_record(id="r4", activityDateTime="0001-01-01T00:00:00+01:00")),
        orjson.dumps(_record(id="r5", sourceIdentity={"id": "s5", "displayName": "Ann\u00a0\u202e"})),
    ]) + b"]}"

    result = _import(page)

    assert (result.lines, result.accepted, result.rejected) == (5, 2, 3)
    assert sorted(db.session.scalars(select(EntraEvent.entra_id))) == ["r1", "r5"]
    reasons = sorted(r.reason for r in db.session.scalars(select(Reject)))
    assert reasons == [
        "record 2: field 'provisioningSteps' is nested deeper than 64 levels",
        "record 3: field 'targetIdentity.id' contains a NUL character",
        "record 4: field 'activityDateTime' is out of range in UTC: '0001-01-01T00:00:00+01:00'",
    ]
    assert all("4711" not in r.raw and "\x00" not in r.raw for r in db.session.scalars(select(Reject)))


def test_a_log_analytics_row_with_nested_json_too_deep_is_a_reject(app):  # type: ignore[no-untyped-def]
    rows = [{"TimeGenerated": "2026-03-01T00:00:00Z", "Id": "la-1", "ResultType": "Success",
             "ProvisioningSteps": "[" * 300 + "]" * 300},
            {"TimeGenerated": "2026-03-01T00:00:01Z", "Id": "la-2", "ResultType": "Success"}]

    result = _import(orjson.dumps(rows), "log-analytics")

    assert (result.accepted, result.rejected) == (1, 1)
    (reject,) = db.session.scalars(select(Reject))
    assert reject.reason == "record 1: field 'ProvisioningSteps' is nested deeper than 64 levels"


# -- without a database: what the loaders do with a reader's output ----------------------------------


def _storable_raw(raw: str) -> str:
    """What save_rejects does with a reject's raw text (load.redact_raw), which must not raise."""
    from dashboard.formats.scim.redact import DEFAULT_RULES
    from dashboard.ingest.scim import redact_raw

    return redact_raw(raw, DEFAULT_RULES)


def test_a_csv_row_of_brackets_is_kept_cut_below_the_limit_for_the_rejects_list():
    logs = b"Date,Id,Action,Status\n" + b"[" * 980 + b"]" * 980 + b"\n"

    (problem,) = list(read_events(io.BytesIO(logs), "entra-csv"))

    assert problem.raw.startswith("[[[") and problem.raw.count("[") == 65
    assert _storable_raw(problem.raw)


def test_a_damaged_record_too_deep_for_the_standard_library_is_kept_storable():
    from dashboard.formats.scim.redact import deeper_than

    # 995 levels: the standard library's scanner (salvage path) gives up; orjson would decode it
    data = b'{"value":[{"id":"a","activityDateTime":"2026-03-01T00:00:00Z"},' + b"[" * 995 + b"]" * 995 + b","

    problems = [i for i in read_events(io.BytesIO(data), "entra-graph") if not hasattr(i, "activity_at")]

    assert [p.line_no for p in problems] == [1, 2]  # the first record (no status), the deep one
    for problem in problems:
        assert _storable_raw(problem.raw) is not None  # redacting it for storage does not raise
        try:
            kept = orjson.loads(problem.raw)
        except orjson.JSONDecodeError:
            continue
        assert not deeper_than(kept, 65)


class _Pages:
    """A Graph client answering one page of records (then an empty page)."""

    def __init__(self, records: list[dict]) -> None:
        from datetime import UTC, datetime

        from dashboard.ingest.graph.client import GraphClient, GraphConfig

        self.client = GraphClient(GraphConfig("t", "c", "s"), now=lambda: datetime(2026, 3, 2, tzinfo=UTC),
                                  sleep=lambda _s: None)
        pages = [{"value": records}, {"value": []}]
        self.client.get_json = lambda _url: pages.pop(0)  # type: ignore[method-assign]
        self.client.token = lambda: "token"  # type: ignore[method-assign]


def test_a_pull_reads_an_event_dated_in_year_one_and_its_watermark_still_works():
    from dashboard.formats.scim.redact import DEFAULT_RULES
    from dashboard.ingest.graph.client import Watermark

    record = _record(activityDateTime="0001-01-01T00:00:00Z")
    pull = _Pages([record]).client.pull(None, rules=DEFAULT_RULES)

    assert [e.id for e in pull] == ["r1"]  # no OverflowError (watermark minus the overlap)
    assert pull.complete and pull.watermark == Watermark(pull.watermark.activity_at, frozenset({"r1"}))
    again = _Pages([]).client.pull(pull.watermark, rules=DEFAULT_RULES)
    assert list(again) == [] and again.first_url()
