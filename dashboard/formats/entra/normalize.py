"""Turn one decoded Entra record, in any export's shape, into a ProvisioningEvent.

Shapes: Graph v1.0 (`provisioningAction`, `provisioningStatusInfo.errorInformation`), Graph beta
(`action`, `statusInfo` with the error fields flat in it), the portal's JSON download (older
names, "Create"), Log Analytics `AADProvisioningLogs` rows (PascalCase, nested columns as JSON
strings, `ResultType`/`ResultSignature`/`ResultDescription`), the raw diagnostic event (the
record under `properties`, outer `durationMs`, `resultType`...) and flattened CSV columns.
Keys are matched after squashing (case, spaces, dots, underscores dropped) through `_KEYS`.
"""
from __future__ import annotations

from typing import Any

from dashboard.formats.entra import parts
from dashboard.formats.entra.parts import FieldProblem
from dashboard.formats.entra.records import ProvisioningAction, ProvisioningEvent
from dashboard.formats.entra.redact import Redactor
from dashboard.formats.entra.values import (
    ValueProblem,
    parse_duration_ms,
    parse_time,
    retry_of,
    squash,
    status_of,
)


class RecordError(ValueError):
    """Why one record was rejected; its message names the field."""


# -- the action ------------------------------------------------------------------------------------
# Graph v1.0 and the portal say "create", "Update", "StagedDelete"...; Graph beta as published in
# 2019 (and Entra's provisioning steps, whose names some exports carry as the action) name Entra's
# internal step instead: Entry<phase><verb>, e.g. EntryExportUpdate, EntryExportAdd,
# EntryExportUpdateSoftDelete, EntryImportAdd, EntrySynchronizationSkipped. The export and
# synchronization (matching) phases name what was done (or decided) to the target; the import
# phase only read the object from the source, so it is `other` (nothing written), as is a skip.
_A = ProvisioningAction
_ACTIONS: dict[str, ProvisioningAction] = {
    "create": _A.CREATE, "add": _A.CREATE, "update": _A.UPDATE, "delete": _A.DELETE, "disable": _A.DISABLE,
    "stageddelete": _A.STAGED_DELETE,
    "stagedaction": _A.STAGED_DELETE,  # the accidental-deletions page's other name
    "other": _A.OTHER, "unknownfuturevalue": _A.OTHER,
}
# squashed Entry<phase>: the verbs that phase can carry (None: what the phase alone means)
_ENTRY_VERBS: dict[str, ProvisioningAction] = {
    "add": _A.CREATE, "create": _A.CREATE,
    "update": _A.UPDATE, "enable": _A.UPDATE, "updaterestore": _A.UPDATE, "restore": _A.UPDATE,
    "delete": _A.DELETE, "objectdelete": _A.DELETE, "harddelete": _A.DELETE,
    "updatesoftdelete": _A.DISABLE, "softdelete": _A.DISABLE, "disable": _A.DISABLE, "updatedisable": _A.DISABLE,
    "stageddelete": _A.STAGED_DELETE,
    "skipped": _A.OTHER, "skip": _A.OTHER, "none": _A.OTHER,
}
_ENTRY_PHASES = ("export", "synchronization", "sync", "import")
for _phase in _ENTRY_PHASES:
    for _verb, _action in _ENTRY_VERBS.items():
        # the import phase reads the source: "change of type (Add) received" writes nothing
        _ACTIONS[f"entry{_phase}{_verb}"] = _A.OTHER if _phase == "import" else _action
_ACTIONS["entryimport"] = _A.OTHER  # read from the source, nothing else (the step before any decision)
_ACTIONS["entrysynchronization"] = _A.OTHER
_FAST_ACTIONS: dict[str, ProvisioningAction] = {
    **_ACTIONS, "Create": _A.CREATE, "Update": _A.UPDATE, "Delete": _A.DELETE, "Disable": _A.DISABLE,
    "StagedDelete": _A.STAGED_DELETE, "stagedDelete": _A.STAGED_DELETE, "Other": _A.OTHER,
    "EntryExportAdd": _A.CREATE, "EntryExportUpdate": _A.UPDATE, "EntryExportDelete": _A.DELETE,
    "EntryExportUpdateSoftDelete": _A.DISABLE, "EntryImport": _A.OTHER, "EntrySynchronizationSkipped": _A.OTHER,
}


def action_of(value: Any) -> tuple[ProvisioningAction, str | None]:
    """The action, and Entra's own word when it is not a known spelling (then: OTHER)."""
    if value is None or value == "":
        return _A.OTHER, None
    if not isinstance(value, str):
        raise ValueProblem("must be a string")
    found = _FAST_ACTIONS.get(value)
    if found is not None:
        return found, None
    found = _ACTIONS.get(squash(value))
    return (found, None) if found is not None else (_A.OTHER, value[:64])


