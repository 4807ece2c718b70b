"""Failure and health notifications: health transitions and completed cycles become episodes,
and episodes become emails (one when a problem begins, reminders, one when it is resolved).

Sources: the job's HealthTransition rows (each claimed once with a conditional UPDATE on
`processed_at`), the live health (a safety net for what transitions cannot show), the running
cycle's early warning, and the error signatures of each newly completed cycle. Everything a
job's evaluation changes (claims, episodes, queued emails, the cycle watermark) is committed in
one transaction: a crash redoes the evaluation, it never loses or doubles an email.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import make_msgid
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dashboard.analysis.causes import list_id, plain_reason, subject_line
from dashboard.models import Cycle, Episode, HealthTransition, Job, NotifyState
from dashboard.notify.brief import first_screen, user_reasons
from dashboard.notify.emails import link, render_email
from dashboard.notify.mailer import domain_of
from dashboard.notify.outbox import enqueue
from dashboard.notify.recipients import Recipient, recipients_for
from dashboard.notify.rules import (
    QUARANTINE_STATES,
    EpisodeView,
    HealthEvent,
    Notice,
    capped,
    episode_kind_of,
    health_event,
    is_worth_telling,
    masks_other_failures,
    opens_episode,
    plan_signatures,
    should_notify,
)
from dashboard.queries.cycles import cycle_detail, cycle_signatures
from dashboard.queries.health import health_json
from dashboard.queries.signatures import list_signatures
from dashboard.settings import Settings, gap_us
from dashboard.times import aware, format_ts, from_us, to_us
from dashboard.tracking.health import evaluate

log = logging.getLogger(__name__)
CATCH_UP_CYCLES = 50  # at most this many completed cycles judged per evaluation (after downtime)


@dataclass
class Run:
    """One evaluation of one job (or one welcome of a new subscriber: `notify.welcome`)."""

    session: Session
    job: Job
    now: datetime
    settings: Settings
    health: dict[str, Any]
    current: dict[str, Any] | None
    episodes: dict[int, Episode] = field(default_factory=dict)  # open at the start, or touched
    before: dict[int, EpisodeView | None] = field(default_factory=dict)  # None: created in this run
    changed: set[int] = field(default_factory=set)
    quiet: set[int] = field(default_factory=set)  # resolved without an email of their own
    events: dict[int, list[str]] = field(default_factory=dict)
    last_cycle: Cycle | None = None

    def open_of(self, kind: str) -> list[Episode]:
        return [e for e in self.episodes.values() if e.kind == kind and e.resolved_at is None]

    def add(self, episode: Episode) -> Episode:
        self.session.add(episode)
        self.session.flush()
        self.episodes[episode.id] = episode
        self.before[episode.id] = None
        return episode


def evaluate_health(session: Session, now: datetime, settings: Settings) -> int:
    """Evaluate every job; returns the number of emails queued. One job's error does not stop the others."""
    queued = 0
    for job_id in session.scalars(select(Job.id).order_by(Job.id)).all():
        job = session.get(Job, job_id)
        try:
            queued += evaluate_job(session, job, now, settings)  # type: ignore[arg-type]
        except Exception:  # a boundary: log, undo this job's half-done evaluation, go on
            session.rollback()
            log.exception("health evaluation of job %s failed", job_id)
    return queued


def evaluate_job(session: Session, job: Job, now: datetime, settings: Settings) -> int:
    status = evaluate(session, job, now, settings)  # judges, records transitions (commits)
    latest = session.execute(select(Cycle.id, Cycle.ended_us).where(Cycle.job_id == job.id)
                             .order_by(Cycle.started_us.desc()).limit(1)).first()
    running = latest is not None and to_us(now) - latest.ended_us <= gap_us(settings)
    episodes = list(session.scalars(select(Episode).where(Episode.job_id == job.id, Episode.resolved_at.is_(None))))
    if not _anything_to_do(session, job, status.state.value, episodes, latest, running, now, settings):
        session.commit()
        return 0  # the common minute: nothing happened, no email due (and nothing written)
    health = health_json(session, job, now, settings)  # the emails' health panel (nothing pending yet)
    current = {"id": latest.id, "running": running, "early_warning": health.get("early_warning")} if latest else None
    run = Run(session, job, now, settings, health, current)
    for episode in episodes:
        run.episodes[episode.id] = episode
        run.before[episode.id] = view_of(episode)
    for transition in _unprocessed(session, job):
        if _claim(session, transition.id, now):
            _apply_transition(run, transition)
    _reconcile(run)
    _early_warning(run)
    _signatures(run)
    queued = _notify(run)
    session.commit()
    return queued


