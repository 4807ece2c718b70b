"""codec: the storage blob of an exchange's bodies and headers."""
from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.formats.codec import ENTRA_VERSION, VERSION, pack, unpack

UNIFLOW = "urn:ietf:params:scim:schemas:extension:uniFLOWOnline:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def _typical_create() -> dict:
    """What load.blob_of() keeps of an Entra create, after redaction."""
    return {
        "path": "/scim/v2/Users",
        "client": "Microsoft Entra SCIM Client",
        "request_headers": {"authorization": "[REDACTED]", "content-type": "application/scim+json"},
        "request_body": {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE, UNIFLOW],
            "externalId": "ryan.adams",
            "userName": "ryan.adams@contoso.com",
            "active": True,
            "displayName": "Ryan Adams",
            "emails": [{"primary": True, "type": "work", "value": "ryan.adams@contoso.com"}],
            ENTERPRISE: {"department": "Finance"},
            UNIFLOW: {"cardNumber": "******7890", "pin": "[REDACTED]"},
        },
    }


@pytest.mark.parametrize(
    "record",
    [
        {},
        _typical_create(),
        {"request_body": {"displayName": "Zoë Ångström 山田太郎 🚀", "nested": [[{"a": [None, 1.5, -2, True]}]]}},
        {"response_body": {"detail": "\u0000\u2028 line\nbreak \"quoted\" \\"}},
        {"extra": {"big": 2**63 - 1, "small": -(2**63), "float": 1e-300}},
    ],
)
def test_it_unpacks_what_it_packed(record):
    assert unpack(pack(record)) == record


def test_it_writes_the_version_byte_first():
    assert pack({"a": 1})[0] == VERSION


def test_it_packs_a_typical_create_to_under_45_percent_of_its_json():
    # The storage design's promise: the preset dictionary makes a short exchange small.
    record = _typical_create()
    size = len(orjson.dumps(record))
    assert 600 <= size <= 800  # "about 700 bytes", so the promise is tested on what it is about

    assert len(pack(record)) < 0.45 * size


def test_it_unpacks_an_empty_blob_to_an_empty_record():
    assert unpack(b"") == {}


@pytest.mark.parametrize("version", [0, 3, 255])  # 2: an Entra event's details
def test_it_refuses_an_unknown_version(version):
    blob = bytes((version,)) + pack({"a": 1})[1:]

    with pytest.raises(ValueError, match=f"unknown blob version {version}"):
        unpack(blob)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=8,
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=12), _json, max_size=4))
def test_it_round_trips_any_json_record(record):
    assert unpack(pack(record)) == record


def test_an_entra_events_details_pack_with_their_own_dictionary_and_every_version_is_read():
    details = {
        "source": {"id": "9d5e", "display_name": "Ryan Adams", "type": "User",
                   "details": {"UserPrincipalName": "ryan.adams@contoso.com"}},
        "target": {"id": "", "display_name": None, "type": "User", "details": {}},
        "error_category": None,
        "steps": [{"name": "EntryImport", "type": "import", "status": "success",
                   "description": "Received User 'ryan.adams@contoso.com' change of type (Add) from Azure Active Directory",
                   "details": {}},
                  {"name": "EntryExportAdd", "type": "export", "status": "failure",
                   "description": "Failed to create User 'ryan.adams@contoso.com' in uniFLOW Online",
                   "details": {"ReportableIdentifier": "ryan.adams@contoso.com"}}],
        "modified_properties": [{"name": "userName", "old": None, "new": "ryan.adams@contoso.com"}],
        "service_principal": None, "format": "entra-graph", "record_no": 3, "extra": {},
    }
    entra, plain = pack(details, ENTRA_VERSION), pack(details)
    assert entra[0] == ENTRA_VERSION and plain[0] == VERSION
    assert unpack(entra) == unpack(plain) == details  # a blob keeps the version it was written with
    assert len(entra) < 0.8 * len(plain)
    with pytest.raises(ValueError, match="unknown blob version 3"):
        unpack(b"\x03" + entra[1:])
