"""analysis.progress: progress that never lies (issue 13 item 2)."""
from __future__ import annotations

from dashboard.analysis.progress import progress_of
from dashboard.times import US

START = 1_800_000_000 * US


def _progress(**kw):  # type: ignore[no-untyped-def]
    args = dict(kind="initial", running=True, processed=10, earlier_users=[], scope_size=None,
                started_us=START, ended_us=START + 60 * US, now_us=START + 61 * US)
    return progress_of(**(args | kw))


def test_the_expectation_comes_from_the_best_source_and_says_which():
    assert _progress(entra_expected=500, scope_size=300, last_complete=200)["expected_source"] == "entra"
    assert _progress(scope_size=300, last_complete=200)["expected_source"] == "scope"
    both = _progress(last_complete=200)
    assert both["expected_source"] == "last_complete" and both["expected_users"] == 200
    assert both["expected_basis"] == "the last complete cycle"
    assert _progress(kind="incremental", earlier_users=[16, 18, 20])["expected_source"] == "median"
    assert _progress()["expected_users"] is None and _progress()["summary"] == "10 users, expected count unknown"


def test_processed_never_reads_as_exceeding_the_expectation():
    over = _progress(kind="incremental", processed=21, earlier_users=[16])

    assert over["summary"] == "21 users, about 16 expected" and over["over_expected"]
    assert over["percent"] == 99.0 and over["eta"] is None
    assert _progress(processed=10, scope_size=300)["summary"] == "10 of 300 users"
    assert _progress(processed=1, scope_size=1)["summary"] == "1 of 1 user"
    assert _progress(processed=2, scope_size=1)["summary"] == "2 users, about 1 expected"


def test_no_eta_while_quiet_or_while_every_call_is_rejected():
    moving = _progress(scope_size=300)
    assert moving["eta"] is not None and moving["eta_withheld"] is None

    quiet = _progress(scope_size=300, now_us=START + 60 * US + 14 * 60 * US)
    assert quiet["eta"] is None and quiet["quiet"] and quiet["eta_withheld"] == "quiet"

    rejected = _progress(scope_size=300, rejected=True)
    assert rejected["eta"] is None and rejected["eta_withheld"] == "rejected"


def test_a_completed_cycle_reads_its_count_without_claiming_an_estimate():
    done = _progress(running=False, processed=19, scope_size=300)

    assert done["percent"] == 100.0 and done["summary"] == "19 users" and done["eta"] is None
