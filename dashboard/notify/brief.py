"""The first screen of every email: what is wrong, who is affected, what to do first.

Read-only. Entra's imported job status wins when it says the job is quarantined (and is not
stale); else the state is the one inferred from the traffic. The causes are the signatures met
since the episode began, grouped by analysis.causes; the evidence is the requests of the main
cause, never a sample of whatever failed last.
"""
from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dashboard.analysis.agreement import KIND_WORDS, reason_kind
from dashboard.analysis.causes import (
    example_message,
    group_causes,
    plain_reason,
    state_words,
)
from dashboard.analysis.identity import people_labels
from dashboard.analysis.signatures import quarantine_action
from dashboard.models import EntraEvent, Exchange, Job, ScimUser, Signature
from dashboard.notify.emails import link
from dashboard.queries.entra import status_view
from dashboard.queries.exchanges import exchange_brief
from dashboard.queries.signatures import list_signatures, signature_json
from dashboard.settings import Settings
from dashboard.times import format_ts, from_us, to_us

NAMES = 10  # people named on the first screen; a link leads to the rest
EVIDENCE = 5
LOOK_BACK = timedelta(hours=2)  # the cycle that led to a quarantine ran before it began


def first_screen(session: Session, job: Job, now: datetime, settings: Settings, health: dict[str, Any], *,
                 since: str | None, cycle_ids: list[int] | None = None, inferred: str | None = None,
                 resolved: str | None = None) -> dict[str, Any]:
    """The three answers for an email about `job`: `since` is when the episode began (RFC 3339),
    `cycle_ids` narrows the causes to those cycles (a cycle report), `inferred` names what the
    traffic shows ("Quarantine likely in the running cycle") unless Entra confirms a quarantine;
    `resolved` (a headline such as "Quarantine lifted"): the episode ended, its cause was the main one."""
    base = settings.app.base_url
    state = health["state"]
    entra = status_view(session, job, health, now)
    status = entra["status"]
    stale = bool(entra["comparison"] and entra["comparison"].get("stale"))
    quarantine = status["quarantine"] if status and status["code"] == "Quarantine" and not stale else None
    confirmed = quarantine is not None
    if confirmed and state not in ("quarantined", "disabled"):
        state = "quarantined"  # Entra's fresh status wins over an inference
    reason = (quarantine or {}).get("reason") if confirmed else health.get("reason")
    kind = reason_kind(reason)

    causes, users_by_sig = _causes(session, job, now, since, cycle_ids)
    main = causes[0] if causes else None
    action = quarantine_action(kind) if state in ("quarantined", "disabled") else None
    todo = asdict(action) if action else (main or {}).get("action") or health.get("recommended_action")
    if kind == "deletes" and state in ("quarantined", "disabled"):
        # The cause is the deletes themselves, not a failure: the people are those being deleted.
        deletes = session.scalars(select(Exchange).where(
            Exchange.job_id == job.id, Exchange.operation == "delete",
            Exchange.ts_us >= to_us((_parse(since) or now) - LOOK_BACK)).order_by(Exchange.ts_us.desc()).limit(5000)).all()
        affected = sorted({x.user_id for x in deletes if x.user_id is not None})
        main = {"line": f"Deletes above the accidental-deletion threshold, {len(affected)} users",
                "words": "too many deletes", "signatures": []}
        evidence = [exchange_brief(x) | {"message": None, "link": link(base, "jobs", job.name, "exchanges", x.id)}
                    for x in deletes[:EVIDENCE]]
    else:
        affected = sorted(set().union(*(users_by_sig.get(s, set()) for s in main["signatures"]))) if main else []
        evidence = _evidence(session, main, base, job) if main else []
    who = _who(session, job, affected, base)
    headline = state_words(state=state, entra_confirmed=confirmed)
    if inferred is not None and not confirmed:
        headline = f"{inferred} (inferred from the traffic)"
    if resolved is not None:  # nothing left to do about it; who fails now, if anyone
        headline, todo, evidence = resolved, None, []
        who = _who(session, job, [], base)
        if main is not None:
            main = main | {"line": "was: " + main["line"]}
    return {
        "state": state,
        "what": {
            "headline": headline,
            "confirmed": confirmed,
            "source": (f"confirmed by Entra's job status (observed {status['observed_at'][:10]} {status['observed_at'][11:16]} UTC)" if confirmed
                       else "inferred from the traffic"),
            "reason": reason,
            "reason_words": KIND_WORDS.get(kind or "", None) if reason else None,
            "cause": main["line"] if main else None,
            "since": since if resolved is None else None,  # a resolved email says from when until when
            "next_attempt": None if resolved is not None else (
                (quarantine or {}).get("next_attempt_at") if confirmed else health.get("next_expected_attempt")),
        },
        "who": who,
        "todo": todo,
        "causes": causes,
        "evidence": evidence,
        "subject_cause": (main["words"] if main else (KIND_WORDS.get(kind or "") if reason else None)),
        "subject_users": who["count"] or None,
    }


