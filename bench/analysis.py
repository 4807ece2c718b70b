"""Benchmark: incremental analysis and the JSON reads on a large database.

    .venv/bin/python bench/analysis.py [--lines 1000000] [--users 100000] [--skip-recompute]

(10M: `--lines 10000000 --skip-recompute`; building its database takes about half an hour.)

(a) ingesting 1,000 more exchanges into a database that holds `--lines` exchanges, against
(b) ingesting the same 1,000 into an empty database, in the same run: a/b (target <= 2). Each is
    the median of three, taken in turn (a, b, a, b, a, b), each on a fresh copy written to disk
    before it is timed.
(c) the JSON of health, current cycle and cycle list, served through the WSGI app in process:
    median of 30 requests each (target <= 50 ms).
(d) `recompute` of the whole job, in records/s.
The big database is built once with `flask ingest` and cached under bench/out/.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))
EXTRA = 1000


def generate(lines: int, users: int) -> tuple[Path, list[bytes]]:
    from dashboard.demo.simulate import simulate_lines
    from dashboard.demo.truth import SimConfig

    path = OUT / f"analysis-{lines}-{users}.jsonl"
    stream, _truth = simulate_lines(SimConfig(users=users, cycles=10_000, seed=7, job="bench", max_lines=lines + EXTRA))
    extra: list[bytes] = []
    OUT.mkdir(parents=True, exist_ok=True)
    write = not path.exists()
    with open(path.with_suffix(".tmp"), "wb") if write else open(os.devnull, "wb") as out:
        for n, line in enumerate(stream):
            if n < lines:
                out.write(line)
            else:
                extra.append(line)
    if write:
        path.with_suffix(".tmp").rename(path)
    return path, extra


def bench_config() -> Path:
    """Every default but the future tolerance, as in bench/ingest.py: a 10M-line simulated log
    runs weeks past today, and its lines (and the 1,000 added after them) would be rejected
    as dated in the future."""
    path = OUT / "analysis.toml"
    OUT.mkdir(parents=True, exist_ok=True)
    path.write_text("[ingest]\nfuture_tolerance_minutes = 52560000  # 100 years\n")
    return path


def env_for(db: Path) -> dict[str, str]:
    return dict(os.environ, DATABASE_URL=f"sqlite:///{db}", DASHBOARD_CONFIG=str(bench_config()),
                DASHBOARD_SECRET_KEY="bench", DASHBOARD_LOG_LEVEL="WARNING")


def flask(args: list[str], db: Path) -> None:
    subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT, env=env_for(db), check=True,
                   capture_output=True)


def build(log: Path, lines: int) -> Path:
    db = OUT / f"analysis-{lines}.db"
    if db.exists():
        return db
    tmp = db.with_suffix(".building")
    for suffix in ("", "-wal", "-shm"):
        Path(str(tmp) + suffix).unlink(missing_ok=True)
    flask(["init-db"], tmp)
    flask(["job", "add", "bench"], tmp)
    started = time.perf_counter()
    flask(["ingest", str(log), "--job", "bench", "--no-progress"], tmp)
    print(f"built the {lines:,}-exchange database in {time.perf_counter() - started:.0f} s")
    import sqlite3

    conn = sqlite3.connect(tmp)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    tmp.rename(db)
    return db


def empty_db() -> Path:
    db = OUT / "analysis-empty.db"
    if not db.exists():
        flask(["init-db"], db)
        flask(["job", "add", "bench"], db)
    return db


def in_process(db: Path):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from dashboard import create_app
    from dashboard.settings import load_settings

    settings = load_settings(env=env_for(db))
    return create_app(replace(settings, scheduler=replace(settings.scheduler, enabled=False)))


def scratch_copy(source: Path) -> Path:
    """A fresh copy of `source` to measure on (each measurement starts from the same database)."""
    scratch = OUT / "scratch.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(scratch) + suffix).unlink(missing_ok=True)
    shutil.copyfile(source, scratch)
    # Written to disk before anything is timed: otherwise the kernel writes the copy's pages back
    # (6 GB at 10M) while the increment reads its own, and the figure measures the disk's queue.
    with open(scratch, "rb+") as copy:
        os.fsync(copy.fileno())
    return scratch


def time_increments(sources: list[Path], extra: list[bytes], runs: int = 3) -> list[float]:
    """The median time of adding `extra` to a fresh copy of each source, the sources taken in turn
    (a, b, a, b...): both sides of the ratio see the same machine (page cache, other load)."""
    times: list[list[float]] = [[] for _ in sources]
    for _ in range(runs):
        for index, source in enumerate(sources):
            times[index].append(time_increment(source, extra))
    return [statistics.median(each) for each in times]


def time_increment(source: Path, extra: list[bytes]) -> float:
    from dashboard import runtime
    from dashboard.admin.jobs import get_job
    from dashboard.db import db
    from dashboard.ingest.scim import ingest_lines, options_for

    app = in_process(scratch_copy(source))
    with app.app_context():
        job = get_job("bench")
        options = options_for(runtime.settings())
        started = time.perf_counter()
        ingest_lines(db.engine, job, enumerate(extra, start=1), source="bench", via="cli", options=options)
        elapsed = time.perf_counter() - started
        db.engine.dispose()
    return elapsed


def time_reads(source: Path) -> dict[str, float]:
    from dashboard.admin.accounts import add_account, create_api_token
    from dashboard.db import db

    app = in_process(scratch_copy(source))
    with app.app_context():
        token = create_api_token(add_account("bench@example.com", "support", "bench-password"))
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    results = {}
    for name, url in (("health", "/api/v1/jobs/bench/health"), ("current cycle", "/api/v1/jobs/bench/cycles/current"),
                      ("cycle list", "/api/v1/jobs/bench/cycles")):
        client.get(url, headers=headers)  # the first read judges the completed cycles once
        samples = []
        for _ in range(30):
            started = time.perf_counter()
            response = client.get(url, headers=headers)
            samples.append(time.perf_counter() - started)
            assert response.status_code == 200, response.data
        results[name] = statistics.median(samples) * 1000
    with app.app_context():
        db.engine.dispose()
    return results


def time_recompute(source: Path) -> tuple[int, float]:
    from dashboard.admin.jobs import get_job
    from dashboard.db import db
    from dashboard.tracking.rebuild import rebuild

    app = in_process(scratch_copy(source))
    with app.app_context():
        job = get_job("bench")
        started = time.perf_counter()
        count = rebuild(db.engine, job.id, gap_us=15 * 60 * 1_000_000)
        return count, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--skip-recompute", action="store_true")
    args = parser.parse_args()
    log, extra = generate(args.lines, args.users)
    big = build(log, args.lines)
    a, b = time_increments([big, empty_db()], extra)
    print(f"(a) +{EXTRA:,} exchanges into {args.lines:,}: {a * 1000:,.0f} ms")
    print(f"(b) the same {EXTRA:,} into an empty database: {b * 1000:,.0f} ms")
    print(f"a/b = {a / b:.2f}   (target <= 2)")
    for name, ms in time_reads(big).items():
        print(f"(c) {name} JSON, median of 30: {ms:,.1f} ms   (target <= 50 ms)")
    if not args.skip_recompute:
        count, seconds = time_recompute(big)
        print(f"(d) recompute: {count:,} exchanges in {seconds:,.1f} s = {count / seconds:,.0f} records/s")


if __name__ == "__main__":
    main()
