"""classify: the contract's operation table, who an exchange concerns, and what a failure is."""
from __future__ import annotations

import pytest

from dashboard.formats.scim.classify import classify, only_active_change, split_path
from dashboard.formats.scim.records import Operation, ScimError
from tests.factories import make_exchange

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
GUID = "8f2b5b6e-3a0c-4e8e-9d1a-7c0d2e4f6a11"
EMPTY_LIST = {"schemas": [LIST], "totalResults": 0, "Resources": []}


def _exchange(method, path, *, query=None, status=200, request_body=None, response_body=None):
    return make_exchange(
        method=method, path=path, query=query, status=status, request_body=request_body,
        response_body=response_body,
    )


def _patch(*operations):
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def _one_user(**user):
    return {"schemas": [LIST], "totalResults": 1, "Resources": [user]}


# --- the operation table ---------------------------------------------------------------------

_TABLE = [
    # (method, path, query, request_body, expected)
    ("GET", "/scim/v2/Users", 'filter=userName eq "ryan@contoso.com"', None, Operation.LOOKUP),
    ("GET", "/scim/v2/Users", "filter=userName+eq+%22ryan%40contoso.com%22", None, Operation.LOOKUP),
    ("GET", "/scim/v2/Users", "filter=userName%20eq%20%22ryan%40contoso.com%22", None, Operation.LOOKUP),
    ("GET", "/scim/v2/Users", 'filter=externalId eq "ryan"', None, Operation.LOOKUP),
    ("POST", "/scim/v2/Users", None, {"userName": "ryan@contoso.com"}, Operation.CREATE),
    ("PATCH", "/scim/v2/Users/2819c223", None, _patch({"op": "Replace", "path": "displayName", "value": "R"}), Operation.UPDATE),
    ("PUT", "/scim/v2/Users/2819c223", None, {"userName": "ryan@contoso.com", "active": False}, Operation.UPDATE),
    ("PATCH", "/scim/v2/Users/2819c223", None, _patch({"op": "Replace", "path": "active", "value": False}), Operation.DISABLE),
    ("PATCH", "/scim/v2/Users/2819c223", None, _patch({"op": "Replace", "path": "active", "value": "False"}), Operation.DISABLE),
    ("PATCH", "/scim/v2/Users/2819c223", None, _patch({"op": "replace", "value": {"active": False}}), Operation.DISABLE),
    ("PATCH", "/scim/v2/Users/2819c223", None, _patch({"op": "Add", "path": "active", "value": "false"}), Operation.DISABLE),
    ("PATCH", "/scim/v2/Users/2819c223", None, _patch({"op": "Replace", "path": "active", "value": True}), Operation.ENABLE),
    ("PATCH", "/scim/v2/Users/2819c223", None, _patch({"op": "Replace", "path": "active", "value": "True"}), Operation.ENABLE),
    ("PATCH", "/scim/v2/Users/2819c223", None, _patch({"op": "replace", "value": {"active": True}}), Operation.ENABLE),
    ("DELETE", "/scim/v2/Users/2819c223", None, None, Operation.DELETE),
    ("GET", "/scim/v2/Users/2819c223", None, None, Operation.READ),
    ("GET", "/scim/v2/Groups", 'filter=displayName eq "Finance"', None, Operation.GROUP_LOOKUP),
    ("POST", "/scim/v2/Groups", None, {"displayName": "Finance"}, Operation.GROUP_CREATE),
    ("PATCH", "/scim/v2/Groups/g-1", None, _patch({"op": "Add", "path": "members", "value": [{"value": "2819c223"}]}), Operation.GROUP_UPDATE),
    ("PATCH", "/scim/v2/Groups/g-1", None, _patch({"op": "Remove", "path": 'members[value eq "2819c223"]'}), Operation.GROUP_UPDATE),
    ("PUT", "/scim/v2/Groups/g-1", None, {"displayName": "Finance"}, Operation.GROUP_UPDATE),
    ("DELETE", "/scim/v2/Groups/g-1", None, None, Operation.GROUP_DELETE),
    ("GET", "/scim/v2/Groups/g-1", None, None, Operation.GROUP_READ),
    ("GET", "/scim/v2/ServiceProviderConfig", None, None, Operation.CONNECTION_TEST),
    ("GET", "/scim/v2/Schemas", None, None, Operation.CONNECTION_TEST),
    ("GET", "/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", None, None, Operation.CONNECTION_TEST),
    ("GET", "/scim/v2/ResourceTypes", None, None, Operation.CONNECTION_TEST),
]


@pytest.mark.parametrize(("method", "path", "query", "request_body", "expected"), _TABLE)
def test_it_classifies_each_row_of_the_operation_table(method, path, query, request_body, expected):
    exchange = _exchange(method, path, query=query, request_body=request_body, response_body=None)

    assert classify(exchange).operation is expected


