"""A local HTTP server (127.0.0.1) answering like Microsoft Graph and its token endpoint."""
from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import orjson
import pytest

from dashboard.settings import EntraSettings, JobSettings
from tests.local_http import serving

NOW = datetime(2026, 3, 24, 9, 0, tzinfo=UTC)
SECRET = "Sup3r~Secret.Value_0xC0FFEE"
SP_ID = "5f2c1a7e-0000-4000-8000-00000000beef"
JOB_ID = "uniFLOWOnline.7584ba9cdd9147459b7eb4de9da3be7b.0b9c1a7e-3c59-4a63-9e54-7a4e0f1f8a11"
OTHER_JOB_ID = "airtable.7584ba9cdd9147459b7eb4de9da3be7b.fa64de6e-a5fe-40fe-bd5c-eb15a3638d3d"
LOGS = "/v1.0/auditLogs/provisioning"
JOB_PATH = f"/v1.0/servicePrincipals/{SP_ID}/synchronization/jobs/{JOB_ID}"


def record(n: int, at: datetime, *, job_id: str = JOB_ID, status: str = "success") -> dict[str, Any]:
    """A provisioningObjectSummary (Graph v1.0) of user n."""
    user = f"user{n}@contoso.com"
    error = None if status == "success" else {
        "errorCode": "SystemForCrossDomainIdentityManagementBadRequest", "errorCategory": "nonServiceFailure",
        "reason": "StatusCode: BadRequest\r\nMessage: department is invalid", "additionalDetails": None,
        "recommendedAction": None,
    }
    return {
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "activityDateTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "jobId": job_id,
        "cycleId": "8b52ae4b-53a8-41ef-ae7f-19435028c52a",
        "changeId": f"11111111-0000-4000-8000-{n:012d}",
        "provisioningAction": "update",
        "durationInMilliseconds": 120,
        "provisioningStatusInfo": {"status": status, "errorInformation": error},
        "provisioningSteps": [{
            "name": "EntryExportUpdate", "provisioningStepType": "export", "status": status,
            "description": f"User '{user}' was updated in uniFLOW Online", "details": {"ReportableIdentifier": user},
        }],
        "modifiedProperties": [],
        "servicePrincipal": {"id": SP_ID, "displayName": "uniFLOW Online"},
        "sourceIdentity": {"id": f"aaaaaaaa-0000-4000-8000-{n:012d}", "displayName": f"User {n}", "identityType": "User",
                           "details": {"UserPrincipalName": user}},
        "targetIdentity": {"id": f"target-{n}", "displayName": "", "identityType": "User", "details": {}},
    }


def job_document(code: str = "Active") -> dict[str, Any]:
    """A synchronizationJob (GET .../synchronization/jobs/{id})."""
    return {
        "id": JOB_ID, "templateId": "uniFLOWOnline",
        "schedule": {"expiration": None, "interval": "PT40M", "state": "Active"},
        "status": {
            "code": code, "countSuccessiveCompleteFailures": 0, "escrowsPruned": False, "quarantine": None,
            "lastExecution": {"activityIdentifier": "run-1", "state": "Succeeded", "timeBegan": "2026-03-24T07:20:00Z",
                              "timeEnded": "2026-03-24T07:45:00Z", "countExported": 6, "countEscrowed": 0},
            "progress": [], "steadyStateFirstAchievedTime": "0001-01-01T00:00:00Z",
            "steadyStateLastAchievedTime": "0001-01-01T00:00:00Z", "troubleshootingUrl": "",
        },
        "synchronizationJobSettings": [{"name": "QuarantineTooManyDeletesThreshold", "value": "500"}],
    }


