"""Entra's own view beside ours: its provisioning events, their SCIM exchanges, its job status.

What the pages and the API show about imported Entra data (models.EntraEvent, EntraJobStatus):
one event in full, the SCIM exchanges behind it (the join support staff want: Entra's error beside
the exact request and response), events in a user's timeline and a cycle, a keyset-paged event
list, and Entra's job status compared with the health we infer from traffic
(analysis.agreement). Evidence ids follow entra_load.evidence_ref: a negative id is the Entra event -id.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from dashboard.analysis.agreement import compare_health, reason_kind
from dashboard.analysis.state import EntraFacts, time_parts
from dashboard.formats.entra.jobstatus import parse_job_status
from dashboard.formats.entra.records import JobStatus, TaskExecution
from dashboard.formats.scim.parse import LineError, parse_ts
from dashboard.ingest.entra import evidence_ref
from dashboard.models import Cycle, EntraEvent, EntraJobStatus, Exchange, Job, ScimUser
from dashboard.queries.exchanges import exchange_brief, exchange_json
from dashboard.queries.logs import decode_cursor
from dashboard.queries.users import find_user
from dashboard.times import format_ts, from_us, to_us

# Entra logs an event when it has finished with the object; its requests to the target come
# just before (or, for an escrow retry, a few minutes around it). Ten minutes either side finds
# them without pulling in the user's previous cycle (~40 minutes earlier).
JOIN_WINDOW = timedelta(minutes=10)


# A cycle's own events and exchanges can straddle its bounds by a little (clock skew, logging lag).
CYCLE_MARGIN = timedelta(minutes=2)


PAGE = 100


ACTIONS = ("create", "update", "delete", "disable", "stagedDelete", "other")


STATUSES = ("success", "failure", "skipped", "warning")


class EventFilterError(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)


def event_of(session: Session, job: Job, event_id: int) -> EntraEvent | None:
    event = session.get(EntraEvent, event_id)
    return event if event is not None and event.job_id == job.id else None


def event_brief(event: EntraEvent) -> dict[str, Any]:
    """What a list shows: no reason text (viewers may see a brief)."""
    return {
        "id": event.id,
        "source": "entra",
        "ts": format_ts(event.activity_at),
        "action": event.action,
        "outcome": event.outcome,
        "operation": event.operation,
        "status": event.status,
        "failed": event.failed,
        "error_code": event.error_code,
        "user": event.user_name or event.display_name or event.external_id or event.source_id,
        "user_id": event.user_id,
        "cycle": event.cycle_id,
        "change_id": event.change_id,
    }


def event_json(event: EntraEvent, *, full: bool = True) -> dict[str, Any]:
    """One event; `full` adds Entra's reason, recommended action, steps, modified properties
    and identities (all redacted at import)."""
    data = event_brief(event)
    data.update(
        entra_id=event.entra_id, cycle_id=event.cycle_key, entra_job_id=event.entra_job_id,
        retry_count=event.retry_count,
        next_retry_at=format_ts(from_us(event.next_retry_us)) if event.next_retry_us is not None else None,
        duration_ms=event.duration_ms, source_id=event.source_id, target_id=event.target_id,
        display_name=event.display_name, userName=event.user_name, externalId=event.external_id,
        signature_id=event.sig_id,
    )
    if full:
        details = event.details()
        data.update(
            reason=event.reason, recommended_action=event.recommended_action,
            error_category=details.get("error_category"),
            steps=details.get("steps") or [], modified_properties=details.get("modified_properties") or [],
            source_identity=details.get("source"), target_identity=details.get("target"),
            service_principal=details.get("service_principal"),
        )
    return data


def exchanges_near(session: Session, event: EntraEvent, *, window: timedelta = JOIN_WINDOW,
                   limit: int = 30) -> list[dict[str, Any]]:
    """The same user's SCIM exchanges within `window` of the event, failing ones first, then by
    closeness in time; each with `offset_s` (exchange time minus event time). [] without a user."""
    if event.user_id is None:
        return []
    span = int(window.total_seconds() * 1_000_000)
    rows = session.scalars(
        select(Exchange).where(Exchange.user_id == event.user_id, Exchange.job_id == event.job_id,
                               Exchange.ts_us.between(event.activity_us - span, event.activity_us + span))
        .order_by(Exchange.ts_us).limit(500)
    ).all()
    bad = [r for r in rows if _exchange_failed(r)]
    good = [r for r in rows if not _exchange_failed(r)]
    ordered = sorted(bad, key=lambda r: abs(r.ts_us - event.activity_us)) + \
        sorted(good, key=lambda r: abs(r.ts_us - event.activity_us))
    out = []
    for row in ordered[:limit]:
        data = exchange_json(session, row, full=_exchange_failed(row))
        data["offset_s"] = round((row.ts_us - event.activity_us) / 1_000_000, 3)
        out.append(data)
    return out


def _exchange_failed(row: Exchange) -> bool:
    return bool(row.failed) or row.status >= 400 or row.status == 0


def user_events(session: Session, user: ScimUser, *, limit: int = 500) -> list[EntraEvent]:
    """The user's latest events, oldest first."""
    rows = session.scalars(select(EntraEvent).where(EntraEvent.user_id == user.id)
                           .order_by(EntraEvent.activity_us.desc()).limit(limit)).all()
    return list(reversed(rows))


