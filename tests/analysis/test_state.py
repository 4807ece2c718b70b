"""analysis.state: the one state a job shows, from the best evidence (issue 13 item 1)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dashboard.analysis.state import EntraFacts, decide, first_cycle_state, time_parts

NOW = datetime(2026, 11, 28, 20, 0, tzinfo=UTC)


def _decide(state: str = "warning", entra: EntraFacts | None = None, **kw):  # type: ignore[no-untyped-def]
    args = dict(inferred_state=state, inferred_reason=None, inferred_since=NOW - timedelta(hours=1),
                inferred_next_attempt=None, inferred_disabled_at=None, explanation="ours", entra=entra, now=NOW)
    return decide(**(args | kw))


def _quarantine(observed: timedelta = timedelta(minutes=10), **kw) -> EntraFacts:  # type: ignore[no-untyped-def]
    return EntraFacts(**({"code": "Quarantine", "observed_at": NOW - observed, "reason": "EncounteredQuarantineException",
                          "since": NOW - timedelta(hours=3), "series_began": NOW - timedelta(hours=3),
                          "next_attempt": NOW + timedelta(hours=3), "error": "Unauthorized until 2026-11-28T21:59:00Z"}
                         | kw))


def test_a_fresh_entra_quarantine_wins_over_a_warning_we_infer():
    headline = _decide("warning", _quarantine())

    assert headline.state == "quarantined" and headline.source == "entra"
    assert headline.label == "Quarantined by Entra"
    assert headline.reason == "EncounteredQuarantineException"
    assert headline.since == NOW - timedelta(hours=3) and headline.next_attempt == NOW + timedelta(hours=3)
    assert headline.disabled_at == NOW - timedelta(hours=3) + timedelta(days=28)
    assert "credentials" in headline.explanation and "2026-11-28T21:59:00Z" in headline.explanation
    assert headline.inferred_state == "warning"


def test_an_old_entra_status_leaves_our_inference_labelled_as_such():
    headline = _decide("warning", _quarantine(observed=timedelta(hours=3)))

    assert headline.state == "warning" and headline.source == "inferred"
    assert headline.label == "Warning (inferred from traffic)" and headline.explanation == "ours"


def test_without_entra_status_the_inference_stands():
    assert _decide("stalled").label == "Stalled (inferred from traffic)"
    assert _decide("healthy").source == "inferred"


def test_entra_s_fresh_word_stands_even_past_its_disable_date():
    began = NOW - timedelta(days=29)
    headline = _decide("healthy", _quarantine(since=began, series_began=began))

    assert headline.state == "quarantined" and headline.label == "Quarantined by Entra"
    assert headline.disabled_at == began + timedelta(days=28)


def test_entra_saying_active_does_not_hide_our_quarantine_but_the_disagreement_is_elsewhere():
    headline = _decide("quarantined", EntraFacts(code="Active", observed_at=NOW - timedelta(minutes=5)),
                       inferred_reason="EncounteredQuarantineException")

    assert headline.state == "quarantined" and headline.source == "inferred"


def test_a_paused_job_in_entra_explains_a_stall():
    headline = _decide("stalled", EntraFacts(code="Paused", observed_at=NOW - timedelta(minutes=5)))

    assert headline.state == "stalled" and headline.label == "Paused in Entra" and headline.source == "entra"


def test_a_first_cycle_with_failures_is_not_unknown():
    state, text = first_cycle_state(inferred_state="unknown", processed=3000, failed=131)  # type: ignore[misc]

    assert state == "warning" and "131 of 3,000 users failed so far" in text
    assert first_cycle_state(inferred_state="unknown", processed=1, failed=0) == (
        "healthy", "First cycle still running: 1 user processed so far, none failed.")
    assert first_cycle_state(inferred_state="unknown", processed=0, failed=0) is None
    assert first_cycle_state(inferred_state="warning", processed=10, failed=2) is None


def test_time_parts_lift_rfc3339_moments_out_of_a_sentence():
    assert time_parts("No traffic since 2026-11-28T10:00:00Z: longer than the interval.") == [
        {"text": "No traffic since "}, {"time": "2026-11-28T10:00:00Z"}, {"text": ": longer than the interval."}]
    assert time_parts("retried after 2026-11-28T15:00:00+00:00 UTC") == [
        {"text": "retried after "}, {"time": "2026-11-28T15:00:00Z"}, {"text": " UTC"}]
    assert time_parts("no moment here") == [{"text": "no moment here"}]
    assert time_parts(None) == []
