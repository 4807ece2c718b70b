"""Benchmark: server-side time of the dashboard's pages on a large SQLite database.

    .venv/bin/python bench/pages.py [--lines 1000000] [--users 100000] [--runs 15]

Builds (once, cached under bench/out/, shared with bench/analysis.py) a database of `--lines`
simulated exchanges and their users, then requests each page through the WSGI app in process as a
signed-in support user: median over `--runs` requests, split into database time (the time spent
in cursor.execute, measured by SQLAlchemy events) and the rest (Python, Jinja rendering). The floor,
measured in the same run, is a plain sqlite3 query of the newest 50 exchanges; every figure is
also printed as a ratio to it. Targets: every page <= 150 ms (aim 50 ms); the logs page 10,000
pages deep within 1.5x of page 1.
"""
from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from analysis import OUT, build, env_for, generate, in_process  # noqa: E402


def floor_ms(db: Path, runs: int) -> float:
    conn = sqlite3.connect(db)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        conn.execute("SELECT id, ts_us, method, status, blob FROM exchange WHERE job_id = 1 "
                     "ORDER BY ts_us DESC, id DESC LIMIT 50").fetchall()
        samples.append(time.perf_counter() - started)
    conn.close()
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    log, _extra = generate(args.lines, args.users)
    db_path = build(log, args.lines)

    from sqlalchemy import event, func, select

    from dashboard.admin.accounts import add_account, create_api_token
    from dashboard.db import db
    from dashboard.models import Exchange, ScimUser

    app = in_process(db_path)
    with app.app_context():
        from dashboard.models import Account

        if db.session.scalar(select(Account).where(Account.email == "pages@example.com")) is None:
            add_account("pages@example.com", "support", "bench-password")
        token = create_api_token(db.session.scalar(select(Account).where(Account.email == "pages@example.com")))
        rows = db.session.scalar(select(func.count()).select_from(Exchange))
        user = db.session.scalars(select(ScimUser).where(ScimUser.state == "failing").limit(1)).first() \
            or db.session.scalars(select(ScimUser).limit(1)).first()
        user_key = user.user_name or user.scim_id
        db_seconds = [0.0]

        @event.listens_for(db.engine, "before_cursor_execute")
        def _before(conn, cursor, statement, params, context, many):  # type: ignore[no-untyped-def]
            conn.info["t0"] = time.perf_counter()

        @event.listens_for(db.engine, "after_cursor_execute")
        def _after(conn, cursor, statement, params, context, many):  # type: ignore[no-untyped-def]
            db_seconds[0] += time.perf_counter() - conn.info.pop("t0", time.perf_counter())

    client = app.test_client()
    with client.session_transaction() as sess:  # sign in as the support account
        with app.app_context():
            account = db.session.scalar(select(Account).where(Account.email == "pages@example.com"))
            sess["aid"], sess["sk"] = account.id, account.session_key

    def deep_cursor(query: str) -> str:
        # Walk 10,000 pages the way a person clicking "older" would arrive there: take the cursor
        # of the 500,000th newest matching row directly (the page itself is what is timed).
        with app.app_context():
            q = select(Exchange.ts_us, Exchange.id).where(Exchange.job_id == 1)
            if query == "failure":
                q = q.where((Exchange.status == 0) | (Exchange.status >= 400))
            total = db.session.scalar(select(func.count()).select_from(q.subquery()))
            offset = min(10_000 * 50, max(total - 60, 0))
            ts_us, exchange_id = db.session.execute(q.order_by(Exchange.ts_us.desc(), Exchange.id.desc())
                                                    .offset(offset).limit(1)).one()
            return f"{ts_us}.{exchange_id}", offset // 50

    cursor_all, depth_all = deep_cursor("all")
    cursor_fail, depth_fail = deep_cursor("failure")
    pages = [
        ("overview", "/"),
        ("job page", "/jobs/bench"),
        ("cycle list", "/jobs/bench/cycles"),
        ("logs page 1", "/jobs/bench/logs"),
        (f"logs page {depth_all:,} deep", f"/jobs/bench/logs?after={cursor_all}"),
        ("logs page 1, failures", "/jobs/bench/logs?outcome=failure"),
        (f"logs page {depth_fail:,} deep, failures", f"/jobs/bench/logs?outcome=failure&after={cursor_fail}"),
        ("user timeline", f"/jobs/bench/users/{user_key}"),
        ("users, failing", "/jobs/bench/users?state=failing"),
        ("health JSON", "/api/v1/jobs/bench/health"),
    ]
    floor = floor_ms(db_path, args.runs)
    print(f"database: {rows:,} exchanges; floor (sqlite3, newest 50 rows): {floor:.2f} ms")
    print(f"{'page':<36}{'median ms':>10}{'db ms':>9}{'render ms':>11}{'x floor':>9}")
    results = {}
    for name, url in pages:
        headers = {"Authorization": f"Bearer {token}"} if url.startswith("/api/") else {}
        client.get(url, headers=headers)
        totals, dbs = [], []
        for _ in range(args.runs):
            db_seconds[0] = 0.0
            started = time.perf_counter()
            response = client.get(url, headers=headers)
            totals.append(time.perf_counter() - started)
            dbs.append(db_seconds[0])
            assert response.status_code == 200, (url, response.status_code)
        total, database = statistics.median(totals) * 1000, statistics.median(dbs) * 1000
        results[name] = total
        print(f"{name:<36}{total:>10.1f}{database:>9.1f}{total - database:>11.1f}{total / floor:>9.0f}")
    deep = [v for k, v in results.items() if "deep" in k and "failures" not in k][0]
    deep_fail = [v for k, v in results.items() if "deep" in k and "failures" in k][0]
    print(f"deep/page 1: {deep / results['logs page 1']:.2f}; failures deep/page 1: "
          f"{deep_fail / results['logs page 1, failures']:.2f}   (target <= 1.5)")
    print(f"slowest page: {max(results.values()):.1f} ms   (target <= 150 ms, aim 50 ms)")
    _ = (OUT, env_for)


if __name__ == "__main__":
    main()