def _anything_to_do(session: Session, job: Job, state: str, episodes: list[Episode], latest: Any, running: bool,
                    now: datetime, settings: Settings) -> bool:
    """A cheap look before the full evaluation: a new transition, a state the episodes do not
    reflect, a running or newly completed cycle, or an episode whose email is due."""
    if session.scalar(select(HealthTransition.id).where(HealthTransition.job_id == job.id,
                                                        HealthTransition.processed_at.is_(None)).limit(1)):
        return True
    kinds = {e.kind for e in episodes}
    if (state in QUARANTINE_STATES) != ("quarantine" in kinds) or (state == "stalled") != ("stalled" in kinds):
        return True
    if running or "early_warning" in kinds:
        return True
    checked = session.scalar(select(NotifyState.checked_until_us).where(NotifyState.job_id == job.id))
    if latest is not None and (checked is None or latest.ended_us > checked):
        return True
    due = now - timedelta(hours=settings.notifications.reminder_hours)
    # An untold signature can only become worth telling with a new cycle (checked above).
    return any(aware(e.notified_at) <= due if e.notified_at is not None else e.kind != "signature"  # type: ignore[operator]
               for e in episodes)


def view_of(episode: Episode) -> EpisodeView:
    return EpisodeView(aware(episode.began_at), aware(episode.resolved_at), aware(episode.notified_at))  # type: ignore[arg-type]


# -- health transitions --------------------------------------------------------------------------


def _unprocessed(session: Session, job: Job) -> list[HealthTransition]:
    return list(session.scalars(select(HealthTransition).where(
        HealthTransition.job_id == job.id, HealthTransition.processed_at.is_(None))
        .order_by(HealthTransition.at_us, HealthTransition.id)))


def _claim(session: Session, transition_id: int, now: datetime) -> bool:
    # Only one evaluator wins a transition; the claim commits with the emails it leads to.
    return session.execute(update(HealthTransition).where(
        HealthTransition.id == transition_id, HealthTransition.processed_at.is_(None)).values(processed_at=now)
    ).rowcount == 1


def _apply_transition(run: Run, t: HealthTransition) -> None:
    event = health_event(t.old, t.new, None if t.reason == "clock" else t.reason)
    if event is None:
        return
    kind = episode_kind_of(event)
    at = from_us(t.at_us)
    current = next(iter(run.open_of(kind)), None)
    facts = {"reason": None if t.reason == "clock" else t.reason, "detail": t.detail, "cycle_id": t.cycle_id,
             "evidence": json.loads(t.evidence or "[]")}
    if not opens_episode(event):
        if current is not None and aware(current.began_at) <= at:  # type: ignore[operator]
            current.resolved_at = at
            run.events.setdefault(current.id, []).append(event.value)
        return
    if current is None:
        if _episode(run, kind, "", at) is not None:
            return  # a transition recorded again after re-judging: told already
        current = run.add(Episode(job_id=run.job.id, kind=kind, key="", title=_health_title(event, facts),
                                  began_at=at, opened_at=run.now, detail=json.dumps(facts)))
    elif aware(current.began_at) == at:
        return
    elif json.loads(current.detail or "{}").get("reason") != facts["reason"] or event is HealthEvent.DISABLED:
        current.title, current.detail = _health_title(event, facts), json.dumps(facts)
        run.changed.add(current.id)
    run.events.setdefault(current.id, []).append(event.value)


