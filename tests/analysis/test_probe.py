"""The endpoint check's judgement (PURE): each answer of the target in Entra's terms."""
from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import orjson

from dashboard.analysis.probe import (
    UNIFLOW_EXTENSION,
    Answer,
    Observed,
    judge,
    token_expiry,
    token_warning,
)

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
EMPTY = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 0, "Resources": []}
SPC = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"], "patch": {"supported": True},
       "filter": {"supported": True, "maxResults": 100}}
UNIFLOW = {"id": UNIFLOW_EXTENSION, "attributes": [{"name": n} for n in
                                                    ("cardNumber", "cardRegistrationCode", "localUsername", "pin")]}
SCHEMAS = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "Resources": [UNIFLOW]}


def observed(**changes) -> Observed:  # type: ignore[no-untyped-def]
    base = dict(url="https://scim.example.com/scim/v2", filter_guid="5f0c…",
                lookup=Answer(200, "application/scim+json", EMPTY), service_provider_config=Answer(200, "application/scim+json", SPC),
                schemas=Answer(200, "application/scim+json", SCHEMAS), certificate_expires_at=NOW + timedelta(days=90))
    return Observed(**(base | changes))


def by_name(verdict):  # type: ignore[no-untyped-def]
    return {c.name: c for c in verdict.checks}


def test_a_compliant_target_passes_every_check():
    verdict = judge(observed(), NOW)

    assert verdict.outcome == "pass", verdict
    assert {c.outcome for c in verdict.checks} == {"pass"}


def test_a_404_on_the_filter_is_the_documented_compliance_failure():
    check = by_name(judge(observed(lookup=Answer(404, "application/json", None)), NOW))["Filter on a random GUID"]

    assert check.outcome == "fail"
    assert "404 instead of an empty list" in check.result
    assert "SCIM-compliance" in check.consequence and "EncounteredQuarantineException" in check.consequence


def test_a_rejected_token_fails_test_connection_and_quarantines_in_a_cycle():
    check = by_name(judge(observed(lookup=Answer(401, "application/scim+json", None)), NOW))["Filter on a random GUID"]

    assert check.outcome == "fail" and "credentials cannot be saved" in check.consequence


def test_a_filter_that_finds_someone_for_a_random_guid_is_ignored_by_the_target():
    found = EMPTY | {"totalResults": 3, "Resources": [{"id": "1"}]}
    assert by_name(judge(observed(lookup=Answer(200, "application/scim+json", found)), NOW))[
        "Filter on a random GUID"].outcome == "fail"


def test_the_content_type_and_the_uniflow_extension_are_checked():
    missing_pin = {"Resources": [UNIFLOW | {"attributes": [{"name": "cardNumber"}, {"name": "localUsername"}]}]}
    verdict = judge(observed(lookup=Answer(200, "application/json", EMPTY),
                             schemas=Answer(200, "application/scim+json", missing_pin)), NOW)
    checks = by_name(verdict)

    assert checks["Content-Type"].outcome == "warn"
    assert checks["/Schemas (uniFLOW extension)"].outcome == "fail"
    assert "cardRegistrationCode, pin" in checks["/Schemas (uniFLOW extension)"].result
    assert verdict.outcome == "fail"


def test_tls_is_required_valid_and_warned_14_days_before_it_expires():
    plain = by_name(judge(observed(url="http://scim.example.com"), NOW))["TLS"]
    broken = by_name(judge(observed(tls_error="self-signed certificate"), NOW))["TLS"]
    soon = by_name(judge(observed(certificate_expires_at=NOW + timedelta(days=13)), NOW))["TLS"]
    later = by_name(judge(observed(certificate_expires_at=NOW + timedelta(days=15)), NOW))["TLS"]

    assert (plain.outcome, broken.outcome, soon.outcome, later.outcome) == ("fail", "fail", "warn", "pass")
    assert "expires on" in soon.result


def _jwt(exp: datetime) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")
    return f"{part({'alg': 'HS256'})}.{part({'exp': int(exp.timestamp())})}.c2lnbmF0dXJl"


def test_a_token_that_carries_its_expiry_is_warned_14_days_ahead():
    expires = token_expiry(_jwt(NOW + timedelta(days=10)))

    assert expires == NOW + timedelta(days=10)
    assert token_expiry("opaque-token") is None and token_expiry("a.b.c") is None
    assert "expires on 2026-12-15" in (token_warning(expires, NOW) or "")
    assert token_warning(expires, NOW - timedelta(days=5)) is None  # 15 days ahead: not yet
    assert by_name(judge(observed(token_expires_at=expires), NOW))["Secret token expiry"].outcome == "warn"
    assert by_name(judge(observed(token_expires_at=NOW - timedelta(days=1)), NOW))["Secret token expiry"].outcome == "fail"
