"""The scheduler lease: one holder at a time, renewals, expiry, takeover, a clean release, the fence
before every job, and two lease keepers on one database (one active, one standby)."""
from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from dashboard import lease, scheduler
from dashboard.db import db
from dashboard.models import SchedulerLease, SchedulerRunStat
from dashboard.scheduler import LeasedScheduler
from dashboard.settings import ConfigError, SchedulerSettings
from dashboard.times import US, to_us, utc_now

TTL = 30 * US
T = 1_800_000_000 * US  # a moment, in microseconds


def row() -> SchedulerLease:
    db.session.rollback()
    return db.session.get(SchedulerLease, lease.NAME)  # type: ignore[return-value]


def test_it_gives_the_lease_to_one_holder_until_it_expires(app):
    engine = db.engine

    assert lease.acquire(engine, "a", T, TTL)
    assert not lease.acquire(engine, "b", T + 1, TTL)  # held: b waits
    assert lease.acquire(engine, "a", T + 10 * US, TTL)  # a renews
    assert not lease.acquire(engine, "b", T + 39 * US, TTL)  # renewed at +10 s: held until +40 s
    assert lease.holder_of(engine, T + 39 * US) == "a"
    assert lease.acquire(engine, "b", T + 41 * US, TTL)  # expired: b takes over
    assert not lease.renew(engine, "a", T + 42 * US, TTL)  # the fence: a no longer holds it
    assert (row().holder, row().acquired_us, row().heartbeat_us, row().takeovers) == ("b", T + 41 * US, T + 41 * US, 2)


def test_a_clean_release_hands_the_lease_over_at_once(app):
    engine = db.engine
    lease.acquire(engine, "a", T, TTL)

    lease.release(engine, "b")  # not b's to give up
    assert not lease.acquire(engine, "b", T + US, TTL)
    lease.release(engine, "a")

    assert lease.acquire(engine, "b", T + 2 * US, TTL)
    assert lease.holder_of(engine, T + 2 * US) == "b"


def test_a_job_runs_only_while_its_scheduler_holds_the_lease(app):
    ran = []
    job = scheduler.ScheduledJob("probe", lambda app: ran.append(1) or len(ran), scheduler.JOBS[0].trigger, 60)
    keeper = LeasedScheduler(app)
    lease.acquire(db.engine, keeper.holder, to_us(utc_now()), TTL)

    assert scheduler.run_once(job, app, keeper) == 1
    lease.release(db.engine, keeper.holder)
    lease.acquire(db.engine, "another", to_us(utc_now()), TTL)
    assert scheduler.run_once(job, app, keeper) is None  # fenced off: skipped, not counted

    db.session.rollback()
    stat = db.session.get(SchedulerRunStat, "probe")
    assert ran == [1] and (stat.runs, stat.errors, stat.last_holder) == (1, 0, keeper.holder)  # type: ignore[union-attr]


def test_two_keepers_on_one_database_make_one_active_and_one_standby(app, settings):
    first, second = LeasedScheduler(app), LeasedScheduler(app)
    try:
        assert first.step() is True and first.state == "active" and first.scheduler is not None
        assert second.step() is False and second.state == "standby" and second.scheduler is None
        assert first.step() is True  # renewing keeps it

        first.stop()
        first.run()  # stops at once: lets the running job finish, gives the lease up

        assert first.scheduler is None and first.state == "stopped"
        assert second.step() is True and second.state == "active" and second.scheduler is not None
        assert row().holder == second.holder and row().takeovers == 2
    finally:
        for keeper in (first, second):
            if keeper.scheduler is not None:
                keeper.scheduler.shutdown(wait=True)


def test_a_keeper_that_lost_its_lease_stops_its_jobs(app):
    keeper = LeasedScheduler(app)
    assert keeper.step() is True
    with db.engine.begin() as conn:  # as if the process had been paused past its lease and another took it
        conn.execute(SchedulerLease.__table__.update().values(holder="another", expires_us=to_us(utc_now()) + TTL))
    running = keeper.scheduler

    assert keeper.step() is False
    assert keeper.scheduler is None and keeper.state == "standby"
    assert not running.running  # type: ignore[union-attr]


@pytest.mark.parametrize(("values", "message"), [
    ({"lease_seconds": 0}, "scheduler.lease_seconds must be a positive integer"),
    ({"lease_seconds": 10, "renew_seconds": 6}, "scheduler.renew_seconds must be at most half"),
    ({"tick_seconds": 0}, "scheduler.tick_seconds must be a positive integer"),
])
def test_it_refuses_lease_settings_that_could_lose_the_lease(values, message):
    with pytest.raises(ConfigError, match=message):
        SchedulerSettings(**values)


def test_its_lease_row_is_one_per_name(app):
    lease.acquire(db.engine, "a", T, TTL)
    lease.acquire(db.engine, "b", T + 31 * US, TTL)

    assert db.session.scalars(select(SchedulerLease.name)).all() == ["scheduler"]
    assert replace(SchedulerSettings(), lease_seconds=30).renew_seconds == 10
