"""Issue 10 item 2, Entra side: a record that fails inside its batch's transaction never stops the
import. The batch is rolled back and its records stored one by one; the ones that still fail are
rejects naming the file, the record and the exception's class; the rest of the input is stored and
the CLI exits 1. The same loader serves the CLI, the Graph pull and the demo feeder.

Failures are real: a trigger through which the database refuses chosen rows, an event holding a
lone surrogate (no database driver can encode it), a NUL character (PostgreSQL takes none in text).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy import func, select

from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.demo.entra import load_entra_demo
from dashboard.formats.entra.parse import convert_record
from dashboard.formats.scim.parse import read_lines
from dashboard.ingest.entra import import_events
from dashboard.ingest.graph.pull import pull_job
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.models import Cycle, EntraEvent, IngestRun, Reject, ScimUser
from dashboard.tracking.rebuild import rebuild
from tests.db_faults import refusing_inserts
from tests.ingest.graph.conftest import JOB_ID, SP_ID, FakeGraph, no_proxy
from tests.ingest.graph.conftest import record as graph_record
from tests.local_http import serving

JOB = "uniflow-prod"
AT = datetime(2026, 3, 1, 8, tzinfo=UTC)
SURROGATE = "\\ud800"  # as JSON text: a lone high surrogate


def _record(number: int, *, user: str | None = None, action: str = "create", cycle: str = "cycle-1") -> dict:
    name = user or f"user{number}@contoso.com"
    return {
        "id": f"event-{number}", "activityDateTime": (AT + timedelta(seconds=number)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cycleId": cycle, "changeId": f"change-{number}", "jobId": "scim.tenant.job", "provisioningAction": action,
        "provisioningStatusInfo": {"status": "success"},
        "sourceIdentity": {"id": f"src-{number}", "displayName": name, "identityType": "User",
                           "details": {"UserPrincipalName": name}},
        "targetIdentity": {"id": f"tgt-{number}", "displayName": name, "identityType": "User", "details": {}},
        "modifiedProperties": [{"displayName": "userName", "oldValue": None, "newValue": name}],
    }


def _options(settings):  # type: ignore[no-untyped-def]
    return options_from(settings.ingest, cycles=settings.cycles)


def _count(model, *where) -> int:  # type: ignore[no-untyped-def]
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _event_ids() -> set[str]:
    db.session.rollback()
    return set(db.session.scalars(select(EntraEvent.entra_id)))


def refusing(condition: str):  # type: ignore[no-untyped-def]
    """The database refuses to insert an entra_event row for which `condition` (on NEW) holds."""
    return refusing_inserts("entra_event", condition, name="issue10_refuse")


# -- the CLI ---------------------------------------------------------------------------------------


def test_a_record_the_database_refuses_is_a_reject_and_the_rest_of_the_file_is_stored(runner, tmp_path):  # type: ignore[no-untyped-def]
    # 120 records, batches of 50 (the tests' batch size): the database refuses record 60, in the
    # second batch
    page = tmp_path / "page.json"
    records = [_record(n) for n in range(1, 121)]
    records[59]["id"] = "poison-60"
    page.write_bytes(orjson.dumps({"value": records}))

    with refusing("NEW.entra_id LIKE 'poison%'"):
        result = runner.invoke(args=["ingest", str(page), "--job", JOB])

    assert result.exit_code == 1, result.output
    assert "120 Entra records: 119 accepted, 0 duplicates, 1 rejected" in result.output
    assert f"rejected: {page}: record 60 (id poison-60): cannot be stored (" in result.output
    assert _event_ids() == {f"event-{n}" for n in range(1, 121) if n != 60}
    (reject,) = db.session.scalars(select(Reject)).all()
    assert (reject.source, reject.line_no) == (str(page), 60)
    assert reject.reason.startswith("record 60 (id poison-60): cannot be stored (")
    assert "refused by the test trigger" in reject.reason
    listed = runner.invoke(args=["rejects", "--job", JOB]).output
    assert f"{page}:60: record 60 (id poison-60): cannot be stored (" in listed
    run = db.session.scalars(select(IngestRun)).one()
    assert (run.lines, run.accepted, run.rejected, run.finished_at is not None) == (120, 119, 1, True)
    assert db.session.scalar(select(func.sum(Cycle.events))) == 119


def test_a_lone_surrogate_in_a_file_is_stored_or_a_reject_never_a_traceback(runner, tmp_path):  # type: ignore[no-untyped-def]
    # Well-formed JSON text that no database driver can encode once decoded ("\ud800" alone):
    # whichever refuses it, the reader or the database, the rest of the file is stored
    page = tmp_path / "page.json"
    records = [_record(n) for n in range(1, 61)]
    records[29]["id"] = "POISON"
    page.write_bytes(orjson.dumps({"value": records}).replace(b'"POISON"', f'"poison-{SURROGATE}"'.encode()))

    result = runner.invoke(args=["ingest", str(page), "--job", JOB])

    assert result.exit_code == 1, result.output
    assert "60 Entra records: 59 accepted, 0 duplicates, 1 rejected" in result.output
    assert f"rejected: {page}: record 30" in result.output
    assert _event_ids() == {f"event-{n}" for n in range(1, 61) if n != 30}
    assert f"{page}:30: record 30" in runner.invoke(args=["rejects", "--job", JOB]).output


def test_re_running_after_a_refused_record_stores_nothing_twice(runner, tmp_path):  # type: ignore[no-untyped-def]
    page = tmp_path / "page.json"
    records = [_record(n) for n in range(1, 81)]
    records[9]["id"] = "poison-10"
    page.write_bytes(orjson.dumps({"value": records}))

    with refusing("NEW.entra_id LIKE 'poison%'"):
        first = runner.invoke(args=["ingest", str(page), "--job", JOB])
    again = runner.invoke(args=["ingest", str(page), "--job", JOB])

    assert first.exit_code == 1 and "79 accepted, 0 duplicates, 1 rejected" in first.output
    assert again.exit_code == 0 and "1 accepted, 79 duplicates, 0 rejected" in again.output
    assert _count(EntraEvent) == 80
    assert db.session.scalar(select(func.sum(Cycle.events))) == 80


# -- the loader: the reject's reason -----------------------------------------------------------------


def _events(count: int) -> list:
    return [convert_record(_record(n), n) for n in range(1, count + 1)]


def test_the_reject_names_the_file_the_record_and_the_exception_class(app, settings):  # type: ignore[no-untyped-def]
    events = _events(6)
    events[2] = replace(events[2], id="poison-\ud800")  # no driver can encode it

    result = import_events(db.engine, get_job(JOB), (("export/page-1.json", e) for e in events), source="test",
                           via="cli", options=_options(settings))

    assert (result.lines, result.accepted, result.rejected) == (6, 5, 1)
    (problem,) = result.problems
    assert problem.line_no == 3
    assert problem.reason.startswith("export/page-1.json: record 3 (id poison-\\ud800): cannot be stored (")
    assert "UnicodeEncodeError" in problem.reason
    (reject,) = db.session.scalars(select(Reject)).all()
    assert (reject.source, reject.line_no) == ("export/page-1.json", 3)
    assert "UnicodeEncodeError" in reject.reason and "record 3" in reject.reason
    assert '"changeId":"change-3"' in reject.raw  # what finds the record in its file again


def test_a_constraint_refusing_a_record_names_the_database_error(app, settings):  # type: ignore[no-untyped-def]
    events = _events(5)
    events[1] = replace(events[1], id="poison-2")

    with refusing("NEW.entra_id LIKE 'poison%'"):
        result = import_events(db.engine, get_job(JOB), (("page.json", e) for e in events), source="test",
                               via="cli", options=_options(settings))

    assert (result.accepted, result.rejected) == (4, 1)
    reason = db.session.scalars(select(Reject.reason)).one()
    assert reason.startswith("record 2 (id poison-2): cannot be stored (")
    assert "refused by the test trigger" in reason
    assert "IntegrityError" in reason or "RaiseException" in reason or "InternalError" in reason
    assert "INSERT INTO" not in reason  # the SQL (and the record's values in it) stay out


def test_every_record_of_a_failing_batch_is_retried_alone_and_users_are_not_lost(app, settings):  # type: ignore[no-untyped-def]
    # records 1-3 name new users, created inside the batch's transaction before record 4 fails it:
    # the retry must create them again (the rolled-back rows are gone), not point at them
    events = _events(8)
    events[3] = replace(events[3], id="poison-4")

    with refusing("NEW.entra_id LIKE 'poison%'"):
        result = import_events(db.engine, get_job(JOB), (("p.json", e) for e in events), source="test", via="cli",
                               options=_options(settings))

    assert (result.accepted, result.rejected) == (7, 1)
    db.session.rollback()
    stored = db.session.execute(select(EntraEvent.entra_id, ScimUser.user_name)
                                .join(ScimUser, ScimUser.id == EntraEvent.user_id)).all()
    assert sorted(stored) == sorted((f"event-{n}", f"user{n}@contoso.com") for n in (1, 2, 3, 5, 6, 7, 8))


def test_recompute_after_a_partly_refused_batch_gives_the_same_analysis(app, settings):  # type: ignore[no-untyped-def]
    events = _events(30)
    events[7] = replace(events[7], id="poison-8")
    with refusing("NEW.entra_id LIKE 'poison%'"):
        import_events(db.engine, get_job(JOB), (("p.json", e) for e in events), source="test", via="cli",
                      options=_options(settings))
    db.session.rollback()
    before = [(c.key, c.events, c.users) for c in db.session.scalars(select(Cycle).order_by(Cycle.key))]

    rebuild(db.engine, get_job(JOB).id, gap_us=settings.cycles.gap_minutes * 60 * 1_000_000)

    db.session.rollback()
    assert [(c.key, c.events, c.users) for c in db.session.scalars(select(Cycle).order_by(Cycle.key))] == before
    assert before == [("cycle-1", 29, 29)]


def test_a_nul_character_is_stored_or_a_reject_never_a_traceback(app, settings):  # type: ignore[no-untyped-def]
    # SQLite stores it; PostgreSQL takes no NUL in text, so there the record is a reject
    events = _events(4)
    events[1] = replace(events[1], reason="StatusCode: Conflict\x00")

    result = import_events(db.engine, get_job(JOB), (("p.json", e) for e in events), source="test", via="cli",
                           options=_options(settings))

    if db.engine.dialect.name == "postgresql":
        assert (result.accepted, result.rejected) == (3, 1)
        assert "DataError" in db.session.scalars(select(Reject.reason)).one()
    else:
        assert (result.accepted, result.rejected) == (4, 0)


# -- the Graph pull ---------------------------------------------------------------------------------


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph()
    with serving(fake.handle) as base:
        fake.base = base
        yield fake


def _pull_settings(settings, graph):  # type: ignore[no-untyped-def]
    from dashboard.settings import EntraSettings, JobSettings

    return replace(
        settings,
        entra=EntraSettings(enabled=True, tenant="contoso-tenant", client_id="app-id", client_secret="s3cret-value",
                            login_base=graph.base, graph_base=graph.base + "/v1.0", max_attempts=3),
        jobs=(JobSettings(name=JOB, entra_service_principal_id=SP_ID, entra_job_id=JOB_ID),),
    )


def test_a_graph_pull_stores_the_other_records_of_a_refused_one_and_completes(app, settings, graph):  # type: ignore[no-untyped-def]
    now = datetime(2026, 3, 24, 9, 0, tzinfo=UTC)
    pages = [[graph_record(n, now - timedelta(minutes=60 - n)) for n in range(1, 61)],
             [graph_record(n, now - timedelta(minutes=60 - n)) for n in range(61, 71)]]
    pages[0][41]["id"] = "poison-42"
    graph.pages = pages

    with refusing("NEW.entra_id LIKE 'poison%'"):
        outcome = pull_job(db.engine, get_job(JOB), _pull_settings(settings, graph), now, sleep=lambda _s: None,
                           opener=no_proxy())

    assert outcome.complete and not outcome.errors
    assert (outcome.result.accepted, outcome.result.rejected) == (69, 1)
    assert _count(EntraEvent) == 69
    reject = db.session.scalars(select(Reject)).one()
    assert reject.source == "graph" and "record" in reject.reason and "poison-42" in reject.reason
    assert "refused by the test trigger" in reject.reason
    assert outcome.status_stored  # the job status after the events still came in


def test_a_graph_record_with_a_nul_is_stored_or_a_reject_and_the_pull_completes(app, settings, graph):  # type: ignore[no-untyped-def]
    now = datetime(2026, 3, 24, 9, 0, tzinfo=UTC)
    page = [graph_record(n, now - timedelta(minutes=30 - n), status="failure") for n in range(1, 11)]
    page[4]["provisioningStatusInfo"]["errorInformation"]["reason"] = "StatusCode: BadRequest\x00 department"
    graph.pages = [page]

    outcome = pull_job(db.engine, get_job(JOB), _pull_settings(settings, graph), now, sleep=lambda _s: None,
                       opener=no_proxy())

    assert outcome.complete
    assert outcome.result.accepted + outcome.result.rejected == 10
    assert _count(EntraEvent) == outcome.result.accepted
    if db.engine.dialect.name == "postgresql":
        assert outcome.result.rejected == 1


# -- the demo feeder ---------------------------------------------------------------------------------


def _scim_writes(settings, users: list[str]) -> None:  # type: ignore[no-untyped-def]
    lines = b"".join(
        orjson.dumps({
            "ts": (AT + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ"), "job": JOB, "method": "POST",
            "path": "/scim/v2/Users", "status": 201, "request_id": f"req-{i}",
            "request_body": {"userName": name, "externalId": f"ext-{i}", "active": True},
            "response_body": {"id": f"scim-{i}", "userName": name, "externalId": f"ext-{i}"},
        }) + b"\n" for i, name in enumerate(users))
    import io

    result = ingest_lines(db.engine, get_job(JOB), read_lines(io.BytesIO(lines)), source="scim.jsonl", via="cli",
                          options=_options(settings))
    assert result.accepted == len(users), result.problems


def test_the_demo_feeder_stores_the_events_around_a_refused_one(app, settings):  # type: ignore[no-untyped-def]
    users = [f"demo{i}@contoso.com" for i in range(12)]
    _scim_writes(settings, users)

    with refusing("NEW.user_name = 'demo5@contoso.com'"):
        accepted = load_entra_demo(db.engine, get_job(JOB), _options(settings), now=AT + timedelta(hours=1))

    assert accepted == 11
    db.session.rollback()
    assert set(db.session.scalars(select(EntraEvent.user_name))) == set(users) - {"demo5@contoso.com"}
    reject = db.session.scalars(select(Reject)).one()
    assert reject.source.startswith("demo:") and "refused by the test trigger" in reject.reason
