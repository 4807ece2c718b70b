"""The scheduler: one declarative job list, thin job functions driven with a fixed clock, and the
real APScheduler for a few seconds."""
from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import click
import pytest
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import func, select

from dashboard import create_app, lease, scheduler
from dashboard.db import db
from dashboard.models import Notification, ReportRun
from dashboard.notify.mailer import MemoryMailer
from dashboard.runtime import is_serving_process
from dashboard.scheduler import JOBS, start_scheduler
from dashboard.settings import JobSettings, ReportSettings, SchedulerSettings
from dashboard.times import US, to_us, utc_now
from tests.notify.helpers import (
    BAD_DEPARTMENT,
    after_cycle,
    cycle_lines,
    ingest,
    wait_for,
)


@pytest.fixture
def settings(settings):  # type: ignore[no-untyped-def]
    return replace(settings, reports=ReportSettings(recipients=("reports@example.com",)),
                   jobs=(JobSettings(name="uniflow-prod", notification_recipients=("idm@example.com",)),))


def test_it_gives_every_scheduled_job_its_own_id():
    ids = [job.id for job in JOBS]

    assert len(ids) == len(set(ids))
    assert set(ids) == {"cycle-reports", "deliver-email", "evaluate-health", "daily-digest", "prune-retention"}


def test_it_adds_each_job_with_coalescing_one_instance_and_a_grace_time(app):
    running = start_scheduler(app, paused=True)
    try:
        jobs = {job.id: job for job in running.get_jobs()}
    finally:
        running.shutdown(wait=False)

    assert set(jobs) == {job.id for job in JOBS}
    for job in jobs.values():
        assert job.coalesce is True and job.max_instances == 1 and job.misfire_grace_time > 0
    assert jobs["cycle-reports"].trigger.interval == timedelta(minutes=40)
    assert jobs["deliver-email"].trigger.interval == timedelta(minutes=1)


def test_its_job_functions_do_the_work_at_the_clocks_time(app, settings):
    ingest(settings, cycle_lines(0, failing={2: BAD_DEPARTMENT}))
    app.extensions["clock"] = lambda: after_cycle(0)
    app.extensions["mailer"] = mailer = MemoryMailer()

    reports = scheduler.run_reports(app)
    queued = scheduler.run_health(app)
    sent = scheduler.run_delivery(app)

    assert (reports, queued, sent) == (1, 1, 2)
    assert sorted(m.to for m in mailer.outbox) == ["idm@example.com", "reports@example.com"]
    assert scheduler.run_reports(app) == 0 and scheduler.run_health(app) == 0 and scheduler.run_delivery(app) == 0
    assert scheduler.run_digests(app) == 0
    assert "cycles 0" in scheduler.run_retention(app)


def test_it_keeps_mail_waiting_while_no_smtp_host_is_set(app, settings):
    ingest(settings, cycle_lines(0))
    app.extensions["clock"] = lambda: after_cycle(0)
    scheduler.run_reports(app)

    assert scheduler.run_delivery(app) == 0
    assert db.session.scalar(select(func.count()).select_from(Notification).where(Notification.sent_at.is_(None))) == 1


def test_the_real_scheduler_makes_one_report_per_tick(app, settings):
    # Four completed cycles, a report tick every second, and a clock that moves one cycle (40 min)
    # per tick: each tick reports exactly the one cycle completed since the previous tick.
    for index in range(4):
        ingest(settings, cycle_lines(index))
    moments = iter([after_cycle(i) for i in range(4)])
    last = after_cycle(3)
    lock = threading.Lock()

    def clock():  # type: ignore[no-untyped-def]
        nonlocal last
        with lock:
            last = next(moments, last)
            return last

    app.extensions["clock"] = clock

    def made() -> list[tuple[int, int, int]]:
        db.session.rollback()  # a new snapshot: the scheduler writes from its own thread
        return [(r.first_cycle_id, r.last_cycle_id, r.cycles) for r in db.session.scalars(select(ReportRun).order_by(ReportRun.id))]

    running = start_scheduler(app, only={"cycle-reports"}, triggers={"cycle-reports": IntervalTrigger(seconds=1)})
    try:
        reached = wait_for(lambda: len(made()) >= 4, timeout=20)
        extra_ticks = wait_for(lambda: len(made()) > 4, timeout=2.5)  # two more ticks: nothing left to report
    finally:
        running.shutdown(wait=True)

    assert reached and not extra_ticks
    assert made() == [(1, 1, 1), (2, 2, 1), (3, 3, 1), (4, 4, 1)]


@pytest.mark.parametrize(("name", "params", "environ", "serving"), [
    ("run", {"reload": False}, {}, True),  # `flask run`: one process
    ("run", {"reload": True}, {}, False),  # the reloader's watching parent
    ("run", {"reload": True}, {"WERKZEUG_RUN_MAIN": "true"}, True),  # the reloader's serving child
    ("init-db", {}, {}, False),
    ("scheduler", {}, {}, False),  # runs its own BlockingScheduler
])
def test_it_knows_the_serving_process(name, params, environ, serving):
    ctx = click.Context(click.Command(name), info_name=name)
    ctx.params.update(params)

    with ctx:
        assert is_serving_process(environ) is serving


def test_it_starts_the_background_scheduler_only_where_it_should(settings, _schema, monkeypatch):
    started = []
    monkeypatch.setattr(scheduler, "start_in_background", lambda app: started.append(app) or _Stub())
    live = replace(settings, testing=False, scheduler=SchedulerSettings(enabled=True))

    create_app(replace(live, scheduler=SchedulerSettings(enabled=False)))
    create_app(replace(settings, scheduler=SchedulerSettings(enabled=True)))  # testing
    create_app(live)  # no command: a WSGI server (gunicorn's workers) imported app.py
    with click.Context(click.Command("ingest"), info_name="ingest"):
        create_app(live)
    with click.Context(click.Command("scheduler"), info_name="scheduler"):
        create_app(live)  # `flask scheduler` runs its own, under the lease
    assert started == []
    with click.Context(click.Command("run"), info_name="run") as ctx:
        ctx.params["reload"] = False
        app = create_app(live)
    assert started == [app] and isinstance(app.extensions["scheduler"], _Stub)


class _Stub:
    def shutdown(self, wait: bool = True) -> None:
        pass


def test_it_lists_and_runs_the_jobs_from_the_command_line(app, runner, settings):
    ingest(settings, cycle_lines(0))
    app.extensions["clock"] = lambda: after_cycle(0)

    listed = runner.invoke(args=["scheduler", "--list"])
    once = runner.invoke(args=["scheduler", "--once"])

    assert listed.exit_code == 0 and "cycle-reports\tinterval[0:40:00]" in listed.output
    assert once.exit_code == 0, once.output
    assert "cycle-reports: 1" in once.output and "evaluate-health: 0" in once.output


def test_it_runs_the_jobs_once_only_when_no_other_scheduler_holds_the_lease(app, runner):
    lease.acquire(db.engine, "elsewhere:1:abc", to_us(utc_now()), 30 * US)

    refused = runner.invoke(args=["scheduler", "--once"])

    assert refused.exit_code == 1 and "another scheduler holds the lease" in refused.output
    assert lease.holder_of(db.engine, to_us(utc_now())) == "elsewhere:1:abc"


