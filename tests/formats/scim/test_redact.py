"""redact / redact_text: the contract's Secrets section, every form a secret arrives in."""
from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.formats.scim.redact import (
    DEFAULT_RULES,
    REDACTED,
    RedactionRules,
    redact,
    redact_body,
    redact_headers,
    redact_query,
    redact_text,
)
from tests.factories import make_exchange

UNIFLOW = "urn:ietf:params:scim:schemas:extension:uniFLOWOnline:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def _create_body() -> dict:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE, UNIFLOW],
        "userName": "ryan@contoso.com",
        "externalId": "ryan",
        "active": True,
        "displayName": "Ryan Adams",
        "emails": [{"primary": True, "type": "work", "value": "ryan@contoso.com"}],
        "password": "Hunter2!",
        ENTERPRISE: {"department": "Finance"},
        UNIFLOW: {"pin": "1234", "cardRegistrationCode": "REG-99", "cardNumber": "1234567890"},
    }


def _patch(*operations: dict) -> dict:
    return {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": list(operations)}


# --- headers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "authorization",
        "Authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-ms-client-token",  # any header whose name holds "token"
        "x-refresh-token",
        "x-client-secret",
    ],
)
def test_it_redacts_a_secret_header(header):
    exchange = make_exchange(request_headers={header: "Bearer eyJ0eXAi.abc.def", "accept": "application/scim+json"})

    clean = redact(exchange)

    assert clean.request_headers == {header: REDACTED, "accept": "application/scim+json"}


def test_it_leaves_ordinary_headers_alone():
    headers = {"accept": "application/scim+json", "content-type": "application/scim+json", "user-agent": "Entra"}

    assert redact_headers(headers, DEFAULT_RULES) is headers


# --- attributes in resource bodies -----------------------------------------------------------


def test_it_redacts_the_password_of_a_create():
    clean = redact(make_exchange(method="POST", request_body=_create_body()))

    assert clean.request_body["password"] == REDACTED


@pytest.mark.parametrize("attribute", ["pin", "cardRegistrationCode"])
def test_it_redacts_a_uniflow_extension_secret_in_a_create(attribute):
    clean = redact(make_exchange(method="POST", request_body=_create_body()))

    assert clean.request_body[UNIFLOW][attribute] == REDACTED


def test_it_masks_the_card_number_to_its_last_four_characters():
    clean = redact(make_exchange(method="POST", request_body=_create_body()))

    assert clean.request_body[UNIFLOW]["cardNumber"] == "******7890"


@pytest.mark.parametrize(("card", "masked"), [("1234", "****"), ("12", "**"), ("", "")])
def test_it_masks_a_short_card_number_entirely(card, masked):
    clean = redact_body({UNIFLOW: {"cardNumber": card}}, DEFAULT_RULES)

    assert clean[UNIFLOW]["cardNumber"] == masked


def test_it_masks_a_card_number_sent_as_a_json_number():
    clean = redact_body({UNIFLOW: {"cardNumber": 1234567890}}, DEFAULT_RULES)

    assert clean[UNIFLOW]["cardNumber"] == "******7890"


def test_it_leaves_the_other_attributes_of_a_create_untouched():
    body = _create_body()

    clean = redact(make_exchange(method="POST", request_body=body)).request_body

    for key in ("schemas", "userName", "externalId", "active", "displayName", "emails", ENTERPRISE):
        assert clean[key] == body[key]


def test_it_redacts_secrets_echoed_in_the_response_body():
    response = {"id": "2819c223", **_create_body()}

    clean = redact(make_exchange(method="POST", status=201, response_body=response)).response_body

    assert (clean["password"], clean[UNIFLOW]["pin"]) == (REDACTED, REDACTED)


def test_it_redacts_secrets_in_unknown_fields():
    clean = redact(make_exchange(extra={"upstream": {"request": _create_body()}}))

    assert clean.extra["upstream"]["request"][UNIFLOW]["pin"] == REDACTED


def test_it_redacts_secrets_inside_a_list_response():
    response = {"totalResults": 1, "Resources": [_create_body()]}

    clean = redact(make_exchange(response_body=response)).response_body

    assert clean["Resources"][0][UNIFLOW]["cardRegistrationCode"] == REDACTED