def _reconcile(run: Run) -> None:
    """The live state is the truth: open or resolve what the transitions did not show."""
    state, since = run.health["state"], run.health.get("since")
    began = _parse(since) or run.now
    for kind, active in (("quarantine", state in QUARANTINE_STATES), ("stalled", state == "stalled")):
        current = next(iter(run.open_of(kind)), None)
        if active and current is None:
            facts = {"reason": run.health.get("reason"), "detail": run.health.get("detail") or "", "cycle_id": None,
                     "evidence": []}
            event = HealthEvent.STALLED if kind == "stalled" else (
                HealthEvent.DISABLED if state == "disabled" else HealthEvent.QUARANTINE_ENTERED)
            existing = _episode(run, kind, "", began)
            if existing is not None:  # resolved earlier by mistake (a re-judged history): open again
                existing.resolved_at = None
                run.episodes[existing.id] = existing
                run.before.setdefault(existing.id, view_of(existing))
            else:
                run.add(Episode(job_id=run.job.id, kind=kind, key="", title=_health_title(event, facts),
                                began_at=began, opened_at=run.now, detail=json.dumps(facts)))
        elif not active and current is not None:
            current.resolved_at = run.now


def _episode(run: Run, kind: str, key: str, began: datetime | None) -> Episode | None:
    query = select(Episode).where(Episode.job_id == run.job.id, Episode.kind == kind, Episode.key == key)
    if began is not None:
        query = query.where(Episode.began_at == began)
    return run.session.scalars(query.limit(1)).first()


# -- early warning ---------------------------------------------------------------------------------


CREDENTIALS_EPISODE = "credentials"  # the key of the token guard's early-warning episode
CREDENTIALS_HEADLINE = "Entra will quarantine this job (EncounteredQuarantineException)"


def _early_warning(run: Run) -> None:
    """A running cycle heading for quarantine: one episode (one email) per cycle; the token guard's
    (credentials rejected on most requests) is one episode for as long as cycles keep being
    rejected, so that it is told once, not once a cycle; a quarantine takes over from either."""
    current = run.current
    running = current is not None and current.get("running")
    warning = current.get("early_warning") if running else None  # type: ignore[union-attr]
    if run.health["state"] in QUARANTINE_STATES:
        warning = None  # quarantined already (by Entra's word or ours): the quarantine email says it, once
    credentials = bool(warning and warning.get("likely") and warning.get("reason") == "EncounteredQuarantineException")
    for episode in run.open_of("early_warning"):
        if episode.key == CREDENTIALS_EPISODE:
            # between cycles the episode stays open; it ends when a cycle runs without the rejection
            ended = run.health["state"] in QUARANTINE_STATES or (running and not credentials)
        else:
            ended = not running or episode.key != str(current["id"])  # type: ignore[index]
        if ended:
            episode.resolved_at = run.now
            if run.health["state"] in QUARANTINE_STATES:
                run.quiet.add(episode.id)  # the quarantine email tells the rest
    if not (warning and warning.get("likely")):
        return
    cycle = run.session.get(Cycle, current["id"])  # type: ignore[index]
    began = cycle.started_at if cycle is not None else run.now  # the problem began with the running cycle
    if credentials:
        if any(e.key == CREDENTIALS_EPISODE for e in run.open_of("early_warning")) or \
                _episode(run, "early_warning", CREDENTIALS_EPISODE, began) is not None:
            return  # told once for the whole episode
        key = CREDENTIALS_EPISODE
        for episode in run.open_of("early_warning"):  # this cycle's "likely" becomes the token guard's
            episode.resolved_at = run.now
            run.quiet.add(episode.id)
    else:
        key = str(current["id"])  # type: ignore[index]
        if _episode(run, "early_warning", key, None) is not None:
            return
    facts = {"warning": warning, "cycle_id": current["id"]}  # type: ignore[index]
    run.add(Episode(job_id=run.job.id, kind="early_warning", key=key,
                    title=warning["message"][:300], began_at=began, opened_at=run.now, detail=json.dumps(facts)))


# -- error signatures of completed cycles ----------------------------------------------------------


