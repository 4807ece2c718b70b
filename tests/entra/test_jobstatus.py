"""Graph's synchronizationJob JSON read into a JobStatus, including the doc's empty-string sample."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from dashboard.entra.parse import JobStatusError, parse_job_status
from dashboard.entra.records import Progress, Quarantine, SyncError

from .conftest import DATA


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