@pytest.mark.parametrize("name", ["PIN", "Password", "cardregistrationcode", f"{UNIFLOW}:pin", f"{UNIFLOW}.Pin"])
def test_it_matches_attribute_names_case_insensitively_and_by_their_last_segment(name):
    clean = redact_body({name: "1234"}, DEFAULT_RULES)

    assert clean == {name: REDACTED}


@pytest.mark.parametrize("value", [0, 1234, "", {"a": "b"}, ["1", "2"], True])
def test_it_redacts_a_secret_whatever_its_json_type(value):
    assert redact_body({"pin": value}, DEFAULT_RULES) == {"pin": REDACTED}


def test_it_keeps_a_null_secret_null():
    # null carries no secret, and "pin was cleared" is worth seeing in a diff
    assert redact_body({"pin": None}, DEFAULT_RULES) == {"pin": None}


def test_it_does_not_redact_a_value_that_merely_equals_a_secret_name():
    body = {"title": "pin", "nickName": "password", "schemas": [UNIFLOW]}

    assert redact_body(body, DEFAULT_RULES) is body


# --- PatchOp forms ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "pin", "value": "1234"},
        {"op": "Replace", "path": "pin", "value": "1234"},
        {"op": "Add", "path": "pin", "value": "1234"},
        {"op": "add", "path": f"{UNIFLOW}:pin", "value": "1234"},
        {"op": "replace", "path": f"{UNIFLOW}:cardRegistrationCode", "value": "REG-99"},
        {"op": "replace", "path": "password", "value": "Hunter2!"},
        {"op": "replace", "path": f"{UNIFLOW}:pin", "value": 1234},
        {"op": "replace", "path": f"{UNIFLOW}:pin", "value": ["1234"]},
        {"op": "replace", "path": f"{UNIFLOW}:pin", "value": {"value": "1234"}},
    ],
)
def test_it_redacts_the_value_of_a_patch_whose_path_names_a_secret(operation):
    clean = redact_body(_patch(operation), DEFAULT_RULES)

    assert clean["Operations"][0] == {"op": operation["op"], "path": operation["path"], "value": REDACTED}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({f"{UNIFLOW}:pin": "1234"}, {f"{UNIFLOW}:pin": REDACTED}),
        ({UNIFLOW: {"cardRegistrationCode": "x"}}, {UNIFLOW: {"cardRegistrationCode": REDACTED}}),
        ({UNIFLOW: {"pin": "1234", "cardNumber": "1234567890"}}, {UNIFLOW: {"pin": REDACTED, "cardNumber": "******7890"}}),
        ({"password": "x", "displayName": "Ryan"}, {"password": REDACTED, "displayName": "Ryan"}),
    ],
)
@pytest.mark.parametrize("op", ["replace", "Replace", "Add"])
def test_it_redacts_secrets_in_the_value_of_a_pathless_patch(op, value, expected):
    clean = redact_body(_patch({"op": op, "value": value}), DEFAULT_RULES)

    assert clean["Operations"][0] == {"op": op, "value": expected}


def test_it_redacts_the_value_of_a_patch_on_the_extension_itself():
    operation = {"op": "replace", "path": UNIFLOW, "value": {"pin": "1234", "localUsername": "ryan"}}

    clean = redact_body(_patch(operation), DEFAULT_RULES)

    assert clean["Operations"][0]["value"] == {"pin": REDACTED, "localUsername": "ryan"}


def test_it_masks_a_card_number_set_by_a_patch():
    operation = {"op": "replace", "path": f"{UNIFLOW}:cardNumber", "value": "1234567890"}

    clean = redact_body(_patch(operation), DEFAULT_RULES)

    assert clean["Operations"][0]["value"] == "******7890"


def test_it_leaves_a_patch_of_ordinary_attributes_untouched():
    body = _patch(
        {"op": "Replace", "path": "displayName", "value": "Ryan"},
        {"op": "Add", "path": 'emails[type eq "work"].value', "value": "ryan@contoso.com"},
        {"op": "Replace", "path": "active", "value": "False"},
    )

    assert redact_body(body, DEFAULT_RULES) is body


