"""Demo data for `make run`: simulated jobs whose latest cycle ends about now."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from .ingest.load import IngestOptions, ingest_lines
from .models import Exchange, Job
from .simulate import SimConfig, simulate_lines

DEMO_JOBS = (
    # name, display name, simulator knobs
    ("uniflow-prod", "uniFLOW Online (production)", {}),
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
            summary.append(f"{job.name}: {result.accepted} exchanges")
    return "demo loaded: " + ", ".join(summary)


def _config(name: str, *, users: int, cycles: int, seed: int, now: datetime, auth_outage: int = 0, silent: bool = False) -> SimConfig:
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
    )
