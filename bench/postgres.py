"""Benchmark: PostgreSQL at scale — ingest, pages, and concurrent pushers, each against a floor.

    .venv/bin/python bench/postgres.py [--exchanges 200000] [--jobs 100] [--database-url URL]
    .venv/bin/python bench/postgres.py --exchanges 10000000 --jobs 1000     # the full run (hours)

Without --database-url a throwaway cluster is started from the machine's PostgreSQL binaries
(/usr/lib/postgresql/*/bin, as scripts/test.sh does) on a free 127.0.0.1 port, and removed after.
With it, the database is emptied first (DROP SCHEMA public CASCADE): give it a scratch database.

1. Data: the simulator (dashboard/demo/simulate.py) writes `--exchanges` lines over `--jobs` jobs,
   one tenth of them in one big job (`bench-big`) so that the logs page can be read deep.
2. Ingest: `flask --app app ingest FILE` as a real process, records/s, against the floor: the same
   lines decoded with orjson and written with psycopg's COPY into a bare table with the exchange
   table's own indexes (same rows: job, dedupe key, time, method, status, blob...), same run.
3. Pages: after the scheduler's health evaluation (run once, as it runs every minute), each page
   through the WSGI app in process as a signed-in support user, median of
   `--runs`; floor: the newest 50 exchanges of the big job read with psycopg (one round trip).
   The deep logs page is read 10,000 pages deep (or as deep as the big job goes) and reported as
   a ratio to page 1.
4. Concurrency: the app served by `flask run` (threads) in its own process; 8 pusher threads POST
   a new simulated log in 200-line bodies to the push API while `flask ingest` loads another one;
   then every line is counted: nothing lost, nothing twice. Throughput against the COPY floor.
Figures only; nothing here asserts a time. Targets (issue 15): every page <= 150 ms median, deep
logs page <= 1.5x page 1.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import orjson

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(os.environ.get("BENCH_OUT", ROOT / "bench" / "out"))  # BENCH_OUT: another scratch folder
sys.path.insert(0, str(ROOT))

PUSHERS = 8
BODY_LINES = 200
BIG = "bench-big"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    """A PostgreSQL cluster in a temporary folder, like scripts/test.sh's; yields its URL."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name.split(".")[0]))
    if not bins:
        raise SystemExit("no PostgreSQL binaries in /usr/lib/postgresql/*/bin: give --database-url")
    pgbin = bins[-1]
    folder = Path(tempfile.mkdtemp(prefix="bench-pg."))
    as_pg: list[str] = []
    if os.getuid() == 0:
        if subprocess.run(["id", "postgres"], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
        shutil.chown(folder, "postgres")
        as_pg = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data = folder / "data"
    subprocess.run([*as_pg, str(pgbin / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"], check=True,
                   capture_output=True)
    subprocess.run([*as_pg, str(pgbin / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
                    f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c shared_buffers=256MB "
                    f"-c max_wal_size=4GB -c synchronous_commit=off", "start"], check=True, capture_output=True)
    try:
        subprocess.run([*as_pg, str(pgbin / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                        "bench"], check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/bench"
    finally:
        subprocess.run([*as_pg, str(pgbin / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def job_names(jobs: int) -> list[str]:
    return [BIG] + [f"bench-{n:04d}" for n in range(1, jobs)]


def generate(exchanges: int, jobs: int, *, tag: str = "main", seed: int = 7) -> Path:
    """`exchanges` simulated lines over `jobs` jobs (a tenth in the big job), cached in bench/out."""
    from dashboard.demo.simulate import write_log
    from dashboard.demo.truth import SimConfig

    path = OUT / f"pg-{tag}-{exchanges}-{jobs}.jsonl"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    names = job_names(jobs)
    big = exchanges // 10 if jobs > 1 else exchanges
    rest = (exchanges - big) // max(jobs - 1, 1)
    with open(path.with_suffix(".tmp"), "wb") as out:
        for n, name in enumerate(names):
            count = big if name == BIG else rest
            users = max(50, min(count // 5, 100_000))  # an initial cycle, then ~5 % change per cycle
            write_log(SimConfig(users=users, cycles=100_000, seed=seed + n, job=name, max_lines=count), out)
    path.with_suffix(".tmp").rename(path)
    print(f"generated {exchanges:,} lines over {jobs} jobs in {time.perf_counter() - started:.1f} s -> {path}")
    return path


def env_for(url: str) -> dict[str, str]:
    return dict(os.environ, DATABASE_URL=url, DASHBOARD_CONFIG=str(ROOT / "tests/data/empty.toml"),
                DASHBOARD_SECRET_KEY="bench", DASHBOARD_LOG_LEVEL="WARNING")


def flask(args: list[str], url: str, **kwargs: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT, env=env_for(url),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def run_flask(args: list[str], url: str) -> str:
    proc = flask(args, url)
    out, err = proc.communicate()
    if proc.returncode not in (0, 1):  # 1: some lines rejected (counted in the figures)
        raise SystemExit(f"flask {' '.join(args)} failed: {err.decode()[-3000:]}")
    return out.decode()


def app_for(url: str):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from dashboard import create_app
    from dashboard.settings import load_settings

    os.environ.update(env_for(url))
    settings = load_settings()
    return create_app(replace(settings, scheduler=replace(settings.scheduler, enabled=False)))


def add_jobs(url: str, names: list[str]) -> None:
    from dashboard.admin.jobs import add_job

    app = app_for(url)
    with app.app_context():
        for name in names:
            add_job(name, display_name=name)


# -- 2. ingest against a COPY floor ---------------------------------------------------------------


def copy_floor(url: str, log: Path, names: list[str]) -> tuple[float, int]:
    """orjson decode + COPY of the same rows into a bare table with the exchange table's indexes."""
    import psycopg

    from dashboard.formats import codec

    with psycopg.connect(url, autocommit=True) as conn:
        ids = dict(conn.execute("SELECT name, id FROM job").fetchall())
        conn.execute("DROP TABLE IF EXISTS floor_exchange")
        conn.execute("CREATE TABLE floor_exchange (LIKE exchange INCLUDING DEFAULTS INCLUDING IDENTITY)")
        conn.execute("ALTER TABLE floor_exchange ALTER COLUMN id DROP DEFAULT")  # not the exchange sequence
        conn.execute("ALTER TABLE floor_exchange ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY")
        for (definition,) in conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'exchange'").fetchall():
            name = definition.split(" INDEX ", 1)[1].split(" ON ", 1)[0]
            conn.execute(definition.replace(f" {name} ON ", f" floor_{name} ON ")
                         .replace(" public.exchange ", " public.floor_exchange "))
        columns = ("job_id", "dedupe", "ts_us", "method", "operation", "status", "failed", "duration_ms",
                   "request_id", "blob")
        started = time.perf_counter()
        count = 0
        with conn.transaction(), conn.cursor() as cursor, \
                cursor.copy(f"COPY floor_exchange ({', '.join(columns)}) FROM STDIN") as copy:
            with open(log, "rb") as source:
                for raw in source:
                    d = orjson.loads(raw)
                    key = int.from_bytes(hashlib.blake2b(d["request_id"].encode(), digest_size=8).digest(), "big",
                                         signed=True)
                    ts = datetime.fromisoformat(d["ts"].replace("Z", "+00:00"))
                    status = d["status"]
                    copy.write_row((ids[d["job"]], key, int(ts.timestamp() * 1_000_000), d["method"], "other",
                                    status, status >= 400, d.get("duration_ms"), d.get("request_id"),
                                    codec.pack({k: d.get(k) for k in ("path", "query", "request_headers",
                                                                      "request_body", "response_body")})))
                    count += 1
        rate = count / (time.perf_counter() - started)
        conn.execute("DROP TABLE floor_exchange")
    _ = names
    return rate, count


def ours(url: str, log: Path) -> tuple[float, int]:
    started = time.perf_counter()
    out = run_flask(["ingest", str(log), "--job", BIG, "--no-progress"], url)
    elapsed = time.perf_counter() - started
    accepted = int(out.strip().splitlines()[-1].split(" accepted")[0].rsplit(" ", 1)[-1])
    return accepted / elapsed, accepted


def evaluate_health(url: str) -> None:
    """What the scheduler does every minute (scheduler.run_health): record each job's judgement,
    so that a page judges only the cycles since (as in production), not the whole history."""
    from dashboard.scheduler import run_health

    app = app_for(url)
    run_health(app)
    with app.app_context():
        from dashboard.db import db

        db.engine.dispose()


# -- 3. pages -------------------------------------------------------------------------------------


def pages(url: str, runs: int) -> tuple[dict[str, float], float, int]:
    import psycopg
    from sqlalchemy import func, select

    from dashboard.admin.accounts import add_account, create_api_token
    from dashboard.db import db
    from dashboard.models import Exchange, Job, ScimUser

    app = app_for(url)
    with app.app_context():
        account = add_account("pages@example.com", "support", "bench-password")
        token = create_api_token(account)
        big_id = db.session.scalar(select(Job.id).where(Job.name == BIG))
        user = db.session.scalars(select(ScimUser).where(ScimUser.job_id == big_id, ScimUser.state == "failing")
                                  .limit(1)).first() or db.session.scalars(select(ScimUser).where(
                                      ScimUser.job_id == big_id).limit(1)).first()
        user_key = user.external_id or user.user_name or user.scim_id
        total = db.session.scalar(select(func.count()).select_from(Exchange).where(Exchange.job_id == big_id)) or 0
        offset = min(10_000 * 50, max(total - 60, 0))
        ts_us, exchange_id = db.session.execute(
            select(Exchange.ts_us, Exchange.id).where(Exchange.job_id == big_id)
            .order_by(Exchange.ts_us.desc(), Exchange.id.desc()).offset(offset).limit(1)).one()
        session = (account.id, account.session_key)
    depth = offset // 50
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["aid"], sess["sk"] = session
    listing = [
        ("overview", "/"),
        ("job page", f"/jobs/{BIG}"),
        ("cycle list", f"/jobs/{BIG}/cycles"),
        ("logs page 1", f"/jobs/{BIG}/logs"),
        (f"logs page {depth:,} deep", f"/jobs/{BIG}/logs?after={ts_us}.{exchange_id}"),
        ("logs page 1, failures", f"/jobs/{BIG}/logs?outcome=failure"),
        ("user timeline", f"/jobs/{BIG}/users/{user_key}"),
        ("users, failing", f"/jobs/{BIG}/users?state=failing"),
        ("health JSON", f"/api/v1/jobs/{BIG}/health"),
        ("cycles JSON", f"/api/v1/jobs/{BIG}/cycles"),
    ]
    with psycopg.connect(url) as conn:
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            conn.execute("SELECT id, ts_us, method, status, blob FROM exchange WHERE job_id = %s "
                         "ORDER BY ts_us DESC, id DESC LIMIT 50", (big_id,)).fetchall()
            samples.append(time.perf_counter() - started)
        floor = statistics.median(samples) * 1000
    results: dict[str, float] = {}
    for name, path in listing:
        headers = {"Authorization": f"Bearer {token}"} if path.startswith("/api/") else {}
        first = client.get(path, headers=headers)
        if first.status_code != 200:
            raise SystemExit(f"{path}: {first.status_code}")
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            client.get(path, headers=headers)
            times.append(time.perf_counter() - started)
        results[name] = statistics.median(times) * 1000
    with app.app_context():
        db.engine.dispose()
    return results, floor, depth


# -- 4. eight pushers and a CLI ingest --------------------------------------------------------------


def concurrent(url: str, push_log: Path, cli_log: Path) -> dict[str, Any]:
    from sqlalchemy import func, select

    from dashboard.admin.jobs import add_job, create_token
    from dashboard.db import db
    from dashboard.models import Exchange, Job

    app = app_for(url)
    with app.app_context():
        push_job = add_job("bench-push", display_name="pushed")
        add_job("bench-cli", display_name="cli")
        _, token = create_token(push_job)
    port = free_port()
    server = flask(["run", "--host", "127.0.0.1", "--port", str(port), "--with-threads"], url)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/login", timeout=2).read()
            break
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    lines = push_log.read_bytes().splitlines()
    bodies = [b"\n".join(lines[i:i + BODY_LINES]) for i in range(0, len(lines), BODY_LINES)]
    answers: list[dict] = []
    retries = [0]
    failures: list[str] = []

    def pusher(share: list[bytes]) -> None:
        for body in share:
            while True:
                request = urllib.request.Request(f"{base}/api/v1/jobs/bench-push/exchanges", data=body, method="POST",
                                                 headers={"Authorization": f"Bearer {token}"})
                try:
                    with urllib.request.urlopen(request, timeout=600) as response:
                        answers.append(orjson.loads(response.read()))
                    break
                except urllib.error.HTTPError as error:
                    if error.code == 503:
                        retries[0] += 1
                        time.sleep(float(error.headers.get("Retry-After", "1")) / 10)
                        continue
                    failures.append(f"{error.code} {error.read()[:200]!r}")
                    return

    started = time.perf_counter()
    cli = flask(["ingest", str(cli_log), "--job", "bench-cli", "--no-progress"], url)
    threads = [threading.Thread(target=pusher, args=(bodies[n::PUSHERS],)) for n in range(PUSHERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out, err = cli.communicate()
    elapsed = time.perf_counter() - started
    server.terminate()
    server.communicate()
    cli_lines = sum(1 for _ in open(cli_log, "rb"))
    with app.app_context():
        counts = dict(db.session.execute(select(Job.name, func.count(Exchange.id)).join(Exchange, Exchange.job_id == Job.id)
                                         .where(Job.name.in_(["bench-push", "bench-cli"])).group_by(Job.name)).all())
        distinct = dict(db.session.execute(select(Job.name, func.count(func.distinct(Exchange.request_id)))
                                           .join(Exchange, Exchange.job_id == Job.id)
                                           .where(Job.name.in_(["bench-push", "bench-cli"])).group_by(Job.name)).all())
        db.engine.dispose()
    return {"pushed_lines": len(lines), "cli_lines": cli_lines, "stored": counts, "distinct": distinct,
            "answers": len(answers), "bodies": len(bodies), "retries_503": retries[0], "failures": failures,
            "cli_rc": cli.returncode, "cli_err": err.decode()[-500:], "seconds": elapsed,
            "accepted": sum(a["accepted"] for a in answers)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exchanges", type=int, default=200_000)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--push-lines", type=int, default=40_000, help="lines the 8 pushers send (and the CLI ingests)")
    parser.add_argument("--database-url", default=None, help="a scratch PostgreSQL database (emptied first)")
    args = parser.parse_args()

    log = generate(args.exchanges, args.jobs)
    push_log = generate(args.push_lines, 1, tag="push", seed=1001)
    cli_log = generate(args.push_lines, 1, tag="cli", seed=2002)
    for path, job in ((push_log, "bench-push"), (cli_log, "bench-cli")):
        retagged = path.with_name(path.stem + f"-{job}.jsonl")
        if not retagged.exists():
            retagged.write_bytes(path.read_bytes().replace(f'"job":"{BIG}"'.encode(), f'"job":"{job}"'.encode()))
        if job == "bench-push":
            push_log = retagged
        else:
            cli_log = retagged

    with (throwaway_cluster() if args.database_url is None else _given(args.database_url)) as url:
        run_flask(["init-db"], url)
        names = job_names(args.jobs)
        add_jobs(url, names)
        floor_rate, floor_rows = copy_floor(url, log, names)
        rate, accepted = ours(url, log)
        print(f"\n== ingest: {args.exchanges:,} simulated exchanges over {args.jobs} jobs (PostgreSQL)")
        print(f"COPY floor (orjson + COPY, same rows, same indexes): {floor_rate:,.0f} records/s ({floor_rows:,} rows)")
        print(f"flask ingest:                                        {rate:,.0f} records/s ({accepted:,} accepted)")
        print(f"ingest / floor: {rate / floor_rate:.2f}")

        started = time.perf_counter()
        evaluate_health(url)
        print(f"health evaluated for {args.jobs} jobs (the scheduler's minute job) in {time.perf_counter() - started:.1f} s")

        results, floor, depth = pages(url, args.runs)
        print(f"\n== pages ({BIG}: a tenth of the exchanges); floor (psycopg, newest 50 rows): {floor:.2f} ms")
        print(f"{'page':<36}{'median ms':>10}{'x floor':>9}")
        for name, ms in results.items():
            print(f"{name:<36}{ms:>10.1f}{ms / floor:>9.0f}")
        deep = [v for k, v in results.items() if "deep" in k][0]
        print(f"deep ({depth:,} pages) / page 1: {deep / results['logs page 1']:.2f}   (target <= 1.5)")
        print(f"slowest page: {max(results.values()):.1f} ms   (target <= 150 ms)")

        figures = concurrent(url, push_log, cli_log)
        total = figures["pushed_lines"] + figures["cli_lines"]
        lost = {job: expected - figures["stored"].get(job, 0) for job, expected in
                (("bench-push", figures["pushed_lines"]), ("bench-cli", figures["cli_lines"]))}
        twice = {job: figures["stored"].get(job, 0) - figures["distinct"].get(job, 0) for job in lost}
        print(f"\n== {PUSHERS} pushers ({figures['pushed_lines']:,} lines in {figures['bodies']} bodies of "
              f"{BODY_LINES}) + flask ingest ({figures['cli_lines']:,} lines), at once")
        print(f"answered {figures['answers']}/{figures['bodies']} pushes, 503-and-retried {figures['retries_503']}, "
              f"failed {len(figures['failures'])}; CLI exit {figures['cli_rc']}")
        print(f"lost: {lost}; stored twice: {twice}")
        print(f"throughput: {total / figures['seconds']:,.0f} records/s together "
              f"({total / figures['seconds'] / floor_rate:.2f} x the COPY floor)")
        if figures["failures"] or any(lost.values()) or any(twice.values()) or figures["cli_rc"] != 0:
            print("NOT OK:", figures["failures"][:3], figures["cli_err"])
            raise SystemExit(1)


@contextmanager
def _given(url: str) -> Iterator[str]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    yield url


if __name__ == "__main__":
    main()