@pytest.mark.parametrize(
    "operation",
    [{"op": "replace", "Path": "pin", "value": "1234"}, {"op": "replace", "path": "pin", "Value": "1234"}],
)
def test_it_redacts_a_patch_whose_member_names_are_capitalised(operation):
    clean = redact_body(_patch(operation), DEFAULT_RULES)

    assert "1234" not in str(clean)


# --- query -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["access_token", "Access_Token", "token", "client_secret", "code", "sig", "id_token"])
def test_it_redacts_a_secret_query_parameter(key):
    clean = redact_query(f"{key}=eyJ0eXAi&count=10", DEFAULT_RULES)

    assert "eyJ0eXAi" not in clean
    assert clean == f"{key}=%5BREDACTED%5D&count=10"


def test_it_keeps_a_query_without_secrets_as_it_was():
    query = 'filter=userName eq "token@contoso.com"'  # the word in a value is not a secret key

    assert redact_query(query, DEFAULT_RULES) is query


def test_it_redacts_the_query_of_an_exchange():
    clean = redact(make_exchange(query="access_token=abc&filter=userName+eq+%22x%22"))

    assert clean.query == "access_token=%5BREDACTED%5D&filter=userName+eq+%22x%22"


# --- the exchange as a whole ------------------------------------------------------------------


def _secret_exchange():
    return make_exchange(
        method="POST",
        query="access_token=abc",
        request_headers={"authorization": "Bearer abc", "accept": "application/scim+json"},
        request_body=_create_body(),
        response_body={"id": "2819c223", **_create_body()},
        extra={"debug": {"pin": "1234"}},
    )


def test_it_does_not_mutate_the_original_exchange():
    exchange = _secret_exchange()
    before = copy.deepcopy(exchange)

    redact(exchange)

    assert exchange == before


def test_it_is_idempotent():
    once = redact(_secret_exchange())

    assert redact(once) == once


def test_it_returns_an_exchange_without_secrets_as_it_is():
    exchange = make_exchange(request_headers={"accept": "application/scim+json"}, request_body={"userName": "a"})

    assert redact(exchange) is exchange


def test_it_keeps_the_identity_fields_of_the_exchange():
    exchange = _secret_exchange()

    clean = redact(exchange)

    assert (clean.ts, clean.method, clean.path, clean.status, clean.request_id, clean.job, clean.client) == (
        exchange.ts, exchange.method, exchange.path, exchange.status, exchange.request_id, exchange.job,
        exchange.client,
    )


def test_it_leaves_no_secret_anywhere_in_the_exchange():
    clean = redact(_secret_exchange())

    text = repr(clean)
    for secret in ("Hunter2!", "REG-99", "1234567890", "Bearer abc", "access_token=abc", "'1234'"):
        assert secret not in text


# --- properties ------------------------------------------------------------------------------

SENTINEL = "S3CR3T-9876"  # placed only where a secret belongs
_secret_names = st.sampled_from(
    ["password", "pin", "PIN", "cardRegistrationCode", f"{UNIFLOW}:pin", f"{UNIFLOW}:cardRegistrationCode", f"{UNIFLOW}.Pin"]
)
_ordinary_keys = st.sampled_from(
    ["userName", "value", "displayName", "emails", "op", "Operations", "schemas", UNIFLOW]
) | st.text(max_size=6)  # no cardNumber: see test_it_redacts_a_secret_nested_in_a_masked_object
_leaves = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
_secret_values = st.sampled_from([SENTINEL, [SENTINEL], {"value": SENTINEL}, {"nested": [SENTINEL]}])


def _with_secrets(children):
    secret_pair = st.tuples(_secret_names, _secret_values)
    patch_op = st.builds(
        lambda op, path, value: {"op": op, "path": path, "value": value},
        st.sampled_from(["add", "Replace"]), _secret_names, _secret_values,
    )
    ordinary = st.dictionaries(_ordinary_keys, children, max_size=3)
    with_secret = st.builds(lambda d, pair: {**d, pair[0]: pair[1]}, ordinary, secret_pair)
    return st.lists(children, max_size=3) | ordinary | with_secret | patch_op


