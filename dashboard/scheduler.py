"""The scheduled work, declared in one list (JOBS) and run by APScheduler 3.x.

Job functions are thin: an app context, the clock, one use case. What matters between runs
(report due times, what was sent, the outbox, claimed transitions) lives in the database, so the
in-memory job store loses nothing on a restart. Production runs `flask --app app scheduler` in
its own process (gunicorn's web workers never start one); `make run`'s dev server starts one in
the background (`[scheduler] enabled = true`).

Whichever way, a scheduler works only while it holds the lease (`dashboard/lease.py`): a second
scheduler process is a hot standby that takes over within `lease_seconds + renew_seconds` of the
active one dying, and each job renews the lease before it works (a fence), then counts its run.
"""
from __future__ import annotations

import atexit
import logging
import threading
import time
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
from sqlalchemy.exc import SQLAlchemyError

from dashboard import lease, runtime
from dashboard.db import db
from dashboard.ingest.graph.pull import run_entra_pulls as pull_all
from dashboard.notify.alerts import evaluate_health
from dashboard.notify.digest import send_due_digests
from dashboard.notify.mailer import SmtpMailer
from dashboard.notify.outbox import deliver_pending
from dashboard.notify.reports import send_due_reports
from dashboard.settings import Settings
from dashboard.times import US, to_us, utc_now
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
    ScheduledJob("deliver-email", run_delivery, lambda s: IntervalTrigger(seconds=s.scheduler.tick_seconds), 60),
    ScheduledJob("evaluate-health", run_health, lambda s: IntervalTrigger(seconds=s.scheduler.tick_seconds), 60),
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
                    triggers: dict[str, BaseTrigger] | None = None, paused: bool = False,
                    fence: LeasedScheduler | None = None) -> BaseScheduler:
    """Start (for `blocking`: run until stopped) a scheduler with JOBS, or the `only` ones;
    `triggers` replaces some (tests run the report every second). With a `fence` (the lease
    keeper) each run first renews the lease and is skipped when this process lost it."""
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
            run_once, (triggers or {}).get(job.id) or job.trigger(runtime.settings(app)), args=[job, app, fence], id=job.id, name=job.id,
            replace_existing=True, coalesce=True, max_instances=1, misfire_grace_time=job.misfire_grace_time, **options,
        )
    scheduler.add_listener(_on_error, EVENT_JOB_ERROR)
    scheduler.start(paused=paused)
    return scheduler


def run_once(job: ScheduledJob, app: Flask, fence: LeasedScheduler | None) -> Any:
    """One run of `job`: the fence (still the lease holder?), the work, its count in the database."""
    with app.app_context():
        engine = db.engine
    holder = fence.holder if fence is not None else f"unleased:{lease.new_holder()}"
    if fence is not None and not fence.renew():
        log.warning("scheduled job %s skipped: this scheduler no longer holds the lease", job.id)
        return None
    started = time.monotonic()
    error: BaseException | None = None
    try:
        return job.func(app)
    except Exception as exc:
        error = exc
        raise  # APScheduler logs it (_on_error); the job runs again at its next time
    finally:
        try:
            lease.record_run(engine, job.id, holder, ended_us=to_us(utc_now()),
                             duration_ms=int((time.monotonic() - started) * 1000), error=error)
        except SQLAlchemyError:
            log.warning("could not count the run of %s (database unavailable)", job.id, exc_info=True)


class LeasedScheduler:
    """Runs the jobs while this process holds the lease; waits as a hot standby while another does.

    `run()` loops until `stop()`: every `renew_seconds` it takes or renews the lease, starts the
    jobs (a BackgroundScheduler) when it got it and stops them when it lost it. On the way out
    it lets a running job finish and gives the lease up, so a standby takes over at its next poll.
    """

    def __init__(self, app: Flask) -> None:
        settings = runtime.settings(app).scheduler
        self.app = app
        with app.app_context():
            self.engine = db.engine
        self.holder = lease.new_holder()
        self.ttl_us = settings.lease_seconds * US
        self.poll_seconds = settings.renew_seconds
        self.state = "starting"  # then "active" or "standby"
        self.scheduler: BaseScheduler | None = None
        self._stop = threading.Event()

    def take(self) -> bool:
        """Take the lease once, without starting the jobs (`flask scheduler --once`)."""
        try:
            return lease.acquire(self.engine, self.holder, to_us(utc_now()), self.ttl_us)
        except SQLAlchemyError:
            log.warning("scheduler lease: the database cannot be reached", exc_info=True)
            return False

    def give_up(self) -> None:
        try:
            lease.release(self.engine, self.holder)
        except SQLAlchemyError:
            log.warning("scheduler lease: could not give it up; a standby takes it when it expires")

    def renew(self) -> bool:
        try:
            return lease.renew(self.engine, self.holder, to_us(utc_now()), self.ttl_us)
        except SQLAlchemyError:
            log.warning("scheduler lease: the database cannot be reached; the job waits", exc_info=True)
            return False

    def step(self) -> bool:
        """Take or renew the lease once; start or stop the jobs to match. True while held."""
        held = self.take()
        if held and self.scheduler is None:
            self.scheduler = start_scheduler(self.app, fence=self)
            log.info("scheduler %s is active (it holds the lease; jobs: %s)", self.holder,
                     ", ".join(j.id for j in scheduled_jobs(runtime.settings(self.app))))
        elif not held and self.scheduler is not None:
            self.scheduler.shutdown(wait=True)  # a job already past its fence finishes; no new one starts
            self.scheduler = None
            log.warning("scheduler %s lost the lease: jobs stopped, waiting as a standby", self.holder)
        elif not held and self.state != "standby":
            log.info("scheduler %s is a standby: the lease is held by %s", self.holder, self._current_holder())
        self.state = "active" if held else "standby"
        return held

    def run(self) -> None:
        try:
            while True:
                self.step()
                if self._stop.wait(self.poll_seconds):
                    break
        finally:
            if self.scheduler is not None:
                self.scheduler.shutdown(wait=True)
                self.scheduler = None
            self.give_up()
            self.state = "stopped"

    def stop(self) -> None:
        self._stop.set()

    def shutdown(self, wait: bool = True) -> None:  # the BaseScheduler name, for app.extensions["scheduler"]
        self.stop()

    def _current_holder(self) -> str:
        try:
            return lease.holder_of(self.engine, to_us(utc_now())) or "nobody (yet)"
        except SQLAlchemyError:
            return "unknown (database unavailable)"


def start_in_background(app: Flask) -> LeasedScheduler:
    """The lease keeper in a daemon thread (the dev server's scheduler)."""
    keeper = LeasedScheduler(app)
    threading.Thread(target=keeper.run, name="scheduler-lease", daemon=True).start()
    return keeper


def init_app(app: Flask) -> None:
    """Start the scheduler in the background in `flask run`'s serving process when `[scheduler]
    enabled` (not in tests, not in other commands, not in the reloader's watching parent, and
    never under a WSGI server such as gunicorn: its workers serve, `flask scheduler` schedules)."""
    settings = runtime.settings(app)
    if not settings.scheduler.enabled or settings.testing or not runtime.is_dev_server():
        return
    keeper = start_in_background(app)
    app.extensions["scheduler"] = keeper
    atexit.register(keeper.shutdown)
    log.info("scheduler started in the dev server (it works while it holds the lease)")


def _on_error(event: JobExecutionEvent) -> None:
    # APScheduler has logged the traceback; the job runs again at its next time.
    log.error("scheduled job %s failed at %s: %r", event.job_id, event.scheduled_run_time, event.exception)
