"""Demo data for `make run`: simulated jobs whose latest cycle ends about now."""
from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from dashboard import runtime
from dashboard.db import db
from dashboard.demo.entra import load_entra_demo
from dashboard.demo.simulate import simulate_lines
from dashboard.demo.truth import SimConfig
from dashboard.ingest.scim import IngestOptions, ingest_lines, options_for
from dashboard.models import Exchange, Job
from dashboard.times import to_us

DEMO_JOBS = (
    # name, display name, simulator knobs
    ("uniflow-prod", "uniFLOW Online (production)", {"identity": True}),  # renames, collisions, re-creations
    ("uniflow-emea", "uniFLOW Online (EMEA)", {"auth_outage": 1}),  # last cycle: token rejected
    ("uniflow-lab", "uniFLOW Online (lab)", {"silent": True}),  # stopped sending: stalled
)


def load_demo(engine: Engine, *, users: int, cycles: int, options: IngestOptions, now: datetime | None = None) -> str:
    """Create the demo jobs and ingest their simulated logs, unless the database holds exchanges."""
    now = now or datetime.now(UTC)
    with Session(engine) as session:
        if session.scalar(select(func.count()).select_from(Exchange)):
            return "demo: the database already holds exchanges; nothing loaded"
        jobs = []
        for index, (name, title, knobs) in enumerate(DEMO_JOBS):
            job = session.scalar(select(Job).where(Job.name == name)) or Job(name=name)
            job.display_name = title
            job.scope_size = users if index == 0 else None
            session.add(job)
            jobs.append((job, knobs, index))
        session.commit()
        summary = []
        for job, knobs, index in jobs:
            config = _config(job.name, users=users, cycles=cycles, seed=index + 1, now=now, **knobs)
            lines, _truth = simulate_lines(config)
            result = ingest_lines(engine, job, enumerate(lines, start=1), source="demo", via="demo", options=options)
            events = load_entra_demo(engine, job, options, now=now,
                                     quarantine_reason="EncounteredQuarantineException" if knobs.get("auth_outage") else None)
            summary.append(f"{job.name}: {result.accepted} exchanges, {events} Entra events")
    return "demo loaded: " + ", ".join(summary)


def _config(name: str, *, users: int, cycles: int, seed: int, now: datetime, auth_outage: int = 0, silent: bool = False,
            identity: bool = False) -> SimConfig:
    # A cycle of this size takes a few minutes and is followed by ~40 quiet minutes. The outage
    # is the last cycle, so no quarantine back-off gap follows it. Start early enough for the
    # last cycle to end near now.
    span = timedelta(minutes=40) * (cycles - 1) + timedelta(minutes=5)
    if silent:
        span += timedelta(hours=3)
    start = (now - span).replace(second=0, microsecond=0)
    return SimConfig(
        users=users,
        cycles=cycles,
        seed=seed,
        job=name,
        start=start,
        auth_outage_cycles=tuple(range(cycles - auth_outage, cycles)) if auth_outage else (),
        silent_after_cycle=cycles // 2 if silent else None,
        # what real tenants do: renames, Unicode/case corrections, two people on one userName,
        # users re-created in the target, lookups that find nothing (names over time on user pages)
        realities=("rename", "variant", "collision", "recreate", "unmatched") if identity else (),
        identity_rate=0.005,  # per person and cycle: a few of each, as in a real week
    )


LIVE_JOB = ("uniflow-rollout", "uniFLOW Online (rollout, live demo)")


def start_live_feeder(app, *, users: int = 3000, requests_per_second: float = 25.0):  # type: ignore[no-untyped-def]
    """Feed a simulated job in real time in a background thread, so the progress bar moves.

    The simulator's timeline starts now; each line is ingested when the clock reaches its
    timestamp (an initial cycle of `users` users takes users * 2 / requests_per_second seconds,
    then incremental cycles follow about every 40 minutes). Used by `make run` only.
    """
    log = logging.getLogger(__name__)

    def run() -> None:
        with app.app_context():
            session = db.session
            job = session.scalar(select(Job).where(Job.name == LIVE_JOB[0]))
            if job is None:
                job = Job(name=LIVE_JOB[0], display_name=LIVE_JOB[1], scope_size=users)
                session.add(job)
                session.commit()
            start = datetime.now(UTC)
            config = SimConfig(users=users, cycles=500, seed=int(start.timestamp()), job=job.name, start=start,
                               requests_per_second=requests_per_second, failure_rate=0.04)
            lines, _truth = simulate_lines(config)
            options = options_for(runtime.settings(app))
            batch: list[bytes] = []
            number = 0
            for line in lines:
                ts_us = to_us(datetime.fromisoformat(orjson.loads(line)["ts"].replace("Z", "+00:00")))
                wait = ts_us / 1e6 - time.time()
                if wait > 0.5 and batch:
                    number = _feed(db, job, batch, number, options)
                    batch = []
                if wait > 0:
                    time.sleep(min(wait, 60.0))
                    while ts_us / 1e6 > time.time():
                        time.sleep(min(ts_us / 1e6 - time.time(), 60.0))
                batch.append(line)
                if len(batch) >= 50:
                    number = _feed(db, job, batch, number, options)
                    batch = []
            log.info("live demo feeder finished")

    thread = threading.Thread(target=run, name="live-demo-feeder", daemon=True)
    thread.start()
    return thread


def _feed(db, job: Job, batch: list[bytes], number: int, options: IngestOptions) -> int:  # type: ignore[no-untyped-def]
    ingest_lines(db.engine, job, enumerate(batch, start=number + 1), source="live demo", via="demo", options=options)
    return number + len(batch)
