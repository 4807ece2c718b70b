"""Read the nested parts of an Entra record: identities, steps, modified properties.

Each part may come as an object, as a JSON string (Log Analytics, CSV) or, for details, as a
keyValuePair list; keys are matched loosely. A part that cannot be read raises FieldProblem,
which normalize.py turns into a RecordError naming the record's own field.
"""
from __future__ import annotations

from typing import Any

import orjson

from dashboard.formats.entra.records import (
    Identity,
    ModifiedProperty,
    ProvisioningEvent,
    ServicePrincipal,
    Step,
)
from dashboard.formats.entra.redact import Redactor
from dashboard.formats.entra.values import squash, step_status_of, step_type_of
from dashboard.formats.scim.redact import MAX_NESTING, deeper_than


class FieldProblem(Exception):
    """A field that cannot be read: its canonical name, what is wrong, and a suffix (".status", "[2]")."""

    def __init__(self, canonical: str, message: str, suffix: str = "") -> None:
        super().__init__(message)
        self.canonical, self.message, self.suffix = canonical, message, suffix


def nested(value: Any, canonical: str) -> Any:
    """A nested object or array, also when given as a JSON string (Log Analytics, CSV)."""
    if value.__class__ is str:
        text = value.strip()
        if not text or text == "null":
            return None
        if text[0] in "{[":
            try:
                decoded = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                if exc.msg.startswith("depth limit"):
                    raise FieldProblem(canonical, f"is nested deeper than {MAX_NESTING} levels") from None
                raise FieldProblem(canonical, f"is not valid JSON: {exc.msg}") from None
            if deeper_than(decoded, MAX_NESTING):
                raise FieldProblem(canonical, f"is nested deeper than {MAX_NESTING} levels")
            return decoded
    return value


def text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if value.__class__ is str else str(value)


def ident(value: Any, canonical: str) -> str | None:
    if value is None or value == "":
        return None
    if value.__class__ is str:
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise FieldProblem(canonical, "must be a string")


_GRAPH_IDENTITY = frozenset({"id", "displayName", "identityType", "details"})
_GRAPH_STEP = frozenset({"name", "provisioningStepType", "status", "description", "details"})
_GRAPH_PROPERTY = frozenset({"displayName", "oldValue", "newValue"})
_IDENTITY_KEYS = {
    "id": "id", "displayname": "display_name", "name": "display_name", "identitytype": "identity_type",
    "type": "identity_type", "details": "details",
}


def identity(value: Any, side: str, flat: dict[str, Any], redactor: Redactor) -> Identity:
    value = nested(value, side)
    id_ = name = kind = None
    details: dict[str, Any] = {}
    if isinstance(value, dict):
        if value.keys() <= _GRAPH_IDENTITY:  # Graph's own shape
            id_, name, kind = value.get("id"), value.get("displayName"), value.get("identityType")
            raw_details = value.get("details")
        else:
            parts: dict[str, Any] = {}
            rest: dict[str, Any] = {}
            for key, item in value.items():
                slot = _IDENTITY_KEYS.get(squash(key))
                if slot is None or slot in parts:
                    rest[key] = item
                else:
                    parts[slot] = item
            id_, name, kind = parts.get("id"), parts.get("display_name"), parts.get("identity_type")
            raw_details = parts.get("details")
            if rest:
                raw_details = {**_details(raw_details, side), **rest}
        details = _details(raw_details, side)
    elif value not in (None, ""):
        raise FieldProblem(side, "must be an object")
    id_ = id_ if id_ not in (None, "") else flat.get(side + "_id")
    name = name if name not in (None, "") else flat.get(side + "_name")
    kind = kind if kind not in (None, "") else flat.get(side + "_type")
    if side == "source" and flat.get("source_upn") not in (None, ""):
        details = {**details, "UserPrincipalName": flat["source_upn"]}
    if details:
        details = redactor.details(details)
    return Identity(ident(id_, side), redactor.text(text(name)), text(kind), details)


