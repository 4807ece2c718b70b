"""Benchmark: `flask ingest` against a naive floor measured in the same run.

    .venv/bin/python bench/ingest.py [--lines 1000000] [--users 100000]

(a) floor: decode every line with orjson and insert the same columns, with the bodies and
    headers as JSON text, through plain sqlite3.executemany into a table with the equivalent
    indexes (unique dedupe key per job, job+time, user+time), same pragmas, same batch size.
(b) ours: `flask --app app ingest FILE --job bench` as a real process into a fresh SQLite file.
Prints records/s of both, the ratio b/a, the peak RSS of (b) (summed over its process group: the
ingesting process and its workers),
and database bytes per record against the raw log. Then the CPU budget: what (b) may spend per
line for b/a = 1 on this machine's processors, against what the preparation of a line costs
alone (parse, redact, classify, pack: measured here, in one process, on the log's first 30,000
lines), so that the b/a figure can be read. Figures only; nothing here asserts a time.
(b) runs with `[ingest] future_tolerance_minutes` at 100 years (see bench_config).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import resource
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(os.environ.get("BENCH_OUT", ROOT / "bench" / "out"))  # BENCH_OUT: another scratch folder
sys.path.insert(0, str(ROOT))


def generate(lines: int, users: int) -> Path:
    from dashboard.demo.simulate import write_log
    from dashboard.demo.truth import SimConfig

    path = OUT / f"sim-{lines}-{users}.jsonl"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    config = SimConfig(users=users, cycles=10_000, seed=7, job="bench", max_lines=lines)
    with open(path.with_suffix(".tmp"), "wb") as out:
        write_log(config, out)
    path.with_suffix(".tmp").rename(path)
    print(f"generated {lines:,} lines in {time.perf_counter() - started:.1f} s -> {path}")
    return path


def floor(log: Path, db_path: Path, batch: int = 2000) -> tuple[float, int, float]:
    db_path.unlink(missing_ok=True)
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE exchange (id INTEGER PRIMARY KEY, job_id INTEGER, dedupe INTEGER, ts TEXT, method TEXT,"
        " path TEXT, query TEXT, status INTEGER, duration_ms REAL, request_id TEXT, client TEXT, user_name TEXT,"
        " request_headers TEXT, request_body TEXT, response_body TEXT)"
    )
    conn.execute("CREATE UNIQUE INDEX uq ON exchange (job_id, dedupe)")
    conn.execute("CREATE INDEX ix_ts ON exchange (job_id, ts)")
    conn.execute("CREATE INDEX ix_user ON exchange (user_name, ts)")
    started, cpu = time.perf_counter(), _cpu(resource.RUSAGE_SELF)
    rows = []
    count = 0
    dumps = orjson.dumps
    with open(log, "rb") as source:
        for raw in source:
            d = orjson.loads(raw)
            body = d.get("request_body")
            key = int.from_bytes(hashlib.blake2b(d["request_id"].encode(), digest_size=8).digest(), "big", signed=True)
            rows.append((
                1, key, d["ts"], d["method"], d["path"], d.get("query"), d["status"], d.get("duration_ms"),
                d.get("request_id"), d.get("client"), body.get("userName") if isinstance(body, dict) else None,
                dumps(d.get("request_headers")), dumps(body), dumps(d.get("response_body")),
            ))
            if len(rows) >= batch:
                with conn:
                    conn.executemany("INSERT INTO exchange VALUES (NULL,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
                count += len(rows)
                rows = []
    with conn:
        conn.executemany("INSERT INTO exchange VALUES (NULL,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    count += len(rows)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return count / (time.perf_counter() - started), count, _cpu(resource.RUSAGE_SELF) - cpu


STAGE_LINES = 30_000


def stages(log: Path, lines: int = STAGE_LINES) -> dict[str, float]:
    """Microseconds of CPU per line of each step of a line's preparation (prepare.py), measured
    step by step in this process on the first `lines` lines, with the garbage collector set as in
    a worker; "all" is Preparer.prepare, every step at once."""
    import gc
    from itertools import islice

    from dashboard.formats import codec
    from dashboard.formats.scim.classify import classify
    from dashboard.formats.scim.parse import parse_line
    from dashboard.formats.scim.redact import redact
    from dashboard.ingest.prepare import Preparer, blob_of
    from dashboard.ingest.scim import options_from
    from dashboard.settings import IngestSettings

    rules = options_from(IngestSettings()).rules
    with open(log, "rb") as source:
        numbered = list(enumerate(islice(source, lines), 1))
    before = gc.get_threshold()
    gc.set_threshold(100_000, *before[1:])  # as a worker does (prepare.serve)
    try:
        def timed(step, items):  # type: ignore[no-untyped-def]
            started = time.process_time()
            out = [step(item) for item in items]
            return out, (time.process_time() - started) / len(items) * 1e6

        parsed, parse_us = timed(lambda item: parse_line(*item), numbered)
        exchanges = [item for item in parsed if item is not None and hasattr(item, "request_body")]
        clean, redact_us = timed(lambda item: redact(item, rules), exchanges)
        _, classify_us = timed(lambda item: classify(item, guid_lookups_are_tests=True), clean)
        _, pack_us = timed(lambda item: codec.pack(blob_of(item)), clean)
        preparer = Preparer(rules=rules, guid_lookups_are_tests=True, job_id=1, job_name="bench")
        started = time.process_time()
        for start in range(0, len(numbered), 500):
            preparer.prepare(numbered[start : start + 500])
        all_us = (time.process_time() - started) / len(numbered) * 1e6
    finally:
        gc.set_threshold(*before)
    return {"parse": parse_us, "redact": redact_us, "classify": classify_us, "pack": pack_us, "all": all_us}


def bench_config() -> Path:
    """Every default but the future tolerance: the simulator's log starts on 2026-11-28 and a
    long one runs weeks ahead of today (10M lines end on 2026-12-28), lines the ingest would
    rightly reject as dated in the future (then it measures rejects, not ingest)."""
    path = OUT / "bench.toml"
    OUT.mkdir(parents=True, exist_ok=True)
    path.write_text("[ingest]\nfuture_tolerance_minutes = 52560000  # 100 years\n")
    return path


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def ours(log: Path, db_path: Path) -> tuple[float, int, str, float]:
    for suffix in ("", "-wal", "-shm"):
        Path(str(db_path) + suffix).unlink(missing_ok=True)
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{db_path}", DASHBOARD_CONFIG=str(bench_config()),
               DASHBOARD_SECRET_KEY="bench")
    flask = [sys.executable, "-m", "flask", "--app", "app"]
    subprocess.run([*flask, "init-db"], cwd=ROOT, env=env, check=True, capture_output=True)
    subprocess.run([*flask, "job", "add", "bench"], cwd=ROOT, env=env, check=True, capture_output=True)
    started = time.perf_counter()
    proc = subprocess.Popen([*flask, "ingest", str(log), "--job", "bench", "--no-progress"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    group = GroupRss(proc.pid)
    group.start()
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    group.stop()
    out = proc.stdout.read().decode() if proc.stdout else ""
    if status != 0:
        raise SystemExit(f"ingest failed ({status}): {proc.stderr.read().decode() if proc.stderr else ''}")
    accepted = int(out.split(" accepted")[0].rsplit(" ", 1)[-1])
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    # (Not usage.ru_maxrss: a child's starts at its parent's resident size when it forks, and this
    # process holds hundreds of MB after generating the log: it once read as the ingest's own.)
    return accepted / elapsed, accepted, (f"{group.peak / 2**20:.0f} MB, the whole process group sampled every 20 ms"
                                          f" (the ingesting process alone: {group.leader_peak / 2**20:.0f} MB)"), \
        usage.ru_utime + usage.ru_stime


class GroupRss(threading.Thread):
    """The peak of the summed resident memory of every process in a process group (Linux /proc)."""

    def __init__(self, pgid: int) -> None:
        super().__init__(daemon=True)
        self.pgid, self.peak, self.leader_peak, self._done = pgid, 0, 0, threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")

    def run(self) -> None:
        while not self._done.wait(0.02):
            total = 0
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    stat = Path(f"/proc/{pid}/stat").read_text()
                    if int(stat.rsplit(")", 1)[1].split()[2]) != self.pgid:
                        continue
                    resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * self._page
                    total += resident
                    if int(pid) == self.pgid:
                        self.leader_peak = max(self.leader_peak, resident)
                except (OSError, ValueError, IndexError):
                    continue  # gone meanwhile
            self.peak = max(self.peak, total)

    def stop(self) -> None:
        self._done.set()
        self.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    args = parser.parse_args()
    log = generate(args.lines, args.users)
    raw_size = log.stat().st_size
    floor_db, our_db = OUT / "floor.db", OUT / "ours.db"
    a, count_a, cpu_a = floor(log, floor_db)
    b, count_b, rss, cpu_b = ours(log, our_db)
    our_size = sum(Path(str(our_db) + s).stat().st_size for s in ("", "-wal") if Path(str(our_db) + s).exists())
    print(f"log: {count_a:,} lines, {raw_size / 1e6:,.1f} MB")
    print(f"(a) floor, orjson + sqlite3.executemany: {a:,.0f} records/s, db {floor_db.stat().st_size / 1e6:,.1f} MB")
    print(f"(b) flask ingest:                        {b:,.0f} records/s ({count_b:,} accepted)")
    print(f"b/a = {b / a:.2f}   (target >= 1.0)")
    print(f"CPU seconds per 100,000 records (user + system, workers included; steadier than wall time on a busy"
          f" machine): (a) {cpu_a / count_a * 1e5:.1f}, (b) {cpu_b / max(count_b, 1) * 1e5:.1f}: (b) costs"
          f" {cpu_b / count_b / (cpu_a / count_a):.1f}x the floor's CPU per record")
    print(f"peak RSS of (b): {rss}   (target <= 200 MB)")
    print(f"database: {our_size / 1e6:,.1f} MB, {our_size / max(count_b, 1):,.0f} bytes/record, "
          f"{our_size / raw_size:.1%} of the raw log   (target <= 40%)")
    processors = len(os.sched_getaffinity(0))
    floor_us, ours_us = cpu_a / count_a * 1e6, cpu_b / max(count_b, 1) * 1e6
    step = stages(log)
    print(f"CPU budget: (a) spends {floor_us:.1f} us of CPU per line on one processor; for b/a = 1, (b) may"
          f" spend at most {processors} x {1e6 / a:.1f} us = {processors * 1e6 / a:.1f} us per line on all"
          f" {processors} (with no idle time at all); it spends {ours_us:.1f} us")
    print(f"  preparing a line, before any database work (per line, one process, first {STAGE_LINES:,} lines):"
          f" parse {step['parse']:.1f} + redact {step['redact']:.1f} + classify {step['classify']:.1f}"
          f" + pack {step['pack']:.1f} us; Preparer.prepare, all of it: {step['all']:.1f} us"
          f" = {step['all'] / (processors * 1e6 / a):.0%} of the budget")


if __name__ == "__main__":
    main()
