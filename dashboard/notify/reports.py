"""The scheduled cycle report: per job, the cycles completed since its previous report.

`send_due_reports(now)` runs every `reports.interval_minutes`. The due time (`NotifyState.
next_report_at`) and what was reported (`ReportRun`, unique per job and last cycle) live in the
database, so a restart neither skips nor repeats a report. The report reuses the numbers of the
pages and the API (report, cycle_detail); it is stored, listed on /reports and
emailed to the job's report recipients.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dashboard.analysis.causes import subject_line
from dashboard.analysis.outcomes import BUCKETS, OUTCOMES, empty_counts
from dashboard.models import Cycle, Job, NotifyState, ReportRun
from dashboard.notify.alerts import base_context, list_headers, trim_cycle
from dashboard.notify.brief import first_screen
from dashboard.notify.emails import link, render_email
from dashboard.notify.outbox import enqueue
from dashboard.notify.recipients import recipients_for
from dashboard.notify.rules import is_report_due, next_report_due
from dashboard.queries.cycles import current_cycle, cycle_detail, progress
from dashboard.queries.replay import report
from dashboard.settings import Settings, gap_us
from dashboard.times import aware, to_us

log = logging.getLogger(__name__)
SCHEMA = "cycle-report/1"
MAX_CYCLES = 20  # a report covers at most this many cycles (the first one, or after a long pause)


def send_due_reports(session: Session, now: datetime, settings: Settings) -> list[ReportRun]:
    """A report for each job whose report is due and that completed cycles since its last one."""
    made = []
    for job_id in session.scalars(select(Job.id).order_by(Job.id)).all():
        job = session.get(Job, job_id)
        try:
            run = send_report_if_due(session, job, now, settings)  # type: ignore[arg-type]
        except Exception:  # a boundary: one job's failure does not stop the others' reports
            session.rollback()
            log.exception("cycle report of job %s failed", job_id)
            continue
        if run is not None:
            made.append(run)
    return made


def send_report_if_due(session: Session, job: Job, now: datetime, settings: Settings, *,
                       force: bool = False) -> ReportRun | None:
    interval = timedelta(minutes=settings.reports.interval_minutes)
    state = session.get(NotifyState, job.id)
    if not force and state is not None and not is_report_due(aware(state.next_report_at), now, interval=interval):
        return None
    document = build_report(session, job, now, settings)  # may commit (health is judged first)
    state = session.get(NotifyState, job.id) or NotifyState(job_id=job.id)
    state.next_report_at = next_report_due(now, interval=interval)
    session.add(state)
    run = None
    if document is not None and not _reported(session, job, document["last_cycle_id"]):
        run = _store(session, job, document, now)
        run.recipients = _email(session, job, run, document, now, settings)
    session.commit()
    return run


def build_report(session: Session, job: Job, now: datetime, settings: Settings) -> dict[str, Any] | None:
    """The report document for the cycles completed since the previous report (None: none did)."""
    cycles = _cycles_to_report(session, job, now, settings)
    if not cycles:
        return None
    base = report(session, job, now, settings, cycles=1)
    details = []
    for cycle in cycles:
        detail = cycle_detail(session, job, cycle, now, settings)
        detail["progress"] = progress(session, job, cycle, detail, now)
        details.append(trim_cycle(detail, job.name, settings, session=session))
    totals = empty_counts()
    for detail in details:
        for bucket in BUCKETS:
            for outcome in OUTCOMES:
                totals[bucket][outcome] += detail["counts"].get(bucket, {}).get(outcome, 0)
    last = details[-1]
    top = settings.notifications.top_signatures
    return {
        "schema": SCHEMA,
        "job": base["job"],
        "generated_at": base["generated_at"],
        "period": {"from": details[0]["started_at"], "to": last["ended_at"]},
        "first_cycle_id": cycles[0].id,
        "last_cycle_id": cycles[-1].id,
        "last_cycle_ended_us": cycles[-1].ended_us,
        "health": base["health"],
        "cycles": details,
        "counts": totals,
        "totals": {o: sum(totals[b][o] for b in BUCKETS) for o in OUTCOMES},
        "diff": last["diff"],
        "signatures": _merged_signatures(details)[:top],
        "job_signatures": base["signatures"][:top],
        "failing_users": base["failing_users"][:20],
        "current": current_cycle(session, job, now, settings),
    }


def list_reports(session: Session, *, job: Job | None = None, limit: int = 100) -> list[tuple[ReportRun, Job]]:
    query = select(ReportRun, Job).join(Job, Job.id == ReportRun.job_id)
    if job is not None:
        query = query.where(ReportRun.job_id == job.id)
    return [(r, j) for r, j in session.execute(query.order_by(ReportRun.created_at.desc(), ReportRun.id.desc())
                                                .limit(limit)).all()]


def report_document(run: ReportRun) -> dict[str, Any]:
    return orjson.loads(run.data)


def email_context(session: Session, job: Job, run: ReportRun, document: dict[str, Any], settings: Settings,
                  now: datetime) -> dict[str, Any]:
    ctx = base_context(session, job, settings, document["health"])
    health = document["health"]
    troubled = health["state"] != "healthy" or document["totals"]["failure"] > 0
    brief = first_screen(session, job, now, settings, health,
                         since=(health.get("since") or document["period"]["from"]) if troubled else None,
                         cycle_ids=[c["id"] for c in document["cycles"]])
    cycles = len(document["cycles"])
    headline = f"Cycle report, {brief['what']['headline'][0].lower()}{brief['what']['headline'][1:]}"
    if not troubled and not brief["what"]["confirmed"]:
        headline = f"Cycle report: {cycles} cycle{'s' if cycles != 1 else ''}, no failures"
    ctx.update(report=document, report_link=link(settings.app.base_url, "reports", run.id), brief=brief,
               subject=subject_line(job.title, headline, brief["subject_cause"] if troubled else None,
                                    brief["subject_users"] if troubled else None))
    return ctx


def _cycles_to_report(session: Session, job: Job, now: datetime, settings: Settings) -> list[Cycle]:
    reported_until = session.scalar(select(func.max(ReportRun.last_cycle_ended_us)).where(ReportRun.job_id == job.id))
    query = select(Cycle).where(Cycle.job_id == job.id, Cycle.ended_us < to_us(now) - gap_us(settings))
    if reported_until is not None:
        query = query.where(Cycle.ended_us > reported_until)
    newest = session.scalars(query.order_by(Cycle.ended_us.desc()).limit(MAX_CYCLES)).all()
    return list(reversed(newest))


def _reported(session: Session, job: Job, last_cycle_id: int) -> bool:
    # A cycle extended by a late exchange ends after the watermark again: not a new report.
    return session.scalar(select(ReportRun.id).where(ReportRun.job_id == job.id,
                                                     ReportRun.last_cycle_id == last_cycle_id)) is not None


def _store(session: Session, job: Job, document: dict[str, Any], now: datetime) -> ReportRun:
    run = ReportRun(
        job_id=job.id, first_cycle_id=document["first_cycle_id"], last_cycle_id=document["last_cycle_id"],
        last_cycle_ended_us=document["last_cycle_ended_us"], cycles=len(document["cycles"]),
        health=document["health"]["state"], failed_users=document["totals"]["failure"], created_at=now,
        data=orjson.dumps(document).decode(),
    )
    session.add(run)
    session.flush()
    return run


def _email(session: Session, job: Job, run: ReportRun, document: dict[str, Any], now: datetime,
           settings: Settings) -> int:
    ctx = email_context(session, job, run, document, settings, now)
    rendered: dict[str, Any] = {}
    queued = 0
    for recipient in recipients_for(session, job, "reports", settings):
        if recipient.role not in rendered:
            rendered[recipient.role] = render_email("cycle-report", ctx | {"role": recipient.role})
        row = enqueue(session, rendered[recipient.role], to=recipient.address, kind="report", now=now, job_id=job.id,
                      dedupe_key=f"report:{run.id}:{recipient.address.lower()}"[:200],
                      from_address=settings.smtp.from_address, headers=list_headers(job, settings))
        queued += 1 if row is not None else 0
    return queued


def _merged_signatures(details: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged: dict[int, dict[str, Any]] = {}
    for detail in details:
        for sig in detail.get("signatures", []):
            seen = merged.setdefault(sig["id"], sig | {"in_cycle": {"exchanges": 0, "users": 0}, "cycles": 0})
            seen["in_cycle"] = {k: seen["in_cycle"][k] + sig["in_cycle"][k] for k in ("exchanges", "users")}
            seen["cycles"] += 1
    return sorted(merged.values(), key=lambda s: (-s["in_cycle"]["users"], -s["in_cycle"]["exchanges"], s["id"]))