def _details(value: Any, canonical: str) -> dict[str, Any]:
    """A details object; also a keyValuePair list or a JSON string of either."""
    value = nested(value, canonical)
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        out: dict[str, Any] = {}
        for item in value:
            if isinstance(item, dict) and ("key" in item or "Key" in item):
                out[str(item.get("key", item.get("Key")))] = item.get("value", item.get("Value"))
            else:
                raise FieldProblem(canonical, "must be an object or a list of key/value pairs", ".details")
        return out
    raise FieldProblem(canonical, "must be an object", ".details")


_STEP_KEYS = {
    "name": "name", "stepname": "name", "provisioningsteptype": "step_type", "steptype": "step_type",
    "type": "step_type", "status": "status", "stepstatus": "status", "description": "description",
    "stepdescription": "description", "details": "details", "stepdetails": "details",
}


def steps(value: Any, redactor: Redactor) -> tuple[Step, ...]:
    value = nested(value, "steps")
    if value is None or value == "":
        return ()
    if not isinstance(value, list):
        raise FieldProblem("steps", "must be an array")
    steps = []
    for number, item in enumerate(value, 1):
        if not isinstance(item, dict):
            raise FieldProblem("steps", "must be an object", f"[{number}]")
        if item.keys() <= _GRAPH_STEP:
            parts = item
            name, kind, status = item.get("name"), item.get("provisioningStepType"), item.get("status")
        else:
            parts = {}
            for key, part in item.items():
                slot = _STEP_KEYS.get(squash(key))
                if slot is not None and slot not in parts:
                    parts[slot] = part
            name, kind, status = parts.get("name"), parts.get("step_type"), parts.get("status")
        details = parts.get("details")
        details = details if details.__class__ is dict else _details(details, "steps")
        if details:
            details = redactor.details(details)
        steps.append(Step(redactor.text(text(name)), step_type_of(kind), step_status_of(status),
                          redactor.text(text(parts.get("description"))), details))
    return tuple(steps)


_PROPERTY_KEYS = {
    "displayname": "displayName", "name": "displayName", "propertyname": "displayName", "property": "displayName",
    "attribute": "displayName", "oldvalue": "oldValue", "old": "oldValue", "previousvalue": "oldValue",
    "newvalue": "newValue", "new": "newValue", "value": "newValue",
}


def modified(value: Any, redactor: Redactor) -> tuple[ModifiedProperty, ...]:
    value = nested(value, "modified")
    if value is None or value == "":
        return ()
    if not isinstance(value, list):
        raise FieldProblem("modified", "must be an array")
    out = []
    for number, item in enumerate(value, 1):
        if not isinstance(item, dict):
            raise FieldProblem("modified", "must be an object", f"[{number}]")
        if not item.keys() <= _GRAPH_PROPERTY:
            item = {
                _PROPERTY_KEYS.get(squash(k), k): v for k, v in item.items() if _PROPERTY_KEYS.get(squash(k))
            }
        name = text(item.get("displayName"))
        old, new = item.get("oldValue"), item.get("newValue")
        kind = redactor.kind(name) if name else None
        if kind is not None:
            old, new = redactor.value(kind, old), redactor.value(kind, new)
        else:  # a value may hold a secret as text (JSON or a query string inside a string)
            old, new = redact_any(old, redactor), redact_any(new, redactor)
        out.append(ModifiedProperty(name, old, new))
    return tuple(out)


def service_principal(value: Any, sp_id: Any, sp_name: Any) -> ServicePrincipal | None:
    value = nested(value, "service_principal")
    if isinstance(value, list):  # the v1.0 table calls it a collection; samples show one object
        value = value[0] if value else None
    if isinstance(value, dict):
        parts = {_IDENTITY_KEYS.get(squash(k)): v for k, v in value.items()}
        sp_id = parts.get("id") or sp_id
        sp_name = parts.get("display_name") or sp_name
    elif value not in (None, ""):
        raise FieldProblem("service_principal", "must be an object")
    if sp_id in (None, "") and sp_name in (None, ""):
        return None
    return ServicePrincipal(ident(sp_id, "service_principal"), text(sp_name))


