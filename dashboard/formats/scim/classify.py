"""What an exchange means for provisioning: its operation, the user it concerns, its failure."""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from dashboard.formats.limits import fit
from dashboard.formats.scim.parse import decode_query
from dashboard.formats.scim.records import Classified, Exchange, Operation, ScimError

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
_RESOURCES = {
    "users": "users",
    "groups": "groups",
    "serviceproviderconfig": "discovery",
    "serviceproviderconfigs": "discovery",
    "schemas": "discovery",
    "resourcetypes": "discovery",
    "bulk": "bulk",
}
_FILTER_TERM = re.compile(
    r'(?P<attr>[A-Za-z][\w:.\-]*)\s+eq\s+(?:"(?P<q>(?:[^"\\]|\\.)*)"|(?P<bare>[^\s)]+))',
    re.IGNORECASE,
)
_AMPERSANDS = re.compile(r'&(?=(?:[^"]*"[^"]*")*[^"]*$)')  # an '&' outside double quotes
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)  # fullmatch


def classify(exchange: Exchange, *, guid_lookups_are_tests: bool = True) -> Classified:
    """Classify one exchange per the contract's table.

    `guid_lookups_are_tests`: Entra's Test Connection (and the check at a cycle's start) looks up a
    random GUID; a filter on a bare GUID that finds nothing is taken for that test. Turn it off
    for targets whose matching attribute really holds GUIDs.
    """
    resource, resource_id = split_path(exchange.path)
    # A lookup's filter is read once here and handed on (the helpers below would each re-read it).
    filter_text = _filter_of(exchange) if resource == "users" and exchange.method == "GET" and not resource_id else None
    operation = _operation(exchange, resource, resource_id, filter_text)
    terms = _terms(filter_text or "") if operation is Operation.LOOKUP else None
    user_name, external_id = _identity(exchange, operation, terms, resource_id)
    if operation is Operation.LOOKUP and guid_lookups_are_tests and _is_test_lookup(exchange, terms):
        operation = Operation.CONNECTION_TEST
    if operation is Operation.CONNECTION_TEST:
        user_name = external_id = None  # a probe for a random value: it concerns no user
    scim_id = fit(resource_id, 512) if resource == "users" else None
    if scim_id is None and resource == "users" and operation is not Operation.CONNECTION_TEST:
        scim_id = _response_id(exchange)
    failed = is_failure(exchange, operation)
    return Classified(
        operation,
        failed,
        user_name if resource == "users" else None,
        external_id if resource == "users" else None,
        scim_id,
        scim_error_of(exchange) if (failed or exchange.status >= 400) else None,
        lookup_found(exchange, operation),
    )


def lookup_found(exchange: Exchange, operation: Operation) -> bool | None:
    """Did a lookup (or a read by id) find the account? An empty ListResponse, or a 404, says
    no; a resource in the answer says yes; anything else (an error, no body) says nothing."""
    if operation is Operation.READ:
        return True if 200 <= exchange.status < 300 else (False if exchange.status == 404 else None)
    if operation is not Operation.LOOKUP:
        return None
    if exchange.status == 404:
        return False
    if not 200 <= exchange.status < 300:
        return None
    body = exchange.response_body
    if not isinstance(body, dict):
        return None
    resources = body.get("Resources", body.get("resources"))
    total = body.get("totalResults")
    if isinstance(resources, list) and resources:
        return True
    if isinstance(total, int) and not isinstance(total, bool):
        return total > 0
    if isinstance(resources, list):  # an empty list and no total
        return False
    return None


def split_path(path: str) -> tuple[str | None, str | None]:
    """The SCIM resource a path addresses ("users", "groups", "discovery", "bulk") and its id.

    Any base path before the resource segment is allowed (`/scim/v2`, `/tenant/x/scim`).
    """
    segments = [s for s in path.split("?", 1)[0].split("/") if s]
    for index in range(len(segments) - 1, -1, -1):
        resource = _RESOURCES.get(segments[index].lower())
        if resource is not None:
            rest = segments[index + 1 :]
            return resource, (unquote(rest[0]) if rest else None)
    return None, None