def merge_timeline(session: Session, timeline: dict[str, Any], events: list[EntraEvent]) -> dict[str, Any]:
    """queries.users.user_timeline with the user's Entra events interleaved by time.

    Each cycle gets `items`: its exchanges (`source` "scim") and events (`source` "entra", full)
    in time order. Events of a cycle the timeline does not list get an entry of their own.
    """
    cycles = {c["cycle"]["id"]: c for c in timeline["cycles"]}
    for c in timeline["cycles"]:
        c["items"] = [{**e, "source": "scim"} for e in c["exchanges"]]
    extra: dict[int | None, dict[str, Any]] = {}
    for event in events:
        item = event_json(event)
        entry = cycles.get(event.cycle_id)
        if entry is None:
            entry = extra.get(event.cycle_id)
        if entry is None:
            cycle = session.get(Cycle, event.cycle_id) if event.cycle_id else None
            entry = extra[event.cycle_id] = {
                "cycle": {"id": cycle.id, "cycle_id": cycle.key, "started_at": format_ts(cycle.started_at)} if cycle
                else {"id": None, "cycle_id": event.cycle_key, "started_at": item["ts"]},
                "operation": event.operation, "outcome": "failure" if event.failed else event.outcome,
                "attempts": 0, "exchanges": [], "items": [],
            }
        entry["items"].append(item)
    merged = [*timeline["cycles"], *extra.values()]
    for entry in merged:
        entry["items"].sort(key=lambda i: (i["ts"], i["source"]))
        entry["entra_events"] = sum(1 for i in entry["items"] if i["source"] == "entra")
    merged.sort(key=lambda c: c["cycle"]["started_at"])
    return {**timeline, "cycles": merged, "entra_events": len(events)}


def cycle_events(session: Session, cycle: Cycle, *, limit: int = 50) -> dict[str, Any]:
    """An Entra cycle's counters and its failing events (oldest first, at most `limit`)."""
    failing = session.scalars(select(EntraEvent).where(EntraEvent.cycle_id == cycle.id, EntraEvent.failed.is_(True))
                              .order_by(EntraEvent.activity_us).limit(limit)).all()
    return {
        "events": cycle.events or 0, "failed": cycle.failed_events or 0, "staged_deletes": cycle.staged_deletes or 0,
        "failing": [event_json(e) for e in failing], "more": max(0, (cycle.failed_events or 0) - len(failing)),
    }


def cycle_join(session: Session, job: Job, cycle: Cycle, *, users: int = 50,
               margin: timedelta = CYCLE_MARGIN) -> list[dict[str, Any]]:
    """Per user seen in both sources within the cycle's time window (± `margin`): their Entra
    events and SCIM exchanges there, failing users first. [] unless both sources have traffic."""
    pad = int(margin.total_seconds() * 1_000_000)
    lo, hi = cycle.started_us - pad, cycle.ended_us + pad
    in_events = select(EntraEvent.user_id, func.max(case((EntraEvent.failed, 1), else_=0)).label("bad")).where(
        EntraEvent.job_id == job.id, EntraEvent.activity_us.between(lo, hi), EntraEvent.user_id.is_not(None)
    ).group_by(EntraEvent.user_id).subquery()
    in_exchanges = select(Exchange.user_id, func.max(case((Exchange.failed, 1), else_=0)).label("bad")).where(
        Exchange.job_id == job.id, Exchange.ts_us.between(lo, hi), Exchange.user_id.is_not(None)
    ).group_by(Exchange.user_id).subquery()
    both = session.execute(
        select(in_events.c.user_id, (in_events.c.bad + in_exchanges.c.bad).label("bad"))
        .join(in_exchanges, in_exchanges.c.user_id == in_events.c.user_id)
        .order_by((in_events.c.bad + in_exchanges.c.bad).desc(), in_events.c.user_id).limit(users)
    ).all()
    out = []
    for user_id, _bad in both:
        user = session.get(ScimUser, user_id)
        events = session.scalars(select(EntraEvent).where(EntraEvent.user_id == user_id,
                                                          EntraEvent.activity_us.between(lo, hi))
                                 .order_by(EntraEvent.activity_us).limit(20)).all()
        exchanges = session.scalars(select(Exchange).where(Exchange.user_id == user_id, Exchange.ts_us.between(lo, hi))
                                    .order_by(Exchange.ts_us).limit(20)).all()
        out.append({
            "user": {"id": user_id, "label": user.label if user else str(user_id),
                     "key": user.key if user else str(user_id)},
            "failed": any(e.failed for e in events) or any(_exchange_failed(x) for x in exchanges),
            "events": [event_brief(e) for e in events],
            "exchanges": [{**exchange_brief(x), "failed": _exchange_failed(x)} for x in exchanges],
        })
    return out