def redact_any(value: Any, redactor: Redactor) -> Any:
    if isinstance(value, dict):
        return redactor.details(value)
    if isinstance(value, list):
        return [redact_any(v, redactor) for v in value]
    if value.__class__ is str:
        return redactor.text(value)
    return value


# -- who the event concerns -------------------------------------------------------------------------


def user_name_of(
    target: Identity, modified: tuple[ModifiedProperty, ...], steps: tuple[Step, ...], source: Identity
) -> str | None:
    """The userName the target knows the user by, as far as the event shows it.

    In this order: the target identity's `userName` detail; the `userName` Entra sent (modified
    property, new value, else old); the `userName` of an export step's details; the source's
    userPrincipalName (the default mapping's source of userName; a custom mapping may differ).
    """
    return (
        _detail(target.details, "username")
        or _property(modified, "username")
        or _step_detail(steps, "username")
        or _detail(source.details, "userprincipalname")
    )


def external_id_of(target: Identity, modified: tuple[ModifiedProperty, ...], steps: tuple[Step, ...]) -> str | None:
    """The externalId Entra sent or the target holds (never guessed from the source id)."""
    return _detail(target.details, "externalid") or _property(modified, "externalid") or _step_detail(steps, "externalid")


def _detail(details: dict[str, Any], squashed: str) -> str | None:
    for key, value in details.items():
        if value not in (None, "") and isinstance(value, str) and squash(key) == squashed:
            return value
    return None


def _property(modified: tuple[ModifiedProperty, ...], squashed: str) -> str | None:
    for prop in modified:
        if prop.display_name and squash(prop.display_name) == squashed:
            value = prop.new_value if prop.new_value not in (None, "") else prop.old_value
            if isinstance(value, str) and value:
                return value
    return None


def _step_detail(steps: tuple[Step, ...], squashed: str) -> str | None:
    for step in steps:
        if step.details and (step.step_type == "export" or (step.name or "").startswith("EntryExport")):
            found = _detail(step.details, squashed)
            if found:
                return found
    return None


# -- what the database takes --------------------------------------------------------------------------

# The event's values that become columns of their own (entra_load.py), by the Graph name a reject
# gives them. PostgreSQL refuses a NUL character in text; the blob (JSON) escapes it.
_COLUMN_FIELDS: tuple[tuple[str, Any], ...] = (
    ("id", lambda e: e.id), ("changeId", lambda e: e.change_id), ("cycleId", lambda e: e.cycle_id),
    ("jobId", lambda e: e.job_id), ("provisioningAction", lambda e: e.action_raw),
    ("provisioningStatusInfo.errorCode", lambda e: e.error_code),
    ("provisioningStatusInfo.errorCategory", lambda e: e.error_category),
    ("provisioningStatusInfo.reason", lambda e: e.reason),
    ("provisioningStatusInfo.recommendedAction", lambda e: e.recommended_action),
    ("sourceIdentity.id", lambda e: e.source.id), ("sourceIdentity.displayName", lambda e: e.source.display_name),
    ("sourceIdentity.identityType", lambda e: e.source.identity_type),
    ("targetIdentity.id", lambda e: e.target.id), ("targetIdentity.displayName", lambda e: e.target.display_name),
    ("targetIdentity.identityType", lambda e: e.target.identity_type),
    ("userName", lambda e: e.user_name), ("externalId", lambda e: e.external_id),
)


def nul_field(event: ProvisioningEvent) -> str | None:
    """The field of an event that holds a NUL character where a column will hold it, or None."""
    for name, value_of in _COLUMN_FIELDS:
        value = value_of(event)
        if value is not None and "\x00" in value:
            return name
    return None