class FakeGraph:
    """Serves `pages` in turn (page i at $skiptoken=i, each but the last with an @odata.nextLink).

    `faults[i]`: answers (status, headers, body) given, one per request, before page i is served;
    `expire_after`: page indexes after which every token issued so far stops working (Graph's 401);
    `fail_with`: a status for every Graph request; `token_fault`: the token endpoint's answer.
    """

    def __init__(self) -> None:
        self.base = ""
        self.pages: list[list[dict[str, Any]]] = [[]]
        self.faults: dict[int, list[tuple[int, dict[str, str], Any]]] = {}
        self.expire_after: set[int] = set()
        self.fail_with: int | None = None
        self.token_fault: tuple[int, Any] | None = None
        self.job: dict[str, Any] | None = job_document()
        self.requests: list[tuple[str, str, int]] = []  # method, path with query, status answered
        self.token_forms: list[dict[str, list[str]]] = []
        self._issued = 0
        self.valid_tokens: set[str] = set()
        self.lock = threading.Lock()

    def log_requests(self) -> list[str]:
        return [path for method, path, _ in self.requests if method == "GET" and path.startswith(LOGS)]

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        with self.lock:
            status, headers, body = self._answer(handler)
        self.requests.append((handler.command, handler.path, status))
        data = orjson.dumps(body)
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(self, handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], Any]:
        parts = urlsplit(handler.path)
        if handler.command == "POST" and parts.path.endswith("/oauth2/v2.0/token"):
            length = int(handler.headers.get("Content-Length") or 0)
            self.token_forms.append(parse_qs(handler.rfile.read(length).decode()))
            if self.token_fault:
                return self.token_fault[0], {}, self.token_fault[1]
            self._issued += 1
            token = f"token-{self._issued}"
            self.valid_tokens.add(token)
            return 200, {}, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}
        if handler.headers.get("Authorization", "").removeprefix("Bearer ") not in self.valid_tokens:
            return 401, {}, {"error": {"code": "InvalidAuthenticationToken", "message": "Lifetime validation failed, "
                                                                                           "the token is expired."}}
        if self.fail_with:
            return self.fail_with, {}, {"error": {"code": "UnknownError", "message": ""}}
        if parts.path == JOB_PATH and self.job is not None:
            return 200, {}, self.job
        if parts.path != LOGS:
            return 404, {}, {"error": {"code": "Request_ResourceNotFound", "message": "Resource does not exist."}}
        query = parse_qs(parts.query)
        index = int(query.get("$skiptoken", ["0"])[0])
        if self.faults.get(index):
            return self.faults[index].pop(0)
        page: dict[str, Any] = {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#auditLogs/provisioning",
                                "value": self.pages[index]}
        if index + 1 < len(self.pages):
            where = quote(query["$filter"][0], safe=":")
            page["@odata.nextLink"] = f"{self.base}{LOGS}?$filter={where}&$skiptoken={index + 1}"
        if index in self.expire_after:
            self.expire_after.discard(index)
            self.valid_tokens.clear()
        return 200, {}, page


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph()
    with serving(fake.handle) as base:
        fake.base = base
        yield fake


@pytest.fixture
def settings(settings, graph):  # type: ignore[no-untyped-def]
    return replace(
        settings,
        entra=EntraSettings(enabled=True, tenant="contoso-tenant", client_id="app-id", client_secret=SECRET,
                            login_base=graph.base, graph_base=graph.base + "/v1.0", max_attempts=3),
        jobs=(JobSettings(name="uniflow-prod", entra_service_principal_id=SP_ID, entra_job_id=JOB_ID),),
    )


@pytest.fixture
def sleeps(app) -> list[float]:  # type: ignore[no-untyped-def]
    """What the pulls would have waited (they do not wait); also for the scheduler and the CLI."""
    waited: list[float] = []
    app.extensions["graph_sleep"] = waited.append
    app.extensions["graph_opener"] = no_proxy()
    app.extensions["clock"] = lambda: NOW
    return waited


def no_proxy() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def at(minutes: float) -> datetime:
    """A moment `minutes` before NOW."""
    return NOW - timedelta(minutes=minutes)
