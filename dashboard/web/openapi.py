"""The JSON API described by OpenAPI 3.1 (served at /api/v1/openapi.json), built from one table.

Each row of ROUTES is one (method, path) of the `api` blueprint: its role, summary, query
parameters and response schema. tests/web/test_openapi.py checks the table against the app's
routes both ways and validates the document, so a new route without a row fails the suite.
Schemas list the keys a script can rely on (`required`); the objects may carry more.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TS = {"type": "string", "format": "date-time", "description": "RFC 3339, UTC (Z)"}
TS_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
INT_OR_NULL = {"type": ["integer", "null"]}
STR_OR_NULL = {"type": ["string", "null"]}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: dict[str, Any], **optional: Any) -> dict[str, Any]:
    """An object whose `required` keys are always present; more keys may follow."""
    return {"type": "object", "required": sorted(required), "properties": {**required, **optional}}


OUTCOMES = obj({"success": {"type": "integer"}, "failure": {"type": "integer"}, "skipped": {"type": "integer"}})

SCHEMAS: dict[str, Any] = {
    "Error": obj({"error": {"type": "string"}}),
    "Job": obj({"name": {"type": "string"}, "title": {"type": "string"}, "source": {"type": "string"},
                "target": {"type": "string"}, "scope_size": INT_OR_NULL}),
    "Outcomes": OUTCOMES,
    "Counts": {"type": "object", "description": "operation (create, update, disable, delete, other) → outcomes",
               "additionalProperties": ref("Outcomes")},
    "Cycle": obj({"id": {"type": "integer"}, "cycle_id": STR_OR_NULL, "kind": {"type": "string"},
                  "state": {"type": "string"}, "source": {"type": "string"}, "started_at": TS,
                  "ended_at": TS_OR_NULL, "duration_s": {"type": ["number", "null"]},
                  "requests": {"type": "integer"}, "failed_requests": {"type": "integer"},
                  "users": {"type": "integer"}, "counts": ref("Counts"), "totals": ref("Outcomes")},
                 progress={"type": "object"}, early_warning={"type": ["object", "null"]}),
    "User": obj({"id": {"type": "integer"}, "key": {"type": "string"}, "userName": STR_OR_NULL,
                 "externalId": STR_OR_NULL, "scim_id": STR_OR_NULL, "state": {"type": "string"},
                 "streak": {"type": "integer"}, "failing_since": TS_OR_NULL, "last_seen": TS_OR_NULL,
                 "provisioned": {"type": "boolean"}}),
    "Signature": obj({"id": {"type": "integer"}, "operation": {"type": "string"}, "status": INT_OR_NULL,
                      "scimType": STR_OR_NULL, "detail": STR_OR_NULL, "exchanges": {"type": "integer"},
                      "users": {"type": "integer"}, "first_seen": TS, "last_seen": TS,
                      "sample_exchange_id": INT_OR_NULL, "action": {"type": ["object", "null"]}}),
    "Exchange": obj({"id": {"type": "integer"}, "ts": TS, "method": {"type": "string"}, "path": {"type": "string"},
                     "query": STR_OR_NULL, "status": INT_OR_NULL, "operation": {"type": "string"},
                     "failed": {"type": "boolean"}, "duration_ms": {"type": ["number", "null"]},
                     "cycle": INT_OR_NULL, "request_id": STR_OR_NULL, "signature_id": INT_OR_NULL},
                    request_headers={"type": ["object", "null"]}, request_body={}, response_body={}),
    "Health": obj({"job": {"type": "string"}, "state": {"type": "string"}, "state_label": {"type": "string"},
                   "state_source": {"enum": ["entra", "inferred"]}, "reason": STR_OR_NULL,
                   "explanation": {"type": "string"}, "since": TS_OR_NULL, "next_expected_attempt": TS_OR_NULL,
                   "disabled_at": TS_OR_NULL, "last_traffic": TS_OR_NULL,
                   "recommended_action": {"type": ["object", "null"]}, "early_warning": {"type": ["object", "null"]},
                   "evidence": {"type": "array", "items": {"type": "object"}},
                   "transitions": {"type": "array", "items": {"type": "object"}},
                   "inferred_state": {"type": "string"}, "inferred_reason": STR_OR_NULL,
                   "entra_status": {"type": ["object", "null"]}, "entra_comparison": {"type": ["object", "null"]},
                   "disagreement": STR_OR_NULL}),
    "EntraEvent": obj({"id": {"type": "integer"}}),
    "PushResult": obj({"lines": {"type": "integer"}, "accepted": {"type": "integer"},
                       "duplicates": {"type": "integer"}, "rejected": {"type": "integer"},
                       "rejects": {"type": "array", "items": obj({"line": {"type": "integer"},
                                                                 "reason": {"type": "string"}})}}),
}


def _int(name: str, description: str, **bounds: int) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": "integer", **bounds}}


def _str(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": "string", **schema}}


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # OpenAPI form, under /api/v1: /jobs/{job_name}/cycles
    role: str  # viewer, support, admin, or "ingest token"
    summary: str
    response: dict[str, Any]
    query: tuple[dict[str, Any], ...] = ()
    errors: tuple[int, ...] = (401, 403, 404)
    extra: dict[str, Any] = field(default_factory=dict)


ROUTES: tuple[Route, ...] = (
    Route("get", "/openapi.json", "viewer", "This document", {"type": "object"}, errors=(401, 403)),
    Route("get", "/jobs", "viewer", "The jobs", obj({"jobs": {"type": "array", "items": ref("Job")}}),
          errors=(401, 403)),
    Route("get", "/jobs/{job_name}/health", "viewer", "The job's state from the best evidence", ref("Health")),
    Route("get", "/jobs/{job_name}/cycles/current", "viewer", "The latest cycle with its progress",
          obj({"cycle": {"anyOf": [ref("Cycle"), {"type": "null"}]}, "health": {"type": "object"}})),
    Route("get", "/jobs/{job_name}/cycles", "viewer", "Cycles, newest first (keyset pages)",
          obj({"cycles": {"type": "array", "items": ref("Cycle")}, "next_before": INT_OR_NULL}),
          query=(_int("limit", "cycles per page (default 50)", minimum=1, maximum=500),
                 _int("before", "next_before of the previous page (µs)", minimum=0))),
    Route("get", "/jobs/{job_name}/cycles/{cycle_id}", "support",
          "One cycle: operation × outcome matrix, diff with the previous cycle, its signatures",
          {"allOf": [ref("Cycle"), obj({"diff": {"type": "object"}, "signatures": {"type": "array"}})]}),
    Route("get", "/jobs/{job_name}/users", "support", "Users by state (keyset pages)",
          obj({"users": {"type": "array", "items": ref("User")}, "next_after": INT_OR_NULL}),
          query=(_str("state", "user state",
                      enum=["in_sync", "failing", "disabled", "deleted", "never_provisioned"]),
                 _str("q", "search in userName, externalId, SCIM id"),
                 _int("limit", "users per page (default 100)", minimum=1, maximum=1000),
                 _int("after", "next_after of the previous page", minimum=0))),
    Route("get", "/jobs/{job_name}/users/{key}/timeline", "support",
          "Why did user X fail: each cycle's outcome with the user's exchanges and Entra events",
          obj({"user": {"type": "object"}, "cycles": {"type": "array"}}, items={"type": "array"})),
    Route("get", "/jobs/{job_name}/signatures", "support", "Failures grouped by cause",
          obj({"signatures": {"type": "array", "items": ref("Signature")}}),
          query=(_int("limit", "signatures (default 50)", minimum=1, maximum=1000),)),
    Route("get", "/jobs/{job_name}/exchanges/{exchange_id}", "support", "One exchange (redacted)",
          ref("Exchange")),
    Route("get", "/jobs/{job_name}/report", "support", "The report (provisioning-report/1)",
          obj({"schema": {"const": "provisioning-report/1"}, "job": {"type": "object"}, "generated_at": TS,
               "as_of": TS, "health": ref("Health"), "cycles": {"type": "array", "items": ref("Cycle")},
               "failing_users": {"type": "array", "items": ref("User")},
               "signatures": {"type": "array", "items": ref("Signature")}}),
          query=(_int("cycles", "cycles in the report (default 5)", minimum=1, maximum=100),
                 _str("at", "replay the state at this moment (RFC 3339 with a zone)", format="date-time"))),
    Route("get", "/jobs/{job_name}/entra/status", "viewer",
          "Entra's latest imported job status and its comparison with our health",
          obj({"status": {"type": ["object", "null"]}, "comparison": {"type": ["object", "null"]}})),
    Route("get", "/jobs/{job_name}/entra/events", "support", "Entra's provisioning events, newest first",
          obj({"events": {"type": "array", "items": ref("EntraEvent")}, "next_after": STR_OR_NULL}),
          query=(_str("status", "success, failure, skipped, warning"), _str("action", "create, update, …"),
                 _str("cycle", "Entra's cycleId"), _str("user", "a user's name or id"),
                 _str("since", "RFC 3339", format="date-time"), _int("limit", "events (default 100)", minimum=1,
                                                                      maximum=1000),
                 _str("after", "next_after of the previous page"))),
    Route("get", "/jobs/{job_name}/entra/events/{event_id}", "support",
          "One Entra event in full with the user's SCIM exchanges around it",
          {"allOf": [ref("EntraEvent"), obj({"exchanges": {"type": "array"}, "window_s": {"type": "integer"}})]}),
    Route("post", "/jobs/{job_name}/exchanges", "ingest token",
          "Push SCIM request log lines (JSON Lines or a JSON array; gzip with Content-Encoding: gzip)",
          ref("PushResult"), errors=(400, 401, 403, 413, 415, 503),
          extra={"requestBody": {"required": True, "content": {
              "application/x-ndjson": {"schema": {"type": "string"}},
              "application/json": {"schema": {"type": "array", "items": {"type": "object"}}}}}}),
)

PATH_PARAMETERS = {
    "job_name": {"type": "string"}, "cycle_id": {"type": "integer"}, "exchange_id": {"type": "integer"},
    "event_id": {"type": "integer"}, "key": {"type": "string", "description": "userName, externalId or SCIM id"},
}
ERRORS = {400: "a bad query parameter (a push: damaged gzip data)", 401: "not signed in (or no ingest token)", 403: "role too low (or token "
          "not valid for this job)", 404: "unknown job, cycle, user, exchange or event", 413: "body too large",
          415: "a Content-Encoding other than gzip", 503: "database unavailable: retry the same body after Retry-After seconds"}


def _operation(route: Route) -> dict[str, Any]:
    names = [part[1:-1] for part in route.path.split("/") if part.startswith("{")]
    parameters = [{"name": n, "in": "path", "required": True, "schema": PATH_PARAMETERS[n]} for n in names]
    responses: dict[str, Any] = {"200": {"description": "OK", "content": {"application/json": {
        "schema": route.response}}}}
    for status in sorted({*route.errors, *((400,) if route.query else ())}):
        responses[str(status)] = {"description": ERRORS[status], "content": {"application/json": {
            "schema": ref("Error")}}}
    security = [{"ingestToken": []}] if route.role == "ingest token" else [{"session": []}, {"apiToken": []}]
    words = route.path.strip("/").replace("{", "").replace("}", "").replace(".", "_").replace("/", "_")
    return {"operationId": f"{route.method}_{words}",
            "summary": route.summary, "description": f"Role: {route.role}.", "x-role": route.role,
            "parameters": parameters + list(route.query), "responses": responses, "security": security,
            **route.extra}


def document(base_url: str = "/api/v1") -> dict[str, Any]:
    """The OpenAPI 3.1 document of every /api/v1 route."""
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Provisioning dashboard JSON API", "version": "1",
                 "description": "Read the health, cycles, users and failures of SCIM provisioning jobs, and "
                                "push SCIM request logs. See docs/api.md."},
        "servers": [{"url": base_url}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "session",
                            "description": "the dashboard's session cookie after signing in"},
                "apiToken": {"type": "http", "scheme": "bearer",
                             "description": "a personal API token (pma_…): flask --app app user token EMAIL"},
                "ingestToken": {"type": "http", "scheme": "bearer",
                                "description": "a job's ingest token (pmd_…): flask --app app token create --job NAME"},
            },
        },
    }
