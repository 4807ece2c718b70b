"""Entra's loosely typed values: one test per row of the variants Entra is known to write."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dashboard.formats.entra.normalize import action_of
from dashboard.formats.entra.records import ProvisioningAction as A
from dashboard.formats.entra.records import ProvisioningStatus as S
from dashboard.formats.entra.values import (
    ValueProblem,
    optional_time,
    parse_iso_duration,
    parse_time,
    retry_of,
    status_of,
    step_type_of,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("create", A.CREATE), ("Create", A.CREATE), ("CREATE", A.CREATE), ("Add", A.CREATE),
        ("update", A.UPDATE), ("Update", A.UPDATE),
        ("delete", A.DELETE), ("Delete", A.DELETE),
        ("disable", A.DISABLE), ("Disable", A.DISABLE),
        ("stagedDelete", A.STAGED_DELETE), ("StagedDelete", A.STAGED_DELETE), ("Staged delete", A.STAGED_DELETE),
        ("staged_delete", A.STAGED_DELETE), ("StagedAction", A.STAGED_DELETE),
        ("other", A.OTHER), ("Other", A.OTHER), ("unknownFutureValue", A.OTHER), (None, A.OTHER), ("", A.OTHER),
    ],
)
def test_it_accepts_each_spelling_of_an_action(value, expected):
    assert action_of(value) == (expected, None)


def test_it_maps_an_unknown_action_to_other_and_keeps_the_word():
    assert action_of("Restore") == (A.OTHER, "Restore")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("success", S.SUCCESS), ("Success", S.SUCCESS), ("succeeded", S.SUCCESS),
        ("failure", S.FAILURE), ("Failure", S.FAILURE), ("Failed", S.FAILURE),
        ("skipped", S.SKIPPED), ("Skipped", S.SKIPPED),
        ("warning", S.WARNING), ("Warning", S.WARNING),
    ],
)
def test_it_accepts_each_spelling_of_a_status(value, expected):
    assert status_of(value) is expected


@pytest.mark.parametrize("value", ["unknownFutureValue", "done", 3, None])
def test_it_refuses_a_status_it_cannot_place(value):
    with pytest.raises(ValueProblem):
        status_of(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-05-04T03:00:54Z", datetime(2019, 5, 4, 3, 0, 54, tzinfo=UTC)),
        ("2021-01-22T20:14:33.8948757Z", datetime(2021, 1, 22, 20, 14, 33, 894875, tzinfo=UTC)),
        ("2026-03-24T13:23:44.9198514Z UTC", datetime(2026, 3, 24, 13, 23, 44, 919851, tzinfo=UTC)),
        ("2026-03-24T13:23:44+02:00", datetime(2026, 3, 24, 11, 23, 44, tzinfo=UTC)),
        ("2026-03-24 13:23:44", datetime(2026, 3, 24, 13, 23, 44, tzinfo=UTC)),  # no zone: UTC [DL]
        ("3/24/2026 7:17:42 AM", datetime(2026, 3, 24, 7, 17, 42, tzinfo=UTC)),
        ("3/24/2026 12:05:00 AM", datetime(2026, 3, 24, 0, 5, tzinfo=UTC)),
        ("1/22/2021, 8:14:33.894 PM", datetime(2021, 1, 22, 20, 14, 33, 894000, tzinfo=UTC)),
        ("24/3/2026 19:17:42", datetime(2026, 3, 24, 19, 17, 42, tzinfo=UTC)),  # day first when it must be
        ("3/24/2026 7:17:42\u202fPM", datetime(2026, 3, 24, 19, 17, 42, tzinfo=UTC)),  # .NET on ICU: U+202F
    ],
)
def test_it_reads_the_timestamp_forms_entra_writes(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", [
    "yesterday", "2026-02-30T00:00:00Z", "13/13/2026 1:00 PM", 1711260000,
    "\uff12\uff10\uff12\uff16-03-24T13:23:44Z",  # full-width digits (`\\d` matched them, int() read them)
    "2026-03-24T13:23:44.\u0661Z", "2026-03-24T13:23:44+0\u0662:00",  # Arabic-Indic digits
    "3/24/\uff12\uff10\uff12\uff16 7:17:42 AM",
])
def test_it_refuses_what_is_not_a_timestamp(text):
    with pytest.raises(ValueProblem):
        parse_time(text)


@pytest.mark.parametrize("value", [None, "", "0001-01-01T00:00:00Z", "garbage"])
def test_it_reads_never_and_empty_as_no_time(value):
    assert optional_time(value) is None


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("... This operation was retried 1 times. It will be retried again after this date: 2026-03-24T13:23:44.9198514Z UTC",
         (1, datetime(2026, 3, 24, 13, 23, 44, 919851, tzinfo=UTC))),
        ("This operation was retried 0 times. It will be retried again after this date: 3/24/2026 1:23:44 PM",
         (0, datetime(2026, 3, 24, 13, 23, 44, tzinfo=UTC))),
        ("this operation was RETRIED 12 time. it will be retried again after 2026-03-24T13:23:44Z.",
         (12, datetime(2026, 3, 24, 13, 23, 44, tzinfo=UTC))),
        ("The operation was retried 3 times.", (3, None)),
        ("The operation was retried \uff13 times.", (None, None)),  # a full-width digit is no count
        ("It will be retried again after this date: \uff12\uff10\uff12\uff16-03-24T13:23:44Z", (None, None)),
        ("It will be retried again after this date: someday", (None, None)),
        ("Message: Contoso returned an error response with the HTTP status code 409.", (None, None)),
        (None, (None, None)),
    ],
)
def test_it_reads_the_retry_count_and_next_retry_from_the_reason(reason, expected):
    assert retry_of(reason) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT40M", timedelta(minutes=40)),
        ("PT1M", timedelta(minutes=1)),  # one minute, whatever the schedule page says
        ("P1D", timedelta(days=1)),
        ("P10675199DT2H48M5.4775807S", timedelta(days=10675199, hours=2, minutes=48, seconds=5.4775807)),
        ("P1M", None), ("P", None), ("", None), (None, None), ("40 minutes", None),
        ("PT\uff14\uff10M", None), ("PT40M\n\n", timedelta(minutes=40)),  # full-width digits; surrounding space is fine
    ],
)
def test_it_reads_iso_8601_durations(text, expected):
    assert parse_iso_duration(text) == expected


@pytest.mark.parametrize(("value", "expected"), [("Import", "import"), ("EXPORT", "export"),
                                                  ("referenceresolution", "referenceResolution"), ("Custom", "Custom")])
def test_it_normalises_step_types(value, expected):
    assert step_type_of(value) == expected
