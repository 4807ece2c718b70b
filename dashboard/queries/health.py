"""A job's health as the pages, the API, the reports and the emails show it (read-only)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dashboard.analysis.health import HealthStatus, Reason, State, Transition
from dashboard.analysis.signatures import recommended_action
from dashboard.analysis.state import decide, first_cycle_state, time_parts
from dashboard.models import Exchange, HealthTransition, Job, Signature
from dashboard.queries.cycles import current_cycle
from dashboard.queries.entra import entra_facts, status_view
from dashboard.queries.exchanges import exchange_brief
from dashboard.queries.signatures import signature_json
from dashboard.settings import Settings, timing_for
from dashboard.times import format_ts, from_us
from dashboard.tracking.health import Judgement, clock_transition, judge, status_of


def health_status(session: Session, job: Job, now: datetime, settings: Settings) -> HealthStatus:
    """The job's health at `now`, judged from the stored rows without writing."""
    return status_of(session, job, judge(session, job, now, settings).snapshot, now, settings)


def at_a_glance(session: Session, jobs: list[Job]) -> list[dict[str, Any]]:
    """One line per job for an overview of many: the health the scheduler last recorded (its state,
    reason and since when) and the last traffic. A few indexed queries whatever the number of jobs
    and exchanges, where judging each job would cost tens of milliseconds a job."""
    latest = (select(HealthTransition.job_id, func.max(HealthTransition.at_us).label("at_us"))
              .group_by(HealthTransition.job_id).subquery())
    recorded = {row.job_id: row for row in session.execute(
        select(HealthTransition.job_id, HealthTransition.new, HealthTransition.reason, HealthTransition.detail,
               HealthTransition.at_us)
        .join(latest, (HealthTransition.job_id == latest.c.job_id) & (HealthTransition.at_us == latest.c.at_us))
        .order_by(HealthTransition.job_id, HealthTransition.id))}  # (the last of a moment's transitions wins)
    last_traffic = dict(session.execute(select(
        Job.id, select(func.max(Exchange.ts_us)).where(Exchange.job_id == Job.id).scalar_subquery())).all())
    out = []
    for job in jobs:
        row = recorded.get(job.id)
        out.append({
            "job": job, "state": row.new if row else "unknown",
            "reason": row.reason if row and row.reason != "clock" else None,  # ("clock": a stall, no code)
            "detail": row.detail if row else "",
            "since": format_ts(from_us(row.at_us)) if row else None,
            "last_traffic": format_ts(from_us(last_traffic[job.id])) if last_traffic.get(job.id) else None,
        })
    return out


