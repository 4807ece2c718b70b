"""What the API, the pages, the report and the emails show about a job: one computation each.

Every function reads the stored, incrementally maintained rows (cycles, user rows, signatures,
the health snapshot); none of them walks the whole history.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import asdict
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from dashboard.analysis.health import (
    CycleFacts,
    HealthStatus,
    Snapshot,
    State,
    Thresholds,
    Timing,
    advance,
    early_warning,
    status_at,
)
from dashboard.analysis.outcomes import (
    BUCKETS,
    OUTCOMES,
    Fact,
    Summary,
    bucket_of,
    empty_counts,
)
from dashboard.analysis.signatures import recommended_action
from dashboard.models import (
    Cycle,
    EntraEvent,
    Exchange,
    HealthTransition,
    Job,
    JobAnalysis,
    ScimUser,
    Signature,
    UserCycle,
)
from dashboard.settings import Settings
from dashboard.times import format_ts, from_us, to_us, utc_now

US = 1_000_000
INITIAL_LOOKUP_SHARE = 0.5  # a cycle that looks up half the known users is a (re)start: an initial cycle
INITIAL_MIN_USERS = 20


def thresholds_for(job: Job, settings: Settings) -> Thresholds:
    q = asdict(settings.quarantine)
    q.update(json.loads(job.quarantine_overrides or "{}"))
    return Thresholds(
        min_failures=q["min_failures"], proportion=q["failure_proportion"], total_failures=q["total_failures"],
        absolute_failures=q["absolute_failures"], deletion_threshold=q["deletion_threshold"],
        credential_share=q["credential_share"],
    )


def timing_for(job: Job, settings: Settings) -> Timing:
    q = asdict(settings.quarantine)
    q.update(json.loads(job.quarantine_overrides or "{}"))
    return Timing(
        interval_us=settings.cycles.interval_minutes * 60 * US,
        stall_grace_us=settings.cycles.stall_grace_minutes * 60 * US,
        disable_after_us=q["disable_after_days"] * 86400 * US,
    )


def gap_us(settings: Settings) -> int:
    return settings.cycles.gap_minutes * 60 * US


# -- health ---------------------------------------------------------------------------------------


def refresh_health(session: Session, job: Job, now: datetime, settings: Settings) -> Snapshot:
    """Judge the cycles completed since the last judgement (all of them when earlier cycles
    changed); record each transition. Idempotent."""
    now_us = to_us(now)
    state = session.get(JobAnalysis, job.id)
    if state is None:
        state = JobAnalysis(job_id=job.id, snapshot="{}")
        session.add(state)
        session.flush()
    snapshot = Snapshot.from_dict(json.loads(state.snapshot or "{}"))
    judged = state.judged_until_us
    if state.dirty_from_us is not None and judged is not None and state.dirty_from_us <= judged:
        session.execute(delete(HealthTransition).where(
            HealthTransition.job_id == job.id,
            or_(HealthTransition.reason.is_(None), HealthTransition.reason != "clock"),
        ))
        snapshot, judged = Snapshot(), None
    completed_before = now_us - gap_us(settings)
    query = select(Cycle).where(Cycle.job_id == job.id, Cycle.ended_us < completed_before)
    if judged is not None:
        query = query.where(Cycle.ended_us > judged)
    cycles = session.scalars(query.order_by(Cycle.ended_us)).all()
    if cycles:
        snapshot, transitions = advance(snapshot, [facts_of(session, c) for c in cycles], thresholds_for(job, settings))
        for t in transitions:
            _record(session, job, t.at_us, t.old.value, t.new.value, t.reason, t.detail, list(t.evidence), t.cycle_id)
        judged = cycles[-1].ended_us
    state.snapshot = json.dumps(snapshot.to_dict())
    state.judged_until_us = judged
    state.dirty_from_us = None
    session.commit()
    return snapshot


def facts_of(session: Session, cycle: Cycle) -> CycleFacts:
    counts = orjson.loads(cycle.counts or "{}") or empty_counts()
    succeeded = sum(counts.get(b, {}).get("success", 0) for b in BUCKETS)
    failed = sum(counts.get(b, {}).get("failure", 0) for b in BUCKETS)
    deletes = sum(counts.get(b, {}).get(o, 0) for b in ("delete", "disable") for o in ("success", "failure"))
    deletes += cycle.staged_deletes or 0  # held back by Entra's accidental-deletion prevention: they count [ACC]
    evidence: tuple[int, ...] = ()
    if cycle.rejected_credentials or cycle.lookup_404s or failed:
        evidence = tuple(session.scalars(
            select(Exchange.id).where(Exchange.cycle_id == cycle.id, Exchange.failed | (Exchange.status == 404))
            .order_by(Exchange.ts_us).limit(5)
        ).all())
        if len(evidence) < 5 and cycle.failed_events:  # Entra events: negated ids (entra_load.evidence_ref)
            evidence += tuple(-event_id for event_id in session.scalars(
                select(EntraEvent.id).where(EntraEvent.cycle_id == cycle.id, EntraEvent.failed)
                .order_by(EntraEvent.activity_us).limit(5 - len(evidence))
            ))
    return CycleFacts(
        id=cycle.id, started_us=cycle.started_us, ended_us=cycle.ended_us,
        requests=cycle.requests + (cycle.events or 0),
        rejected_credentials=cycle.rejected_credentials, lookup_404s=cycle.lookup_404s, succeeded=succeeded,
        failed=failed, reference_failures=cycle.reference_failures, deletes=deletes, evidence=evidence,
    )


def _record(session: Session, job: Job, at_us: int, old: str, new: str, reason: str | None, detail: str,
            evidence: list[int], cycle_id: int | None) -> None:
    """Insert a transition unless it is there already; concurrent evaluations (a page view and
    the scheduler) may both try, so the database decides (INSERT ... ON CONFLICT DO NOTHING)."""
    dialect = session.get_bind().dialect.name
    insert = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}[dialect]
    session.flush()
    session.execute(
        insert(HealthTransition.__table__).values(
            job_id=job.id, at_us=at_us, old=old, new=new, reason=reason, detail=detail,
            evidence=json.dumps(evidence), cycle_id=cycle_id, created_at=utc_now(),
        ).on_conflict_do_nothing()
    )


def health_status(session: Session, job: Job, now: datetime, settings: Settings) -> HealthStatus:
    snapshot = refresh_health(session, job, now, settings)
    last = session.scalar(select(func.max(Cycle.ended_us)).where(Cycle.job_id == job.id))
    status = status_at(snapshot, now_us=to_us(now), last_traffic_us=last, timing=timing_for(job, settings),
                       thresholds=thresholds_for(job, settings))
    _record_clock_transitions(session, job, snapshot, status)
    return status


def _record_clock_transitions(session: Session, job: Job, snapshot: Snapshot, status: HealthStatus) -> None:
    """Stalls, resumptions and the 28-day disable come from the clock, not from a cycle."""
    last = session.scalars(select(HealthTransition).where(HealthTransition.job_id == job.id)
                           .order_by(HealthTransition.at_us.desc(), HealthTransition.id.desc()).limit(1)).first()
    last_state = last.new if last else State.UNKNOWN.value
    if status.state in (State.STALLED, State.DISABLED) and last_state != status.state.value and status.since:
        _record(session, job, to_us(status.since), last_state, status.state.value, "clock", status.explanation, [], None)
        session.commit()
    elif last is not None and last.new == State.STALLED.value and status.state is not State.STALLED and status.last_traffic:
        _record(session, job, to_us(status.last_traffic), last_state, status.state.value, "clock",
                "traffic resumed", [], None)
        session.commit()


def health_json(session: Session, job: Job, now: datetime, settings: Settings) -> dict[str, Any]:
    status = health_status(session, job, now, settings)
    current = current_cycle(session, job, now, settings)
    transitions = session.scalars(select(HealthTransition).where(HealthTransition.job_id == job.id)
                                  .order_by(HealthTransition.at_us.desc(), HealthTransition.id.desc()).limit(20)).all()
    evidence_ids = json.loads(transitions[0].evidence) if transitions else []
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
        "transitions": [transition_json(t) for t in transitions],
    }


def transition_json(t: HealthTransition) -> dict[str, Any]:
    return {"at": format_ts(t.at), "old": t.old, "new": t.new, "reason": None if t.reason == "clock" else t.reason,
            "detail": t.detail, "cycle_id": t.cycle_id, "evidence": json.loads(t.evidence)}


def _top_action(session: Session, job: Job) -> dict[str, Any] | None:
    sig = session.scalars(select(Signature).where(Signature.job_id == job.id)
                          .order_by(Signature.last_us.desc(), Signature.users.desc()).limit(1)).first()
    return signature_json(sig)["action"] if sig else None


# -- cycles and progress ----------------------------------------------------------------------------


def cycle_kind(session: Session, job: Job, cycle: Cycle) -> str:
    earlier = session.execute(
        select(func.count(), func.max(Cycle.users)).where(Cycle.job_id == job.id, Cycle.started_us < cycle.started_us)
    ).one()
    if not earlier[0]:
        return "initial"
    scope = job.scope_size or earlier[1] or 0
    if cycle.looked_up_users >= max(INITIAL_MIN_USERS, INITIAL_LOOKUP_SHARE * scope):
        return "initial"
    return "incremental"


def cycle_json(session: Session, job: Job, cycle: Cycle, now: datetime, settings: Settings, *, latest: bool) -> dict[str, Any]:
    counts = orjson.loads(cycle.counts or "{}") or empty_counts()
    totals = {o: sum(counts.get(b, {}).get(o, 0) for b in BUCKETS) for o in OUTCOMES}
    running = latest and to_us(now) - cycle.ended_us <= gap_us(settings)
    return {
        "id": cycle.id,
        "cycle_id": cycle.key,
        "kind": cycle_kind(session, job, cycle),
        "state": "running" if running else "completed",
        "started_at": format_ts(cycle.started_at),
        "ended_at": format_ts(cycle.ended_at),
        "duration_s": round((cycle.ended_us - cycle.started_us) / US, 3),
        "requests": cycle.requests,
        "failed_requests": cycle.failed_requests,
        "entra_events": cycle.events or 0,
        "failed_entra_events": cycle.failed_events or 0,
        "staged_deletes": cycle.staged_deletes or 0,
        "source": _cycle_source(cycle),
        "users": cycle.users,
        "counts": counts,
        "totals": totals,
        "connection_tests": cycle.connection_tests,
        "rejected_credentials": cycle.rejected_credentials,
        "lookup_404s": cycle.lookup_404s,
        "reference_failures": cycle.reference_failures,
    }


def _cycle_source(cycle: Cycle) -> str:
    """Which traffic a cycle was seen in: "scim" (request log), "entra" (provisioning logs) or "both"."""
    if cycle.events and cycle.requests:
        return "both"
    return "entra" if cycle.events else "scim"


def current_cycle(session: Session, job: Job, now: datetime, settings: Settings) -> dict[str, Any] | None:
    """The latest cycle with its progress bar (running or last completed) and steady state."""
    cycle = session.scalars(select(Cycle).where(Cycle.job_id == job.id, Cycle.started_us <= to_us(now))
                            .order_by(Cycle.started_us.desc()).limit(1)).first()
    if cycle is None:
        return None
    data = cycle_json(session, job, cycle, now, settings, latest=True)
    data["progress"] = progress(session, job, cycle, data, now)
    thresholds = thresholds_for(job, settings)
    warning = early_warning(
        processed=cycle.users, failed=data["totals"]["failure"], rejected_credentials=cycle.rejected_credentials,
        requests=cycle.requests + (cycle.events or 0), lookup_404s=cycle.lookup_404s, expected=data["progress"]["expected_users"],
        thresholds=thresholds,
    )
    data["running"] = data["state"] == "running"
    data["early_warning"] = asdict(warning) if data["running"] else None
    data["steady_state_since"] = steady_state_since(session, job, now, settings)
    return data


def progress(session: Session, job: Job, cycle: Cycle, data: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Users processed of expected. The expectation is fixed by earlier cycles and the processed
    count only grows, so the bar never moves backwards."""
    running = data["state"] == "running"
    earlier = session.scalars(select(Cycle).where(Cycle.job_id == job.id, Cycle.started_us < cycle.started_us)
                              .order_by(Cycle.started_us.desc()).limit(50)).all()
    if data["kind"] == "initial":
        expected = job.scope_size or (max((c.users for c in earlier), default=0) or None)
        basis = "configured scope size" if job.scope_size else ("users seen in earlier cycles" if expected else None)
    else:
        sizes = [c.users for c in earlier[:5] if c.users] or [cycle.users or 1]
        expected = max(1, int(statistics.median(sizes)))
        basis = "median of the last incremental cycles"
    processed = cycle.users
    if not running:
        percent = 100.0
    elif expected:
        percent = min(99.0, 100.0 * processed / expected)
    else:
        percent = None
    elapsed = max(cycle.ended_us - cycle.started_us, 0) / US
    eta = None
    if running and expected and processed and processed < expected and elapsed > 0:
        eta = format_ts(from_us(to_us(now) + int((expected - processed) / (processed / elapsed) * US)))
    return {
        "percent": None if percent is None else round(percent, 1),
        "processed_users": processed,
        "expected_users": expected,
        "expected_basis": basis,
        "elapsed_s": round(elapsed, 1),
        "eta": eta,
        "few_changes": data["kind"] == "incremental" and processed < 50,
        # seconds since the cycle's last exchange: a running cycle that has gone quiet is
        # probably done; it counts as completed once the quiet lasts the cycle gap
        "quiet_s": round(max(to_us(now) - cycle.ended_us, 0) / US, 1) if running else 0,
    }


