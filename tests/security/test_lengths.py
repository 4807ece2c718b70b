"""Every column's limit holds the same way on SQLite and PostgreSQL (issue 12): a value longer
than its column is cut to it with a marker ("…") before it is stored, never stored whole (SQLite
would keep it) nor refused by the database (PostgreSQL would fail the batch)."""
from __future__ import annotations

import orjson
import pytest
from sqlalchemy import String, select

from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.formats.limits import CUT_MARK, fit
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.models import EntraEvent, Exchange, IngestRun, Reject, ScimUser

JOB = "uniflow-prod"
LONG = 100_000


def _ingest(settings, lines, source="test"):  # type: ignore[no-untyped-def]
    return ingest_lines(db.engine, get_job(JOB), enumerate(lines, start=1), source=source, via="cli",
                        options=options_from(settings.ingest, cycles=settings.cycles))


def _line(**fields) -> bytes:  # type: ignore[no-untyped-def]
    return orjson.dumps({"ts": "2026-11-28T09:00:00Z", "method": "GET", "path": "/scim/v2/Users", "status": 200,
                         **fields})


def _every_limited_column_holds() -> list[str]:
    """Each String(n) value stored anywhere that is longer than n (none, when limits hold)."""
    db.session.rollback()
    over = []
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            limited = [c for c in table.columns if isinstance(c.type, String) and c.type.length]
            for row in conn.execute(select(*limited)) if limited else ():
                for column, value in zip(limited, row, strict=True):
                    if isinstance(value, str) and len(value) > column.type.length:
                        over.append(f"{table.name}.{column.name}: {len(value)} > {column.type.length}")
    return over


def test_fit_cuts_with_a_marker_to_the_exact_size():
    assert fit("abc", 3) == "abc"
    assert fit("abcd", 3) == "ab" + CUT_MARK
    assert fit(None, 3) is None


@pytest.mark.parametrize(("field", "column", "size"), [
    ("request_id", Exchange.request_id, 200),
    ("cycle_id", Exchange.cycle_key, 200),
])
def test_an_identifier_longer_than_its_column_is_cut_with_a_marker(app, settings, field, column, size):
    result = _ingest(settings, [_line(**{field: "r" * LONG})])

    assert result.accepted == 1, result.problems
    stored = db.session.scalar(select(column))
    assert stored == "r" * (size - 1) + CUT_MARK
    assert _every_limited_column_holds() == []


def test_a_scim_type_longer_than_its_column_is_cut_with_a_marker(app, settings):
    error = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "400", "scimType": "t" * LONG,
             "detail": "d" * LONG}
    result = _ingest(settings, [_line(method="PATCH", path="/scim/v2/Users/1", status=400, response_body=error)])

    assert result.accepted == 1, result.problems
    assert db.session.scalar(select(Exchange.scim_type)) == "t" * 63 + CUT_MARK
    assert _every_limited_column_holds() == []


@pytest.mark.parametrize("attribute", ["userName", "externalId"])
def test_a_user_name_or_id_longer_than_its_column_is_cut_with_a_marker(app, settings, attribute):
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "u@contoso.com", attribute: "n" * LONG}
    result = _ingest(settings, [_line(method="POST", status=201, request_body=body,
                                      response_body={**body, "id": "i" * LONG})])

    assert result.accepted == 1, result.problems
    user = db.session.scalars(select(ScimUser)).one()
    value = user.user_name if attribute == "userName" else user.external_id
    assert value == "n" * 511 + CUT_MARK
    assert _every_limited_column_holds() == []


def test_a_source_name_longer_than_its_column_is_cut_with_a_marker(app, settings):
    result = _ingest(settings, [b"not json"], source="s" * LONG)

    assert result.rejected == 1
    assert db.session.scalar(select(Reject.source)) == "s" * 499 + CUT_MARK
    assert db.session.scalar(select(IngestRun.source)) == "s" * 499 + CUT_MARK
    assert _every_limited_column_holds() == []


def test_entra_fields_longer_than_their_columns_are_cut_with_a_marker(app, settings, tmp_path, runner):
    record = {
        "id": "e" * LONG, "activityDateTime": "2026-11-28T09:00:00Z", "cycleId": "c" * LONG, "changeId": "h" * LONG,
        "jobId": "j" * LONG, "provisioningAction": "update",
        "provisioningStatusInfo": {"status": "failure", "errorInformation": {"errorCode": "x" * LONG, "reason": "r"}},
        "sourceIdentity": {"id": "s" * LONG, "displayName": "d" * LONG, "identityType": "User", "details": {}},
        "targetIdentity": {"id": "t" * LONG, "displayName": "d" * LONG, "identityType": "User", "details": {}},
        "modifiedProperties": [{"displayName": "userName", "oldValue": None, "newValue": "n" * LONG}],
    }
    page = tmp_path / "page.json"
    page.write_bytes(orjson.dumps({"value": [record]}))

    result = runner.invoke(args=["ingest", str(page), "--job", JOB, "--format", "entra-graph"])

    assert result.exit_code == 0, result.output
    event = db.session.scalars(select(EntraEvent)).one()
    assert (len(event.entra_id), event.entra_id[-1]) == (200, CUT_MARK)
    assert (len(event.entra_job_id), len(event.error_code), len(event.target_id)) == (300, 200, 512)
    assert _every_limited_column_holds() == []


def test_a_scim_id_in_the_path_longer_than_its_column_is_cut_with_a_marker(app, settings):
    result = _ingest(settings, [_line(method="PATCH", path="/scim/v2/Users/" + "p" * LONG, status=204)])

    assert result.accepted == 1, result.problems
    assert db.session.scalar(select(ScimUser.scim_id)) == "p" * 511 + CUT_MARK
    assert _every_limited_column_holds() == []