@pytest.mark.parametrize(
    "body",
    [
        # active together with another change is an update, not a disable
        _patch({"op": "Replace", "path": "active", "value": False}, {"op": "Replace", "path": "title", "value": "x"}),
        _patch({"op": "replace", "value": {"active": False, "displayName": "R"}}),
        _patch({"op": "Remove", "path": "active"}),
        _patch({"op": "Replace", "path": "active", "value": "no"}),
        _patch(),
        {"active": False},  # not a PatchOp
    ],
)
def test_it_takes_a_patch_that_is_not_only_an_active_flag_for_an_update(body):
    exchange = _exchange("PATCH", "/scim/v2/Users/2819c223", request_body=body, status=204)

    assert classify(exchange).operation is Operation.UPDATE


def test_it_reads_the_last_active_flag_of_a_patch():
    body = _patch({"op": "Replace", "path": "active", "value": True}, {"op": "Replace", "path": "active", "value": "False"})

    assert only_active_change(body) is False


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/scim/v2/Users"), ("POST", "/scim/v2/Users/2819c223"), ("PATCH", "/scim/v2/Users"), ("DELETE", "/scim/v2/Users"), ("GET", "/health"), ("POST", "/scim/v2/Bulk")],
)
def test_it_calls_requests_outside_the_table_other(method, path):
    assert classify(_exchange(method, path)).operation is Operation.OTHER


# --- base paths ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/scim/v2/Users", ("users", None)),
        ("/Users", ("users", None)),
        ("/Users/2819c223", ("users", "2819c223")),
        ("/tenant/abc/scim/Users/2819c223", ("users", "2819c223")),
        ("/scim/v2/users/2819c223/", ("users", "2819c223")),
        ("/scim/v2/Users?aadOptscim062020", ("users", None)),
        ("/scim/v2/Users/a%2Fb", ("users", "a/b")),
        ("/scim/Groups/g-1", ("groups", "g-1")),
        ("/api/v1/scim/ServiceProviderConfig", ("discovery", None)),
        ("/scim/v2/", (None, None)),
    ],
)
def test_it_finds_the_resource_after_any_base_path(path, expected):
    assert split_path(path) == expected


@pytest.mark.parametrize("path", ["/scim/v2/Users", "/Users", "/tenant/abc/scim/Users", "/scim/Users"])
def test_it_classifies_a_lookup_under_any_base_path(path):
    exchange = _exchange("GET", path, query='filter=userName eq "ryan@contoso.com"')

    found = classify(exchange)

    assert (found.operation, found.user_name) == (Operation.LOOKUP, "ryan@contoso.com")


def test_it_reads_the_filter_after_entras_feature_flag():
    # a tenant URL of https://host/scim/v2/?aadOptscim062020 keeps the flag in every query
    exchange = _exchange("GET", "/scim/v2/Users", query='aadOptscim062020&filter=userName eq "ryan@contoso.com"')

    found = classify(exchange)

    assert (found.operation, found.user_name) == (Operation.LOOKUP, "ryan@contoso.com")


# --- connection tests ------------------------------------------------------------------------


@pytest.mark.parametrize("attribute", ["userName", "externalId", "id"])
def test_it_takes_an_empty_lookup_of_a_random_guid_for_a_connection_test(attribute):
    exchange = _exchange("GET", "/scim/v2/Users", query=f'filter={attribute} eq "{GUID}"', response_body=EMPTY_LIST)

    found = classify(exchange)

    assert (found.operation, found.user_name, found.external_id) == (Operation.CONNECTION_TEST, None, None)


@pytest.mark.parametrize("value", [GUID + "\n", GUID.replace("8", "\uff18")])
def test_it_keeps_a_lookup_of_almost_a_guid_a_lookup(value):
    # `$` matched before a final newline: the value is no GUID, the lookup is a user's
    exchange = _exchange("GET", "/scim/v2/Users", query=f'filter=userName eq "{value}"', response_body=EMPTY_LIST)

    found = classify(exchange)

    assert (found.operation, found.user_name) == (Operation.LOOKUP, value)


def test_it_keeps_an_empty_guid_lookup_a_lookup_when_guid_tests_are_off():
    exchange = _exchange("GET", "/scim/v2/Users", query=f'filter=userName eq "{GUID}"', response_body=EMPTY_LIST)

    found = classify(exchange, guid_lookups_are_tests=False)

    assert (found.operation, found.user_name) == (Operation.LOOKUP, GUID)


def test_it_keeps_a_guid_lookup_that_found_a_user_a_lookup():
    exchange = _exchange(
        "GET", "/scim/v2/Users", query=f'filter=externalId eq "{GUID}"',
        response_body=_one_user(id="2819c223", userName="ryan@contoso.com", externalId=GUID),
    )

    found = classify(exchange)

    assert (found.operation, found.external_id, found.scim_id) == (Operation.LOOKUP, GUID, "2819c223")