def steady_state_since(session: Session, job: Job, now: datetime, settings: Settings) -> str | None:
    """When the first initial cycle completed (Entra's steadyStateFirstAchievedTime)."""
    first = session.scalars(select(Cycle).where(Cycle.job_id == job.id).order_by(Cycle.started_us).limit(1)).first()
    if first is None:
        return None
    later = session.scalar(select(func.count()).where(Cycle.job_id == job.id, Cycle.started_us > first.started_us))
    if later or to_us(now) - first.ended_us > gap_us(settings):
        return format_ts(first.ended_at)
    return None


def list_cycles(session: Session, job: Job, now: datetime, settings: Settings, *, limit: int = 50,
                before: int | None = None) -> list[dict[str, Any]]:
    query = select(Cycle).where(Cycle.job_id == job.id)
    if before is not None:
        query = query.where(Cycle.started_us < before)
    rows = session.scalars(query.order_by(Cycle.started_us.desc()).limit(limit)).all()
    latest = session.scalar(select(func.max(Cycle.started_us)).where(Cycle.job_id == job.id))
    return [cycle_json(session, job, c, now, settings, latest=c.started_us == latest) for c in rows]


def cycle_detail(session: Session, job: Job, cycle: Cycle, now: datetime, settings: Settings) -> dict[str, Any]:
    latest = session.scalar(select(func.max(Cycle.started_us)).where(Cycle.job_id == job.id))
    data = cycle_json(session, job, cycle, now, settings, latest=cycle.started_us == latest)
    previous = session.scalars(select(Cycle).where(Cycle.job_id == job.id, Cycle.started_us < cycle.started_us)
                               .order_by(Cycle.started_us.desc()).limit(1)).first()
    mine = _outcomes(session, cycle.id)
    before = _outcomes(session, previous.id) if previous else {}
    failed_now = {u for u, o in mine.items() if o == "failure"}
    failed_before = {u for u, o in before.items() if o == "failure"}
    users = {u.id: u for u in _users(session, failed_now | failed_before)}
    data["previous_cycle_id"] = previous.id if previous else None
    data["diff"] = {
        "new_failures": [user_brief(users[u]) for u in sorted(failed_now - failed_before) if u in users],
        "fixed": [user_brief(users[u]) for u in sorted(failed_before - failed_now) if u in mine and u in users],
        "still_failing": [user_brief(users[u]) for u in sorted(failed_now & failed_before) if u in users],
    }
    data["signatures"] = cycle_signatures(session, cycle)
    return data