def _signatures(run: Run) -> None:
    session, job = run.session, run.job
    state = session.get(NotifyState, job.id) or NotifyState(job_id=job.id)
    session.add(state)
    done = select(Cycle).where(Cycle.job_id == job.id,
                               Cycle.ended_us < to_us(run.now) - gap_us(run.settings))
    if state.checked_until_us is None:  # first evaluation: the latest completed cycle is the baseline
        cycles = list(session.scalars(done.order_by(Cycle.ended_us.desc()).limit(1)))
    else:
        cycles = list(reversed(session.scalars(done.where(Cycle.ended_us > state.checked_until_us)
                                               .order_by(Cycle.ended_us.desc()).limit(CATCH_UP_CYCLES)).all()))
    for cycle in cycles:
        _judge_cycle(run, cycle)
        state.checked_until_us = cycle.ended_us
        run.last_cycle = cycle


def _judge_cycle(run: Run, cycle: Cycle) -> None:
    failing = {str(s["id"]): s for s in cycle_signatures(run.session, cycle, limit=200)}
    open_by_key = {e.key: e for e in run.open_of("signature")}
    masked = masks_other_failures(rejected_credentials=cycle.rejected_credentials, lookup_404s=cycle.lookup_404s)
    opened, resolved = plan_signatures(set(open_by_key), set(failing), masked=masked, processed_users=cycle.users)
    for key in sorted(opened):
        sig = failing[key]
        run.add(Episode(job_id=run.job.id, kind="signature", key=key, title=_signature_title(sig)[:300],
                        began_at=cycle.started_at, opened_at=run.now,
                        detail=json.dumps({"signature": sig, "cycle_id": cycle.id, "cycles": 1})))
    for key in resolved:
        open_by_key[key].resolved_at = cycle.ended_at
    for key in set(open_by_key) & set(failing):
        episode = open_by_key[key]
        facts = json.loads(episode.detail or "{}")
        facts.update(signature=failing[key], cycle_id=cycle.id, cycles=facts.get("cycles", 1) + 1)
        episode.detail = json.dumps(facts)


# -- emails ------------------------------------------------------------------------------------------


def _notify(run: Run) -> int:
    reminder = timedelta(hours=run.settings.notifications.reminder_hours)
    health_notices: list[tuple[Episode, Notice]] = []
    signature_notices: list[tuple[Episode, Notice]] = []
    for episode_id, episode in run.episodes.items():
        notice = should_notify(run.before.get(episode_id), view_of(episode), now=run.now, reminder=reminder,
                               changed=episode_id in run.changed)
        if notice is None or episode_id in run.quiet:
            continue
        if notice is Notice.OPENED and episode.kind == "signature" and not _worth_telling(run, episode):
            continue  # stays unannounced: it ends quietly if it clears
        episode.notified_at = run.now
        episode.reminders += 1 if notice is Notice.REMINDER else 0
        (signature_notices if episode.kind == "signature" else health_notices).append((episode, notice))
    queued = sum(_mail_health(run, episode, notice) for episode, notice in health_notices)
    if signature_notices:
        queued += _mail_failures(run, signature_notices)
    return queued


def _worth_telling(run: Run, episode: Episode) -> bool:
    facts = json.loads(episode.detail or "{}")
    sig = facts.get("signature") or {}
    return is_worth_telling(
        status=int(sig.get("status", 400)), cycles=int(facts.get("cycles", 1)),
        transient_cycles=run.settings.notifications.transient_cycles,
        covered_by_quarantine=bool(sig.get("action", {}).get("quarantine")) and run.health["state"] in QUARANTINE_STATES,
    )


def _mail_health(run: Run, episode: Episode, notice: Notice) -> int:
    ctx = health_context(run, episode, _event_name(run, episode, notice), notice)
    key = f"health:{episode.id}:{notice.value}:{episode.reminders}"
    return _enqueue_all(run, "quarantine", "health-event", ctx, key, [episode])


