"""A job's health as the pages, the API, the reports and the emails show it (read-only)."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.analysis.health import HealthStatus, State, Transition
from dashboard.models import Exchange, HealthTransition, Job, Signature
from dashboard.queries.cycles import current_cycle
from dashboard.queries.exchanges import exchange_brief
from dashboard.queries.signatures import signature_json
from dashboard.settings import Settings
from dashboard.times import format_ts, from_us
from dashboard.tracking.health import Judgement, clock_transition, judge, status_of


def health_status(session: Session, job: Job, now: datetime, settings: Settings) -> HealthStatus:
    """The job's health at `now`, judged from the stored rows without writing."""
    return status_of(session, job, judge(session, job, now, settings).snapshot, now, settings)


def health_json(session: Session, job: Job, now: datetime, settings: Settings) -> dict[str, Any]:
    judgement = judge(session, job, now, settings)
    status = status_of(session, job, judgement.snapshot, now, settings)
    current = current_cycle(session, job, now, settings)
    transitions = _transitions(session, job, judgement, status)
    evidence_ids = transitions[0]["evidence"] if transitions else []
    action = None
    if status.state in (State.QUARANTINED, State.DISABLED, State.WARNING):
        action = _top_action(session, job)
    return {
        "job": job.name,
        "state": status.state.value,
        "reason": status.reason,
        "detail": status.detail,
        "explanation": status.explanation,
        "since": _iso(status.since),
        "next_expected_attempt": _iso(status.next_attempt),
        "disabled_at": _iso(status.disabled_at) if status.state in (State.QUARANTINED, State.DISABLED) else None,
        "quarantine_series_began": _iso(status.quarantine_series_began),
        "last_traffic": _iso(status.last_traffic),
        "recommended_action": action,
        "early_warning": current["early_warning"] if current and current.get("running") else None,
        "evidence": [exchange_brief(session.get(Exchange, i)) for i in evidence_ids if session.get(Exchange, i)],
        "transitions": transitions,
    }


def _transitions(session: Session, job: Job, judgement: Judgement, status: HealthStatus,
                 limit: int = 20) -> list[dict[str, Any]]:
    """The latest transitions, newest first: the recorded ones and those the scheduler's next
    evaluation will record (judged here in memory: a page view writes nothing)."""
    query = select(HealthTransition).where(HealthTransition.job_id == job.id)
    if judgement.void_recorded:
        query = query.where(HealthTransition.reason == "clock")
    recorded = session.scalars(query.order_by(HealthTransition.at_us.desc(), HealthTransition.id.desc())
                               .limit(limit)).all()
    pending = [(t.at_us, _pending_json(t)) for t in judgement.pending]
    newest = max([(t.at_us, t.new.value) for t in judgement.pending] + [(t.at_us, t.new) for t in recorded[:1]],
                 default=None)
    clock = clock_transition(newest[1] if newest else None, status)
    if clock is not None:
        pending.append((clock.at_us, _pending_json(clock)))
    listed = sorted(pending, key=lambda item: item[0], reverse=True) + [(t.at_us, transition_json(t)) for t in recorded]
    listed.sort(key=lambda item: item[0], reverse=True)  # stable: pending before recorded at one moment
    return [data for _, data in listed[:limit]]


def _pending_json(t: Transition) -> dict[str, Any]:
    return {"at": format_ts(from_us(t.at_us)), "old": t.old.value, "new": t.new.value,
            "reason": None if t.reason == "clock" else t.reason, "detail": t.detail, "cycle_id": t.cycle_id,
            "evidence": list(t.evidence)}


def transition_json(t: HealthTransition) -> dict[str, Any]:
    return {"at": format_ts(t.at), "old": t.old, "new": t.new, "reason": None if t.reason == "clock" else t.reason,
            "detail": t.detail, "cycle_id": t.cycle_id, "evidence": json.loads(t.evidence)}


def _top_action(session: Session, job: Job) -> dict[str, Any] | None:
    sig = session.scalars(select(Signature).where(Signature.job_id == job.id)
                          .order_by(Signature.last_us.desc(), Signature.users.desc()).limit(1)).first()
    return signature_json(sig)["action"] if sig else None


def _iso(moment: datetime | None) -> str | None:
    return format_ts(moment) if moment else None