def test_it_keeps_an_empty_lookup_of_a_name_a_lookup():
    exchange = _exchange("GET", "/scim/v2/Users", query='filter=userName eq "ryan@contoso.com"', response_body=EMPTY_LIST)

    assert classify(exchange).operation is Operation.LOOKUP


# --- who an exchange concerns ----------------------------------------------------------------


def test_it_takes_the_user_of_a_create_from_the_request_body():
    exchange = _exchange(
        "POST", "/scim/v2/Users", status=201, request_body={"userName": "ryan@contoso.com", "externalId": "ryan"},
        response_body={"id": "2819c223", "userName": "ryan@contoso.com"},
    )

    found = classify(exchange)

    assert (found.user_name, found.external_id) == ("ryan@contoso.com", "ryan")


def test_it_takes_the_scim_id_of_a_create_from_the_201_response():
    exchange = _exchange(
        "POST", "/scim/v2/Users", status=201, request_body={"userName": "ryan@contoso.com"},
        response_body={"id": "2819c223", "userName": "ryan@contoso.com"},
    )

    assert classify(exchange).scim_id == "2819c223"


@pytest.mark.parametrize(
    ("query", "user_name", "external_id"),
    [
        ('filter=userName eq "ryan@contoso.com"', "ryan@contoso.com", None),
        ("filter=userName+eq+%22ryan%40contoso.com%22", "ryan@contoso.com", None),
        ("filter=userName+eq+%22a%2Bb%40contoso.com%22", "a+b@contoso.com", None),
        ('filter=externalId eq "ryan"', None, "ryan"),
        ('filter=externalId eq "ryan" and userName eq "ryan@contoso.com"', "ryan@contoso.com", "ryan"),
        ('filter=userName eq "o\'neil@contoso.com"', "o'neil@contoso.com", None),
        ('filter=userName eq "say \\"hi\\""', 'say "hi"', None),
        ("filter=userName%20eq%20%22ryan%40contoso.com%22&startIndex=1&count=100", "ryan@contoso.com", None),
    ],
)
def test_it_takes_the_user_of_a_lookup_from_its_filter(query, user_name, external_id):
    found = classify(_exchange("GET", "/scim/v2/Users", query=query, response_body=EMPTY_LIST))

    assert (found.user_name, found.external_id) == (user_name, external_id)


def test_it_keeps_an_encoded_ampersand_inside_a_filter_value():
    query = "filter=userName+eq+%22a%26b%40contoso.com%22"

    found = classify(_exchange("GET", "/scim/v2/Users", query=query, response_body=EMPTY_LIST))

    assert found.user_name == "a&b@contoso.com"


def test_it_keeps_a_literal_plus_in_an_unencoded_filter():
    query = 'filter=userName eq "a+b@contoso.com"'  # the contract's own example form: not encoded

    found = classify(_exchange("GET", "/scim/v2/Users", query=query, response_body=EMPTY_LIST))

    assert found.user_name == "a+b@contoso.com"


def test_it_takes_the_scim_id_of_a_lookup_that_found_one_user():
    exchange = _exchange(
        "GET", "/scim/v2/Users", query='filter=userName eq "ryan@contoso.com"',
        response_body=_one_user(id="2819c223", userName="ryan@contoso.com"),
    )

    assert classify(exchange).scim_id == "2819c223"


def test_it_takes_no_scim_id_from_a_lookup_that_found_several_users():
    response = {"schemas": [LIST], "totalResults": 2, "Resources": [{"id": "a"}, {"id": "b"}]}
    exchange = _exchange("GET", "/scim/v2/Users", query='filter=userName eq "ryan@contoso.com"', response_body=response)

    assert classify(exchange).scim_id is None


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE", "GET"])
def test_it_takes_the_scim_id_from_the_path(method):
    exchange = _exchange(method, "/scim/v2/Users/2819c223", status=204)

    assert classify(exchange).scim_id == "2819c223"


def test_it_takes_the_user_of_a_read_from_the_response():
    exchange = _exchange("GET", "/scim/v2/Users/2819c223", response_body={"id": "2819c223", "userName": "ryan@contoso.com"})

    found = classify(exchange)

    assert (found.scim_id, found.user_name) == ("2819c223", "ryan@contoso.com")


def test_a_rename_answered_204_names_the_user_by_the_name_it_set():
    # RFC 7644 §3.5.2 allows 204 No Content: the applied PatchOp is the only record of the rename.
    body = _patch({"op": "Replace", "path": "userName", "value": "new@contoso.com"})

    found = classify(_exchange("PATCH", "/scim/v2/Users/2819c223", status=204, request_body=body))

    assert (found.user_name, found.external_id, found.scim_id) == ("new@contoso.com", None, "2819c223")


