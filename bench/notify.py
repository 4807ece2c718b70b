"""Benchmark: the cycle report on a large job, and queueing notifications for many jobs.

    .venv/bin/python bench/notify.py [--users 100000] [--cycles 20] [--jobs 1000]

(a) The scheduled cycle report of a job with `--users` users and `--cycles` cycles, covering all
    of them (a first report, the largest one there is): health, 20 cycle details with their
    diffs, signatures, the stored document, the rendered email, the outbox row. Against (a0), in
    the same run and on the same database: a plain SELECT of every row the report reads (the
    cycles, each covered cycle's and its predecessor's per-user outcomes, the failing users, the
    signatures, each cycle's failing exchanges). Ratio a/a0.
(b) Health evaluation of `--jobs` jobs that each just entered quarantine, with two recipients:
    judging, claiming the transition, the episode, rendering and queueing 2 emails per job.
    Against (b0): inserting the same number of outbox rows of the same size with one executemany.
    Ratio b/b0. (c) The same evaluation again with nothing new: the every-minute cost.
The SQLite databases are built under bench/out/ (the simulated job is cached between runs).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))


def env_for(db: Path) -> dict[str, str]:
    return dict(os.environ, DATABASE_URL=f"sqlite:///{db}", DASHBOARD_CONFIG=str(ROOT / "tests/data/empty.toml"),
                DASHBOARD_SECRET_KEY="bench", DASHBOARD_LOG_LEVEL="WARNING")


def flask(args: list[str], db: Path) -> None:
    subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT, env=env_for(db), check=True,
                   capture_output=True)


def fresh(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def build_job(users: int, cycles: int) -> Path:
    """A database holding one simulated job (cached)."""
    from dashboard.demo.simulate import write_log
    from dashboard.demo.truth import SimConfig

    db = OUT / f"notify-{users}-{cycles}.db"
    if db.exists():
        return db
    OUT.mkdir(parents=True, exist_ok=True)
    log = OUT / f"notify-{users}-{cycles}.jsonl"
    with open(log, "wb") as out:
        write_log(SimConfig(users=users, cycles=cycles, seed=7, job="bench", failure_rate=0.05), out)
    tmp = db.with_suffix(".building")
    fresh(tmp)
    flask(["init-db"], tmp)
    flask(["job", "add", "bench", "--recipient", "idm-team@example.com"], tmp)
    started = time.perf_counter()
    flask(["ingest", str(log), "--job", "bench", "--no-progress"], tmp)
    print(f"built the job's database ({log.stat().st_size / 1e6:,.0f} MB of log) in {time.perf_counter() - started:.0f} s")
    log.unlink()
    import sqlite3

    conn = sqlite3.connect(tmp)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    tmp.rename(db)
    return db


def in_process(db: Path):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from dashboard import create_app
    from dashboard.settings import load_settings

    settings = load_settings(env=env_for(db))
    return create_app(replace(settings, scheduler=replace(settings.scheduler, enabled=False),
                              reports=replace(settings.reports, recipients=("reports@example.com",))))


def time_report(source: Path, runs: int = 3) -> tuple[float, float, dict]:
    from sqlalchemy import delete, func, select

    from dashboard.admin.jobs import get_job
    from dashboard.db import db
    from dashboard.models import (
        Cycle,
        Exchange,
        Notification,
        ReportRun,
        ScimUser,
        Signature,
        UserCycle,
    )
    from dashboard.notify.reports import MAX_CYCLES, send_report_if_due
    from dashboard.queries.health import health_json

    scratch = OUT / "notify-scratch.db"
    fresh(scratch)
    shutil.copyfile(source, scratch)
    app = in_process(scratch)
    with app.app_context():
        settings = app.extensions["dashboard"]
        job = get_job("bench")
        last_end = db.session.scalar(select(func.max(Cycle.ended_us)).where(Cycle.job_id == job.id))
        now = datetime.fromtimestamp(last_end / 1e6, UTC) + timedelta(minutes=20)
        health_json(db.session, job, now, settings)  # the minute-by-minute evaluation judged them already

        def floor() -> int:
            rows = 0
            session = db.session
            cycles = session.execute(select(Cycle.__table__).where(Cycle.job_id == job.id)
                                     .order_by(Cycle.started_us)).all()
            rows += len(cycles)
            ids = [c.id for c in cycles][-MAX_CYCLES:]
            wanted = sorted(set(ids) | {c.id for c in cycles[max(len(cycles) - MAX_CYCLES - 1, 0):]})
            for cycle_id in wanted:
                rows += len(session.execute(select(UserCycle.user_id, UserCycle.outcome)
                                            .where(UserCycle.cycle_id == cycle_id)).all())
            for cycle_id in ids:
                rows += len(session.execute(select(Exchange.sig_id, Exchange.user_id)
                                            .where(Exchange.cycle_id == cycle_id, Exchange.sig_id.is_not(None))).all())
            rows += len(session.execute(select(ScimUser.__table__).where(ScimUser.job_id == job.id,
                                                                           ScimUser.state == "failing")).all())
            rows += len(session.execute(select(Signature.__table__).where(Signature.job_id == job.id)).all())
            session.rollback()
            return rows

        floors, reports, facts = [], [], {}
        for _ in range(runs):
            started = time.perf_counter()
            facts["rows read"] = floor()
            floors.append(time.perf_counter() - started)
            db.session.execute(delete(Notification))
            db.session.execute(delete(ReportRun))
            db.session.commit()
            started = time.perf_counter()
            run = send_report_if_due(db.session, job, now, settings, force=True)
            reports.append(time.perf_counter() - started)
            assert run is not None
            facts.update(cycles=run.cycles, users=db.session.scalar(select(func.count()).select_from(ScimUser)),
                         emails=run.recipients, document_kb=len(run.data) / 1000)
        db.engine.dispose()
    return statistics.median(reports), statistics.median(floors), facts


def build_jobs(count: int) -> Path:
    """`count` jobs, each with a healthy cycle and then one whose credentials were rejected."""
    import orjson
    from sqlalchemy import insert

    from dashboard.analysis.outcomes import empty_counts
    from dashboard.db import db
    from dashboard.models import Cycle, Job
    from dashboard.times import to_us

    path = OUT / "notify-jobs.db"
    fresh(path)
    flask(["init-db"], path)
    app = in_process(path)
    start = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    ok = empty_counts()
    ok["update"]["success"] = 10
    bad = empty_counts()
    bad["other"]["failure"] = 10
    with app.app_context():
        db.session.execute(insert(Job), [{"name": f"job-{n:04d}", "display_name": f"Tenant {n}",
                                          "notification_recipients": f"idm-{n}@example.com,helpdesk-{n}@example.com",
                                          "source_system": "Microsoft Entra ID", "target_system": "uniFLOW Online",
                                          "quarantine_overrides": "{}", "created_at": start} for n in range(count)])
        ids = db.session.scalars(db.select(Job.id)).all()
        rows = []
        for job_id in ids:
            for index, (counts, rejected) in enumerate(((ok, 0), (bad, 21))):
                begin = to_us(start + index * timedelta(minutes=40))
                rows.append({"job_id": job_id, "key": None, "started_us": begin, "ended_us": begin + 60_000_000,
                             "requests": 21, "failed_requests": rejected, "rejected_credentials": rejected,
                             "lookup_404s": 0, "connection_tests": 1, "reference_failures": 0, "users": 10,
                             "looked_up_users": 10, "counts": orjson.dumps(counts).decode(), "duration_ms_total": 1.0})
        db.session.execute(insert(Cycle), rows)
        db.session.commit()
        db.engine.dispose()
    return path


def time_queueing(path: Path) -> tuple[float, float, float, int]:
    from sqlalchemy import func, insert, select

    from dashboard.db import db
    from dashboard.models import Notification
    from dashboard.notify.alerts import evaluate_health

    app = in_process(path)
    now = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    with app.app_context():
        settings = app.extensions["dashboard"]
        started = time.perf_counter()
        queued = evaluate_health(db.session, now, settings)
        evaluate = time.perf_counter() - started
        started = time.perf_counter()
        again = evaluate_health(db.session, now + timedelta(minutes=1), settings)
        idle = time.perf_counter() - started
        assert again == 0
        sample = [dict(r._mapping) for r in db.session.execute(select(Notification.__table__))]
        for row in sample:
            row.pop("id")
            row["dedupe_key"] = "floor:" + row["dedupe_key"]
        started = time.perf_counter()
        db.session.execute(insert(Notification), sample)
        db.session.commit()
        floor = time.perf_counter() - started
        assert db.session.scalar(select(func.count()).select_from(Notification)) == 2 * queued
        db.engine.dispose()
    return evaluate, floor, idle, queued


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=1000)
    args = parser.parse_args()

    report, floor, facts = time_report(build_job(args.users, args.cycles))
    print(f"(a)  cycle report of {facts['cycles']} cycles, {facts['users']:,} users ({facts['rows read']:,} rows read, "
          f"{facts['document_kb']:,.0f} kB stored, {facts['emails']} email): {report * 1000:,.0f} ms")
    print(f"(a0) plain SELECT of the same rows: {floor * 1000:,.0f} ms")
    print(f"a/a0 = {report / floor:.2f}")

    evaluate, insert_floor, idle, queued = time_queueing(build_jobs(args.jobs))
    print(f"(b)  health evaluation of {args.jobs:,} jobs entering quarantine, {queued:,} emails queued: "
          f"{evaluate:,.2f} s ({evaluate / args.jobs * 1000:,.1f} ms per job)")
    print(f"(b0) executemany of {queued:,} outbox rows of the same size: {insert_floor * 1000:,.0f} ms")
    print(f"b/b0 = {evaluate / insert_floor:.1f}")
    print(f"(c)  the next minute's evaluation, nothing new: {idle:,.2f} s for {args.jobs:,} jobs "
          f"({idle / 60:.1%} of the minute)")


if __name__ == "__main__":
    main()