def cycle_signatures(session: Session, cycle: Cycle, limit: int = 10) -> list[dict[str, Any]]:
    """The cycle's failures by signature, from its exchanges and its Entra events."""
    rows = session.execute(
        select(Exchange.sig_id, func.count(), func.count(func.distinct(Exchange.user_id)))
        .where(Exchange.cycle_id == cycle.id, Exchange.sig_id.is_not(None))
        .group_by(Exchange.sig_id).order_by(func.count().desc()).limit(limit)
    ).all()
    if cycle.failed_events:
        rows += session.execute(
            select(EntraEvent.sig_id, func.count(), func.count(func.distinct(EntraEvent.user_id)))
            .where(EntraEvent.cycle_id == cycle.id, EntraEvent.sig_id.is_not(None))
            .group_by(EntraEvent.sig_id).order_by(func.count().desc()).limit(limit)
        ).all()
        merged: dict[int, list[int]] = {}
        for sig_id, count, users in rows:  # a signature in both sources: the larger user count
            seen = merged.setdefault(sig_id, [0, 0])
            seen[0], seen[1] = seen[0] + count, max(seen[1], users)
        rows = sorted(((sig_id, c, u) for sig_id, (c, u) in merged.items()), key=lambda r: -r[1])[:limit]
    out = []
    for sig_id, exchanges, users in rows:
        sig = session.get(Signature, sig_id)
        if sig is not None:
            out.append({**signature_json(sig), "in_cycle": {"exchanges": exchanges, "users": users}})
    return out


