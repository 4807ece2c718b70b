"""The token guard: a cycle whose requests are mostly answered 401/403 is told within that cycle
as Entra's EncounteredQuarantineException, with the fix, and emailed once for the episode."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from dashboard.admin.jobs import get_job
from dashboard.analysis.health import CREDENTIALS_FIX, Thresholds, early_warning
from dashboard.db import db
from dashboard.models import Episode
from dashboard.queries.cycles import current_cycle
from tests.notify.helpers import after_cycle, cycle_end, cycle_lines, ingest
from tests.notify.test_alerts import Step

HEADLINE = "Entra will quarantine this job (EncounteredQuarantineException)"


def test_most_requests_rejected_means_quarantine_in_entras_words_with_the_fix():
    warning = early_warning(processed=0, failed=0, rejected_credentials=30, requests=40, lookup_404s=0,
                            expected=100, thresholds=Thresholds())
    few = early_warning(processed=10, failed=0, rejected_credentials=3, requests=40, lookup_404s=0,
                        expected=100, thresholds=Thresholds())

    assert warning.likely and warning.reason == "EncounteredQuarantineException"
    assert warning.message.startswith(HEADLINE + ": the target rejected the credentials, 30 of 40 requests")
    assert warning.fix == CREDENTIALS_FIX and "Test Connection" in warning.message
    assert not few.likely and few.reason is None


def test_the_running_cycle_says_it_and_one_email_tells_the_episode(app, settings, smtp_server):
    step = Step(settings, smtp_server)
    ingest(settings, cycle_lines(0))
    step(after_cycle(0))
    ingest(settings, cycle_lines(1, status_all=401))  # the secret token was revoked
    during = cycle_end(1) + timedelta(minutes=1)

    db.session.rollback()
    shown = current_cycle(db.session, get_job("uniflow-prod"), during, settings)
    first = step(during)
    again = step(during + timedelta(minutes=1))
    ended = step(after_cycle(1))  # the cycle completed: quarantined, told by the quarantine email
    ingest(settings, cycle_lines(2, status_all=401))
    next_cycle = step(cycle_end(2) + timedelta(minutes=1))

    assert shown["running"] and shown["early_warning"]["message"].startswith(HEADLINE)
    assert [m.subject for m in first] == [f"[uniFLOW production] {HEADLINE}: credentials rejected (5 users)"]
    assert "Test Connection" in first[0].text and "SECRET-TOKEN" not in first[0].text
    assert again == []
    assert [m.subject for m in ended] == ["[uniFLOW production] Quarantined (inferred from the traffic): credentials rejected (5 users)"]
    assert next_cycle == []
    episodes = db.session.scalars(select(Episode).where(Episode.kind == "early_warning")).all()
    assert [(e.key, e.resolved_at is not None) for e in episodes] == [("credentials", True)]
