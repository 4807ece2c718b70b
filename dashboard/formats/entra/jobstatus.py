"""Read Graph's synchronizationJob JSON into a JobStatus: what Entra itself says of the job.

`read_job_status_file` reads a file given as a job status (`--format entra-job-status`): one
synchronizationJob, its `status` object alone, or Graph's list of jobs ({"value": [...]}). What is
not one of these (not JSON, a page of provisioning events, a Graph error answer, an object with
none of a job's fields) is a problem naming the document, never a status: a status with nothing
in it would replace the job's real one.
"""
from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from typing import Any

import orjson

from dashboard.formats.entra.records import (
    JobStatus,
    Progress,
    Quarantine,
    Schedule,
    SyncError,
    TaskExecution,
)
from dashboard.formats.entra.values import optional_time, parse_iso_duration
from dashboard.formats.scim.records import ParseProblem
from dashboard.formats.scim.redact import bounded_raw, too_deep

RAW_KEEP = 2000


class JobStatusError(ValueError):
    def __init__(self, what: str) -> None:
        super().__init__(f"not a synchronizationJob or its status: {what}")


@dataclass(frozen=True, slots=True)
class JobDocument:
    """One synchronizationJob (or status) of a file, numbered from 1, and what it says."""

    number: int
    data: dict[str, Any]
    status: JobStatus


# Fields of a synchronizationJob, and of its status (synchronizationStatus)
_JOB_KEYS = frozenset({"templateId", "schedule", "synchronizationJobSettings"})
_STATUS_KEYS = frozenset({
    "code", "quarantine", "lastExecution", "lastSuccessfulExecution", "lastSuccessfulExecutionWithExports",
    "progress", "steadyStateFirstAchievedTime", "steadyStateLastAchievedTime", "countSuccessiveCompleteFailures",
    "escrowsPruned", "synchronizedEntryCountByType", "troubleshootingUrl",
})
# Fields that only a provisioning event (provisioningObjectSummary, in any export) has
_EVENT_KEYS = ("activityDateTime", "provisioningAction", "provisioningStatusInfo", "statusInfo", "changeId", "cycleId",
               "provisioningSteps", "sourceIdentity", "targetIdentity", "ActivityDateTime", "TimeGenerated",
               "ProvisioningAction", "ChangeId", "CycleId")


def check_job_document(data: Any) -> None:
    """Raise JobStatusError (saying what `data` is instead) unless it is a synchronizationJob or its
    status: an object with a `status` object, or with a job's or a status's own fields."""
    if not isinstance(data, dict):
        raise JobStatusError(f"a JSON {_json_type(data)}, not an object")
    deep = too_deep(data)
    if deep is not None:
        raise JobStatusError(deep)
    event_keys = [key for key in _EVENT_KEYS if key in data]
    if event_keys:
        raise JobStatusError(
            f"a provisioning event (it has {', '.join(event_keys[:3])}): import it as a provisioning log "
            "(--format entra-graph, or without --format)")
    if isinstance(data.get("status"), dict) or not _JOB_KEYS.isdisjoint(data) or not _STATUS_KEYS.isdisjoint(data):
        return
    error = data.get("error")
    if isinstance(error, dict):
        raise JobStatusError(f"a Graph error answer ({_str(error.get('code')) or 'no code'}: "
                             f"{(_str(error.get('message')) or '')[:200]})")
    shown = f"it has {', '.join(sorted(str(key) for key in data)[:5])}" if data else "it is an empty object"
    raise JobStatusError(f"none of a job's fields (status, templateId, schedule) nor of a status's "
                         f"(code, quarantine, lastExecution); {shown}")


def read_job_status_file(data: bytes) -> list[JobDocument | ParseProblem]:
    """The documents of a file given as a job status (gzip or not), each a JobDocument or the
    problem with it. A problem with the whole file is number 0; the N-th job of a list is N."""
    try:
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        document = orjson.loads(data)
    except (orjson.JSONDecodeError, OSError, EOFError, zlib.error) as exc:
        return [ParseProblem(0, f"not JSON ({exc})", bounded_raw(_text(data)))]
    deep = too_deep(document)  # before anything recursive reads it (the checks, parsing, storing)
    if deep is not None:
        return [ParseProblem(0, deep, bounded_raw(_text(data)))]
    if b"\\u0000" in data or b"\x00" in data:
        return [ParseProblem(0, "it holds a NUL character (\\u0000), which no job status field may hold",
                             bounded_raw(_text(data).replace("\x00", "\\u0000")))]
    listed = document.get("value") if isinstance(document, dict) and not isinstance(document.get("status"), dict) \
        else document
    if isinstance(listed, list):  # Graph's list of jobs, or an array of them
        items = listed
        if not items:
            return [ParseProblem(0, "no synchronizationJob in the file (an empty list)", _text(data))]
        if all(isinstance(item, dict) and any(key in item for key in _EVENT_KEYS) for item in items):
            return [ParseProblem(0, f"a page of Entra provisioning events ({len(items)}), not a synchronizationJob: "
                                    "import it as a provisioning log (--format entra-graph, or without --format)",
                                 _text(data))]
        where = "job {}: "
    else:
        items, where = [document], ""
    out: list[JobDocument | ParseProblem] = []
    for number, item in enumerate(items, 1):
        try:
            check_job_document(item)
            out.append(JobDocument(number, item, parse_job_status(item)))
        except JobStatusError as exc:
            out.append(ParseProblem(number if where else 0, f"{where.format(number)}{exc}", _raw(item)))
    return out


def _json_type(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null", int: "number",
            float: "number"}.get(type(value), type(value).__name__)


