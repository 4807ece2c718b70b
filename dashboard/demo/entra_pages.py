"""Generate Graph provisioningObjectSummary pages for benchmarks and tests (a uniFLOW-like job).

Two sources:

`generate_records` / `write_pages`: random records in the shape of the documented examples:
~40-minute cycles, creates, updates, disables and skips, ~5 % failures with the observed reason
wording (retry count and next retry), steps with export details, modified properties including
secrets (pin, cardNumber). Fast, for benchmarks; they tell no story of a user.

`simulated_records`: Entra's provisioning logs of a simulated run (`dashboard.demo.simulate`, with
`SimConfig.record_events`, which `SimConfig.realistic` turns on): one event per person and cycle,
the same traffic the run's SCIM log shows, so both imports can be checked against one ground
truth. Per event: `cycleId` is the run's cycle id; `sourceIdentity.id` the person's Entra object
id (`PersonTruth.source_id`; stable across renames); `targetIdentity.id` the target's SCIM id
(empty while the user was never created; the new id once re-created); the userName Entra sent
in `modifiedProperties` (old and new value on a rename) and the export step's details, with the
externalId. Actions, as Entra reports them:

    the person's cycle             provisioningAction    status
    a write answered 2xx           create, update (also enable), disable, delete    success
    a write that failed            the same                                    failure
    a lookup that failed           what Entra set out to do (create for a new,  failure
                                   re-created or colliding user; other for none)
    a lookup that found the user   other ("already match")                       skipped
       and nothing to write

A failure's reason holds the target's answer as Entra words it ("StatusCode: Conflict",
the SCIM Error, the retry sentence). `entra_operation` gives the analysis's operation per event.
"""
from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

JOB = "uniFLOWOnline.7584ba9cdd9147459b7eb4de9da3be7b.0b9c1a7e-3c59-4a63-9e54-7a4e0f1f8a11"
_FAILURES = (
    ("SystemForCrossDomainIdentityManagementServiceIncompatibleFiltering", 409, "uniqueness",
     "unclaimed user already exists for that email address."),
    ("SystemForCrossDomainIdentityManagementBadRequest", 400, "invalidValue", "pin must be 4 digits"),
    ("Timeout", 0, None, None),
)


def generate_records(
    count: int, *, seed: int = 7, start: datetime = datetime(2026, 3, 1, tzinfo=UTC), users: int = 5000
) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    at = start
    cycle = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    for number in range(count):
        if number and number % 400 == 0:  # a new cycle every 400 events, ~40 minutes later
            at += timedelta(minutes=40)
            cycle = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        at += timedelta(milliseconds=rng.randint(50, 900))
        yield _record(rng, at, cycle, rng.randrange(users))


def write_pages(directory: Path, count: int, *, page_size: int = 1000, seed: int = 7) -> list[Path]:
    """Page files page-00001.json... in Graph's shape, each but the last with an @odata.nextLink."""
    return write_record_pages(directory, generate_records(count, seed=seed), count, page_size=page_size)


def write_record_pages(directory: Path, records: Iterable[dict[str, Any]], count: int, *,
                       page_size: int = 1000) -> list[Path]:
    """`count` records as Graph page files page-00001.json..., each but the last with a nextLink."""
    directory.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    page: list[dict[str, Any]] = []
    total_pages = (count + page_size - 1) // page_size
    for record in records:
        page.append(record)
        if len(page) == page_size:
            paths.append(_write_page(directory, len(paths) + 1, total_pages, page))
            page = []
    if page:
        paths.append(_write_page(directory, len(paths) + 1, total_pages, page))
    return paths


