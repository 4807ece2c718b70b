"""What a failed Entra event's reason says about the target's HTTP status."""
from __future__ import annotations

from dataclasses import replace

import pytest

from dashboard.formats.entra.facts import UNKNOWN_FAILURE, http_status_of
from dashboard.formats.entra.records import ProvisioningStatus
from tests.formats.entra.conftest import events, read


def _failure(reason: str):  # type: ignore[no-untyped-def]
    failed = [e for e in events(read("graph-v1-example-failure.json")) if e.status is ProvisioningStatus.FAILURE]
    return replace(failed[0], reason=reason, error_code=None)


@pytest.mark.parametrize(("reason", "status"), [
    ("StatusCode: 409 Conflict", 409), ("StatusCode: NotFound", 404), ("statuscode=429", 429),
    ("StatusCode: \uff14\uff10\uff14", UNKNOWN_FAILURE),  # full-width digits are no status (int() would read 404)
    ("StatusCode: \u0664\u0660\u0669", UNKNOWN_FAILURE),  # nor Arabic-Indic ones
])
def test_it_reads_the_status_from_the_reason_in_ascii_digits_only(reason, status):
    assert http_status_of(_failure(reason)) == status