def operation_of(exchange: Exchange, resource: str | None, resource_id: str | None) -> Operation:
    filter_text = _filter_of(exchange) if resource == "users" and exchange.method == "GET" and not resource_id else None
    return _operation(exchange, resource, resource_id, filter_text)


def _operation(exchange: Exchange, resource: str | None, resource_id: str | None, filter_text: str | None) -> Operation:
    method = exchange.method
    if resource == "discovery":
        return Operation.CONNECTION_TEST
    if resource == "users":
        if method == "GET":
            if resource_id:
                return Operation.READ
            return Operation.LOOKUP if filter_text else Operation.OTHER
        if method == "POST" and not resource_id:
            return Operation.CREATE
        if method in ("PATCH", "PUT") and resource_id:
            if method == "PATCH":
                active = only_active_change(exchange.request_body)
                if active is not None:
                    return Operation.ENABLE if active else Operation.DISABLE
            return Operation.UPDATE
        if method == "DELETE" and resource_id:
            return Operation.DELETE
    if resource == "groups":
        if method == "GET":
            return Operation.GROUP_READ if resource_id else Operation.GROUP_LOOKUP
        if method == "POST" and not resource_id:
            return Operation.GROUP_CREATE
        if method in ("PATCH", "PUT") and resource_id:
            return Operation.GROUP_UPDATE
        if method == "DELETE" and resource_id:
            return Operation.GROUP_DELETE
    return Operation.OTHER


def is_failure(exchange: Exchange, operation: Operation) -> bool:
    """A status of 400 or more, or 0 (no response) - except a lookup's 404, which the contract
    tolerates per user (the health judge still treats it as a SCIM-compliance problem)."""
    if exchange.status == 0 or exchange.status >= 400:
        return not is_tolerated_lookup_404(exchange, operation)
    return False


def is_tolerated_lookup_404(exchange: Exchange, operation: Operation) -> bool:
    return exchange.status == 404 and operation in (Operation.LOOKUP, Operation.CONNECTION_TEST)


def only_active_change(body: Any) -> bool | None:
    """For a PatchOp whose only change is `active`, the new value; else None.

    Entra without the aadOptscim062020 flag sends `"op": "Replace"` and `"value": "False"`.
    """
    if not isinstance(body, dict):
        return None
    operations = body.get("Operations") or body.get("operations")
    if not isinstance(operations, list) or not operations:
        return None
    values: list[bool] = []
    for op in operations:
        if not isinstance(op, dict) or str(op.get("op", "")).lower() not in ("replace", "add"):
            return None
        path, value = op.get("path"), op.get("value")
        if isinstance(path, str) and path.strip().lower() == "active":
            flag = as_bool(value)
        elif path is None and isinstance(value, dict) and list(value) == ["active"]:
            flag = as_bool(value["active"])
        else:
            return None
        if flag is None:
            return None
        values.append(flag)
    return values[-1]


def as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def scim_error_of(exchange: Exchange) -> ScimError:
    body = exchange.response_body
    if isinstance(body, dict) and (
        ERROR_SCHEMA in _schemas(body) or "detail" in body or "scimType" in body
    ):
        status = body.get("status")
        try:
            status_int = int(status) if status is not None else exchange.status
        except (TypeError, ValueError):
            status_int = exchange.status
        scim_type = body.get("scimType")
        detail = body.get("detail")
        return ScimError(
            status=status_int,
            scim_type=fit(str(scim_type), 64) if scim_type else None,
            detail=str(detail)[:1000] if detail else None,
        )
    if exchange.status == 0:
        return ScimError(status=0, detail="no response (time-out or connection reset)")
    return ScimError(status=exchange.status)


def _filter_of(exchange: Exchange) -> str | None:
    # split before decoding (an encoded %26 belongs to a value), and never inside quotes
    query = exchange.query or ""
    for part in _AMPERSANDS.split(query) if "&" in query else (query,):
        key, _, value = part.partition("=")
        if decode_query(key).strip().lower() == "filter":
            return decode_query(value)
    return None


