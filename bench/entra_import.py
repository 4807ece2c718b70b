"""Benchmark: parsing Graph provisioning pages into ProvisioningEvents against decoding them alone.

    .venv/bin/python bench/entra_import.py [--records 100000] [--page-size 1000]

(a) decode: read every page file and orjson.loads it (the floor: nothing is looked at).
(b) parse:  read_events() on every page file: decode, validate, normalise, redact, and the
            dedupe key of each event (what the loader will need per record).
(c) import: what `flask ingest DIR` does, into a fresh SQLite database: (b), then user
            resolution, cycles, signatures, per-user outcomes and the batch commits
            (dashboard/ingest/entra.py `import_paths`, with the worker process `flask ingest` uses for
            large inputs, `ingest.workers`), one run (a second would only find duplicates).
All run in the same process, on the same files, after one warm-up pass each. Prints records/s,
the ratios to (a), and the database's size per record. Figures only. BENCH_OUT=<dir> puts the
generated pages and the database elsewhere than bench/out.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(os.environ.get("BENCH_OUT") or ROOT / "bench" / "out")
sys.path.insert(0, str(ROOT))


def pages(records: int, page_size: int) -> list[Path]:
    from dashboard.demo.entra_pages import write_pages

    directory = OUT / f"entra-pages-{records}-{page_size}"
    existing = sorted(directory.glob("page-*.json"))
    if existing and len(existing) == (records + page_size - 1) // page_size:
        return existing
    started = time.perf_counter()
    paths = write_pages(directory, records, page_size=page_size)
    print(f"generated {records:,} records in {len(paths)} pages in {time.perf_counter() - started:.1f} s -> {directory}")
    return paths


def decode(paths: list[Path]) -> tuple[float, int]:
    started = time.perf_counter()
    count = 0
    for path in paths:
        count += len(orjson.loads(path.read_bytes())["value"])
    return time.perf_counter() - started, count


def ours(paths: list[Path]) -> tuple[float, int, int]:
    from dashboard.formats.entra.parse import dedupe_key, read_events
    from dashboard.formats.entra.records import ProvisioningEvent

    started = time.perf_counter()
    count = problems = 0
    for path in paths:
        with open(path, "rb") as stream:
            for item in read_events(stream, "entra-graph"):
                if item.__class__ is ProvisioningEvent:
                    dedupe_key(item)
                    count += 1
                else:
                    problems += 1
    return time.perf_counter() - started, count, problems


def import_all(directory: Path) -> tuple[float, int, int]:
    """(seconds, accepted, database bytes) of importing the pages into a fresh SQLite database."""
    from dashboard import create_app
    from dashboard.admin.jobs import get_job
    from dashboard.db import db, upgrade_schema
    from dashboard.ingest.entra import import_paths
    from dashboard.ingest.scim import options_from
    from dashboard.settings import (
        AppSettings,
        DatabaseSettings,
        JobSettings,
        SchedulerSettings,
        Settings,
    )

    with tempfile.TemporaryDirectory(dir=OUT) as scratch:
        path = Path(scratch) / "entra.db"
        settings = Settings(app=AppSettings(secret_key="bench", demo_data=False),
                            database=DatabaseSettings(url=f"sqlite:///{path}"), scheduler=SchedulerSettings(enabled=False),
                            jobs=(JobSettings(name="bench"),))
        app = create_app(settings)
        upgrade_schema(app)
        with app.app_context():
            from dashboard.admin.jobs import sync_jobs

            sync_jobs(settings.jobs)
            options = options_from(settings.ingest, cycles=settings.cycles)
            started = time.perf_counter()
            result = import_paths(db.engine, get_job("bench"), [directory], "entra-graph", source=str(directory),
                                  via="cli", options=options)
            elapsed = time.perf_counter() - started
            with db.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            db.engine.dispose()
        size = sum(p.stat().st_size for p in Path(scratch).glob("entra.db*"))
    return elapsed, result.accepted, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each; the best is reported")
    args = parser.parse_args()
    paths = pages(args.records, args.page_size)
    size = sum(p.stat().st_size for p in paths)
    decode(paths[:5])
    ours(paths[:5])  # warm-up: imports, caches
    a = min(decode(paths)[0] for _ in range(args.repeat))
    runs = [ours(paths) for _ in range(args.repeat)]
    b = min(r[0] for r in runs)
    _, events, problems = runs[0]
    print(f"{args.records:,} Graph records, {len(paths)} page files, {size / 1e6:.1f} MB")
    print(f"(a) decode only (orjson.loads):        {a:6.2f} s  {args.records / a:>10,.0f} records/s")
    print(f"(b) read_events -> ProvisioningEvent:  {b:6.2f} s  {events / b:>10,.0f} records/s"
          f"  ({events:,} events, {problems} problems)")
    print(f"ratio b/a: {b / a:.1f}x the time of decoding alone")
    c, accepted, db_bytes = import_all(paths[0].parent)
    print(f"(c) import into SQLite (flask ingest): {c:6.2f} s  {accepted / c:>10,.0f} records/s  ({accepted:,} stored)")
    print(f"ratio c/a: {c / a:.1f}x the time of decoding alone; c/b: {c / b:.1f}x the time of parsing")
    print(f"database: {db_bytes / 1e6:.1f} MB, {db_bytes / max(accepted, 1):,.0f} bytes per record "
          f"({db_bytes / size:.0%} of the page files)")


if __name__ == "__main__":
    main()