_bodies = st.recursive(_leaves, _with_secrets, max_leaves=15)


@settings(max_examples=300, deadline=None)
@given(_bodies)
def test_it_leaves_no_secret_value_anywhere_in_any_body(body):
    assert SENTINEL not in repr(redact_body(body, DEFAULT_RULES))


@settings(max_examples=300, deadline=None)
@given(_bodies)
def test_it_redacts_any_body_idempotently_without_mutating_it(body):
    before = copy.deepcopy(body)

    once = redact_body(body, DEFAULT_RULES)

    assert body == before
    assert redact_body(once, DEFAULT_RULES) == once


def test_it_redacts_a_secret_nested_in_a_masked_object():
    body = {UNIFLOW: {"cardNumber": {"value": "1234567890", "pin": "1234"}}}

    clean = redact_body(body, DEFAULT_RULES)

    assert clean == {UNIFLOW: {"cardNumber": {"value": "******7890", "pin": REDACTED}}}


# --- configurable rules ---------------------------------------------------------------------


def test_it_redacts_a_configured_attribute():
    rules = RedactionRules.build(attributes=["employeeNumber"], masked=[], headers=["authorization"])
    body = {ENTERPRISE: {"employeeNumber": "E-42", "department": "Finance"}}

    clean = redact_body(body, rules)

    assert clean == {ENTERPRISE: {"employeeNumber": REDACTED, "department": "Finance"}}


def test_it_masks_a_configured_attribute_keeping_the_configured_length():
    rules = RedactionRules.build(attributes=[], masked=["badgeId"], headers=[], mask_keep=2)

    assert redact_body({"badgeId": "ABCDEF"}, rules) == {"badgeId": "****EF"}


def test_it_redacts_a_configured_header():
    rules = RedactionRules.build(attributes=[], masked=[], headers=["x-tenant-key"])

    clean = redact_headers({"X-Tenant-Key": "k", "accept": "json"}, rules)

    assert clean == {"X-Tenant-Key": REDACTED, "accept": "json"}


def test_it_always_redacts_the_authorization_header():
    # The contract: "Never stored or shown in clear: the authorization header".
    rules = RedactionRules.build(attributes=["pin"], masked=[], headers=["x-tenant-key"])

    assert redact_headers({"authorization": "Bearer abc"}, rules) == {"authorization": REDACTED}


# --- redact_text (rejected lines that are not JSON) ------------------------------------------


@pytest.mark.parametrize(
    ("raw", "secret"),
    [
        ('{"pin":"1234","userName":"a"', "1234"),
        ('{"pin": 1234, "userName":"a"', "1234"),
        ('{"PIN" : "4321"', "4321"),
        ('{"password":"p\\"ss word","x":1', "ss word"),
        (f'{{"op":"Replace","path":"{UNIFLOW}:pin","value":"1234"}}', "1234"),
        (f'{{"path":"{UNIFLOW}:pin","value":1234,', "1234"),
        ('{"op":"replace","path":"pin","value":"9876"', "9876"),
        (f'{{"op":"replace","value":{{"{UNIFLOW}:pin":"1234"', "1234"),
        (f'{{"{UNIFLOW}":{{"cardRegistrationCode":"REG-99","pin":"9876"', "REG-99"),
        (f'{{"{UNIFLOW}":{{"cardRegistrationCode":"REG-99","pin":"9876"', "9876"),
        ('{"request_headers":{"authorization":"Bearer eyJ0eXAi.abc.def"', "eyJ0eXAi"),
        ('{"x-ms-client-token":"tok-123"', "tok-123"),
        ('{"cookie":"session=abc; other=def"', "session=abc"),
        ('{"note":"Bearer eyJ0eXAi.abc.def"', "eyJ0eXAi"),
        ('{"note":"basic dXNlcjpwYXNz"', "dXNlcjpwYXNz"),
    ],
)
def test_it_hides_secrets_in_a_malformed_line(raw, secret):
    clean = redact_text(raw)

    assert secret not in clean
    assert REDACTED in clean