def _write_page(directory: Path, number: int, total: int, records: list[dict[str, Any]]) -> Path:
    body: dict[str, Any] = {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#auditLogs/provisioning"}
    if number < total:
        body["@odata.nextLink"] = (
            "https://graph.microsoft.com/v1.0/auditLogs/provisioning?$filter=activityDateTime+gt+"
            f"2026-03-01T00:00:00Z&$skiptoken={number + 1:08x}"
        )
    body["value"] = records
    path = directory / f"page-{number:05d}.json"
    path.write_bytes(orjson.dumps(body))
    return path


def _record(rng: random.Random, at: datetime, cycle: str, user: int) -> dict[str, Any]:
    name = f"user{user}@contoso.com"
    action = rng.choices(("create", "update", "disable", "other", "stagedDelete"), (10, 60, 8, 20, 2))[0]
    failed = action in ("create", "update") and rng.random() < 0.05
    status = "failure" if failed else ("skipped" if action in ("other", "stagedDelete") else "success")
    error = None
    if failed:
        code, http, scim_type, detail = rng.choice(_FAILURES)
        retried = rng.randint(0, 6)
        answer = orjson.dumps({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "detail": detail,
                               "status": http, "scimType": scim_type}).decode() if http else "(none)"
        error = {
            "errorCode": code, "errorCategory": "nonServiceFailure", "additionalDetails": None, "recommendedAction": None,
            "reason": (
                f"StatusCode: {http or 'Timeout'}\r\nMessage: Processing of the HTTP request resulted in an exception.\r\n"
                f"Web Response: \r\n{answer}. This operation was retried {retried} times. It will be retried again "
                f"after this date: {(at + timedelta(hours=6)).strftime('%Y-%m-%dT%H:%M:%S.%f')}0Z UTC"
            ),
        }
    verb = {"create": "Add", "update": "Update", "disable": "UpdateSoftDelete", "other": "Update",
            "stagedDelete": "Delete"}[action]
    export = {
        "ReportableIdentifier": name, "userName": name, "externalId": f"user{user}", "active": "True",
        "urnietfparamsscimschemasextensionuniFLOWOnline20Userpin": f"{rng.randint(0, 9999):04d}",
    }
    return {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "activityDateTime": at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z",
        "tenantId": "7584ba9c-dd91-4745-9b7e-b4de9da3be7b",
        "jobId": JOB,
        "cycleId": cycle,
        "changeId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "provisioningAction": action,
        "durationInMilliseconds": rng.randint(80, 4000),
        "provisioningStatusInfo": {"status": status, "errorInformation": error},
        "provisioningSteps": [
            {"name": "EntryImport", "provisioningStepType": "import", "status": "success",
             "description": f"Retrieved User '{name}' from Microsoft Entra ID", "details": {}},
            {"name": "EntrySynchronizationScoping", "provisioningStepType": "scoping", "status": "success",
             "description": f"User '{name}' is in scope", "details": {"Active in the source system": "True"}},
            {"name": "EntryImportObject", "provisioningStepType": "matching", "status": "success",
             "description": f"Retrieved User '{name}' from uniFLOW Online", "details": {}},
            {"name": f"EntryExport{verb}", "provisioningStepType": "export", "status": status,
             "description": f"User '{name}' was processed in uniFLOW Online", "details": export},
        ],
        "modifiedProperties": [
            {"displayName": "userName", "oldValue": None, "newValue": name},
            {"displayName": "displayName", "oldValue": None, "newValue": f"User {user}"},
            {"displayName": "active", "oldValue": None, "newValue": "True"},
            {"displayName": "urn:ietf:params:scim:schemas:extension:uniFLOWOnline:2.0:User:pin", "oldValue": None,
             "newValue": export["urnietfparamsscimschemasextensionuniFLOWOnline20Userpin"]},
            {"displayName": "urn:ietf:params:scim:schemas:extension:uniFLOWOnline:2.0:User:cardNumber",
             "oldValue": None, "newValue": f"{rng.getrandbits(40):012d}"},
        ],
        "servicePrincipal": {"id": "7a0c5c61-2c2d-4d8e-a9f1-0c1e4a5b6c7d", "displayName": "uniFLOW Online"},
        "sourceSystem": {"id": "05040880-a6d8-4899-bed4-b8056957edd0", "displayName": "Microsoft Entra ID", "details": {}},
        "targetSystem": {"id": "3e0cc32f-582d-4c52-8114-c1e199bb982c", "displayName": "uniFLOW Online",
                         "details": {"ServicePrincipalId": "7a0c5c61-2c2d-4d8e-a9f1-0c1e4a5b6c7d"}},
        "initiatedBy": {"id": "", "displayName": "Azure AD Provisioning Service", "initiatorType": "system"},
        "sourceIdentity": {"id": str(uuid.UUID(int=user + 1, version=4)), "displayName": f"User {user}",
                           "identityType": "User", "details": {"UserPrincipalName": name}},
        "targetIdentity": {"id": "" if action == "create" and failed else f"{user:020x}", "displayName": "",
                           "identityType": "User", "details": {}},
    }


# --- Entra's provisioning logs of a simulated run ---------------------------------------------

SIM_JOB = "uniFLOWOnline.7584ba9cdd9147459b7eb4de9da3be7b.{job}"
_SIM_NS = uuid.UUID("0d5b8f0e-8f7a-4c51-b1a3-4f2d8f6c9e21")
_ACTIONS = {"create": "create", "update": "update", "enable": "update", "disable": "disable",
            "delete": "delete"}
_INTENT_ACTIONS = {"create": "create", "recreate": "create", "fix": "create", "collide": "create",
                   "unmatched": "create",
                   "disable": "disable", "delete": "delete", "none": "other"}
# the target's status -> (.NET's name in "StatusCode: ...", Entra's errorCode)
_ERRORS = {
    0: ("Timeout", "Timeout"),
    400: ("BadRequest", "SystemForCrossDomainIdentityManagementBadRequest"),
    401: ("Unauthorized", "SystemForCrossDomainIdentityManagementCredentialValidationUnauthorized"),
    404: ("NotFound", "SystemForCrossDomainIdentityManagementServiceInvalidAnchor"),
    409: ("Conflict", "SystemForCrossDomainIdentityManagementConflict"),
    429: ("TooManyRequests", "SystemForCrossDomainIdentityManagementTooManyRequests"),
    500: ("InternalServerError", "SystemForCrossDomainIdentityManagementInternalServerError"),
}


def entra_action(event: Any) -> tuple[str, str]:
    """(provisioningAction, status) Entra logs for a simulated PersonEvent (see the table above)."""
    outcome = event.outcome
    if str(outcome.outcome) == "skipped":
        return "other", "skipped"
    status = "failure" if str(outcome.outcome) == "failed" else "success"
    operation = str(outcome.operation)
    if operation != "none":
        return _ACTIONS[operation], status
    return _INTENT_ACTIONS.get(event.intent, "update"), status


def entra_operation(event: Any) -> str:
    """The analysis's operation for the event (dashboard.formats.entra.facts): create, update, disable,
    delete, lookup (action other, failed) or skip."""
    action, status = entra_action(event)
    if status == "skipped":
        return "skip"
    return "lookup" if action == "other" else action


def simulated_records(truth: Any) -> Iterator[dict[str, Any]]:
    """Graph provisioningObjectSummary records of a simulated run, in time order.

    `truth` is the run's GroundTruth once its lines are consumed; its config must have had
    `record_events` on. Deterministic: the same run gives the same records (ids included).
    """
    if not truth.config.record_events:
        raise ValueError("the run did not record events: use SimConfig(record_events=True)")
    job = truth.config.job
    for event in truth.events:
        yield simulated_record(job, event)


def write_simulated_pages(directory: Path, truth: Any, *, page_size: int = 1000) -> list[Path]:
    """The run's records as Graph page files (see `write_record_pages`)."""
    records = list(simulated_records(truth))
    return write_record_pages(directory, records, len(records), page_size=page_size)


def simulated_record(job: str, event: Any) -> dict[str, Any]:
    """One PersonEvent (dashboard.demo.simulate) as Entra's provisioning log records it."""
    action, status = entra_action(event)
    name, key = event.user_name, f"{job}/{event.cycle_id}/{event.external_id}"
    at = event.at + timedelta(milliseconds=300)  # Entra writes its event after the target answered
    error = None
    if status == "failure":
        error = _error_information(event, at)
    properties: list[dict[str, Any]] = [
        {"displayName": "userName", "oldValue": event.previous_name, "newValue": name},
        {"displayName": "externalId", "oldValue": None, "newValue": event.external_id},
    ]
    if action in ("create", "disable") or event.intent == "enable":
        active = "False" if action == "disable" else "True"
        properties.append({"displayName": "active", "oldValue": None, "newValue": active})
    in_scope = action not in ("disable", "delete")
    found = event.scim_id is not None and event.intent not in ("create", "recreate", "fix", "collide")
    verb = {"create": "Add", "update": "Update", "disable": "UpdateSoftDelete", "delete": "Delete",
            "other": "Update"}[action]
    return {
        "id": str(uuid.uuid5(_SIM_NS, f"event/{key}")),
        "activityDateTime": at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z",
        "tenantId": "7584ba9c-dd91-4745-9b7e-b4de9da3be7b",
        "jobId": SIM_JOB.format(job=job),
        "cycleId": event.cycle_id,
        "changeId": str(uuid.uuid5(_SIM_NS, f"change/{key}")),
        "provisioningAction": action,
        "durationInMilliseconds": int(event.duration_ms) + 40,
        "provisioningStatusInfo": {"status": status, "errorInformation": error},
        "provisioningSteps": [
            {"name": "EntryImport", "provisioningStepType": "import", "status": "success",
             "description": f"Retrieved User '{name}' from Microsoft Entra ID", "details": {}},
            {"name": "EntrySynchronizationScoping", "provisioningStepType": "scoping", "status": "success",
             "description": f"User '{name}' is {'in' if in_scope else 'out of'} scope",
             "details": {"Active in the source system": "True" if in_scope else "False"}},
            {"name": "EntryImportObject", "provisioningStepType": "matching", "status": "success",
             "description": (f"Retrieved User '{name}' from uniFLOW Online" if found
                             else f"User '{name}' was not found in uniFLOW Online"), "details": {}},
            {"name": f"EntryExport{verb}", "provisioningStepType": "export", "status": status,
             "description": f"User '{name}' was {'not ' if status == 'failure' else ''}processed in uniFLOW Online",
             "details": {"ReportableIdentifier": name, "userName": name, "externalId": event.external_id}},
        ],
        "modifiedProperties": properties,
        "servicePrincipal": {"id": "7a0c5c61-2c2d-4d8e-a9f1-0c1e4a5b6c7d", "displayName": "uniFLOW Online"},
        "sourceSystem": {"id": "05040880-a6d8-4899-bed4-b8056957edd0", "displayName": "Microsoft Entra ID",
                         "details": {}},
        "targetSystem": {"id": "3e0cc32f-582d-4c52-8114-c1e199bb982c", "displayName": "uniFLOW Online",
                         "details": {"ServicePrincipalId": "7a0c5c61-2c2d-4d8e-a9f1-0c1e4a5b6c7d"}},
        "initiatedBy": {"id": "", "displayName": "Azure AD Provisioning Service", "initiatorType": "system"},
        "sourceIdentity": {"id": event.source_id, "displayName": name, "identityType": "User",
                           "details": {"UserPrincipalName": name}},
        "targetIdentity": {"id": event.scim_id or "", "displayName": name if event.scim_id else "",
                           "identityType": "User", "details": {}},
    }


def _error_information(event: Any, at: datetime) -> dict[str, Any]:
    status = event.outcome.status
    phrase, code = _ERRORS.get(status, ("InternalServerError", _ERRORS[500][1]))
    if status == 0:
        answer = "(no response)"
    else:
        body: dict[str, Any] = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                                "status": str(status)}
        if event.scim_type:
            body["scimType"] = event.scim_type
        body["detail"] = event.detail or phrase
        answer = orjson.dumps(body).decode()
    retry = (at + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return {
        "errorCode": code, "errorCategory": "nonServiceFailure", "additionalDetails": None,
        "recommendedAction": None,
        "reason": (f"StatusCode: {phrase}\r\nMessage: Processing of the HTTP request resulted in an exception.\r\n"
                   f"Web Response: \r\n{answer}. This operation was retried {event.outcome.attempts - 1} times. "
                   f"It will be retried again after this date: {retry}0Z UTC"),
    }
