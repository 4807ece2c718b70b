"""Eight pushers and a CLI ingest at once, all offering the same lines: nothing lost, nothing twice.

The app is served for real (Werkzeug, threaded) on 127.0.0.1; eight threads POST the simulated
log in small bodies to the push API while `flask ingest` loads the whole file in another process.
A push answered 503 (SQLite busy beyond its timeout, the database away) carries Retry-After and
is sent again, as a shipper does. At the end every line is stored exactly once, and the analysis
agrees with the same file ingested alone into a new database.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import orjson
from sqlalchemy import func, select

from dashboard import create_app
from dashboard.admin.jobs import create_token, get_job
from dashboard.db import db, upgrade_schema
from dashboard.demo.simulate import simulate_lines
from dashboard.demo.truth import SimConfig
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.models import Exchange, ScimUser
from tests.local_http import serving_app

ROOT = Path(__file__).resolve().parents[2]
JOB = "uniflow-prod"
PUSHERS = 8
BODY_LINES = 40


def push_all(base: str, token: str, bodies: list[bytes], results: list[dict], errors: list[str]) -> None:
    for body in bodies:
        for _attempt in range(200):
            request = urllib.request.Request(f"{base}/api/v1/jobs/{JOB}/exchanges", data=body, method="POST",
                                             headers={"Authorization": f"Bearer {token}",
                                                      "Content-Type": "application/x-ndjson"})
            try:
                with urllib.request.urlopen(request, timeout=120) as response:
                    results.append(orjson.loads(response.read()))
                    break
            except urllib.error.HTTPError as answer:
                if answer.code != 503 or "Retry-After" not in answer.headers:
                    errors.append(f"{answer.code}: {answer.read()[:300]!r}")
                    return
                time.sleep(0.05)  # a shipper waits Retry-After; the test need not
        else:
            errors.append("still 503 after 200 attempts")


def test_eight_pushers_and_a_cli_ingest_store_every_line_once(app, settings, tmp_path, subprocess_env,  # type: ignore[no-untyped-def]
                                                              fresh_database_url):
    generated, _ = simulate_lines(SimConfig(users=80, cycles=3, seed=11, job=JOB, failure_rate=0.1))
    lines = list(generated)
    log = tmp_path / "scim.jsonl"
    log.write_bytes(b"\n".join(lines) + b"\n")
    _, token = create_token(get_job(JOB))
    bodies = [b"\n".join(lines[i:i + BODY_LINES]) for i in range(0, len(lines), BODY_LINES)]
    shares = [bodies[n::PUSHERS] for n in range(PUSHERS)]
    results: list[dict] = []
    errors: list[str] = []

    web = create_app(settings)
    try:
        with serving_app(web) as base:
            cli = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "ingest", str(log), "--job", JOB],
                                   cwd=ROOT, env=subprocess_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            threads = [threading.Thread(target=push_all, args=(base, token, share, results, errors))
                       for share in shares]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            out, err = cli.communicate(timeout=600)
        time.sleep(0.5)  # the server's request threads end their app contexts after the last answer
    finally:
        with web.app_context():
            db.engine.dispose()

    assert errors == []
    assert cli.returncode == 0, err.decode()
    assert b"Traceback" not in err
    assert len(results) == len(bodies)
    pushed = sum(r["accepted"] + r["duplicates"] for r in results)
    assert pushed == len(lines)
    assert sum(r["rejected"] for r in results) == 0
    db.session.rollback()
    stored = db.session.scalar(select(func.count()).select_from(Exchange))
    assert stored == len(lines)  # each line once: none lost, none twice
    assert db.session.scalar(select(func.count(func.distinct(Exchange.request_id)))) == len(lines)
    # between the eight pushers and the CLI, every line was accepted exactly once
    cli_accepted = int(out.decode().split(" accepted")[0].split()[-1])
    assert sum(r["accepted"] for r in results) + cli_accepted == len(lines)

    # the same file ingested alone: the same people
    alone = create_app(replace(settings, database=replace(settings.database, url=fresh_database_url)))
    upgrade_schema(alone)
    with alone.app_context():
        from dashboard.admin.jobs import sync_jobs  # (the fresh database's job, as the app fixture adds it)

        try:
            sync_jobs(settings.jobs)
            ingest_lines(db.engine, get_job(JOB), enumerate(lines, start=1), source="alone", via="cli",
                         options=options_from(settings.ingest, cycles=settings.cycles))
            people_alone = sorted(db.session.scalars(select(ScimUser.user_name)))
        finally:
            db.session.remove()
            db.engine.dispose()
    assert sorted(db.session.scalars(select(ScimUser.user_name))) == people_alone