def health_context(run: Run, episode: Episode, event: str, notice: Notice) -> dict[str, Any]:
    """What the health-event email about `episode` says (its first screen, subject, evidence)."""
    data = episode_json(episode)
    resolved = {"quarantine_lifted": "Quarantine lifted", "resumed": "Provisioning resumed",
                "early_warning_cleared": "Early warning cleared"}.get(event)
    inferred = {"early_warning": "Quarantine likely in the running cycle", "stalled": "Provisioning stalled"}.get(
        "stalled" if episode.kind == "stalled" and resolved is None else event)
    if inferred and episode.kind == "early_warning" and episode.key == CREDENTIALS_EPISODE:
        inferred = CREDENTIALS_HEADLINE
    brief = first_screen(run.session, run.job, run.now, run.settings, run.health, since=data["began_at"],
                         inferred=inferred, resolved=resolved)
    ctx = base_context(run.session, run.job, run.settings, run.health) | {
        "event": event, "notice": notice.value,
        "episode": data,
        "warning": json.loads(episode.detail or "{}").get("warning"),
        "brief": brief,
        "subject": _health_subject(run, event, brief, episode),
    }
    return ctx


def _health_subject(run: Run, event: str, brief: dict[str, Any], episode: Episode) -> str:
    headline = _health_headline(event, brief, episode)
    if event == "stalled" or (event == "reminder" and episode.kind == "stalled"):
        last = _parse(run.health.get("last_traffic"))
        return subject_line(run.job.title, headline, f"no traffic since {last:%Y-%m-%d %H:%M} UTC" if last else None)
    if event in ("quarantine_lifted", "resumed", "early_warning_cleared"):
        return subject_line(run.job.title, headline)
    return subject_line(run.job.title, headline, brief["subject_cause"], brief["subject_users"])


def _health_headline(event: str, brief: dict[str, Any], episode: Episode) -> str:
    """The state for the subject: Entra's word when it confirms the quarantine, else ours."""
    headline = brief["what"]["headline"]
    confirmed = brief["what"]["confirmed"]
    if event == "quarantine_lifted":
        return "Quarantine lifted"
    if event == "resumed":
        return "Provisioning resumed"
    if event == "early_warning_cleared":
        return "Early warning cleared"
    if event == "early_warning":
        if confirmed:
            return headline
        return CREDENTIALS_HEADLINE if episode.key == CREDENTIALS_EPISODE else "Quarantine likely in the running cycle"
    if event == "stalled":
        return "Provisioning stalled"
    if event == "deletion_threshold" and not confirmed:
        return "Deletion threshold crossed"
    if event == "reason_changed":
        return headline + ", reason changed"
    if event == "disabled":
        return "Disabled by Entra after four weeks in quarantine"
    if event == "reminder":
        still = "Still stalled" if episode.kind == "stalled" else "Still " + headline[0].lower() + headline[1:]
        return still
    return headline


def _mail_failures(run: Run, notices: list[tuple[Episode, Notice]]) -> int:
    ctx = failures_context(run, notices)
    key = f"failures:{run.job.id}:{to_us(run.now)}"
    return _enqueue_all(run, "failures", "failures", ctx, key, [e for e, _n in notices])


def failures_context(run: Run, notices: list[tuple[Episode, Notice]]) -> dict[str, Any]:
    """What the failures email about these signature episodes says."""
    cycle = run.last_cycle or _latest_completed(run)
    detail = cycle_detail(run.session, run.job, cycle, run.now, run.settings) if cycle else None
    groups: dict[str, list[dict[str, Any]]] = {n.value: [] for n in Notice}
    for episode, notice in notices:
        groups[notice.value].append(episode_json(episode))
    began = min(aware(e.began_at) for e, _n in notices)  # (a row read back from SQLite is naive)
    only_resolved = not groups["opened"] and not groups["reminder"]
    brief = first_screen(run.session, run.job, run.now, run.settings, run.health, since=_iso(began),
                         cycle_ids=[cycle.id] if cycle else None, resolved="Failures resolved" if only_resolved else None)
    if groups["opened"]:
        headline = "New failures"
    elif groups["reminder"]:
        headline = "Still failing"
    else:
        headline = "Failures resolved"
    if run.health["state"] in QUARANTINE_STATES or brief["what"]["confirmed"]:
        headline = brief["what"]["headline"] + ", " + headline.lower()
    ctx = base_context(run.session, run.job, run.settings, run.health) | {
        "cycle": trim_cycle(detail, run.job.name, run.settings, session=run.session) if detail else None,
        "opened": groups["opened"], "reminders": groups["reminder"], "resolved": groups["resolved"],
        "brief": brief,
        "subject": subject_line(run.job.title, headline, brief["subject_cause"] if groups["opened"] or groups["reminder"]
                                else _resolved_words(groups["resolved"]), brief["subject_users"]
                                if groups["opened"] or groups["reminder"] else None),
    }
    return ctx