def test_a_pathless_patch_sets_the_names_in_its_value():
    body = _patch({"op": "replace", "value": {"userName": "b@contoso.com", "externalId": "ext-b"}})

    found = classify(_exchange("PATCH", "/scim/v2/Users/2819c223", status=204, request_body=body))

    assert (found.user_name, found.external_id) == ("b@contoso.com", "ext-b")


def test_a_rename_that_failed_does_not_name_the_user():
    # a 409 on the rename: the target kept the old name (someone else holds the new one)
    body = _patch({"op": "Replace", "path": "userName", "value": "taken@contoso.com"})

    found = classify(_exchange("PATCH", "/scim/v2/Users/2819c223", status=409, request_body=body))

    assert (found.user_name, found.scim_id) == (None, "2819c223")


def test_it_attributes_no_user_to_a_group_operation():
    exchange = _exchange(
        "GET", "/scim/v2/Groups", query='filter=displayName eq "Finance"',
        response_body=_one_user(id="g-1", displayName="Finance", userName="not-a-user"),
    )

    found = classify(exchange)

    assert (found.user_name, found.external_id, found.scim_id) == (None, None, None)


# --- failures -----------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "failed"), [(200, False), (201, False), (204, False), (400, True), (401, True), (409, True), (500, True), (0, True)])
def test_it_calls_a_status_of_400_or_more_or_0_a_failure(status, failed):
    exchange = _exchange("POST", "/scim/v2/Users", status=status, request_body={"userName": "a"})

    assert classify(exchange).failed is failed


def test_it_tolerates_a_404_on_a_lookup_by_filter():
    exchange = _exchange("GET", "/scim/v2/Users", query='filter=userName eq "ryan@contoso.com"', status=404)

    found = classify(exchange)

    assert (found.operation, found.failed) == (Operation.LOOKUP, False)


@pytest.mark.parametrize(("method", "operation"), [("PATCH", Operation.UPDATE), ("DELETE", Operation.DELETE), ("GET", Operation.READ)])
def test_it_counts_a_404_on_an_id_as_a_failure(method, operation):
    body = _patch({"op": "Replace", "path": "displayName", "value": "R"}) if method == "PATCH" else None

    found = classify(_exchange(method, "/scim/v2/Users/2819c223", status=404, request_body=body))

    assert (found.operation, found.failed) == (operation, True)


def test_it_reads_the_scim_error_of_a_failed_exchange():
    response = {"schemas": [ERROR], "status": "409", "scimType": "uniqueness", "detail": "userName already exists"}
    exchange = _exchange("POST", "/scim/v2/Users", status=409, request_body={"userName": "a"}, response_body=response)

    assert classify(exchange).error == ScimError(status=409, scim_type="uniqueness", detail="userName already exists")


def test_it_prefers_the_status_of_the_error_body():
    # some targets answer HTTP 400 with the real SCIM status in the body
    response = {"schemas": [ERROR], "status": 409, "detail": "exists"}
    exchange = _exchange("POST", "/scim/v2/Users", status=400, request_body={"userName": "a"}, response_body=response)

    assert classify(exchange).error == ScimError(status=409, scim_type=None, detail="exists")


def test_it_falls_back_to_the_http_status_when_the_error_status_is_unreadable():
    response = {"schemas": [ERROR], "status": "conflict", "detail": "exists"}
    exchange = _exchange("POST", "/scim/v2/Users", status=409, request_body={"userName": "a"}, response_body=response)

    assert classify(exchange).error == ScimError(status=409, scim_type=None, detail="exists")


def test_it_gives_a_failure_without_an_error_body_its_http_status():
    exchange = _exchange("DELETE", "/scim/v2/Users/2819c223", status=500, response_body=None)

    assert classify(exchange).error == ScimError(status=500)


def test_it_describes_a_status_0_as_no_response():
    exchange = _exchange("DELETE", "/scim/v2/Users/2819c223", status=0, response_body=None)

    error = classify(exchange).error

    assert error.status == 0
    assert "no response" in error.detail


def test_it_gives_a_success_no_error():
    exchange = _exchange("POST", "/scim/v2/Users", status=201, request_body={"userName": "a"}, response_body={"id": "x"})

    assert classify(exchange).error is None


@pytest.mark.parametrize("schemas", [42, {"a": 1}, "urn:ietf:params:scim:api:messages:2.0:Error", None, [1, None]])
def test_it_classifies_a_response_whose_schemas_is_not_a_list_of_strings(schemas):
    # A target's odd answer must not raise out of classification (it would stop a whole file).
    exchange = make_exchange(method="POST", path="/scim/v2/Users", status=400,
                             response_body={"schemas": schemas, "detail": "bad", "status": "400"})

    found = classify(exchange)

    assert found.failed
    assert found.error is not None and found.error.status == 400
