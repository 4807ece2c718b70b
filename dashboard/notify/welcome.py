"""A new subscriber to a job with an open problem is told of it at once, once.

`subscribe_and_tell` subscribes the address (`recipients.subscribe`) and queues, through the
outbox, the current email of each open episode the job's other recipients were already told
about (a quarantine, a stall, an early warning: the health email; new failure signatures: one
failures email). Kinds the address already got before (as a job recipient, or an earlier
subscription) are not told again, and a dedupe key per (episode, address) keeps a second
subscription from queueing it twice.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.models import Episode, Job, Subscription
from dashboard.notify.alerts import (
    Run,
    failures_context,
    health_context,
    thread_headers,
)
from dashboard.notify.emails import render_email
from dashboard.notify.outbox import enqueue
from dashboard.notify.recipients import all_recipients, subscribe
from dashboard.notify.rules import Notice
from dashboard.queries.health import health_json
from dashboard.settings import Settings

HEALTH_KINDS = ("quarantine", "stalled", "early_warning")  # episodes told by the health-event email


def subscribe_and_tell(session: Session, job: Job, address: str, *, kinds: list[str], role: str, now: datetime,
                       settings: Settings) -> tuple[Subscription, int]:
    """Subscribe; then queue what the address newly subscribed to and should know now. (row, emails queued)"""
    before = {r.address.lower(): r.kinds for r in all_recipients(session, job, settings)}
    row = subscribe(session, job, address, kinds=kinds, role=role)
    had = before.get(row.address.lower(), frozenset())
    new = row.kind_set - had
    episodes = list(session.scalars(select(Episode).where(
        Episode.job_id == job.id, Episode.resolved_at.is_(None), Episode.notified_at.is_not(None))
        .order_by(Episode.began_at, Episode.id)))
    health_episodes = [e for e in episodes if e.kind in HEALTH_KINDS] if "quarantine" in new else []
    signature_episodes = [e for e in episodes if e.kind == "signature"] if "failures" in new else []
    if not health_episodes and not signature_episodes:
        return row, 0
    health = health_json(session, job, now, settings)
    run = Run(session, job, now, settings, health, None)
    queued = 0
    for episode in health_episodes:
        ctx = health_context(run, episode, _event(episode, health), Notice.OPENED)
        queued += _queue(session, job, row, "health-event", ctx, "quarantine", f"welcome:{episode.id}", [episode],
                         now, settings)
    if signature_episodes:
        ctx = failures_context(run, [(e, Notice.OPENED) for e in signature_episodes])
        key = "welcome:" + ",".join(str(e.id) for e in signature_episodes)
        queued += _queue(session, job, row, "failures", ctx, "failures", key, signature_episodes, now, settings)
    session.commit()
    return row, queued


def _queue(session: Session, job: Job, row: Subscription, template: str, ctx: dict[str, Any], kind: str, key: str,
           episodes: list[Episode], now: datetime, settings: Settings) -> int:
    email = render_email(template, ctx | {"role": row.role})
    message_id, headers = thread_headers(job, settings, episodes)  # threads with the episode's first email
    queued = enqueue(session, email, to=row.address, kind=kind, now=now, job_id=job.id,
                     dedupe_key=f"{key}:{row.address.lower()}"[:200], from_address=settings.smtp.from_address,
                     message_id=message_id, headers=headers)
    return 1 if queued is not None else 0


def _event(episode: Episode, health: dict[str, Any]) -> str:
    """The event the episode's opening email was about (as `alerts` names it)."""
    if episode.kind == "stalled":
        return "stalled"
    if episode.kind == "early_warning":
        return "early_warning"
    if health.get("state") == "disabled":
        return "disabled"
    if json.loads(episode.detail or "{}").get("reason") == "TooManyDeletes":
        return "deletion_threshold"
    return "quarantine_entered"