def _resolved_words(resolved: list[dict[str, Any]]) -> str | None:
    if not resolved:
        return None
    sig = resolved[0]["detail"].get("signature") or {}
    from_sig = sig.get("action", {}).get("title") if sig else None
    more = f" (+{len(resolved) - 1} more)" if len(resolved) > 1 else ""
    return (from_sig or resolved[0]["title"]) + more


def _enqueue_all(run: Run, kind: str, template: str, ctx: dict[str, Any], key: str,
                 episodes: list[Episode]) -> int:
    recipients: list[Recipient] = recipients_for(run.session, run.job, kind, run.settings)
    message_id, headers = thread_headers(run.job, run.settings, episodes)
    rendered: dict[str, Any] = {}
    queued = 0
    for recipient in recipients:
        if recipient.role not in rendered:
            rendered[recipient.role] = render_email(template, ctx | {"role": recipient.role})
        row = enqueue(run.session, rendered[recipient.role], to=recipient.address, kind=kind, now=run.now,
                      job_id=run.job.id, dedupe_key=f"{key}:{recipient.address.lower()}"[:200],
                      from_address=run.settings.smtp.from_address, message_id=message_id, headers=headers)
        queued += 1 if row is not None else 0
    return queued


def thread_headers(job: Job, settings: Settings, episodes: list[Episode]) -> tuple[str | None, dict[str, str]]:
    """(Message-ID, headers) of an email about `episodes`: the first email of an episode gets a
    new Message-ID, stored on it; a later one (reminder, change, resolved) names it in
    In-Reply-To and References, so mail clients thread them."""
    headers = list_headers(job, settings)
    first = next((e.message_id for e in sorted(episodes, key=lambda e: e.id) if e.message_id), None)
    if first is not None:
        headers |= {"In-Reply-To": first, "References": first}
    message_id = None
    for episode in episodes:
        if episode.message_id is None:
            message_id = message_id or make_msgid(domain=domain_of(settings.smtp.from_address))
            episode.message_id = message_id
    return message_id, headers  # None: a fresh one per email (it opens nothing)


def list_headers(job: Job, settings: Settings) -> dict[str, str]:
    """List-Id per job (a filter rule per job), List-Unsubscribe: the page where subscriptions are managed."""
    base = settings.app.base_url
    host = urlsplit(base).hostname or domain_of(settings.smtp.from_address)
    return {"List-Id": f'"{job.title}" {list_id(job.name, host)}'[:200],
            "List-Unsubscribe": f"<{link(base, 'notifications')}>"}


def base_context(session: Session, job: Job, settings: Settings, health: dict[str, Any]) -> dict[str, Any]:
    """What every job email shows: the job, its health, the top signatures with actions, links."""
    base = settings.app.base_url
    top = settings.notifications.top_signatures
    signatures = list_signatures(session, job, limit=top)
    return {
        "job": {"name": job.name, "title": job.title, "source": job.source_system, "target": job.target_system},
        "health": health,
        "signatures": signatures,
        "links": job_links(base, job.name),
        "base_url": base.rstrip("/"),
    }


def job_links(base: str, name: str) -> dict[str, str]:
    return {
        "job": link(base, "jobs", name),
        "users": link(base, "jobs", name, "users") + "?state=failing",
        "cycles": link(base, "jobs", name, "cycles"),
        "diagnostics": link(base, "jobs", name, "diagnostics"),
        "reports": link(base, "reports") + f"?job={name}",
        "notifications": link(base, "notifications"),
    }