def health_json(session: Session, job: Job, now: datetime, settings: Settings) -> dict[str, Any]:
    """The job's state from the best evidence (analysis.state.decide): Entra's fresh job status,
    else our inference from the traffic. `state` is what every page, the API and the emails show;
    `inferred_state` is ours alone; `state_source` says which one `state` came from."""
    judgement = judge(session, job, now, settings)
    status = status_of(session, job, judgement.snapshot, now, settings)
    current = current_cycle(session, job, now, settings)
    transitions = _transitions(session, job, judgement, status)
    inferred, explanation, since = status.state.value, status.explanation, status.since
    if current and current.get("running"):
        first = first_cycle_state(inferred_state=inferred, processed=current["users"],
                                  failed=current["totals"]["failure"])
        if first is not None:
            inferred, explanation = first
            since = datetime.fromisoformat(current["started_at"].replace("Z", "+00:00"))
    ours_quarantined = status.state in (State.QUARANTINED, State.DISABLED)
    headline = decide(
        inferred_state=inferred, inferred_reason=status.reason, inferred_since=since,
        inferred_next_attempt=status.next_attempt,
        inferred_disabled_at=status.disabled_at if ours_quarantined else None,
        explanation=explanation, entra=entra_facts(session, job), now=now,
        stale_after=max(timedelta(microseconds=2 * timing_for(job, settings).interval_us), timedelta(minutes=80)),
    )
    evidence_ids = transitions[0]["evidence"] if transitions else []
    if headline.reason == Reason.CREDENTIALS and not (headline.source == "inferred" and "404" in status.detail):
        evidence_ids = _rejected_requests(session, job, evidence_ids,
                                          transitions[0].get("cycle_id") if transitions else None)
    action = None
    if headline.state in ("quarantined", "disabled", "warning"):
        action = _top_action(session, job, headline.reason if headline.source == "entra" else status.reason,
                             status.detail)
    data = {
        "job": job.name,
        "state": headline.state,
        "reason": headline.reason,
        "detail": status.detail,
        "explanation": headline.explanation,
        "since": _iso(headline.since),
        "next_expected_attempt": _iso(headline.next_attempt),
        "disabled_at": _iso(headline.disabled_at) if headline.state in ("quarantined", "disabled") else None,
        "quarantine_series_began": _iso(status.quarantine_series_began),
        "last_traffic": _iso(status.last_traffic),
        "recommended_action": action,
        "early_warning": current["early_warning"] if current and current.get("running") else None,
        "evidence": [exchange_brief(session.get(Exchange, i)) for i in evidence_ids if session.get(Exchange, i)],
        "transitions": transitions,
        "state_source": headline.source,
        "state_label": headline.label,
        "inferred_state": status.state.value,
        "inferred_reason": status.reason,
        "inferred_explanation": status.explanation,
        "explanation_parts": time_parts(headline.explanation),
    }
    entra = status_view(session, job, data, now)
    data["entra_status"] = entra["status"]
    data["entra_comparison"] = entra["comparison"]
    data["disagreement"] = entra["comparison"]["message"] if entra["comparison"] and \
        entra["comparison"]["disagreement"] else None
    return data


def _rejected_requests(session: Session, job: Job, evidence_ids: list[int], cycle_id: int | None) -> list[int]:
    """A credentials quarantine's evidence is the requests answered 401/403, not other failures:
    those among the transition's evidence, else its cycle's, else the job's latest."""
    rejected = [i for i in evidence_ids if i > 0 and (x := session.get(Exchange, i)) is not None
                and x.status in (401, 403)]
    if not rejected and cycle_id is not None:
        rejected = list(session.scalars(select(Exchange.id).where(Exchange.cycle_id == cycle_id,
                                                                  Exchange.status.in_((401, 403)))
                                        .order_by(Exchange.ts_us).limit(5)))
    if not rejected:
        rejected = list(session.scalars(select(Exchange.id).where(Exchange.job_id == job.id,
                                                                  Exchange.status.in_((401, 403)))
                                        .order_by(Exchange.ts_us.desc()).limit(5)))
    return rejected


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
            "evidence": list(t.evidence), "detail_parts": time_parts(t.detail)}


def transition_json(t: HealthTransition) -> dict[str, Any]:
    return {"at": format_ts(t.at), "old": t.old, "new": t.new, "reason": None if t.reason == "clock" else t.reason,
            "detail": t.detail, "cycle_id": t.cycle_id, "evidence": json.loads(t.evidence),
            "detail_parts": time_parts(t.detail)}


def _top_action(session: Session, job: Job, reason: str | None = None, detail: str = "") -> dict[str, Any] | None:
    """The fix for the cause: a credentials quarantine gets the credentials fix (or the SCIM
    compliance one for 404 lookups), not the most recent other failure's."""
    if reason == Reason.CREDENTIALS:
        found = recommended_action("lookup", 404, None) if "404" in detail else recommended_action("update", 401, None)
        return {"code": found.code, "title": found.title, "action": found.action, "quarantine": found.quarantine}
    sig = session.scalars(select(Signature).where(Signature.job_id == job.id)
                          .order_by(Signature.last_us.desc(), Signature.users.desc()).limit(1)).first()
    return signature_json(sig)["action"] if sig else None


def _iso(moment: datetime | None) -> str | None:
    return format_ts(moment) if moment else None
