"""Secrets in the shapes an adversarial pass over real-world forms found in clear (December 2026):
other headers and query parameters that carry credentials, a target's error message that echoes
the value, JSON written inside a string, cut-off lines kept as rejects, look-alike member names.
Each line goes through the whole preparation (parse, redact, pack, or the reject), and what would
be stored is searched for the secret."""
from __future__ import annotations

import orjson
import pytest

from dashboard.formats import codec
from dashboard.formats.scim.classify import classify
from dashboard.formats.scim.parse import parse_line
from dashboard.formats.scim.records import ParseProblem
from dashboard.formats.scim.redact import (
    DEFAULT_RULES,
    REDACTED,
    is_secret_query_key,
    redact,
    redact_text,
)
from dashboard.ingest.prepare import P_BLOB, Preparer

PIN_PATH = "urn:ietf:params:scim:schemas:extension:uniFLOWOnline:2.0:User:pin"
SECRET = "918273"


def stored(line: dict | str) -> str:
    """Everything that would be written of one line: the blob and the columns, or the reject."""
    raw = line if isinstance(line, str) else orjson.dumps(line).decode()
    preparer = Preparer(rules=DEFAULT_RULES, guid_lookups_are_tests=True, job_id=1, job_name="j")
    (item,) = preparer.prepare([(1, raw.encode())])
    if item.__class__ is ParseProblem:
        return f"{item.reason} {item.raw}"
    return orjson.dumps(codec.unpack(item[P_BLOB])).decode() + repr(item[:P_BLOB]) + repr(item[P_BLOB + 1:])


def exchange(**fields) -> dict:  # type: ignore[no-untyped-def]
    return {"ts": "2026-11-28T09:00:00Z", "method": "GET", "path": "/scim/v2/Users", "status": 200,
            "request_id": "r1", **fields}


@pytest.mark.parametrize("name", ["X-Auth", "Ocp-Apim-Subscription-Key", "x-functions-key", "api_key",
                                  "X-Session-Token", "x-jwt-assertion", "Proxy-Authorization"])
def test_a_header_named_for_a_credential_is_hidden(name):  # type: ignore[no-untyped-def]
    text = stored(exchange(request_headers={name: "tokSECRETabc123", "accept": "application/scim+json"}))

    assert "tokSECRET" not in text
    assert "application/scim+json" in text  # the others are kept


@pytest.mark.parametrize("key", ["api-key", "apikey", "key", "auth", "jwt", "Subscription-Key", "sessionid"])
def test_a_query_parameter_named_for_a_credential_is_hidden(key):  # type: ignore[no-untyped-def]
    text = stored(exchange(query=f"{key}=accSECRETtok&count=10"))

    assert "accSECRET" not in text
    assert "count=10" in text
    assert is_secret_query_key(key)


def test_ordinary_query_parameters_are_not_taken_for_credentials():  # type: ignore[no-untyped-def]
    for key in ("filter", "attributes", "excludedAttributes", "startIndex", "count", "sortBy", "sortOrder"):
        assert not is_secret_query_key(key)


@pytest.mark.parametrize("detail", [
    f"pin {SECRET} is too short",
    f"Invalid value '{SECRET}' for attribute pin",
    f'Value "{SECRET}" of {PIN_PATH} does not match the policy',
    f"bad value {SECRET} for path {PIN_PATH}",
    f'{{"value":"[REDACTED]","op":"replace","path":"{PIN_PATH}"}} failed; value={SECRET}',
    f"password 'Sup3rS3cret!' rejected",
])
def test_a_targets_error_message_that_echoes_a_secret_hides_it(detail):  # type: ignore[no-untyped-def]
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "400", "detail": detail}
    text = stored(exchange(method="POST", status=400, response_body=body))

    assert SECRET not in text and "Sup3rS3cret" not in text
    assert ("pin" in text) or ("password" in text)  # the message still says what was wrong


def test_an_error_message_naming_a_secret_keeps_what_is_not_a_value():  # type: ignore[no-untyped-def]
    detail = (f'Web Response: {{"detail":"invalid pin","cardNumber":"******3210"}} at 2026-03-26T15:10:12Z, '
              f"retried 2 times, attribute {PIN_PATH}")

    clean = redact_text(detail, DEFAULT_RULES)

    assert clean == detail  # the member names, the masked number, the time, the URN's "2.0"


