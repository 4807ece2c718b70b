"""The Graph pull end to end: a local server answering like Graph, a real database, the watermark."""
from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

import orjson
import pytest
from sqlalchemy import func, select

from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.ingest.graph.pull import PullNotConfigured, belongs_to, pull_job
from dashboard.models import EntraEvent, EntraJobStatus, EntraPullState, IngestRun
from dashboard.settings import JobSettings
from dashboard.times import aware
from tests.ingest.graph.conftest import (
    JOB_ID,
    LOGS,
    NOW,
    OTHER_JOB_ID,
    SECRET,
    SP_ID,
    at,
    no_proxy,
    record,
)


def _pull(settings, graph, sleeps, now=NOW):  # type: ignore[no-untyped-def]
    return pull_job(db.engine, get_job("uniflow-prod"), settings, now, sleep=sleeps.append, opener=no_proxy())


def _event_ids() -> list[str]:
    return list(db.session.scalars(select(EntraEvent.entra_id).order_by(EntraEvent.activity_us)))


def _state() -> EntraPullState:
    db.session.expire_all()
    return db.session.get(EntraPullState, get_job("uniflow-prod").id)


def _three_pages(graph) -> None:  # type: ignore[no-untyped-def]
    graph.pages = [
        [record(1, at(120)), record(2, at(100), job_id=OTHER_JOB_ID), record(3, at(90))],
        [record(4, at(60), status="failure"), record(5, at(40))],
        [record(6, at(20))],
    ]


def test_it_pulls_every_page_through_throttling_and_a_token_expiry(app, settings, graph, sleeps):
    _three_pages(graph)
    graph.expire_after = {0}  # the token expires after the first page: the next request gets a 401
    graph.faults = {1: [(429, {"Retry-After": "7"}, {"error": {"code": "TooManyRequests", "message": ""}})]}

    outcome = _pull(settings, graph, sleeps)

    assert outcome.complete and outcome.errors == []
    assert _event_ids() == [record(n, NOW)["id"] for n in (1, 3, 4, 5, 6)]  # not the other Entra job's
    assert (outcome.records, outcome.other_jobs, outcome.result.accepted) == (6, 1, 5)
    assert sleeps == [7.0]  # Retry-After honoured (through the injected sleep)
    assert [status for _m, path, status in graph.requests if path.startswith(LOGS)] == [200, 401, 429, 200, 200]
    assert len(graph.token_forms) == 2  # a new token once the first expired
    assert graph.token_forms[0]["grant_type"] == ["client_credentials"]
    assert graph.log_requests()[0] == f"{LOGS}?$filter=activityDateTime%20gt%202026-02-22T09:00:00Z"  # 30 days back
    run = db.session.scalar(select(IngestRun))
    assert run.via == "graph" and run.accepted == 5 and run.finished_at is not None


def test_it_saves_the_watermark_and_the_time_of_a_complete_pull(app, settings, graph, sleeps):
    _three_pages(graph)

    _pull(settings, graph, sleeps)

    state = _state()
    mark = orjson.loads(state.watermark)
    assert mark["activity_at"] == at(20).isoformat()
    assert set(mark["seen_ids"]) == {record(n, NOW)["id"] for n in (5, 6)}  # within the 30-minute overlap
    assert aware(state.last_success_at) == NOW and aware(state.last_attempt_at) == NOW
    assert state.last_error is None and state.last_records == 5


def test_it_stores_entras_status_of_the_job(app, settings, graph, sleeps):
    outcome = _pull(settings, graph, sleeps)

    row = db.session.scalar(select(EntraJobStatus))
    assert outcome.status_code == "Active" and outcome.status_stored
    assert row.code == "Active" and row.entra_job_id == JOB_ID
    assert any(path.endswith(f"/servicePrincipals/{SP_ID}/synchronization/jobs/{JOB_ID}") for _m, path, _s in graph.requests)


