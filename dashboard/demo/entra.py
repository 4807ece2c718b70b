"""Entra's side of the demo: provisioning events for the demo jobs' recent writes, and job statuses.

Each write exchange (create, update, disable, delete) of a job's last cycles becomes the event
Entra would have logged for it a moment later, with the cycle's own cycleId, the target's answer
in the reason as Entra words it, and the retry sentence; so the pages show Entra's view beside
the SCIM traffic, joined. Each job also gets a synchronizationJob status as Graph would return it.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import orjson
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from dashboard.analysis.signatures import recommended_action
from dashboard.formats.entra.jobstatus import parse_job_status
from dashboard.formats.entra.parse import convert_record
from dashboard.ingest.entra import import_events, import_job_status
from dashboard.ingest.scim import IngestOptions
from dashboard.models import Cycle, Exchange, Job, ScimUser
from dashboard.times import from_us

ACTIONS = {"create": "create", "update": "update", "disable": "disable", "enable": "update", "delete": "delete"}
ENTRA_JOB = "uniFLOWOnline.7584ba9cdd9147459b7eb4de9da3be7b.{name}"
_NS = uuid.UUID("3f1c5e0a-6d0b-4c1e-9a57-2b8f0d7e4a11")


def load_entra_demo(engine: Engine, job: Job, options: IngestOptions, *, now: datetime, cycles: int = 3,
                    quarantine_reason: str | None = None) -> int:
    """Import events for the job's last `cycles` cycles and a job status; the number of events."""
    records = list(_records(engine, job, cycles))
    items = ((f"demo:{job.name}", convert_record(record, number, rules=options.rules))
             for number, record in enumerate(records, 1))
    result = import_events(engine, job, items, source=f"demo (Entra, {job.name})", via="demo", options=options)
    document = _status_document(job, now, quarantine_reason)
    import_job_status(engine, job, document, parse_job_status(document), source="demo", rules=options.rules, now=now)
    return result.accepted


def _records(engine: Engine, job: Job, cycles: int):  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        recent = session.scalars(select(Cycle).where(Cycle.job_id == job.id).order_by(Cycle.started_us.desc())
                                 .limit(cycles)).all()
        for cycle in recent:
            cycle_key = str(uuid.uuid5(_NS, f"{job.name}/{cycle.started_us}"))
            rows = session.execute(
                select(Exchange, ScimUser).join(ScimUser, ScimUser.id == Exchange.user_id)
                .where(Exchange.cycle_id == cycle.id, Exchange.operation.in_(list(ACTIONS)))
                .order_by(Exchange.ts_us)
            ).all()
            for exchange, user in rows:
                yield _record(job, cycle_key, exchange, user)


def _record(job: Job, cycle_key: str, exchange: Exchange, user: ScimUser) -> dict:
    at = from_us(exchange.ts_us) + timedelta(seconds=2)
    name = user.user_name or user.external_id or user.scim_id or f"user-{user.id}"
    failure = None
    if exchange.failed:
        answer = exchange.error_detail or "(no response)"
        action = recommended_action(exchange.operation, exchange.status, exchange.scim_type)
        failure = {
            "errorCode": action.code, "errorCategory": "nonServiceFailure", "recommendedAction": action.action,
            "reason": (f"StatusCode: {exchange.status or 'Timeout'}\r\nMessage: Processing of the HTTP request resulted "
                       f"in an exception.\r\nWeb Response: \r\n{answer}. This operation was retried 1 times. It will be "
                       f"retried again after this date: {(at + timedelta(hours=6)).strftime('%Y-%m-%dT%H:%M:%S')}Z UTC"),
        }
    return {
        "id": str(uuid.uuid5(_NS, f"{job.name}/{exchange.id}")),
        "activityDateTime": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "jobId": ENTRA_JOB.format(name=job.name),
        "cycleId": cycle_key,
        "changeId": str(uuid.uuid5(_NS, f"change/{job.name}/{exchange.id}")),
        "provisioningAction": ACTIONS[exchange.operation],
        "durationInMilliseconds": int(exchange.duration_ms or 0) + 40,
        "provisioningStatusInfo": {"status": "failure" if exchange.failed else "success", "errorInformation": failure},
        "sourceIdentity": {"id": str(uuid.uuid5(_NS, f"source/{name}")), "displayName": name, "identityType": "User",
                           "details": {"UserPrincipalName": name}},
        "targetIdentity": {"id": user.scim_id or "", "displayName": name, "identityType": "User", "details": {}},
        "provisioningSteps": [
            {"name": "EntryImport", "provisioningStepType": "import", "status": "success",
             "description": f"Retrieved User '{name}' from Microsoft Entra ID", "details": {}},
            {"name": "EntrySynchronizationScoping", "provisioningStepType": "scoping", "status": "success",
             "description": f"User '{name}' is in scope", "details": {}},
            {"name": f"EntryExport{ACTIONS[exchange.operation].title()}", "provisioningStepType": "export",
             "status": "failure" if exchange.failed else "success",
             "description": f"User '{name}' was {'not ' if exchange.failed else ''}processed in uniFLOW Online",
             "details": {"ReportableIdentifier": name}},
        ],
        "modifiedProperties": [{"displayName": "userName", "oldValue": None, "newValue": name}],
        "servicePrincipal": {"id": "7a0c5c61-2c2d-4d8e-a9f1-0c1e4a5b6c7d", "displayName": "uniFLOW Online"},
    }


def _status_document(job: Job, now: datetime, quarantine_reason: str | None) -> dict:
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    status = {
        "code": "Quarantine" if quarantine_reason else "Active",
        "countSuccessiveCompleteFailures": 1 if quarantine_reason else 0,
        "escrowsPruned": False,
        "lastExecution": {"activityIdentifier": str(uuid.uuid5(_NS, f"run/{job.name}/{stamp}")),
                          "state": "Failed" if quarantine_reason else "EntryLevelErrors",
                          "timeBegan": (now - timedelta(minutes=6)).strftime("%Y-%m-%dT%H:%M:%SZ"), "timeEnded": stamp,
                          "countExported": 120, "countExports": 130, "countEscrowed": 10, "countImported": 3000},
        "progress": [{"completedUnits": 10, "totalUnits": 10, "units": "pages", "progressObservationDateTime": stamp}],
        "steadyStateFirstAchievedTime": (now - timedelta(days=20)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "steadyStateLastAchievedTime": (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "synchronizedEntryCountByType": [{"key": "user", "value": 3000}],
        "quarantine": None,
    }
    if quarantine_reason:
        status["quarantine"] = {"currentBegan": stamp, "nextAttempt": (now + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                "reason": quarantine_reason, "seriesBegan": stamp, "seriesCount": 0,
                                "error": {"code": "SystemForCrossDomainIdentityManagementCredentialValidationUnavailable",
                                          "message": "The target rejected the credentials (401).", "tenantActionable": True}}
    return orjson.loads(orjson.dumps({
        "id": ENTRA_JOB.format(name=job.name), "templateId": "uniFLOWOnline",
        "schedule": {"interval": "PT40M", "state": "Active"}, "status": status,
        "synchronizationJobSettings": [{"name": "QuarantineTooManyDeletesThreshold", "value": "500"}],
    }))
