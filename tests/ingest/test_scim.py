"""Loading lines into the database: dedupe, rejects, users, redaction, export round trip."""
from __future__ import annotations

import orjson
from sqlalchemy import func, select

from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.models import Exchange, IngestRun, Reject, ScimUser
from dashboard.queries.export import export_lines
from dashboard.settings import IngestSettings

URN = "urn:ietf:params:scim:schemas:extension:uniFLOWOnline:2.0:User"


def line(**fields) -> bytes:  # type: ignore[no-untyped-def]
    base = {"ts": "2026-11-28T09:00:00.000Z", "method": "GET", "path": "/scim/v2/Users", "status": 200}
    base.update(fields)
    return orjson.dumps(base)


def ingest(raw_lines: list[bytes], job: str = "uniflow-prod", batch_size: int = 3, **options):  # type: ignore[no-untyped-def]
    opts = options_from(IngestSettings(batch_size=batch_size), **options)
    return ingest_lines(db.engine, get_job(job), list(enumerate(raw_lines, start=1)),
                        source="test.jsonl", via="cli", options=opts)


def lifecycle() -> list[bytes]:
    return [
        line(ts="2026-11-28T09:00:00.100Z", query='filter=userName eq "ryan@contoso.com"', request_id="r1",
             response_body={"totalResults": 0, "Resources": []}),
        line(ts="2026-11-28T09:00:00.200Z", method="POST", status=201, request_id="r2",
             request_body={"userName": "ryan@contoso.com", "externalId": "ryan", URN: {"pin": "4711", "cardNumber": "99887766"}},
             response_body={"id": "id-ryan", "userName": "ryan@contoso.com"},
             request_headers={"authorization": "Bearer s3cr3t-t0ken"}),
        line(ts="2026-11-28T09:40:00.000Z", method="PATCH", path="/scim/v2/Users/id-ryan", status=200, request_id="r3",
             request_body={"Operations": [{"op": "Replace", "path": "active", "value": "False"}]}),
        line(ts="2026-11-28T09:41:00.000Z", method="DELETE", path="/scim/v2/Users/id-ryan", status=404, request_id="r4",
             response_body={"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "404", "detail": "User id-ryan not found"}),
    ]


def test_it_stores_each_exchange_with_its_operation_user_and_failure(app):  # type: ignore[no-untyped-def]
    result = ingest(lifecycle())

    assert (result.accepted, result.duplicates, result.rejected) == (4, 0, 0)
    rows = db.session.scalars(select(Exchange).order_by(Exchange.ts_us)).all()
    assert [r.operation for r in rows] == ["lookup", "create", "disable", "delete"]
    assert [r.failed for r in rows] == [False, False, False, True]
    assert len({r.user_id for r in rows}) == 1
    user = db.session.get(ScimUser, rows[0].user_id)
    assert (user.user_name, user.external_id, user.scim_id) == ("ryan@contoso.com", "ryan", "id-ryan")
    assert rows[3].error_detail == "User id-ryan not found"


def test_it_stores_an_exchange_once_however_often_it_is_ingested(app):  # type: ignore[no-untyped-def]
    ingest(lifecycle())
    again = ingest(lifecycle() + lifecycle())

    assert (again.accepted, again.duplicates) == (0, 8)
    assert db.session.scalar(select(func.count()).select_from(Exchange)) == 4


def test_it_dedupes_lines_without_request_id_by_content(app):  # type: ignore[no-untyped-def]
    raw = [line(ts="2026-11-28T09:00:00.100Z"), line(ts="2026-11-28T09:00:00.200Z")]
    first = ingest(raw + raw)

    assert (first.accepted, first.duplicates) == (2, 2)


def test_it_keeps_every_good_line_around_bad_ones_and_reports_them_by_number(app):  # type: ignore[no-untyped-def]
    raw = lifecycle()
    raw.insert(1, b'{"ts": "2026-11-28T09:00:00Z", "method": "GET"')
    raw.insert(3, b"\x00\xff\xfe binary junk")
    raw.insert(5, line(ts="yesterday"))

    result = ingest(raw)

    assert (result.accepted, result.rejected) == (4, 3)
    assert [p.line_no for p in result.problems] == [2, 4, 6]
    assert "'ts'" in result.problems[2].reason
    stored = db.session.scalars(select(Reject).order_by(Reject.line_no)).all()
    assert [r.line_no for r in stored] == [2, 4, 6]


def test_it_resolves_a_patch_that_arrives_before_the_create_that_named_its_id(app):  # type: ignore[no-untyped-def]
    raw = lifecycle()
    ingest([raw[2]])  # the PATCH by id alone: a user known only by its SCIM id
    ingest([raw[1]])  # the create that tells who id-ryan is

    users = db.session.scalars(select(ScimUser)).all()
    assert len(users) == 1
    assert users[0].user_name == "ryan@contoso.com"
    assert {e.user_id for e in db.session.scalars(select(Exchange))} == {users[0].id}


def test_it_resolves_users_across_separate_ingests(app):  # type: ignore[no-untyped-def]
    raw = lifecycle()
    ingest(raw[:2])
    ingest(raw[2:])

    assert db.session.scalar(select(func.count()).select_from(ScimUser)) == 1


def test_it_never_writes_secrets(app):  # type: ignore[no-untyped-def]
    ingest(lifecycle())

    blob = db.session.scalars(select(Exchange).where(Exchange.operation == "create")).one().details()
    assert blob["request_body"][URN]["pin"] == "[REDACTED]"
    assert blob["request_body"][URN]["cardNumber"] == "****7766"
    assert blob["request_headers"]["authorization"] == "[REDACTED]"


def test_it_routes_lines_naming_another_known_job_and_rejects_unknown_jobs(app):  # type: ignore[no-untyped-def]
    from dashboard.admin.jobs import add_job

    add_job("uniflow-emea")
    result = ingest([line(job="uniflow-emea"), line(job="nope", ts="2026-11-28T09:00:01Z")])

    assert result.accepted == 1
    assert "unknown job 'nope'" in result.problems[0].reason
    assert db.session.scalar(select(Exchange.job_id)) == get_job("uniflow-emea").id


def test_it_records_the_run_with_its_counts(app):  # type: ignore[no-untyped-def]
    ingest(lifecycle() + [b"junk"])

    run = db.session.scalars(select(IngestRun)).one()
    assert (run.lines, run.accepted, run.rejected) == (5, 4, 1)
    assert run.finished_at is not None


def test_it_exports_what_reingests_into_the_same_rows(app):  # type: ignore[no-untyped-def]
    ingest(lifecycle())
    job = get_job("uniflow-prod")
    exported = list(export_lines(db.session, job))
    before = _snapshot()

    again = ingest(exported)

    assert again.duplicates == 4  # the export is the same exchanges, redacted
    assert _snapshot() == before
    first = orjson.loads(exported[1])
    assert first["request_body"][URN]["pin"] == "[REDACTED]"
    assert first["ts"] == "2026-11-28T09:00:00.200Z"


def test_it_exports_one_users_exchanges_in_a_time_window(app):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    ingest(lifecycle() + [line(ts="2026-11-28T09:00:00.150Z", query='filter=userName eq "ana@contoso.com"')])
    job = get_job("uniflow-prod")

    mine = list(export_lines(db.session, job, user="RYAN@contoso.com",
                             since=datetime(2026, 11, 28, 9, 0, 0, 150000, tzinfo=UTC),
                             until=datetime(2026, 11, 28, 9, 41, tzinfo=UTC)))

    assert [orjson.loads(m)["request_id"] for m in mine] == ["r2", "r3"]


def _snapshot() -> list[tuple]:
    return [
        (e.ts_us, e.method, e.operation, e.status, e.failed, e.user_id, e.request_id, e.details())
        for e in db.session.scalars(select(Exchange).order_by(Exchange.ts_us))
    ]
