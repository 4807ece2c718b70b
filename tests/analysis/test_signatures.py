"""Failures grouped by cause, with an action an admin can follow."""
from __future__ import annotations

import pytest

from dashboard.analysis.signatures import (
    normalise_detail,
    recommended_action,
    signature_of,
)


def test_it_groups_details_that_differ_only_in_names_ids_and_numbers():
    a = signature_of("create", 409, "uniqueness", "User 'ryan.k@contoso.com' already exists")
    b = signature_of("create", 409, "uniqueness", "User 'ana.m@contoso.com' already exists")

    assert a.key == b.key
    assert a.pattern == "User '<value>' already exists"


def test_it_separates_different_causes():
    assert signature_of("create", 409, "uniqueness", "x").key != signature_of("update", 409, "uniqueness", "x").key
    assert signature_of("create", 400, "invalidValue", "x").key != signature_of("create", 400, "mutability", "x").key


@pytest.mark.parametrize(
    ("detail", "pattern"),
    [
        ("Resource 2819c223-7f76-453a-919d-413861904646 not found", "Resource <id> not found"),
        ("Retry after 17 seconds", "Retry after <n> seconds"),
        ('Attribute "title" value too long', 'Attribute "<value>" value too long'),
    ],
)
def test_it_normalises_details(detail, pattern):
    assert normalise_detail(detail) == pattern


@pytest.mark.parametrize(
    ("operation", "status", "scim_type", "code"),
    [
        ("lookup", 401, None, "EncounteredQuarantineException"),
        ("update", 403, None, "EncounteredQuarantineException"),
        ("lookup", 404, None, "EncounteredQuarantineException"),
        ("connection_test", 404, None, "EncounteredQuarantineException"),
        ("update", 404, None, "InvalidAnchor"),
        ("delete", 404, None, "InvalidAnchor"),
        ("create", 409, "uniqueness", "EntryConflict"),
        ("create", 400, "invalidValue", "SystemForCrossDomainIdentityManagementBadRequest"),
        ("update", 400, "mutability", "SystemForCrossDomainIdentityManagementBadRequest"),
        ("update", 429, None, "TooManyRequests"),
        ("create", 500, None, "InternalServerError"),
        ("create", 503, None, "InternalServerError"),
        ("create", 0, None, "Timeout"),
        ("create", 418, None, "UnprocessableEntity"),
    ],
)
def test_it_recommends_an_action_for_every_signature_the_simulator_produces(operation, status, scim_type, code):
    action = recommended_action(operation, status, scim_type)

    assert action.code == code
    assert len(action.action) > 40


def test_it_tells_an_admin_how_to_fix_a_rejected_token():
    action = recommended_action("lookup", 401, None)

    assert "Secret Token" in action.action and "Admin Credentials" in action.action
    assert action.quarantine
