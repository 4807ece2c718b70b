"""Graph's synchronizationJob JSON read into a JobStatus, including the doc's empty-string sample."""
from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from dashboard.formats.entra.jobstatus import (
    JobDocument,
    check_job_document,
    read_job_status_file,
)
from dashboard.formats.entra.parse import JobStatusError, parse_job_status
from dashboard.formats.entra.records import Progress, Quarantine, SyncError
from dashboard.formats.scim.records import ParseProblem
from tests.formats.entra.conftest import DATA


def _load(name: str) -> dict:
    return orjson.loads((DATA / name).read_bytes())


def test_it_reads_the_documented_sample_with_empty_strings_and_never():
    status = parse_job_status(_load("job-doc-sample.json"))

    assert (status.job_id, status.template_id, status.code) == ("{jobId}", "BoxOutDelta", "Paused")
    assert not status.is_quarantined  # paused, although a quarantine series is on record
    assert status.quarantine == Quarantine(
        reason=None, current_began_at=None, next_attempt_at=None, series_began_at=None, series_count=2,
        error=SyncError(
            "SalesforceInvalidCredentials",
            "Your Salesforce.com credentials are invalid.  Please obtain a current Salesforce.com administrative user "
            "name, password and security token, and enter those in the screen for configuring user provisioning",
            True,
        ),
    )
    assert status.steady_state_first_achieved_at is None and status.steady_state_last_achieved_at is None
    assert status.last_execution is None and status.progress == ()
    assert status.schedule.state == "Disabled"
    assert status.schedule.interval == timedelta(days=10675199, hours=2, minutes=48, seconds=5.4775807)
    assert status.schedule.interval_raw == "P10675199DT2H48M5.4775807S"
    assert (status.count_successive_complete_failures, status.escrows_pruned) == (0, False)
    assert status.settings == {"QuarantineTooManyDeletesThreshold": "500"}
    assert status.troubleshooting_url is None


def test_it_reads_a_quarantined_job_with_its_counts_and_progress():
    status = parse_job_status(_load("job-quarantined.json"))

    assert status.is_quarantined
    q = status.quarantine
    assert q.reason == "EncounteredEscrowProportionThreshold"
    assert (q.current_began_at, q.next_attempt_at) == (
        datetime(2026, 3, 24, 7, 44, 11, tzinfo=UTC), datetime(2026, 3, 24, 13, 44, 11, tzinfo=UTC))
    assert q.series_count == 1 and q.error.tenant_actionable is False
    assert status.progress == (Progress(7, 10, "pages", datetime(2026, 3, 24, 7, 30, tzinfo=UTC)),)
    assert status.progress[0].fraction == 0.7
    last = status.last_execution
    assert (last.state, last.count_escrowed, last.count_exports, last.count_exported) == ("EntryLevelErrors", 530, 1170, 640)
    assert last.duration == timedelta(minutes=44, seconds=10.5)
    assert status.last_successful_execution.count_exported == 3
    assert status.count_successive_complete_failures == 3  # Int64 given as a string
    assert status.synchronized_entry_counts == {"user": 1180, "group": 4}
    assert status.schedule.interval == timedelta(minutes=40)


def test_it_accepts_the_status_object_alone():
    status = parse_job_status(_load("job-quarantined.json")["status"])

    assert status.code == "Quarantine" and status.job_id is None and status.schedule is None


@pytest.mark.parametrize(("reason", "expected"), [("QuarantineOnDemand", "QuarantinedOnDemand"),
                                                  ("QuarantinedOnDemand", "QuarantinedOnDemand"),
                                                  ("TooManyDeletes", "TooManyDeletes")])
def test_it_accepts_both_spellings_of_the_on_demand_reason(reason, expected):
    status = parse_job_status({"status": {"code": "Quarantine", "quarantine": {"reason": reason}}})

    assert status.quarantine.reason == expected


