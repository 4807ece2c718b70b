"""Generate Graph provisioningObjectSummary pages for benchmarks and tests (a uniFLOW-like job).

Records follow the shape of the documented examples: ~40-minute cycles, creates, updates,
disables and skips, ~5 % failures with the observed reason wording (retry count and next retry),
steps with export details, modified properties including secrets (pin, cardNumber).
"""
from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
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
    directory.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    page: list[dict[str, Any]] = []
    records = generate_records(count, seed=seed)
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