@pytest.mark.parametrize("note", [
    '{"pin":{"v":"1234"}}',
    '{"p\\u0069n":"1234"}',
    f'[{{"op":"replace","value":{{"value":"1234"}},"path":"{PIN_PATH}"}}]',
    f'{{"op":"replace","path":"{PIN_PATH}","value":{{"a":"1234"}}}}',
    '{"urn:ietf:params:scim:schemas:extension:uniFLOWOnline:2.0:User":{"pin":"1234"}}',
    "<pin>1234</pin>",
    "pin is 1234",
    "pin&#x3d;1234",
    "pin%253D1234",
])
def test_json_or_text_inside_a_string_hides_the_secret(note):  # type: ignore[no-untyped-def]
    text = stored(exchange(request_body={"note": note}))

    assert "1234" not in text


@pytest.mark.parametrize("cut", [
    '{"ts":"2026-11-28T09:00:00Z","method":"PATCH","path":"/scim/v2/Users/x","status":200,'
    '"request_body":{"Operations":[{"value":"918273","o',
    '{"ts":"2026-11-28T09:00:00Z","method":"PATCH","path":"/scim/v2/Users/x","status":200,'
    '"request_body":{"Operations":[{"value": "918273", "op": "replace", "path": "urn:ietf:params:scim:sch',
    '{"ts":"2026-11-28T09:00:00Z","method":"PATCH","path":"/scim/v2/Users/x","status":200,'
    '"request_body":{"Operations":[{"value":"918273","op":"replace","path":"urn:',
])
def test_a_cut_off_line_kept_as_a_reject_hides_the_value_whose_path_is_lost(cut):  # type: ignore[no-untyped-def]
    text = stored(cut)

    assert text.startswith("malformed JSON")
    assert SECRET not in text


def test_a_cut_off_object_whose_path_is_whole_and_harmless_keeps_its_value():  # type: ignore[no-untyped-def]
    cut = ('{"ts":"2026-11-28T09:00:00Z","method":"PATCH","path":"/scim/v2/Users/x","status":200,'
           '"request_body":{"Operations":[{"op":"replace","path":"displayName","value":"Ryan Shaw","o')

    assert "Ryan Shaw" in stored(cut)


@pytest.mark.parametrize("key", ["ｐｉｎ", "pın", "pin\u200b", "p\\u0069n", "PIN", "Secret", "apiKey", "client_secret"])
def test_look_alike_and_other_credential_member_names_are_hidden(key):  # type: ignore[no-untyped-def]
    text = stored(exchange(request_body={key: SECRET, "userName": "ryan@contoso.com"}))

    assert SECRET not in text
    assert "ryan@contoso.com" in text


def test_a_look_alike_pin_path_in_a_patchop_hides_its_value():  # type: ignore[no-untyped-def]
    for path in (PIN_PATH.replace(":pin", ":pın"), PIN_PATH + "\u200b"):
        body = {"Operations": [{"op": "replace", "path": path, "value": SECRET}]}
        assert SECRET not in stored(exchange(method="PATCH", path="/scim/v2/Users/1", request_body=body))


@pytest.mark.parametrize("user_name", ["pin", "pin.smith@contoso.com", "password@contoso.com", "ryan1234@contoso.com"])
def test_a_lookup_keeps_a_user_name_that_resembles_a_secret_name(user_name):  # type: ignore[no-untyped-def]
    line = exchange(query=f'filter=userName eq "{user_name}"',
                    response_body={"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 0})
    parsed = parse_line(1, orjson.dumps(line))
    clean = redact(parsed, DEFAULT_RULES)  # type: ignore[arg-type]

    assert clean.query == line["query"]
    assert classify(clean).user_name == user_name


def test_a_text_without_a_secret_name_is_left_alone():  # type: ignore[no-untyped-def]
    for text in ("User 'ryan@contoso.com' could not be created: 409 uniqueness", '{"value":"work","type":"x"}',
                 "shipping 1234 pins", "spinning 918273"):
        assert redact_text(text, DEFAULT_RULES) == text
    assert redact_text("pin 918273", DEFAULT_RULES) == f"pin {REDACTED}"
