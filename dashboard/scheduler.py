"""The scheduled work, declared in one list (JOBS) and run by APScheduler 3.x.

Job functions are thin: an app context, the clock, one use case. What matters between runs
(report due times, what was sent, the outbox, claimed transitions) lives in the database, so the
in-memory job store loses nothing on a restart. Run one scheduler: `flask --app app scheduler`
in its own process, or (`[scheduler] enabled = true`) a BackgroundScheduler inside the
single-process dev server that `make run` starts.
"""
from __future__ import annotations

import atexit
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask

from dashboard import runtime
from dashboard.db import db
from dashboard.ingest.graph.pull import run_entra_pulls as pull_all
from dashboard.notify.alerts import evaluate_health
from dashboard.notify.digest import send_due_digests
from dashboard.notify.mailer import SmtpMailer
from dashboard.notify.outbox import deliver_pending
from dashboard.notify.reports import send_due_reports
from dashboard.settings import Settings
from dashboard.tracking.retention import prune

log = logging.getLogger(__name__)


def run_reports(app: Flask) -> int:
    with app.app_context():
        made = [f"job {r.job_id} cycles {r.first_cycle_id}-{r.last_cycle_id}"
                for r in send_due_reports(db.session, runtime.now(app), runtime.settings(app))]
    if made:
        log.info("cycle reports: %s", ", ".join(made))
    return len(made)


def run_delivery(app: Flask) -> int:
    settings = runtime.settings(app)
    mailer = app.extensions.get("mailer") or (SmtpMailer(settings.smtp) if settings.smtp.host else None)
    if mailer is None:
        log.debug("smtp.host is not set: emails wait in the outbox")
        return 0
    with app.app_context():
        result = deliver_pending(db.session, mailer, runtime.now(app), settings=settings.notifications)
    if result.sent or result.failed or result.in_doubt:
        log.info("email delivery: %s sent, %s failed (retried later), %s in doubt (not resent by itself)",
                 result.sent, result.failed, result.in_doubt)
    return result.sent


def run_health(app: Flask) -> int:
    with app.app_context():
        return evaluate_health(db.session, runtime.now(app), runtime.settings(app))


def run_digests(app: Flask) -> int:
    with app.app_context():
        return send_due_digests(db.session, runtime.now(app), runtime.settings(app))


def run_retention(app: Flask) -> str:
    with app.app_context():
        result = prune(db.session, runtime.now(app), runtime.settings(app))
    log.info("retention: pruned %s", result)
    return str(result)


def run_entra_pulls(app: Flask) -> str:
    return pull_all(app)


@dataclass(frozen=True)
class ScheduledJob:
    id: str
    func: Callable[[Flask], Any]
    trigger: Callable[[Settings], BaseTrigger]
    misfire_grace_time: int  # seconds a run may start late (busy or suspended machine) and still run
    run_at_start: bool = True  # due work does not wait a whole interval after a restart


JOBS: tuple[ScheduledJob, ...] = (
    ScheduledJob("cycle-reports", run_reports, lambda s: IntervalTrigger(minutes=s.reports.interval_minutes), 15 * 60),
    ScheduledJob("deliver-email", run_delivery, lambda s: IntervalTrigger(minutes=1), 60),
    ScheduledJob("evaluate-health", run_health, lambda s: IntervalTrigger(minutes=1), 60),
    ScheduledJob("daily-digest", run_digests, lambda s: IntervalTrigger(minutes=10), 10 * 60),
    ScheduledJob("prune-retention", run_retention, lambda s: CronTrigger(hour=3, minute=30, timezone=UTC), 6 * 3600,
                 run_at_start=False),
)


# Optional jobs, scheduled only when their configuration asks for them.
ENTRA_PULL = ScheduledJob("entra-pull", run_entra_pulls, lambda s: IntervalTrigger(minutes=s.entra.interval_minutes),
                          10 * 60)


def scheduled_jobs(settings: Settings) -> tuple[ScheduledJob, ...]:
    """JOBS, and the Graph pull when `[entra] enabled`."""
    return JOBS + ((ENTRA_PULL,) if settings.entra.enabled else ())


def start_scheduler(app: Flask, *, blocking: bool = False, only: set[str] | None = None,
                    triggers: dict[str, BaseTrigger] | None = None, paused: bool = False) -> BaseScheduler:
    """Start (for `blocking`: run until stopped) a scheduler with JOBS, or the `only` ones;
    `triggers` replaces some (tests run the report every second)."""
    # One worker: the jobs run one after another, never racing each other for the same rows
    # (coalesce and the grace times absorb a slow run). APScheduler's per-run INFO lines are noise.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    scheduler: BaseScheduler = (BlockingScheduler if blocking else BackgroundScheduler)(
        timezone=UTC, executors={"default": ThreadPoolExecutor(max_workers=1)})
    for job in scheduled_jobs(runtime.settings(app)):
        if only is not None and job.id not in only:
            continue
        options: dict[str, Any] = {}
        if job.run_at_start:
            options["next_run_time"] = datetime.now(UTC)
        scheduler.add_job(
            job.func, (triggers or {}).get(job.id) or job.trigger(runtime.settings(app)), args=[app], id=job.id, name=job.id,
            replace_existing=True, coalesce=True, max_instances=1, misfire_grace_time=job.misfire_grace_time, **options,
        )
    scheduler.add_listener(_on_error, EVENT_JOB_ERROR)
    scheduler.start(paused=paused)
    return scheduler


def init_app(app: Flask) -> None:
    """Start a BackgroundScheduler in the serving process when `[scheduler] enabled` (not in
    tests, not in CLI commands other than `run`, not in the reloader's watching parent)."""
    settings = runtime.settings(app)
    if not settings.scheduler.enabled or settings.testing or not runtime.is_serving_process():
        return
    scheduler = start_scheduler(app)
    app.extensions["scheduler"] = scheduler
    atexit.register(lambda: scheduler.shutdown(wait=False))
    log.info("scheduler started in the web process (jobs: %s)", ", ".join(j.id for j in scheduled_jobs(settings)))


def _on_error(event: JobExecutionEvent) -> None:
    # APScheduler has logged the traceback; the job runs again at its next time.
    log.error("scheduled job %s failed at %s: %r", event.job_id, event.scheduled_run_time, event.exception)
