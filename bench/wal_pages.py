"""Diagnostic: which tables and indexes one ingest batch writes, read from the WAL's frames.

    .venv/bin/python bench/wal_pages.py [--lines 200000] [--batch 2000] [--log PATH]

Loads the first `--lines` lines of the simulated log (bench/ingest.py's, or `--log`) into a fresh
SQLite database, checkpoints it, then loads the next `--batch` lines as one batch with checkpoints
off, and maps every frame the WAL then holds to the table or index that owns its page (SQLite's
dbstat). Each frame is a 4 KiB page that the commit wrote and a checkpoint will write again: the
pages per line are what a batch costs beyond its own rows, and what grows with the database. The
figure to compare is pages per line against the `exchange` table's own pages per line.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
from collections import Counter
from itertools import islice
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--log", type=Path, default=None, help="a request log (default: bench/ingest.py's 1M log)")
    args = parser.parse_args()
    from ingest import generate  # bench/ingest.py: the same simulated log

    log = args.log or generate(1_000_000, 100_000)
    work = Path(tempfile.mkdtemp(prefix="wal-pages-"))
    db_path = work / "w.db"
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{db_path}", DASHBOARD_CONFIG=str(ROOT / "tests/data/empty.toml"),
               DASHBOARD_SECRET_KEY="bench")
    os.environ.update(env)
    flask = [sys.executable, "-m", "flask", "--app", "app"]
    subprocess.run([*flask, "init-db"], cwd=ROOT, env=env, check=True, capture_output=True)
    subprocess.run([*flask, "job", "add", "bench"], cwd=ROOT, env=env, check=True, capture_output=True)

    from sqlalchemy import event

    from dashboard import create_app
    from dashboard.admin.jobs import get_job
    from dashboard.db import db
    from dashboard.ingest import scim
    from dashboard.runtime import settings

    app = create_app()
    with open(log, "rb") as source, app.app_context():
        numbered = enumerate(source, start=1)
        job, options = get_job("bench"), scim.options_for(settings())
        scim.ingest_lines(db.engine, job, islice(numbered, args.lines), source="history", via="cli", options=options)
        db.engine.dispose()
        with sqlite3.connect(db_path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        @event.listens_for(db.engine, "connect")
        def _no_checkpoints(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

        scim.LARGE_INPUT_CHECKPOINT_PAGES = 0  # (the loader's own setting for large inputs: off too)
        batch = list(islice(numbered, args.batch))
        one = dataclasses.replace(options, batch_size=len(batch), workers=0)
        from dashboard import db as dbmod

        dbmod.CHECKPOINT_DELAY_SECONDS = 3600.0  # the background checkpointer waits: the frames stay
        scim.ingest_lines(db.engine, job, batch, source="batch", via="cli", options=one)
        shutil.copyfile(str(db_path) + "-wal", work / "batch.wal")
        count = len(batch)
    owner = dict((page, name) for name, page in sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
                 .execute("SELECT name, pageno FROM dbstat"))
    data = (work / "batch.wal").read_bytes()
    page_size = struct.unpack(">I", data[8:12])[0]
    pages: dict[int, str] = {}
    for offset in range(32, len(data) - 24 - page_size + 1, 24 + page_size):
        page = struct.unpack(">I", data[offset : offset + 4])[0]
        pages[page] = owner.get(page, "(new or free page)")
    by_name = Counter(pages.values())
    print(f"one batch of {count:,} lines after {args.lines:,}: {len(pages):,} distinct pages written "
          f"({len(pages) / count:.2f} per line)")
    own = by_name.get("exchange", 0) or 1
    for name, n in by_name.most_common():
        print(f"  {name:40s} {n:6,} pages  {n / count:5.2f} per line  {n / own:6.1f}x the exchange table's")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