def test_it_reads_wrong_types_inside_as_unknown():
    status = parse_job_status({"status": {"code": "Active", "progress": [{"completedUnits": "x", "totalUnits": 0}, 5],
                                          "lastExecution": {"timeBegan": 5, "countExported": True},
                                          "escrowsPruned": "yes", "quarantine": None}})

    assert status.progress == (Progress(None, 0, None, None),) and status.progress[0].fraction is None
    assert status.last_execution.began_at is None and status.last_execution.count_exported is None
    assert status.escrows_pruned is None and status.quarantine is None


@pytest.mark.parametrize("data", [None, [], "job", 3])
def test_it_refuses_what_is_not_an_object(data):
    with pytest.raises(JobStatusError):
        parse_job_status(data)


# -- a file given as a job status: what is not one is a problem, never a status ------------------------


def test_a_file_of_one_job_or_graph_s_list_of_jobs_gives_its_documents():
    job = _load("job-quarantined.json")

    (one,) = read_job_status_file((DATA / "job-quarantined.json").read_bytes())
    listed = read_job_status_file(orjson.dumps({"value": [job, job["status"]]}))
    zipped = read_job_status_file(gzip.compress(orjson.dumps([job])))

    assert isinstance(one, JobDocument) and (one.number, one.status.code) == (1, "Quarantine")
    assert [(d.number, d.status.code, d.status.job_id is None) for d in listed] == [(1, "Quarantine", False),
                                                                                   (2, "Quarantine", True)]
    assert [d.status.code for d in zipped] == ["Quarantine"]


def test_a_provisioning_log_page_is_one_problem_saying_what_it_is():
    (problem,) = read_job_status_file((DATA / "graph-v1-example-success.json").read_bytes())

    assert isinstance(problem, ParseProblem) and problem.line_no == 0
    assert problem.reason.startswith("a page of Entra provisioning events (1), not a synchronizationJob")
    assert '"activityDateTime"' in problem.raw


@pytest.mark.parametrize(("data", "said"), [
    ({"activityDateTime": "2026-03-01T08:00:00Z", "provisioningAction": "create"},
     "a provisioning event (it has activityDateTime, provisioningAction)"),
    ({"TimeGenerated": "2026-03-01T08:00:00Z", "ResultType": "Success"}, "a provisioning event (it has TimeGenerated"),
    ({}, "it is an empty object"),
    ({"id": "x", "name": "y"}, "it has id, name"),
    ({"error": {"code": "Request_ResourceNotFound", "message": "Not found"}},
     "a Graph error answer (Request_ResourceNotFound: Not found)"),
    ([], "a JSON array, not an object"),
])
def test_check_job_document_says_what_the_object_is_instead(data, said):
    with pytest.raises(JobStatusError) as caught:
        check_job_document(data)

    assert str(caught.value).startswith("not a synchronizationJob or its status: ") and said in str(caught.value)


@pytest.mark.parametrize("data", [
    {"status": {}}, {"templateId": "scim"}, {"code": "Active"}, {"quarantine": None}, {"lastExecution": {}},
])
def test_check_job_document_accepts_a_job_or_a_status_by_its_own_fields(data):
    check_job_document(data)


def test_each_bad_job_of_a_list_is_a_problem_by_number_and_the_good_ones_are_kept():
    items = read_job_status_file(orjson.dumps({"value": [{"code": "Active"}, {"foo": 1}, 7]}))

    assert isinstance(items[0], JobDocument)
    assert [(p.line_no, p.reason.split(":")[0]) for p in items[1:]] == [(2, "job 2"), (3, "job 3")]
    assert items[2].reason.endswith("a JSON number, not an object")


@pytest.mark.parametrize("data", [b"", b"{", b"\x1f\x8b\x08\x00broken", "café".encode("latin-1")])
def test_what_does_not_decode_is_one_problem_saying_not_json(data):
    (problem,) = read_job_status_file(data)

    assert problem.line_no == 0 and problem.reason.startswith("not JSON (")
