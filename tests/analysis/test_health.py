"""Health and quarantine as Entra judges it: reasons, back-off, disable, stalls, early warning."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.analysis.health import (
    DAY_US,
    HOUR_US,
    CycleFacts,
    Reason,
    Snapshot,
    State,
    Thresholds,
    Timing,
    advance,
    early_warning,
    judge_cycle,
    next_attempt_us,
    status_at,
)

MIN = 60 * 1_000_000
T0 = 1_795_852_800 * 1_000_000  # 2026-11-28T08:00Z
DEFAULT = Thresholds()
SMALL = Thresholds(min_failures=10, total_failures=400, absolute_failures=600, deletion_threshold=5)


def cycle(n: int, **kw) -> CycleFacts:  # type: ignore[no-untyped-def]
    base = dict(id=n, started_us=T0 + n * 40 * MIN, ended_us=T0 + n * 40 * MIN + 5 * MIN, requests=100,
                rejected_credentials=0, lookup_404s=0, succeeded=50, failed=0, reference_failures=0, deletes=0)
    base.update(kw)
    return CycleFacts(**base)


def test_it_quarantines_when_credentials_are_rejected_whatever_the_counts():
    verdict = judge_cycle(cycle(1, requests=30, rejected_credentials=30, succeeded=0, failed=29), DEFAULT)

    assert (verdict.state, verdict.reason) == (State.QUARANTINED, Reason.CREDENTIALS)


def test_it_does_not_quarantine_for_a_single_401_among_successes():
    assert judge_cycle(cycle(1, rejected_credentials=1), DEFAULT).state is State.WARNING


def test_it_quarantines_a_lookup_that_answers_404_as_a_scim_compliance_problem():
    verdict = judge_cycle(cycle(1, lookup_404s=3), DEFAULT)

    assert verdict.reason == Reason.CREDENTIALS
    assert "SCIM compliance" in verdict.detail


def test_it_applies_the_proportion_rule_only_above_the_minimum_failures():
    # Entra's worked examples: 30,000 failed + 5,000 succeeded quarantines; 20,000 + 100,000 does not;
    # 4,000 failures are below the 5,000 at which evaluation starts.
    assert judge_cycle(cycle(1, failed=30_000, succeeded=5_000), DEFAULT).reason == Reason.PROPORTION
    assert judge_cycle(cycle(1, failed=20_000, succeeded=100_000), DEFAULT).state is State.WARNING
    assert judge_cycle(cycle(1, failed=4_000, succeeded=0), DEFAULT).state is State.WARNING


def test_it_applies_the_total_and_absolute_thresholds():
    assert judge_cycle(cycle(1, failed=45_000, succeeded=200_000), DEFAULT).reason == Reason.TOTAL
    # 40,000 user failures + 21,000 reference failures = 61,000 > 60,000
    assert judge_cycle(cycle(1, failed=40_000, reference_failures=21_000, succeeded=500_000), DEFAULT).reason == Reason.TOTAL


def test_it_scales_down_for_small_tenants():
    assert judge_cycle(cycle(1, failed=12, succeeded=8), SMALL).reason == Reason.PROPORTION
    assert judge_cycle(cycle(1, failed=12, succeeded=80), SMALL).state is State.WARNING


def test_it_quarantines_too_many_deletes():
    assert judge_cycle(cycle(1, deletes=6), SMALL).reason == Reason.DELETES
    assert judge_cycle(cycle(1, deletes=5), SMALL).state is State.HEALTHY


def test_it_records_entering_a_reason_change_and_lifting():
    cycles = [cycle(0), cycle(1, rejected_credentials=100), cycle(2, lookup_404s=2), cycle(3)]

    snapshot, transitions = advance(Snapshot(), cycles, DEFAULT)

    # the 404 cycle keeps the same reason code: no new transition until the quarantine lifts
    assert [(t.old, t.new, t.reason) for t in transitions] == [
        (State.UNKNOWN, State.HEALTHY, None),
        (State.HEALTHY, State.QUARANTINED, Reason.CREDENTIALS),
        (State.QUARANTINED, State.HEALTHY, None),
    ]
    assert snapshot.state is State.HEALTHY


def test_it_sends_a_new_transition_when_the_quarantine_reason_changes():
    cycles = [cycle(1, rejected_credentials=100), cycle(2, deletes=900)]

    _snapshot, transitions = advance(Snapshot(), cycles, DEFAULT)

    assert [t.reason for t in transitions] == [Reason.CREDENTIALS, Reason.DELETES]


def test_it_follows_entras_backoff_schedule_while_quarantined():
    began = T0
    assert next_attempt_us(began, began + 1, Timing()) == began + 6 * HOUR_US
    assert next_attempt_us(began, began + 6 * HOUR_US, Timing()) == began + 12 * HOUR_US
    assert next_attempt_us(began, began + 13 * HOUR_US, Timing()) == began + 24 * HOUR_US
    assert next_attempt_us(began, began + 30 * HOUR_US, Timing()) == began + 48 * HOUR_US


def test_it_expects_silence_in_quarantine_and_disables_after_28_days():
    snapshot, _ = advance(Snapshot(), [cycle(1, rejected_credentials=100)], DEFAULT)
    quiet = status_at(snapshot, now_us=snapshot.series_began_us + 5 * HOUR_US,
                      last_traffic_us=snapshot.series_began_us, timing=Timing(), thresholds=DEFAULT)
    gone = status_at(snapshot, now_us=snapshot.series_began_us + 28 * DAY_US,
                     last_traffic_us=snapshot.series_began_us, timing=Timing(), thresholds=DEFAULT)

    assert quiet.state is State.QUARANTINED  # 5 h of silence is the back-off, not a stall
    assert gone.state is State.DISABLED


def test_it_calls_a_job_stalled_after_interval_plus_grace_without_traffic():
    snapshot, _ = advance(Snapshot(), [cycle(0)], DEFAULT)
    last = cycle(0).ended_us

    assert status_at(snapshot, now_us=last + 59 * MIN, last_traffic_us=last, timing=Timing(), thresholds=DEFAULT).state is State.HEALTHY
    stalled = status_at(snapshot, now_us=last + 61 * MIN, last_traffic_us=last, timing=Timing(), thresholds=DEFAULT)
    assert stalled.state is State.STALLED
    assert stalled.since is not None


def test_it_warns_early_when_a_running_cycle_heads_for_quarantine():
    warning = early_warning(processed=2000, failed=1200, rejected_credentials=0, requests=4000, lookup_404s=0,
                            expected=20_000, thresholds=DEFAULT)
    calm = early_warning(processed=2000, failed=20, rejected_credentials=0, requests=4000, lookup_404s=0,
                         expected=20_000, thresholds=DEFAULT)

    assert warning.likely and warning.projected_failures == 12_000
    assert not calm.likely


cycle_facts = st.builds(
    lambda n, failed, rejected, l404, deletes: cycle(n, failed=failed, rejected_credentials=rejected,
                                                     lookup_404s=l404, deletes=deletes),
    st.integers(0, 50), st.integers(0, 20), st.sampled_from([0, 0, 100]), st.sampled_from([0, 0, 1]),
    st.sampled_from([0, 0, 9]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(cycle_facts, max_size=12, unique_by=lambda c: c.id), st.randoms(), st.integers(0, 12))
def test_it_judges_the_same_in_any_order_and_in_any_split(cycles, rng, split):
    ordered = sorted(cycles, key=lambda c: c.ended_us)
    shuffled = list(cycles)
    rng.shuffle(shuffled)
    whole = advance(Snapshot(), shuffled, SMALL)
    first, head = advance(Snapshot(), ordered[:split], SMALL)
    second, tail = advance(first, ordered[split:], SMALL)

    assert whole == advance(Snapshot(), ordered, SMALL)
    assert (second, head + tail) == whole
