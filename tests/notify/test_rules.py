"""The pure notification rules: episodes, health events, retries, due times."""
from __future__ import annotations

from datetime import timedelta

import pytest

from dashboard.notify.rules import (
    EpisodeView,
    HealthEvent,
    Notice,
    capped,
    digest_day,
    health_event,
    is_report_due,
    is_worth_telling,
    masks_other_failures,
    plan_signatures,
    retry_delay,
    should_notify,
)
from tests.factories import NOW

HOUR = timedelta(hours=1)
DAY = timedelta(hours=24)
OPEN = EpisodeView(began_at=NOW - 2 * HOUR)
TOLD = EpisodeView(began_at=NOW - 2 * HOUR, notified_at=NOW - 2 * HOUR)


def test_it_tells_a_new_problem():
    assert should_notify(None, OPEN, now=NOW, reminder=DAY) is Notice.OPENED


def test_it_stays_quiet_about_a_problem_already_told_within_the_reminder_interval():
    assert should_notify(TOLD, TOLD, now=NOW, reminder=DAY) is None


def test_it_reminds_once_the_interval_has_passed():
    assert should_notify(TOLD, TOLD, now=NOW + DAY, reminder=DAY) is Notice.REMINDER


def test_it_tells_a_problem_that_was_recorded_but_never_told():
    assert should_notify(OPEN, OPEN, now=NOW, reminder=DAY) is Notice.OPENED


def test_it_ends_a_told_episode_with_a_resolved_email():
    resolved = EpisodeView(TOLD.began_at, resolved_at=NOW, notified_at=TOLD.notified_at)

    assert should_notify(TOLD, resolved, now=NOW, reminder=DAY) is Notice.RESOLVED


@pytest.mark.parametrize("previous", [None, OPEN], ids=["new", "never told"])
def test_it_says_nothing_about_a_problem_that_came_and_went_untold(previous):
    assert should_notify(previous, EpisodeView(NOW - HOUR, resolved_at=NOW), now=NOW, reminder=DAY) is None


def test_it_tells_a_change_of_substance_at_once():
    assert should_notify(TOLD, TOLD, now=NOW, reminder=DAY, changed=True) is Notice.CHANGED


@pytest.mark.parametrize(("old", "new", "reason", "event"), [
    ("healthy", "quarantined", "EncounteredQuarantineException", HealthEvent.QUARANTINE_ENTERED),
    ("warning", "quarantined", "TooManyDeletes", HealthEvent.DELETION_THRESHOLD),
    ("quarantined", "quarantined", "EncounteredEscrowProportionThreshold", HealthEvent.REASON_CHANGED),
    ("quarantined", "disabled", None, HealthEvent.DISABLED),
    ("quarantined", "healthy", None, HealthEvent.QUARANTINE_LIFTED),
    ("disabled", "warning", None, HealthEvent.QUARANTINE_LIFTED),
    ("healthy", "stalled", None, HealthEvent.STALLED),
    ("stalled", "healthy", None, HealthEvent.RESUMED),
    ("unknown", "healthy", None, None),  # first seen healthy: nothing to tell
    ("healthy", "warning", None, None),  # failures are told by their signatures
    ("warning", "healthy", None, None),
])
def test_it_names_what_a_health_transition_means(old, new, reason, event):
    assert health_event(old, new, reason) is event


def test_it_opens_and_resolves_signature_episodes():
    assert plan_signatures({"1", "2"}, {"2", "3"}, masked=False, processed_users=10) == ({"3"}, {"1"})


def test_it_resolves_nothing_in_a_cycle_whose_credentials_failed():
    # A 401 cycle never reached the 409s: their absence proves nothing.
    masked = masks_other_failures(rejected_credentials=12, lookup_404s=0)

    assert plan_signatures({"1"}, {"9"}, masked=masked, processed_users=10) == ({"9"}, set())


@pytest.mark.parametrize(("status", "cycles", "expected"), [(400, 1, True), (409, 1, True), (429, 1, False),
                                                            (500, 1, False), (0, 1, False), (503, 2, True)])
def test_it_tells_transient_errors_only_once_they_persist(status, cycles, expected):
    assert is_worth_telling(status=status, cycles=cycles, transient_cycles=2, covered_by_quarantine=False) is expected


def test_it_leaves_a_cause_of_quarantine_to_the_quarantine_email():
    assert not is_worth_telling(status=401, cycles=3, transient_cycles=2, covered_by_quarantine=True)


def test_it_backs_off_exponentially_up_to_the_cap():
    delays = [retry_delay(n, base=timedelta(seconds=60), cap=timedelta(minutes=60)) for n in range(1, 9)]

    assert [d.total_seconds() / 60 for d in delays] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_it_finds_a_report_due_at_its_time_with_a_little_slack():
    interval = timedelta(minutes=40)

    assert is_report_due(None, NOW, interval=interval)
    assert is_report_due(NOW + timedelta(seconds=5), NOW, interval=interval)  # the tick came a moment early
    assert not is_report_due(NOW + timedelta(minutes=30), NOW, interval=interval)


def test_it_makes_the_digest_due_from_the_digest_hour_on():
    assert digest_day(NOW.replace(hour=6), hour=7) is None
    assert digest_day(NOW.replace(hour=7), hour=7) == "2026-11-28"


def test_it_caps_a_list_and_counts_the_rest():
    assert capped([1, 2, 3], 2) == ([1, 2], 1)