def filter_terms(exchange: Exchange) -> dict[str, str]:
    """The `attr eq "value"` terms of a lookup's filter, attribute names lower-cased."""
    return _terms(_filter_of(exchange) or "")


def _terms(text: str) -> dict[str, str]:
    terms: dict[str, str] = {}
    for match in _FILTER_TERM.finditer(text):
        value = match.group("q")
        value = value.replace('\\"', '"') if value is not None else match.group("bare")
        terms.setdefault(match.group("attr").lower(), value)
    return terms


def _identity(
    exchange: Exchange, operation: Operation, terms: dict[str, str] | None, resource_id: str | None = None,
) -> tuple[str | None, str | None]:
    """userName and externalId: from the request (a create's body, a lookup's filter), completed
    from the one resource of the answer, unless that resource is another than the path's."""
    user_name = external_id = None
    if operation in (Operation.CREATE, Operation.UPDATE) and isinstance(exchange.request_body, dict):
        if exchange.method in ("POST", "PUT"):
            user_name = _str(exchange.request_body.get("userName"))
            external_id = _str(exchange.request_body.get("externalId"))
        elif 200 <= exchange.status < 300:  # a PATCH that was applied: the names it set are the user's now
            user_name, external_id = _patched_names(exchange.request_body)
    elif operation is Operation.LOOKUP:
        if terms is None:
            terms = filter_terms(exchange)
        user_name = terms.get("username")
        external_id = terms.get("externalid")
    if user_name is None or external_id is None:
        resource = _single_resource(exchange.response_body)
        if resource is not None and (resource_id is None or _str(resource.get("id")) in (None, resource_id)):
            if user_name is None and external_id is None:
                user_name = _str(resource.get("userName"))
            if external_id is None and (user_name is None or _same_name(user_name, resource.get("userName"))):
                external_id = _str(resource.get("externalId"))
    return user_name, external_id


def _patched_names(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """userName and externalId that a PatchOp replaces or adds (by path, or in a pathless value),
    so that a rename answered 204 No Content (RFC 7644 §3.5.2) is still seen."""
    operations = body.get("Operations") or body.get("operations")
    names: dict[str, str | None] = {"username": None, "externalid": None}
    if not isinstance(operations, list):
        return None, None
    for op in operations:
        if not isinstance(op, dict) or str(op.get("op", "")).lower() not in ("replace", "add"):
            continue
        path, value = op.get("path"), op.get("value")
        if isinstance(path, str) and path.strip().lower() in names:
            names[path.strip().lower()] = _str(value) or names[path.strip().lower()]
        elif path is None and isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and key.lower() in names:
                    names[key.lower()] = _str(item) or names[key.lower()]
    return names["username"], names["externalid"]


def _same_name(a: str, b: Any) -> bool:
    return isinstance(b, str) and a.casefold() == b.casefold()


def _response_id(exchange: Exchange) -> str | None:
    resource = _single_resource(exchange.response_body)
    return _str(resource.get("id")) if resource is not None else None  # (only asked when the path has no id)


def _single_resource(body: Any) -> dict[str, Any] | None:
    if not isinstance(body, dict):
        return None
    resources = body.get("Resources")
    if isinstance(resources, list):
        return resources[0] if len(resources) == 1 and isinstance(resources[0], dict) else None
    if ERROR_SCHEMA in _schemas(body):
        return None
    return body if ("id" in body or "userName" in body) else None


def _is_test_lookup(exchange: Exchange, terms: dict[str, str] | None = None) -> bool:
    if terms is None:
        terms = filter_terms(exchange)
    if "placeholder" in terms:
        return True
    if len(terms) != 1:
        return False
    (value,) = terms.values()
    if not _GUID.fullmatch(value or ""):
        return False
    body = exchange.response_body
    found = isinstance(body, dict) and bool(body.get("totalResults") or body.get("Resources"))
    return not found


def _str(value: Any) -> str | None:
    return fit(value, 512) if isinstance(value, str) and value else None


def _schemas(body: dict[str, Any]) -> list[Any]:
    """The body's `schemas`, or nothing when a target sent something other than a list."""
    schemas = body.get("schemas")
    return schemas if isinstance(schemas, list) else []