# squashed key -> canonical name. A key not listed here is kept in the event's `extra`.
_KEYS: dict[str, str] = {}
for _canonical, _aliases in {
    "id": ("id", "eventid", "logid", "recordid"),
    "activity": (
        "activitydatetime", "timegenerated", "timegeneratedutc", "date", "dateutc", "datetime", "datetimeutc",
        "time", "timestamp", "timeutc", "activitydate", "activitytime", "activitydatetimeutc",
    ),
    "change": ("changeid",),
    "cycle": ("cycleid",),
    "job": ("jobid", "provisioningjobid"),
    "action": ("provisioningaction", "action"),
    "statusinfo": ("provisioningstatusinfo", "statusinfo"),
    "status": ("status", "resulttype", "provisioningstatus", "result", "statusinfostatus", "provisioningstatusinfostatus"),
    "error_code": (
        "errorcode", "resultsignature", "statusinfoerrorcode", "provisioningstatusinfoerrorcode",
        "errorinformationerrorcode", "provisioningstatusinfoerrorinformationerrorcode",
    ),
    "reason": (
        "reason", "statusreason", "errordescription", "resultdescription", "failurereason", "errorreason",
        "statusinforeason", "errorinformationreason", "provisioningstatusinforeason",
        "provisioningstatusinfoerrorinformationreason",
    ),
    "error_category": (
        "errorcategory", "statusinfoerrorcategory", "errorinformationerrorcategory",
        "provisioningstatusinfoerrorinformationerrorcategory",
    ),
    "recommended_action": (
        "recommendedaction", "statusinforecommendedaction", "errorinformationrecommendedaction",
        "provisioningstatusinfoerrorinformationrecommendedaction",
    ),
    "duration": ("durationinmilliseconds", "durationms", "duration", "durationinms"),
    "source": ("sourceidentity",),
    "source_id": ("sourceidentityid", "sourceid", "sourceobjectid"),
    "source_name": ("sourceidentitydisplayname", "sourcedisplayname", "sourcename", "sourceidentityname"),
    "source_type": ("sourceidentityidentitytype", "sourceidentitytype", "sourcetype", "identitytype"),
    "source_upn": ("sourceidentityuserprincipalname", "userprincipalname", "sourceuserprincipalname", "sourceupn"),
    "target": ("targetidentity",),
    "target_id": ("targetidentityid", "targetid"),
    "target_name": ("targetidentitydisplayname", "targetdisplayname", "targetname", "targetidentityname"),
    "target_type": ("targetidentityidentitytype", "targetidentitytype", "targettype"),
    "service_principal": ("serviceprincipal",),
    "sp_id": ("serviceprincipalid",),
    "sp_name": ("serviceprincipaldisplayname", "serviceprincipalname"),
    "steps": ("provisioningsteps", "steps"),
    "modified": ("modifiedproperties",),
}.items():
    for _alias in _aliases:
        _KEYS[_alias] = _canonical
# Graph's own names, to skip squashing for the common case.
_EXACT = {
    "id": "id", "activityDateTime": "activity", "changeId": "change", "cycleId": "cycle", "jobId": "job",
    "provisioningAction": "action", "action": "action", "provisioningStatusInfo": "statusinfo",
    "statusInfo": "statusinfo", "durationInMilliseconds": "duration", "sourceIdentity": "source",
    "targetIdentity": "target", "servicePrincipal": "service_principal", "provisioningSteps": "steps",
    "modifiedProperties": "modified",
}
_KEY_CACHE: dict[str, str | None] = {}
_STATUSINFO_KEYS = {
    "status": "status", "errorcode": "error_code", "reason": "reason", "errorcategory": "error_category",
    "recommendedaction": "recommended_action", "additionaldetails": "additional_details",
}
_FIELD_NAMES = {  # how a problem names a field when the record's own key is not known
    "activity": "activityDateTime", "status": "provisioningStatusInfo.status", "action": "provisioningAction",
    "duration": "durationInMilliseconds", "steps": "provisioningSteps", "modified": "modifiedProperties",
    "source": "sourceIdentity", "target": "targetIdentity", "statusinfo": "provisioningStatusInfo",
    "service_principal": "servicePrincipal",
}


def canonical_key(key: str) -> str | None:
    found = _EXACT.get(key)
    if found is not None:
        return found
    try:
        return _KEY_CACHE[key]
    except KeyError:
        found = _KEYS.get(squash(key)) if isinstance(key, str) else None
        if len(_KEY_CACHE) < 10_000:
            _KEY_CACHE[key] = found
        return found


def event_from_record(
    data: dict[str, Any], record_no: int, raw_format: str, redactor: Redactor
) -> ProvisioningEvent:
    """Validate and normalise one decoded record. Raises RecordError naming the field."""
    inner = data.get("properties")
    if inner.__class__ is dict and ("category" in data or "operationName" in data or "time" in data):
        # the raw diagnostic event: the record is `properties`; the outer fields fill gaps
        fields, names, extra = _split(inner)
        outer, outer_names, outer_extra = _split({k: v for k, v in data.items() if k != "properties"})
        for key, value in outer.items():
            if fields.get(key) in (None, ""):
                fields[key] = value
                names[key] = outer_names[key]
        extra.update(outer_extra)
    else:
        fields, names, extra = _split(data)
    try:
        return _event(fields, record_no, raw_format, redactor, extra)
    except FieldProblem as exc:
        field = names.get(exc.canonical) or _FIELD_NAMES.get(exc.canonical, exc.canonical)
        raise RecordError(f"field '{field}{exc.suffix}' {exc.message}") from None