def _causes(session: Session, job: Job, now: datetime, since: str | None, cycle_ids: list[int] | None
            ) -> tuple[list[dict[str, Any]], dict[int, set[int]]]:
    start_us = to_us((_parse(since) or now) - LOOK_BACK)
    rows = []
    for table, at in ((Exchange, Exchange.ts_us), (EntraEvent, EntraEvent.activity_us)):
        query = select(table.sig_id, table.user_id).where(table.job_id == job.id, table.sig_id.is_not(None))
        query = query.where(table.cycle_id.in_(cycle_ids)) if cycle_ids else query.where(at >= start_us)
        rows += session.execute(query.limit(20000)).all()
    users_by_sig: dict[int, set[int]] = {}
    for sig_id, user_id in rows:
        seen = users_by_sig.setdefault(sig_id, set())
        if user_id is not None:
            seen.add(user_id)
    if users_by_sig:
        sigs = [signature_json(s) for s in session.scalars(select(Signature).where(Signature.id.in_(list(users_by_sig))))]
    elif cycle_ids:
        sigs = []  # the cycles failed nobody
    else:
        sigs = list_signatures(session, job, limit=10)  # no failure in the window: the job's
    for sig in sigs:
        sig["example"] = _example(session, sig["id"])
    return group_causes(sigs, users_by_sig or None), users_by_sig


def _example(session: Session, sig_id: int) -> str | None:
    """A real message of the signature: the latest request's own (redacted) error detail."""
    details = session.scalars(select(Exchange.error_detail).where(Exchange.sig_id == sig_id,
                                                                  Exchange.error_detail.is_not(None))
                              .order_by(Exchange.ts_us.desc()).limit(3)).all()
    reasons = session.scalars(select(EntraEvent.reason).where(EntraEvent.sig_id == sig_id, EntraEvent.reason.is_not(None))
                              .order_by(EntraEvent.activity_us.desc()).limit(3)).all()
    return example_message([*details, *reasons])


def _who(session: Session, job: Job, user_ids: list[int], base: str) -> dict[str, Any]:
    link_all = link(base, "jobs", job.name, "users") + "?state=failing"
    if user_ids:
        count = len(user_ids)
        rows = session.scalars(select(ScimUser).where(ScimUser.id.in_(user_ids[:200])).order_by(ScimUser.id)).all()
    else:
        count = session.scalar(select(func.count()).select_from(ScimUser).where(
            ScimUser.job_id == job.id, ScimUser.state == "failing")) or 0
        rows = session.scalars(select(ScimUser).where(ScimUser.job_id == job.id, ScimUser.state == "failing")
                               .order_by(ScimUser.id).limit(NAMES)).all()
    names = people_labels([(u.user_name, u.external_id, u.scim_id, u.id) for u in rows[:NAMES]])
    return {"count": count, "names": names, "more": max(count - len(names), 0), "link": link_all}


def _evidence(session: Session, main: dict[str, Any], base: str, job: Job) -> list[dict[str, Any]]:
    rows = session.scalars(select(Exchange).where(Exchange.sig_id.in_(main["signatures"]))
                           .order_by(Exchange.ts_us.desc()).limit(EVIDENCE)).all()
    out = [exchange_brief(x) | {"message": example_message([x.error_detail]),
                                "link": link(base, "jobs", job.name, "exchanges", x.id)} for x in rows]
    if not out:  # seen only in Entra's provisioning logs
        events = session.scalars(select(EntraEvent).where(EntraEvent.sig_id.in_(main["signatures"]))
                                 .order_by(EntraEvent.activity_us.desc()).limit(EVIDENCE)).all()
        out = [{"id": -e.id, "ts": format_ts(from_us(e.activity_us)), "method": "Entra", "path": e.action,
                "query": None, "status": e.status, "operation": e.operation, "message": example_message([e.reason]),
                "link": link(base, "jobs", job.name, "entra-events", e.id)} for e in events]
    return out


def user_reasons(session: Session, cycle_id: int | None, user_ids: list[int]) -> dict[int, str]:
    """Each user's failure in a cycle in plain words (its latest failed request)."""
    if cycle_id is None or not user_ids:
        return {}
    rows = session.execute(select(Exchange.user_id, Exchange.operation, Exchange.status, Exchange.scim_type)
                           .where(Exchange.cycle_id == cycle_id, Exchange.user_id.in_(user_ids), Exchange.failed.is_(True))
                           .order_by(Exchange.ts_us)).all()
    return {user_id: plain_reason(op, status, scim_type) for user_id, op, status, scim_type in rows}


def _parse(iso: str | None) -> datetime | None:
    if not iso:
        return None
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def iso(moment: datetime | None) -> str | None:
    return format_ts(moment) if moment else None