def evidence_items(session: Session, job: Job, refs: list[int]) -> list[dict[str, Any]]:
    """Briefs of the exchanges and events `refs` name (entra_load.evidence_ref), each with
    `kind` "exchange" or "event"; ids that no longer exist are left out."""
    out = []
    for ref in refs:
        kind, row_id = evidence_ref(int(ref))
        if kind == "event":
            event = event_of(session, job, row_id)
            if event is not None:
                out.append({"kind": "event", **event_brief(event)})
        else:
            exchange = session.get(Exchange, row_id)
            if exchange is not None and exchange.job_id == job.id:
                out.append({"kind": "exchange", **exchange_brief(exchange)})
    return out


def last_failures(session: Session, user_ids: list[int]) -> dict[int, int]:
    """ScimUser.last_failure_exchange_id (an evidence ref) of each user that has one."""
    if not user_ids:
        return {}
    rows = session.execute(select(ScimUser.id, ScimUser.last_failure_exchange_id)
                           .where(ScimUser.id.in_(user_ids), ScimUser.last_failure_exchange_id.is_not(None))).all()
    return {user_id: ref for user_id, ref in rows}


@dataclass(frozen=True)
class EventFilter:
    status: str | None = None
    action: str | None = None
    cycle: str | None = None
    user: str | None = None
    since: datetime | None = None

    @classmethod
    def from_args(cls, args: Any) -> EventFilter:
        status = (args.get("status") or "").strip().lower() or None
        if status and status not in STATUSES:
            raise EventFilterError(f"'status' must be one of {', '.join(STATUSES)}")
        action = (args.get("action") or "").strip() or None
        if action:
            known = {a.lower(): a for a in ACTIONS}
            if action.lower() not in known:
                raise EventFilterError(f"'action' must be one of {', '.join(ACTIONS)}")
            action = known[action.lower()]
        since = None
        if args.get("since"):
            try:
                since = parse_ts(args["since"])
            except LineError:
                raise EventFilterError("'since' must be RFC 3339 with a zone, e.g. 2026-11-28T03:00:00Z") from None
        return cls(status=status, action=action, cycle=(args.get("cycle") or "").strip() or None,
                   user=(args.get("user") or "").strip() or None, since=since)