def _text(data: bytes) -> str:
    return data[:RAW_KEEP].decode("utf-8", "replace")


def _raw(item: Any) -> str:
    try:
        return bounded_raw(orjson.dumps(item).decode())[:RAW_KEEP]
    except (TypeError, orjson.JSONEncodeError):
        return type(item).__name__


def parse_job_status(data: Any) -> JobStatus:
    """A JobStatus from a synchronizationJob (or from its `status` object alone).

    Lenient inside: a field that is missing, empty ("" as in the documented sample) or of the
    wrong type is None; `0001-01-01T00:00:00Z` (Graph's "never") is None. Raises JobStatusError
    only when `data` is not an object at all.
    """
    if not isinstance(data, dict):
        raise JobStatusError(type(data).__name__)
    status = data.get("status")
    if isinstance(status, dict):
        job = data
    elif "code" in data or "quarantine" in data or "lastExecution" in data:
        job, status = {}, data
    else:
        job, status = data, {}
    return JobStatus(
        job_id=_str(job.get("id")),
        template_id=_str(job.get("templateId")),
        code=_str(status.get("code")),
        quarantine=_quarantine(status.get("quarantine")),
        progress=tuple(p for p in (_progress(item) for item in _list(status.get("progress"))) if p is not None),
        last_execution=_execution(status.get("lastExecution")),
        last_successful_execution=_execution(status.get("lastSuccessfulExecution")),
        last_successful_execution_with_exports=_execution(status.get("lastSuccessfulExecutionWithExports")),
        steady_state_first_achieved_at=optional_time(status.get("steadyStateFirstAchievedTime")),
        steady_state_last_achieved_at=optional_time(status.get("steadyStateLastAchievedTime")),
        schedule=_schedule(job.get("schedule")),
        count_successive_complete_failures=_int(status.get("countSuccessiveCompleteFailures")),
        escrows_pruned=_bool(status.get("escrowsPruned")),
        synchronized_entry_counts=_pairs(status.get("synchronizedEntryCountByType"), int),
        troubleshooting_url=_str(status.get("troubleshootingUrl")),
        settings=_pairs(job.get("synchronizationJobSettings"), str),
    )


# The quarantine page spells one reason "QuarantineOnDemand"; Graph's enum "QuarantinedOnDemand".
_REASONS = {"quarantineondemand": "QuarantinedOnDemand"}


def _quarantine(value: Any) -> Quarantine | None:
    if not isinstance(value, dict) or not value:
        return None
    reason = _str(value.get("reason"))
    if reason:
        reason = _REASONS.get(reason.lower(), reason)
    return Quarantine(
        reason=reason,
        current_began_at=optional_time(value.get("currentBegan")),
        next_attempt_at=optional_time(value.get("nextAttempt")),
        series_began_at=optional_time(value.get("seriesBegan")),
        series_count=_int(value.get("seriesCount")),
        error=_error(value.get("error")),
    )


def _error(value: Any) -> SyncError | None:
    if not isinstance(value, dict) or not value:
        return None
    error = SyncError(_str(value.get("code")), _str(value.get("message")), _bool(value.get("tenantActionable")))
    return None if error == SyncError() else error


def _progress(value: Any) -> Progress | None:
    if not isinstance(value, dict):
        return None
    return Progress(
        completed_units=_int(value.get("completedUnits")),
        total_units=_int(value.get("totalUnits")),
        units=_str(value.get("units")),
        observed_at=optional_time(value.get("progressObservationDateTime")),
    )


def _execution(value: Any) -> TaskExecution | None:
    if not isinstance(value, dict) or not value:
        return None
    return TaskExecution(
        activity_identifier=_str(value.get("activityIdentifier")),
        state=_str(value.get("state")),
        began_at=optional_time(value.get("timeBegan")),
        ended_at=optional_time(value.get("timeEnded")),
        count_entitled=_int(value.get("countEntitled")),
        count_entitled_for_provisioning=_int(value.get("countEntitledForProvisioning")),
        count_escrowed=_int(value.get("countEscrowed")),
        count_escrowed_raw=_int(value.get("countEscrowedRaw")),
        count_exported=_int(value.get("countExported")),
        count_exports=_int(value.get("countExports")),
        count_imported=_int(value.get("countImported")),
        count_imported_deltas=_int(value.get("countImportedDeltas")),
        count_imported_reference_deltas=_int(value.get("countImportedReferenceDeltas")),
        error=_error(value.get("error")),
    )


def _schedule(value: Any) -> Schedule | None:
    if not isinstance(value, dict) or not value:
        return None
    raw = _str(value.get("interval"))
    return Schedule(
        interval=parse_iso_duration(raw),
        interval_raw=raw,
        state=_str(value.get("state")),
        expiration_at=optional_time(value.get("expiration")),
    )


def _str(value: Any) -> str | None:
    if value is None or value == "" or isinstance(value, dict | list):
        return None
    return str(value)


def _int(value: Any) -> int | None:
    # Int64 fields may come as strings in JSON (OData IEEE754Compatible)
    if isinstance(value, bool) or value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _pairs(value: Any, kind: type) -> dict[str, Any]:
    """A stringKeyLongValuePair / keyValuePair list ({"key"|"name", "value"}) as a dict."""
    out: dict[str, Any] = {}
    for item in _list(value):
        if not isinstance(item, dict):
            continue
        key = item.get("key", item.get("name"))
        raw = item.get("value")
        converted = _int(raw) if kind is int else _str(raw)
        if key is not None and converted is not None:
            out[str(key)] = converted
    return out