def _split(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    fields: dict[str, Any] = {}
    names: dict[str, str] = {}
    extra: dict[str, Any] = {}
    for key, value in data.items():
        canonical = canonical_key(key)
        if canonical is None:
            extra[key] = value
        elif canonical not in fields or fields[canonical] in (None, ""):
            fields[canonical] = value  # the first non-empty one wins (v1.0 and beta names together)
            names[canonical] = key
    return fields, names, extra


def _event(
    f: dict[str, Any], record_no: int, raw_format: str, redactor: Redactor, extra: dict[str, Any]
) -> ProvisioningEvent:
    get = f.get
    stamp = get("activity")
    if stamp is None or stamp == "":
        raise FieldProblem("activity", "is missing")
    try:
        activity_at = parse_time(stamp)
    except ValueProblem as exc:
        raise FieldProblem("activity", str(exc)) from None
    try:
        action, action_raw = action_of(get("action"))
    except ValueProblem as exc:
        raise FieldProblem("action", str(exc)) from None
    info = _status_info(get("statusinfo"))
    status_value = info.get("status")
    if status_value in (None, ""):
        status_value = get("status")
    if status_value in (None, ""):
        raise FieldProblem("status", "is missing")
    try:
        status = status_of(status_value)
    except ValueProblem as exc:
        raise FieldProblem("status" if "status" not in info else "statusinfo", str(exc),
                            ".status" if "status" in info else "") from None
    try:
        duration_ms = parse_duration_ms(get("duration"))
    except ValueProblem as exc:
        raise FieldProblem("duration", str(exc)) from None
    error_code = redactor.text(parts.text(info.get("error_code")) or parts.text(get("error_code")))
    if error_code in _NO_ERROR:
        error_code = None  # Log Analytics' ResultSignature says "None" for no error
    reason = redactor.text(parts.text(info.get("reason")) or parts.text(get("reason")))
    retry_count, next_retry_at = retry_of(reason)
    source = parts.identity(get("source"), "source", f, redactor)
    target = parts.identity(get("target"), "target", f, redactor)
    steps = parts.steps(get("steps"), redactor)
    modified = parts.modified(get("modified"), redactor)
    if extra:
        extra = {
            k: (v if v is None or k in _NO_ATTRIBUTES else parts.redact_any(v, redactor))
            for k, v in extra.items()
        }
    additional = info.get("additional_details")
    if additional not in (None, "", [], {}):
        extra["additionalDetails"] = parts.redact_any(additional, redactor)
    return ProvisioningEvent(
        record_no=record_no,
        id=parts.ident(get("id"), "id"),
        change_id=parts.ident(get("change"), "change"),
        cycle_id=parts.ident(get("cycle"), "cycle"),
        job_id=parts.ident(get("job"), "job"),
        activity_at=activity_at,
        action=action,
        status=status,
        source=source,
        target=target,
        user_name=parts.user_name_of(target, modified, steps, source),
        external_id=parts.external_id_of(target, modified, steps),
        error_code=error_code,
        error_category=redactor.text(parts.text(info.get("error_category")) or parts.text(get("error_category"))),
        reason=reason,
        recommended_action=redactor.text(parts.text(info.get("recommended_action"))
                                         or parts.text(get("recommended_action"))),
        retry_count=retry_count,
        next_retry_at=next_retry_at,
        steps=steps,
        modified_properties=modified,
        duration_ms=duration_ms,
        service_principal=parts.service_principal(get("service_principal"), get("sp_id"), get("sp_name")),
        raw_format=raw_format,
        action_raw=action_raw,
        extra=extra,
    )


# Graph fields that describe the systems and the initiator, never a user's attribute values
_NO_ATTRIBUTES = frozenset({"sourceSystem", "targetSystem", "initiatedBy", "tenantId", "@odata.type"})
_NO_ERROR = frozenset({"None", "none", "NONE", "0"})


def _status_info(value: Any) -> dict[str, Any]:
    """provisioningStatusInfo (v1.0: errors under errorInformation) or statusInfo (beta: flat)."""
    value = parts.nested(value, "statusinfo")
    if not value:
        return {}
    if not isinstance(value, dict):
        raise FieldProblem("statusinfo", "must be an object")
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = _STATUSINFO_KEYS.get(key) or _STATUSINFO_KEYS.get(squash(key))
        if name is not None:
            out[name] = item
        elif squash(key) == "errorinformation" and item:
            item = parts.nested(item, "statusinfo")
            if not isinstance(item, dict):
                raise FieldProblem("statusinfo", "must be an object", ".errorInformation")
            for inner_key, inner in item.items():
                inner_name = _STATUSINFO_KEYS.get(inner_key) or _STATUSINFO_KEYS.get(squash(inner_key))
                if inner_name is not None and inner not in (None, ""):
                    out[inner_name] = inner
    return out
