"""The daily digest: one email per subscribed address instead of a mail per event.

Due once per UTC day after `notifications.digest_hour`; `DigestRun` (unique per address and
day) makes it go out once, and each digest covers the time since the previous one, so a
scheduler that was down at the digest hour sends it late rather than never.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from dashboard.analysis.causes import subject_line
from dashboard.models import Cycle, DigestRun, Episode, Job, ReportRun
from dashboard.notify.alerts import base_context, episode_json
from dashboard.notify.brief import first_screen
from dashboard.notify.emails import link, render_email
from dashboard.notify.outbox import enqueue
from dashboard.notify.recipients import digest_subscribers
from dashboard.notify.rules import digest_day
from dashboard.queries.health import health_json
from dashboard.settings import Settings
from dashboard.times import aware, to_us


def send_due_digests(session: Session, now: datetime, settings: Settings) -> int:
    """Queue today's digest for each digest subscriber that has not had it; returns how many."""
    day = digest_day(now, hour=settings.notifications.digest_hour)
    if day is None:
        return 0
    queued = 0
    health: dict[int, dict[str, Any]] = {}
    for address, jobs in digest_subscribers(session).items():
        if session.scalar(select(DigestRun.id).where(DigestRun.address == address, DigestRun.day == day)):
            continue
        last = session.scalar(select(func.max(DigestRun.covered_until)).where(DigestRun.address == address))
        since = aware(last) or now - timedelta(days=1)
        entries = [job_summary(session, job, since, now, settings, health) for job, _role in jobs]
        role = "admin" if any(r == "admin" for _j, r in jobs) else "support"
        ctx = {"day": day, "since": since.strftime("%Y-%m-%d %H:%M UTC"), "jobs": entries, "role": role,
               "base_url": settings.app.base_url.rstrip("/"),
               "notifications_link": link(settings.app.base_url, "notifications"),
               "subject": digest_subject(day, entries)}
        enqueue(session, render_email("daily-digest", ctx), to=address, kind="digest", now=now,
                dedupe_key=f"digest:{address.lower()}:{day}"[:200], from_address=settings.smtp.from_address)
        session.add(DigestRun(address=address, day=day, covered_until=now, created_at=now))
        session.commit()
        queued += 1
    return queued


def job_summary(session: Session, job: Job, since: datetime, now: datetime, settings: Settings,
                cache: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """One job's day: health now, cycles and failures, the episodes that began, went on or ended."""
    if job.id not in cache:
        cache[job.id] = health_json(session, job, now, settings)
    ctx = base_context(session, job, settings, cache[job.id])
    episodes = session.scalars(select(Episode).where(
        Episode.job_id == job.id,
        or_(Episode.resolved_at.is_(None), Episode.resolved_at >= since, Episode.opened_at >= since),
    ).order_by(Episode.began_at)).all()
    cycles = session.scalars(select(Cycle).where(Cycle.job_id == job.id, Cycle.ended_us >= to_us(since),
                                                 Cycle.ended_us < to_us(now))).all()
    failed = sum(sum(row.get("failure", 0) for row in orjson.loads(c.counts or "{}").values()) for c in cycles)
    latest = session.scalars(select(ReportRun).where(ReportRun.job_id == job.id)
                             .order_by(ReportRun.created_at.desc()).limit(1)).first()
    ongoing = [e for e in episodes if e.resolved_at is None]
    health = cache[job.id]
    troubled = bool(ongoing) or health["state"] not in ("healthy", "unknown")
    # The job's state is the headline: a quarantine or stall episode gives "since", else the oldest open one.
    main = sorted(ongoing, key=lambda e: (e.kind not in ("quarantine", "stalled"), e.began_at))
    brief = first_screen(session, job, now, settings, health,
                         since=episode_json(main[0])["began_at"] if main else health.get("since"))
    return ctx | {
        "brief": brief,
        "troubled": troubled or brief["what"]["confirmed"],
        "cycles": len(cycles),
        "failed_users": failed,
        "ongoing": [episode_json(e) for e in episodes if e.resolved_at is None],
        "resolved": [episode_json(e) for e in episodes if e.resolved_at is not None],
        "latest_report": link(settings.app.base_url, "reports", latest.id) if latest else None,
    }


def digest_subject(day: str, entries: list[dict[str, Any]]) -> str:
    """One troubled job: its name, state and cause first; else how many jobs have open problems."""
    troubled = [j for j in entries if j["troubled"]]
    if len(troubled) == 1:
        j = troubled[0]
        b = j["brief"]
        return subject_line(j["job"]["title"], f"Daily digest {day}, {b['what']['headline'][0].lower()}{b['what']['headline'][1:]}",
                            b["subject_cause"], b["subject_users"])
    count = len(entries)
    tail = f"{len(troubled)} with open problems" if troubled else "no open problems"
    return f"[Provisioning] Daily digest {day}: {count} job{'s' if count != 1 else ''}, {tail}"