def _outcomes(session: Session, cycle_id: int) -> dict[int, str]:
    return dict(session.execute(select(UserCycle.user_id, UserCycle.outcome).where(UserCycle.cycle_id == cycle_id)).all())


def _users(session: Session, ids: set[int]) -> list[ScimUser]:
    ordered = sorted(ids)
    found: list[ScimUser] = []
    for start in range(0, len(ordered), 500):
        found.extend(session.scalars(select(ScimUser).where(ScimUser.id.in_(ordered[start:start + 500]))).all())
    return found


# -- users ------------------------------------------------------------------------------------------


def user_brief(user: ScimUser) -> dict[str, Any]:
    return {
        "id": user.id,
        "key": user.key,
        "userName": user.user_name,
        "externalId": user.external_id,
        "scim_id": user.scim_id,
        "state": user.state,
        "provisioned": user.provisioned,
        "streak": user.streak,
        "failing_since": format_ts(from_us(user.failing_since_us)) if user.failing_since_us else None,
        "failing_since_cycle_id": user.failing_since_cycle_id,
        "last_seen": format_ts(from_us(user.last_seen_us)) if user.last_seen_us else None,
    }


def list_users(session: Session, job: Job, *, state: str | None = None, limit: int = 100,
               after: int | None = None, search: str | None = None) -> dict[str, Any]:
    query = select(ScimUser).where(ScimUser.job_id == job.id)
    if state:
        query = query.where(ScimUser.state == state)
    if search:
        from dashboard.ingest.resolve import users_matching

        query = query.where(ScimUser.id.in_(users_matching(job.id, search)))
    if after is not None:
        query = query.where(ScimUser.id > after)
    rows = session.scalars(query.order_by(ScimUser.id).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {"users": [user_brief(u) for u in rows], "next_after": rows[-1].id if more and rows else None}


def find_user(session: Session, job: Job, key: str) -> ScimUser | None:
    """By any userName they went by (case and Unicode variants too), externalId or SCIM id they
    had, or our numeric id. A name two people held finds the one who holds it now, else the
    latest to have held it."""
    from dashboard.analysis.identity import name_key
    from dashboard.ingest.resolve import users_named

    query = select(ScimUser).where(ScimUser.job_id == job.id, ScimUser.id.in_(users_named(job.id, key)))
    now_named = ScimUser.name_key == name_key(key)
    found = session.scalars(query.order_by(now_named.desc(), ScimUser.name_us.desc(), ScimUser.id).limit(1)).first()
    if found is None and key.isdigit():
        found = session.scalars(select(ScimUser).where(ScimUser.job_id == job.id, ScimUser.id == int(key))).first()
    return found


def user_timeline(session: Session, job: Job, user: ScimUser, *, limit: int = 500) -> dict[str, Any]:
    """Everything about one user in one place: each cycle's outcome and the exchanges, with the
    failing ones in full (redacted)."""
    cycles = session.execute(
        select(UserCycle, Cycle).join(Cycle, Cycle.id == UserCycle.cycle_id)
        .where(UserCycle.user_id == user.id).order_by(Cycle.started_us)
    ).all()
    exchanges = session.scalars(select(Exchange).where(Exchange.user_id == user.id)
                                .order_by(Exchange.ts_us.desc()).limit(limit)).all()
    by_cycle: dict[int | None, list[dict[str, Any]]] = {}
    for exchange in reversed(exchanges):
        by_cycle.setdefault(exchange.cycle_id, []).append(exchange_json(session, exchange, full=exchange.failed or exchange.status >= 400 or exchange.status == 0))
    return {
        "user": user_brief(user),
        "names": user_history(session, user),
        "cycles": [
            {
                "cycle": {"id": c.id, "cycle_id": c.key, "started_at": format_ts(c.started_at)},
                "operation": uc.operation,
                "outcome": uc.outcome,
                "attempts": Summary.from_dict(orjson.loads(uc.summary)).writes,
                "exchanges": by_cycle.get(c.id, []),
            }
            for uc, c in cycles
        ],
        "truncated": len(exchanges) >= limit,
    }


def user_history(session: Session, user: ScimUser) -> dict[str, list[dict[str, Any]]]:
    """The names the person went by and the SCIM ids they had, oldest first, each with its first
    and last sighting and the cycles of those sightings ("alice until cycle 5, alice.smith since")."""
    from dashboard.analysis.identity import visible
    from dashboard.models import ScimUserAlias

    aliases = session.scalars(select(ScimUserAlias).where(ScimUserAlias.user_id == user.id)
                              .order_by(ScimUserAlias.first_us, ScimUserAlias.id)).all()
    times = sorted({t for a in aliases for t in (a.first_us, a.last_us)})
    cycles: dict[int, int | None] = {}
    for t in times:
        cycles[t] = session.scalars(select(Cycle.id).where(
            Cycle.job_id == user.job_id, Cycle.started_us <= t, Cycle.ended_us >= t).limit(1)).first()
    out: dict[str, list[dict[str, Any]]] = {"userName": [], "scim_id": [], "externalId": []}
    kinds = {"n": "userName", "s": "scim_id", "e": "externalId"}
    for alias in aliases:
        out[kinds[alias.kind]].append({
            "value": alias.value, "shown": visible(alias.value), "first_seen": format_ts(from_us(alias.first_us)),
            "last_seen": format_ts(from_us(alias.last_us)),
            "first_cycle": cycles.get(alias.first_us), "last_cycle": cycles.get(alias.last_us),
            "current": (alias.kind == "n" and alias.key == user.name_key) or (alias.kind == "s" and alias.key == user.scim_id)
                       or alias.kind == "e",
        })
    return out


# -- exchanges and signatures -----------------------------------------------------------------------


def exchange_brief(exchange: Exchange) -> dict[str, Any]:
    details = exchange.details()
    return {
        "id": exchange.id,
        "ts": format_ts(exchange.ts),
        "method": exchange.method,
        "path": details.get("path"),
        "query": details.get("query"),
        "status": exchange.status,
        "operation": exchange.operation,
    }


def exchange_json(session: Session, exchange: Exchange, *, full: bool = True) -> dict[str, Any]:
    data = exchange_brief(exchange)
    data.update(failed=exchange.failed, duration_ms=exchange.duration_ms, request_id=exchange.request_id,
                scimType=exchange.scim_type, detail=exchange.error_detail, cycle=exchange.cycle_id,
                signature_id=exchange.sig_id)
    if full:
        details = exchange.details()
        data.update(request_headers=details.get("request_headers"), request_body=details.get("request_body"),
                    response_body=details.get("response_body"))
        if exchange.status >= 400 or exchange.status == 0:
            data["recommended_action"] = asdict(recommended_action(exchange.operation, exchange.status, exchange.scim_type))
    return data


def signature_json(sig: Signature) -> dict[str, Any]:
    action = recommended_action(sig.operation, sig.status, sig.scim_type)
    return {
        "id": sig.id,
        "operation": sig.operation,
        "status": sig.status,
        "scimType": sig.scim_type,
        "detail": sig.pattern,
        "users": sig.users,
        "exchanges": sig.exchanges,
        "first_seen": format_ts(from_us(sig.first_us)),
        "last_seen": format_ts(from_us(sig.last_us)),
        "sample_exchange_id": sig.sample_exchange_id,  # negative: an Entra event (entra_load.evidence_ref)
        "sample_path": _sample_path(sig.sample_exchange_id),
        "action": asdict(action),
    }


def _sample_path(ref: int | None) -> str | None:
    """The page of a signature's sample under /jobs/<job>/: an exchange, or an Entra event."""
    if ref is None:
        return None
    return f"entra-events/{-ref}" if ref < 0 else f"exchanges/{ref}"


def list_signatures(session: Session, job: Job, *, limit: int = 50) -> list[dict[str, Any]]:
    rows = session.scalars(select(Signature).where(Signature.job_id == job.id)
                           .order_by(Signature.users.desc(), Signature.last_us.desc()).limit(limit)).all()
    return [signature_json(s) for s in rows]


def failing_users(session: Session, job: Job, *, limit: int = 50) -> list[dict[str, Any]]:
    rows = session.scalars(select(ScimUser).where(ScimUser.job_id == job.id, ScimUser.state == "failing")
                           .order_by(ScimUser.streak.desc(), ScimUser.id).limit(limit)).all()
    return [user_brief(u) for u in rows]


def _iso(moment: datetime | None) -> str | None:
    return format_ts(moment) if moment else None


# -- the report: what support staff replay ("what did it look like at 03:00") -----------------------


def report(session: Session, job: Job, now: datetime, settings: Settings, *, cycles: int = 5,
           at: datetime | None = None) -> dict[str, Any]:
    """The job's latest cycles, health, failing users and signatures, as they stood at `at`.

    Shape documented in docs/api.md (stable: the scheduled report and the emails render it).
    Without `at` it is the live state at `now`; with `at` nothing is written and the cycle
    running at that moment is counted from its exchanges up to `at`.
    """
    if at is None:
        health = health_json(session, job, now, settings)
        listed = list_cycles(session, job, now, settings, limit=cycles)
        failing = failing_users(session, job)
        moment = now
    else:
        moment = at
        health = _replayed_health(session, job, at, settings)
        listed = [_replayed_cycle(session, job, c, at, settings) for c in session.scalars(
            select(Cycle).where(Cycle.job_id == job.id, Cycle.started_us <= to_us(at))
            .order_by(Cycle.started_us.desc()).limit(cycles))]
        failing = _replayed_failing(session, job, at)
    return {
        "schema": "provisioning-report/1",
        "job": {"name": job.name, "title": job.title, "source": job.source_system, "target": job.target_system},
        "generated_at": format_ts(now),
        "as_of": format_ts(moment),
        "health": health,
        "cycles": listed,
        "failing_users": failing,
        "signatures": list_signatures(session, job, limit=10),
    }


def _replayed_cycle(session: Session, job: Job, cycle: Cycle, at: datetime, settings: Settings) -> dict[str, Any]:
    at_us = to_us(at)
    latest = session.scalar(select(func.max(Cycle.started_us)).where(Cycle.job_id == job.id, Cycle.started_us <= at_us))
    data = cycle_json(session, job, cycle, at, settings, latest=cycle.started_us == latest)
    if cycle.ended_us <= at_us:
        return data
    folded: dict[int, Summary] = {}
    requests = failed = 0
    for exchange_id, user_id, ts_us, operation, status in session.execute(
        select(Exchange.id, Exchange.user_id, Exchange.ts_us, Exchange.operation, Exchange.status)
        .where(Exchange.cycle_id == cycle.id, Exchange.ts_us <= at_us)
    ):
        requests += 1
        failed += 1 if status == 0 or status >= 400 else 0
        if user_id is None or operation == "connection_test" or operation.startswith("group_"):
            continue
        one = Summary.of(Fact(exchange_id, ts_us, operation, status))
        folded[user_id] = folded[user_id].merge(one) if user_id in folded else one
    events = failed_events = 0
    for event_id, user_id, ts_us, operation, status, failed_event in session.execute(
        select(EntraEvent.id, EntraEvent.user_id, EntraEvent.activity_us, EntraEvent.operation, EntraEvent.status,
               EntraEvent.failed)
        .where(EntraEvent.cycle_id == cycle.id, EntraEvent.activity_us <= at_us)
    ):
        events += 1
        failed_events += 1 if failed_event else 0
        if user_id is None or operation == "staged_delete":
            continue
        one = Summary.of(Fact(-event_id, ts_us, operation, status))
        folded[user_id] = folded[user_id].merge(one) if user_id in folded else one
    counts = empty_counts()
    for summary in folded.values():
        counts[bucket_of(summary.operation)][summary.outcome.value] += 1
    data.update(requests=requests, failed_requests=failed, entra_events=events, failed_entra_events=failed_events,
                users=len(folded), counts=counts,
                totals={o: sum(counts[b][o] for b in BUCKETS) for o in OUTCOMES}, ended_at=format_ts(at),
                state="running" if data["state"] == "running" or cycle.ended_us > at_us else data["state"])
    return data


def _replayed_health(session: Session, job: Job, at: datetime, settings: Settings) -> dict[str, Any]:
    at_us = to_us(at)
    done = session.scalars(select(Cycle).where(Cycle.job_id == job.id, Cycle.ended_us < at_us - gap_us(settings))
                           .order_by(Cycle.ended_us)).all()
    snapshot, transitions = advance(Snapshot(), [facts_of(session, c) for c in done], thresholds_for(job, settings))
    last = max((value for value in (
        session.scalar(select(func.max(Exchange.ts_us)).where(Exchange.job_id == job.id, Exchange.ts_us <= at_us)),
        session.scalar(select(func.max(EntraEvent.activity_us)).where(EntraEvent.job_id == job.id,
                                                                     EntraEvent.activity_us <= at_us)),
    ) if value is not None), default=None)
    status = status_at(snapshot, now_us=at_us, last_traffic_us=last, timing=timing_for(job, settings),
                       thresholds=thresholds_for(job, settings))
    return {
        "job": job.name, "state": status.state.value, "reason": status.reason, "detail": status.detail,
        "explanation": status.explanation, "since": _iso(status.since), "next_expected_attempt": _iso(status.next_attempt),
        "disabled_at": _iso(status.disabled_at) if status.state in (State.QUARANTINED, State.DISABLED) else None,
        "quarantine_series_began": _iso(status.quarantine_series_began), "last_traffic": _iso(status.last_traffic),
        "recommended_action": None, "early_warning": None, "evidence": [],
        "transitions": [{"at": format_ts(from_us(t.at_us)), "old": t.old.value, "new": t.new.value, "reason": t.reason,
                         "detail": t.detail, "cycle_id": t.cycle_id, "evidence": list(t.evidence)} for t in reversed(transitions)],
    }


def _replayed_failing(session: Session, job: Job, at: datetime, limit: int = 50) -> list[dict[str, Any]]:
    at_us = to_us(at)
    latest = (select(UserCycle.user_id, func.max(Cycle.started_us).label("started"))
              .join(Cycle, Cycle.id == UserCycle.cycle_id)
              .where(Cycle.job_id == job.id, Cycle.started_us <= at_us).group_by(UserCycle.user_id).subquery())
    rows = session.execute(
        select(UserCycle.user_id).join(Cycle, Cycle.id == UserCycle.cycle_id)
        .join(latest, (latest.c.user_id == UserCycle.user_id) & (latest.c.started == Cycle.started_us))
        .where(UserCycle.outcome == "failure").limit(limit)
    ).scalars().all()
    return [user_brief(u) for u in _users(session, set(rows))]