def test_it_masks_a_card_number_in_a_malformed_line():
    assert redact_text('{"cardNumber":"1234567890",') == '{"cardNumber":"******7890",'


def test_it_leaves_a_malformed_line_without_secrets_alone():
    raw = '{"ts":"2026-11-28T09:00:00Z","method":"GET","userName":"ryan@contoso.com"'

    assert redact_text(raw) == raw


def test_it_hides_a_bearer_token_after_an_unquoted_authorization_header():
    clean = redact_text("POST /scim/v2/Users Authorization: Bearer eyJ0eXAi.abc.def")

    assert "eyJ0eXAi" not in clean


# --- bounded nesting: the helpers both readers check a line or record with before any walk ---------


def _chain(levels: int, leaf: object = None) -> object:
    value: object = leaf
    for _ in range(levels):
        value = [value] if leaf is None else {"a": value}
    return value


@pytest.mark.parametrize("levels", [1, 2, 63, 64])
def test_deeper_than_counts_the_value_itself_as_the_first_level(levels):
    from dashboard.formats.scim.redact import deeper_than

    assert not deeper_than(_chain(levels), levels)
    assert deeper_than(_chain(levels), levels - 1)
    assert not deeper_than(_chain(levels, leaf=1), levels)


def test_deeper_than_and_cut_nesting_never_recurse():
    from dashboard.formats.scim.redact import cut_nesting, deeper_than

    value = _chain(200_000)  # far beyond the interpreter's recursion limit

    assert deeper_than(value, 64)
    cut = cut_nesting(value, 3)
    assert cut == [[["…"]]]


def test_too_deep_names_the_field_that_holds_the_nesting():
    from dashboard.formats.scim.redact import MAX_NESTING, too_deep

    assert too_deep({"ok": _chain(MAX_NESTING), "x": 1}) is None
    assert too_deep({"ok": 1, "deep\u0000er": _chain(MAX_NESTING + 1)}) == \
        "field 'deep\\x00er' is nested deeper than 64 levels"  # a control character is shown escaped


def test_a_body_within_the_limit_is_redacted_whole():
    from dashboard.formats.scim.redact import MAX_NESTING

    body = {"pin": "1234"}
    for _ in range(MAX_NESTING - 1):
        body = {"nested": body}

    clean = redact_body(body, DEFAULT_RULES)

    for _ in range(MAX_NESTING - 1):
        clean = clean["nested"]
    assert clean == {"pin": REDACTED}


# --- redact_text's memo ----------------------------------------------------------------------


def test_a_remembered_text_is_answered_as_the_first_time():
    rules = RedactionRules.build(attributes=["pin"], masked=[], headers=[])
    secret = "pin=1234"

    first, second = redact_text(secret, rules), redact_text("".join(["pin=", "1234"]), rules)

    assert first == second == f"pin={REDACTED}"


def test_a_remembered_text_without_a_secret_comes_back_as_the_callers_own_object():
    rules = RedactionRules.build(attributes=["pin"], masked=[], headers=[])
    redact_text("Finance", rules)
    again = "".join(["Fin", "ance"])  # equal, not the same object

    assert redact_text(again, rules) is again
    body = {"department": again}
    assert redact_body(body, rules) is body  # nothing copied


def test_the_memo_is_bounded_whatever_the_number_of_distinct_texts():
    from dashboard.formats.scim import redact as module

    rules = RedactionRules.build(attributes=["pin"], masked=[], headers=[])
    for number in range(module._MEMO_ENTRIES + 500):
        redact_text(f"user{number}@contoso.com", rules)

    assert 0 < len(rules._memo) <= module._MEMO_ENTRIES
    assert redact_text("pin: 42", rules) == f"pin: {REDACTED}"


def test_the_memo_never_travels_to_a_worker():
    import pickle

    rules = RedactionRules.build(attributes=["pin"], masked=[], headers=[])
    redact_text("pin=1234", rules)

    assert pickle.loads(pickle.dumps(rules))._memo == {}