def user_link(base: str, job_name: str, user: dict[str, Any]) -> str:
    # (a report stored before people had a key: the externalId, else our id, as ScimUser.key)
    key = user.get("key") or user.get("externalId") or user.get("id")
    return link(base, "jobs", job_name, "users", key)  # type: ignore[arg-type]


def trim_cycle(detail: dict[str, Any], job_name: str, settings: Settings, *, names: int = 10,
               session: Session | None = None) -> dict[str, Any]:
    """A cycle_detail for an email or a stored report: the diff lists capped at `names` (a link
    leads to the rest), each user with the reason of its failure in plain words (with `session`)."""
    base = settings.app.base_url
    out = dict(detail)
    out["diff"] = {}
    reasons: dict[int, str] = {}
    if session is not None:
        diff = detail.get("diff", {})
        failing = [u["id"] for key in ("new_failures", "still_failing") for u in diff.get(key, [])[:names]]
        fixed = [u["id"] for u in diff.get("fixed", [])[:names]]
        reasons = user_reasons(session, detail["id"], failing)
        reasons |= {k: "was: " + v for k, v in user_reasons(session, detail.get("previous_cycle_id"), fixed).items()}
    for key, users in detail.get("diff", {}).items():
        shown, more = capped(users, names)
        out["diff"][key] = {"count": len(users), "more": more,
                            "more_link": link(base, "jobs", job_name, "cycles", detail["id"]),
                            "users": [u | {"link": user_link(base, job_name, u), "reason": reasons.get(u["id"])}
                                      for u in shown]}
    out["link"] = link(base, "jobs", job_name, "cycles", detail["id"])
    return out


def episode_json(episode: Episode) -> dict[str, Any]:
    return {
        "id": episode.id, "kind": episode.kind, "key": episode.key, "title": episode.title,
        "began_at": _iso(episode.began_at), "resolved_at": _iso(episode.resolved_at),
        "reminders": episode.reminders, "detail": json.loads(episode.detail or "{}"),
    }


def _event_name(run: Run, episode: Episode, notice: Notice) -> str:
    events = run.events.get(episode.id, [])
    if notice is Notice.REMINDER:
        return "reminder"
    if episode.kind == "early_warning":
        return "early_warning_cleared" if notice is Notice.RESOLVED else "early_warning"
    if episode.kind == "stalled":
        return "resumed" if notice is Notice.RESOLVED else "stalled"
    if notice is Notice.RESOLVED:
        return "quarantine_lifted"
    if run.health["state"] == "disabled" or HealthEvent.DISABLED.value in events:
        return "disabled"
    if json.loads(episode.detail or "{}").get("reason") == "TooManyDeletes":
        return "deletion_threshold"
    return "reason_changed" if notice is Notice.CHANGED else "quarantine_entered"


def _health_title(event: HealthEvent, facts: dict[str, Any]) -> str:
    reason = facts.get("reason")
    if event is HealthEvent.STALLED:
        return "Provisioning stalled"
    if event is HealthEvent.DISABLED:
        return "Job disabled after four weeks in quarantine"
    return f"Quarantined: {reason}" if reason else "Quarantined"


def _signature_title(sig: dict[str, Any]) -> str:
    """In plain words ("User already exists in uniFLOW Online (409) on create"), not the template."""
    return plain_reason(sig["operation"], int(sig["status"]), sig.get("scimType"))


def _latest_completed(run: Run) -> Cycle | None:
    return run.session.scalars(select(Cycle).where(
        Cycle.job_id == run.job.id, Cycle.ended_us < to_us(run.now) - gap_us(run.settings))
        .order_by(Cycle.ended_us.desc()).limit(1)).first()


def _parse(iso: str | None) -> datetime | None:
    if not iso:
        return None
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def _iso(moment: datetime | None) -> str | None:
    moment = aware(moment)
    return format_ts(moment) if moment else None