def test_a_job_answer_that_is_not_a_job_keeps_the_stored_status_and_says_why(app, settings, graph, sleeps):
    _pull(settings, graph, sleeps)  # stores Active
    graph.job = {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#auditLogs/provisioning", "value": []}

    outcome = _pull(settings, graph, sleeps)

    assert [row.code for row in db.session.scalars(select(EntraJobStatus))] == ["Active"]
    assert outcome.status_code is None and not outcome.status_stored
    assert any(error.startswith("job status: not a synchronizationJob") and "none of a job's fields" in error
               for error in outcome.errors), outcome.errors


def test_a_second_pull_resumes_from_the_watermark_and_stores_no_duplicates(app, settings, graph, sleeps):
    _three_pages(graph)
    _pull(settings, graph, sleeps)
    graph.pages[-1].append(record(7, at(5)))  # Graph answers the same records again, and one new one
    later = NOW + timedelta(minutes=10)

    outcome = _pull(settings, graph, sleeps, now=later)

    # watermark 08:40 (record 6) less the 30-minute overlap
    assert graph.log_requests()[-3] == f"{LOGS}?$filter=activityDateTime%20gt%202026-03-24T08:10:00Z"
    assert outcome.result.accepted == 1 and outcome.already_seen == 2  # records 5 and 6 were in the overlap
    assert outcome.result.duplicates == 3  # 1, 3 and 4 are before the overlap: the database knows them
    assert _event_ids() == [record(n, NOW)["id"] for n in (1, 3, 4, 5, 6, 7)]
    assert db.session.scalar(select(func.count(func.distinct(EntraEvent.dedupe)))) == 6
    assert orjson.loads(_state().watermark)["activity_at"] == at(5).isoformat()


def test_a_pull_that_finds_nothing_new_leaves_no_ingest_run(app, settings, graph, sleeps):
    graph.pages = [[record(1, at(10))]]
    _pull(settings, graph, sleeps)

    outcome = _pull(settings, graph, sleeps, now=NOW + timedelta(minutes=10))

    assert outcome.complete and outcome.already_seen == 1 and outcome.result.lines == 0
    assert db.session.scalar(select(func.count()).select_from(IngestRun)) == 1
    assert aware(_state().last_success_at) == NOW + timedelta(minutes=10)


def test_a_failed_pull_keeps_the_old_watermark_and_records_the_error(app, settings, graph, sleeps):
    _three_pages(graph)
    _pull(settings, graph, sleeps)
    before = _state().watermark
    graph.fail_with = 503  # Graph unavailable until the attempts (3) are used up
    later = NOW + timedelta(minutes=10)

    outcome = _pull(settings, graph, sleeps, now=later)

    state = _state()
    assert not outcome.complete
    assert state.watermark == before
    assert aware(state.last_success_at) == NOW and aware(state.last_attempt_at) == later
    assert "provisioning logs: GET /v1.0/auditLogs/provisioning failed" not in state.last_error  # throttled, not refused
    assert "still throttled after 3 attempts (HTTP 503, UnknownError)" in state.last_error
    assert "job status:" in state.last_error  # its request failed the same way
    assert sleeps == [2.0, 4.0, 2.0, 4.0]  # no Retry-After: exponential back-off, twice per request


def test_a_pull_that_fails_part_way_keeps_what_it_read_and_resumes_at_the_old_watermark(app, settings, graph, sleeps):
    _three_pages(graph)
    graph.faults = {2: [(500, {}, {"error": {"code": "UnknownError", "message": ""}})]}  # page 3 fails

    failed = _pull(settings, graph, sleeps)

    assert not failed.complete and "HTTP 500" in failed.error
    assert _event_ids() == [record(n, NOW)["id"] for n in (1, 3, 4, 5)]
    assert orjson.loads(_state().watermark) == {}  # still no watermark: the next pull starts afresh

    again = _pull(settings, graph, sleeps, now=NOW + timedelta(minutes=10))

    assert again.complete and again.result.accepted == 1 and again.result.duplicates == 4
    assert graph.log_requests()[-3] == f"{LOGS}?$filter=activityDateTime%20gt%202026-02-22T09:10:00Z"
    assert _state().last_error is None


def test_the_secret_never_reaches_the_logs_or_the_database(app, settings, graph, sleeps, caplog):
    caplog.set_level(logging.DEBUG)
    _three_pages(graph)
    _pull(settings, graph, sleeps)
    graph.fail_with = 503
    _pull(settings, graph, sleeps, now=NOW + timedelta(minutes=10))
    # a token endpoint that echoes the secret back: the error text is cleaned before it is kept
    graph.token_fault = (401, {"error": SECRET, "error_description": "AADSTS7000215: Invalid client secret provided."})
    refused = _pull(settings, graph, sleeps, now=NOW + timedelta(minutes=20))

    assert graph.token_forms[0]["client_secret"] == [SECRET]  # it was sent, to the token endpoint only
    assert "[REDACTED]" in refused.error
    assert SECRET not in caplog.text and caplog.text
    assert SECRET not in repr(settings)
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            assert SECRET not in repr(conn.execute(table.select()).all()), table.name


def test_it_refuses_to_pull_without_credentials(app, settings, graph, sleeps):
    settings = replace(settings, entra=replace(settings.entra, client_secret=""))

    with pytest.raises(PullNotConfigured, match="entra.client_secret"):
        _pull(settings, graph, sleeps)
    assert graph.requests == []


def test_a_job_without_a_service_principal_gets_no_status(app, settings, graph, sleeps):
    settings = replace(settings, jobs=(JobSettings(name="uniflow-prod", entra_job_id=JOB_ID),))
    graph.pages = [[record(1, at(10))]]

    outcome = _pull(settings, graph, sleeps)

    assert outcome.complete and outcome.status_code is None
    assert db.session.scalar(select(func.count()).select_from(EntraJobStatus)) == 0


@pytest.mark.parametrize(("spec", "mine"), [
    (JobSettings(name="j", entra_job_id=JOB_ID), True),
    (JobSettings(name="j", entra_job_id=JOB_ID.upper()), True),  # ids hold GUIDs: case does not matter
    (JobSettings(name="j", entra_job_id=OTHER_JOB_ID), False),
    (JobSettings(name="j", entra_service_principal_id=SP_ID), True),
    (JobSettings(name="j", entra_service_principal_id="another-sp"), False),
    (JobSettings(name="j", entra_job_id=OTHER_JOB_ID, entra_service_principal_id=SP_ID), False),  # the job id decides
    (JobSettings(name="j"), True),  # nothing named: every event of the tenant
])
def test_it_keeps_the_events_of_the_configured_entra_job(spec, mine):
    from dashboard.formats.entra.parse import convert_record
    from dashboard.formats.entra.records import RawFormat

    event = convert_record(record(1, NOW), 1, fmt=RawFormat.GRAPH)

    assert belongs_to(event, spec) is mine
