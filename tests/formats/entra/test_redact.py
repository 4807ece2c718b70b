"""Secrets in Entra's events are redacted with the project's rules before anything is stored."""
from __future__ import annotations

import io

import orjson

from dashboard.formats.entra.parse import read_events
from dashboard.formats.scim.redact import RedactionRules
from tests.formats.entra.conftest import events, read


def test_it_redacts_and_masks_the_uniflow_secrets_in_modified_properties():
    ryan = events(read("graph-escrow-page-2.json"))[0]

    assert [(p.old_value, p.new_value) for p in ryan.modified_properties] == [
        ("[REDACTED]", "[REDACTED]"),  # ...:uniFLOWOnline:2.0:User:pin
        (None, "******6789"),  # cardNumber: masked, last four kept
        (None, "[REDACTED]"),  # cardRegistrationCode
        ("Sales", "Marketing"),
    ]


def test_it_redacts_secrets_in_step_details_written_without_punctuation():
    details = events(read("graph-escrow-page-2.json"))[0].steps[1].details

    assert details["urnietfparamsscimschemasextensionuniFLOWOnline20Userpin"] == "[REDACTED]"
    assert details["urnietfparamsscimschemasextensionuniFLOWOnline20UsercardNumber"] == "******6789"
    assert details["userName"] == "ryan@contoso.com"


def test_it_redacts_secrets_the_target_echoed_into_a_reason():
    jo = events(read("portal-download.json"))[1]

    assert '"urn:ietf:params:scim:schemas:extension:uniFLOWOnline:2.0:User:pin":"[REDACTED]"' in jo.reason
    assert '"cardNumber":"******3210"' in jo.reason
    assert '"detail":"invalid pin"' in jo.reason  # the word alone is not a secret
    assert jo.retry_count == 2


def test_it_leaves_prose_that_mentions_a_password_alone():
    record = {"activityDateTime": "2026-03-24T07:40:02Z", "provisioningAction": "update",
              "provisioningStatusInfo": {"status": "failure", "errorInformation": {
                  "reason": "Your credentials are invalid. Obtain a user name, password and security token."}}}
    (event,) = read_events(io.BytesIO(orjson.dumps([record])))

    assert event.reason == "Your credentials are invalid. Obtain a user name, password and security token."


def test_it_uses_the_configured_rules():
    rules = RedactionRules.build(attributes=["department"], masked=[], headers=[])
    with open(_page(), "rb") as stream:
        ryan = events(list(read_events(stream, rules=rules)))[0]

    assert ryan.modified_properties[3].new_value == "[REDACTED]"
    assert ryan.modified_properties[0].new_value == "4711"  # pin is not secret under these rules


def test_it_redacts_the_raw_text_kept_for_a_rejected_record():
    record = {"provisioningAction": "update", "modifiedProperties": [{"displayName": "pin", "newValue": "4711"}],
              "sourceIdentity": {"details": {"pin": "4711"}}}
    (problem,) = read_events(io.BytesIO(orjson.dumps([record])))

    assert "4711" not in problem.raw and "missing" in problem.reason


def _page():
    from tests.formats.entra.conftest import DATA

    return DATA / "graph-escrow-page-2.json"


def test_it_redacts_the_raw_text_of_a_record_that_is_not_valid_json():
    line = (b'{"activityDateTime":"2026-03-24T07:40:02Z","modifiedProperties":[{"displayName":"urn:x:User:pin",'
            b'"oldValue":null,"newValue":"4711"},{"displayName":"cardNumber","newValue":1234567890}],"pin":"9999",')
    (problem,) = read_events(io.BytesIO(line), "log-analytics")  # cut short: not JSON

    assert "4711" not in problem.raw and "9999" not in problem.raw and "123456" not in problem.raw
    assert '"newValue":"******7890"' in problem.raw
