"""What the analysis needs of one Entra provisioning event: an operation and an HTTP-like status.

The analysis (cycles, per-user outcomes, signatures, health) folds facts of the form
(operation, HTTP status). An exchange has both; an Entra event has an action and a status, and
for a failure usually the target's answer in its reason text ("StatusCode: Conflict"). This
module maps one onto the other, so the same folds, thresholds and pages serve both sources:

  action         -> operation          status             -> HTTP-like status
  create         -> create             success, warning   -> 200
  update         -> update             skipped            -> 200 (operation "skip": no write)
  disable        -> disable            failure            -> the reason's StatusCode when it
  delete         -> delete                                   gives one, else by error code
  stagedDelete   -> staged_delete                            (below), else 500
  other          -> lookup ("already match": Entra looked and changed nothing)

A `stagedDelete` is a delete that accidental-deletion prevention held back: it is not a write
(the user is still there), but it counts toward the job's deletion threshold (see
`counts_toward_deletion_threshold`). Failures whose code says a reference (manager, group
member) could not be resolved are reference failures, excluded from the 40 % / 40,000 rules
like the exchanges' group updates [Q].
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from dashboard.formats.entra.records import (
    ProvisioningAction,
    ProvisioningEvent,
    ProvisioningStatus,
)

OPERATIONS = {
    ProvisioningAction.CREATE: "create",
    ProvisioningAction.UPDATE: "update",
    ProvisioningAction.DISABLE: "disable",
    ProvisioningAction.DELETE: "delete",
    ProvisioningAction.STAGED_DELETE: "staged_delete",
    ProvisioningAction.OTHER: "lookup",
}
# HTTP reason phrases as .NET spells them in "StatusCode: <name>" (HttpStatusCode enum names).
_STATUS_NAMES = {
    "badrequest": 400, "unauthorized": 401, "forbidden": 403, "notfound": 404, "methodnotallowed": 405,
    "conflict": 409, "preconditionfailed": 412, "requestentitytoolarge": 413, "unprocessableentity": 422,
    "toomanyrequests": 429, "internalservererror": 500, "notimplemented": 501, "badgateway": 502,
    "serviceunavailable": 503, "gatewaytimeout": 504, "requesttimeout": 408,
}
# ASCII digits: `\d` is any Unicode digit, and int() reads full-width ones
_STATUS_IN_REASON = re.compile(r"StatusCode\s*[:=]\s*(?:([0-9]{3})\b|([A-Za-z]+))", re.IGNORECASE)
# Entra error codes (reference sections 4.1 and 4.2) -> the HTTP status they stand for.
_CODE_STATUS = (
    ("credentialvalidation", 401),
    ("invalidcredentials", 401),
    ("unauthorized", 401),
    ("insufficientrights", 403),
    ("notpermitted", 403),
    ("forbidden", 403),
    ("methodnotallowed", 405),
    ("conflict", 409),
    ("duplicate", 409),
    ("toomanyrequests", 429),
    ("invalidanchor", 404),
    ("notimplemented", 501),
    ("timeout", 0),
    ("webexceptionprotocolerror", 0),
    ("badrequest", 400),
    ("missingvalues", 400),
    ("mandatoryfieldsmissing", 400),
    ("schemaattributenotfound", 400),
    ("invaliddomain", 400),
    ("schemapropertycanonlyacceptvalue", 400),
    ("serviceincompatible", 400),
    ("licenselimitexceeded", 403),
    ("internalservererror", 500),
)
REFERENCE_CODES = ("unabletoresolvereferenceattributevalue", "referenceresolution")
UNKNOWN_FAILURE = 500


@dataclass(frozen=True, slots=True)
class EventFact:
    operation: str
    status: int  # HTTP-like: 200 for success, warning and skipped
    failed: bool
    reference: bool  # a reference (manager, member) failure: not counted by the 40 % rules
    staged_delete: bool


def fact_of(event: ProvisioningEvent) -> EventFact:
    operation = OPERATIONS.get(event.action, "lookup")
    if event.status is ProvisioningStatus.SKIPPED and event.action is not ProvisioningAction.STAGED_DELETE:
        operation = "skip"
    failed = event.status is ProvisioningStatus.FAILURE
    status = http_status_of(event) if failed else 200
    if failed and 0 < status < 400:  # "StatusCode: Found" on a failure: still a failure
        status = UNKNOWN_FAILURE
    return EventFact(
        operation=operation,
        status=status,
        failed=failed,
        reference=failed and is_reference_failure(event),
        staged_delete=event.action is ProvisioningAction.STAGED_DELETE,
    )


def http_status_of(event: ProvisioningEvent) -> int:
    """The target's HTTP status behind a failed event: from the reason text, else the error code."""
    found = _STATUS_IN_REASON.search(event.reason or "")
    if found:
        if found.group(1):
            number = int(found.group(1))
            if 100 <= number < 600:
                return number
        else:
            named = _STATUS_NAMES.get(found.group(2).lower())
            if named is not None:
                return named
    code = (event.error_code or "").lower()
    for fragment, status in _CODE_STATUS:
        if fragment in code:
            return status
    return UNKNOWN_FAILURE


def is_reference_failure(event: ProvisioningEvent) -> bool:
    return reference_failure(event.error_code, [(step.step_type, step.status) for step in event.steps])


def reference_failure(error_code: str | None, steps: list[tuple[str | None, str | None]]) -> bool:
    """A failure to resolve a reference (manager, group member), from the code or a failed step."""
    code = (error_code or "").lower()
    if any(fragment in code for fragment in REFERENCE_CODES):
        return True
    return any((kind or "").lower() == "referenceresolution" and (status or "").lower() == "failure"
               for kind, status in steps)


def detail_of(reason: str | None, error_code: str | None) -> str | None:
    """The part of the reason that names the cause: without the retry sentence that differs per try."""
    if not reason:
        return error_code
    cut = re.split(r"\.?\s*This operation was retried", reason, maxsplit=1, flags=re.IGNORECASE)[0]
    return cut.strip() or error_code