def list_events(session: Session, job: Job, f: EventFilter, *, after: str | None = None,
                limit: int = PAGE) -> dict[str, Any]:
    """Newest first, keyset-paged: `next_after` is the (time, id) of the last event given.

    `cycle` is our cycle id (digits) or Entra's cycleId; `user` is a userName, externalId or SCIM
    id (as the users pages take) or Entra's source or target object id.
    """
    query = select(EntraEvent).where(EntraEvent.job_id == job.id)
    if f.status:
        query = query.where(EntraEvent.outcome == f.status)
    if f.action:
        query = query.where(EntraEvent.action == f.action)
    if f.cycle:
        query = query.where(EntraEvent.cycle_id == int(f.cycle) if f.cycle.isdigit() else EntraEvent.cycle_key == f.cycle)
    if f.user:
        user = find_user(session, job, f.user)
        query = query.where(or_(EntraEvent.source_id == f.user, EntraEvent.target_id == f.user,
                                *([EntraEvent.user_id == user.id] if user else [])))
    if f.since:
        query = query.where(EntraEvent.activity_us >= to_us(f.since))
    if after:
        try:
            ts_us, event_id = decode_cursor(after)
        except ValueError:
            raise EventFilterError("'after' is not a cursor this API gave out") from None
        query = query.where(EntraEvent.activity_us <= ts_us,
                            or_(EntraEvent.activity_us < ts_us, and_(EntraEvent.activity_us == ts_us, EntraEvent.id < event_id)))
    rows = session.scalars(query.order_by(EntraEvent.activity_us.desc(), EntraEvent.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {"events": [event_json(e, full=False) for e in rows],
            "next_after": f"{rows[-1].activity_us}.{rows[-1].id}" if more and rows else None}


def latest_status(session: Session, job: Job) -> EntraJobStatus | None:
    return session.scalars(select(EntraJobStatus).where(EntraJobStatus.job_id == job.id)
                           .order_by(EntraJobStatus.observed_us.desc(), EntraJobStatus.id.desc()).limit(1)).first()


def entra_facts(session: Session, job: Job) -> EntraFacts | None:
    """What analysis.state.decide needs of Entra's latest status; None when none was imported."""
    row = latest_status(session, job)
    if row is None:
        return None
    status = parse_job_status(orjson.loads(row.data))
    q = status.quarantine
    return EntraFacts(code=status.code, observed_at=from_us(row.observed_us),
                      reason=q.reason if q else None, since=q.current_began_at if q else None,
                      series_began=q.series_began_at if q else None, next_attempt=q.next_attempt_at if q else None,
                      error=(q.error.message if q and q.error else None))


def status_view(session: Session, job: Job, health: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Entra's latest job status (as JSON) and its comparison with `health` (queries.health.health_json).
    `status` is None when none was imported."""
    row = latest_status(session, job)
    if row is None:
        return {"status": None, "comparison": None}
    status = parse_job_status(orjson.loads(row.data))
    observed = from_us(row.observed_us)
    ours = health.get("inferred_state", health["state"])  # compare with our inference, not the headline
    comparison = compare_health(our_state=ours, our_reason=health.get("inferred_reason", health.get("reason")),
                                entra_code=status.code,
                                entra_reason=status.quarantine.reason if status.quarantine else None,
                                observed_at=observed, now=now)
    return {"status": status_json(status, observed=observed, imported_at=row.created_at), "comparison": asdict(comparison)}


def status_json(status: JobStatus, *, observed: datetime, imported_at: datetime | None = None) -> dict[str, Any]:
    q = status.quarantine
    progress = status.progress[0] if status.progress else None
    return {
        "observed_at": format_ts(observed),
        "imported_at": format_ts(imported_at) if imported_at else None,
        "entra_job_id": status.job_id,
        "code": status.code,
        "quarantine": None if q is None else {
            "reason": q.reason, "kind": reason_kind(q.reason), "current_began_at": _ts(q.current_began_at),
            "next_attempt_at": _ts(q.next_attempt_at), "series_began_at": _ts(q.series_began_at),
            "series_count": q.series_count,
            "error": None if q.error is None else {"code": q.error.code, "message": q.error.message,
                                                   "message_parts": time_parts(q.error.message),
                                                   "tenant_actionable": q.error.tenant_actionable},
        },
        "progress": None if progress is None else {
            "completed_units": progress.completed_units, "total_units": progress.total_units,
            "units": progress.units or "pages", "observed_at": _ts(progress.observed_at),
            "percent": round(progress.fraction * 100, 1) if progress.fraction is not None else None,
        },
        "last_execution": _execution(status.last_execution),
        "last_successful_execution": _execution(status.last_successful_execution),
        "steady_state_first_achieved_at": _ts(status.steady_state_first_achieved_at),
        "steady_state_last_achieved_at": _ts(status.steady_state_last_achieved_at),
        "count_successive_complete_failures": status.count_successive_complete_failures,
        "synchronized_entry_counts": status.synchronized_entry_counts,
        "schedule": None if status.schedule is None else {
            "state": status.schedule.state, "interval": status.schedule.interval_raw,
            "interval_s": status.schedule.interval.total_seconds() if status.schedule.interval else None,
        },
    }


def _execution(execution: TaskExecution | None) -> dict[str, Any] | None:
    if execution is None:
        return None
    duration = execution.duration
    return {
        "activity_identifier": execution.activity_identifier, "state": execution.state,
        "began_at": _ts(execution.began_at), "ended_at": _ts(execution.ended_at),
        "duration_s": duration.total_seconds() if duration is not None else None,
        "count_entitled": execution.count_entitled, "count_imported": execution.count_imported,
        "count_exports": execution.count_exports, "count_exported": execution.count_exported,
        "count_escrowed": execution.count_escrowed,
        "error": None if execution.error is None else {"code": execution.error.code, "message": execution.error.message},
    }


def _ts(moment: datetime | None) -> str | None:
    return format_ts(moment) if moment else None
