"""`flask backup` and `flask restore` as real processes, on SQLite and PostgreSQL (docs/backup.md)."""
from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask import Flask
from sqlalchemy import func, select

from dashboard import create_app
from dashboard.admin import accounts
from dashboard.admin.accounts import add_account, create_api_token
from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.demo.simulate import simulate_lines
from dashboard.demo.truth import SimConfig
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.models import Account, Exchange
from dashboard.settings import Settings
from tests.cli.test_cli import write_log

ROOT = Path(__file__).resolve().parents[2]
JOB = "/api/v1/jobs/uniflow-prod"
PAGES = ("/cycles?limit=500", "/users?limit=1000", "/signatures", "/health", "/report?cycles=3")


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch):  # type: ignore[no-untyped-def]
    # Argon2 with its default cost takes half a second per hash; these tests are not about that.
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def flask(args: list[str], env: dict[str, str], **kwargs: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def run(args: list[str], env: dict[str, str]) -> str:
    proc = flask(args, env)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    return out.decode()


def demo_data(app: Flask, settings: Settings) -> None:
    lines, truth = simulate_lines(SimConfig(users=40, cycles=3, seed=7, job="uniflow-prod", failure_rate=0.1))
    ingest_lines(db.engine, get_job("uniflow-prod"), enumerate(lines, start=1), source="sim.jsonl", via="cli",
                 options=options_from(settings.ingest, cycles=settings.cycles))
    moment = truth.cycles[-1].ended_at + timedelta(minutes=30)
    app.extensions["clock"] = lambda: moment


def counts() -> dict[str, int]:
    db.session.rollback()
    return {t.name: db.session.scalar(select(func.count()).select_from(t)) or 0 for t in db.metadata.sorted_tables}


def pages(app: Flask) -> dict[str, Any]:
    """What the API shows (read in `app`'s own context: its database)."""
    with app.app_context():
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {create_api_token(add_account_once())}"
        out = {}
        for page in PAGES:
            response = client.get(JOB + page)
            assert response.status_code == 200, (page, response.json)
            out[page] = response.json
        db.session.remove()
        return out


def add_account_once():  # type: ignore[no-untyped-def]
    found = db.session.scalar(select(Account).where(Account.email == "reader@example.com"))
    return found or add_account("reader@example.com", "admin", "a long password")


def restored_app(app: Flask, settings: Settings, url: str) -> Flask:
    other = create_app(replace(settings, database=replace(settings.database, url=url)))
    other.extensions["clock"] = app.extensions["clock"]
    return other


def test_a_backup_restores_into_a_new_database_with_the_same_rows_and_pages(  # type: ignore[no-untyped-def]
        app, settings, tmp_path, subprocess_env, fresh_database_url):
    demo_data(app, settings)
    shown = pages(app)
    before = counts()
    archive = tmp_path / "backups" / "dashboard.backup"

    assert "backed up the" in run(["backup", str(archive)], subprocess_env)
    assert archive.stat().st_mode & 0o077 == 0  # the backup is readable by its owner only
    assert "restored the" in run(["restore", str(archive)], dict(subprocess_env, DATABASE_URL=fresh_database_url))

    other = restored_app(app, settings, fresh_database_url)
    try:
        with other.app_context():
            assert counts() == before
            db.session.remove()
        assert pages(other) == shown
    finally:
        with other.app_context():
            db.engine.dispose()


def test_a_backup_taken_during_an_ingest_is_consistent_and_the_ingest_completes_it(  # type: ignore[no-untyped-def]
        app, settings, tmp_path, subprocess_env, fresh_database_url):
    demo_data(app, settings)
    start = counts()["exchange"]
    log = write_log(tmp_path / "more.jsonl", 20_000)
    archive = tmp_path / "during.backup"

    ingest = flask(["ingest", str(log), "--job", "uniflow-prod"], subprocess_env)
    deadline = time.monotonic() + 120
    while counts()["exchange"] == start and ingest.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    run(["backup", str(archive)], subprocess_env)
    out, err = ingest.communicate(timeout=300)
    assert ingest.returncode == 0, err.decode()
    final = counts()

    restore_env = dict(subprocess_env, DATABASE_URL=fresh_database_url)
    run(["restore", str(archive)], restore_env)
    other = restored_app(app, settings, fresh_database_url)
    try:
        with other.app_context():
            snapshot = counts()
            db.session.remove()
            db.engine.dispose()  # no connection open while the ingest below writes
        assert start <= snapshot["exchange"] <= final["exchange"]

        # the same ingest again on the restored database stores what the backup missed, nothing twice
        assert " 0 rejected" in run(["ingest", str(log), "--job", "uniflow-prod"], restore_env)
        with other.app_context():
            again = counts()
            exchanges = db.session.scalar(select(func.count(func.distinct(Exchange.request_id))))
            db.session.remove()
    finally:
        with other.app_context():
            db.engine.dispose()
    assert exchanges == again["exchange"]
    for table in ("exchange", "scim_user", "cycle", "user_cycle", "signature", "reject", "job"):
        assert again[table] == final[table], table


def test_restore_refuses_to_write_over_jobs_without_yes_and_a_foreign_file(  # type: ignore[no-untyped-def]
        app, tmp_path, subprocess_env, fresh_database_url):
    archive = tmp_path / "a.backup"
    run(["backup", str(archive)], subprocess_env)

    refused = flask(["restore", str(archive)], subprocess_env)
    _, err = refused.communicate(timeout=120)
    assert refused.returncode != 0
    assert b"already holds jobs" in err and b"--yes" in err and b"Traceback" not in err

    junk = tmp_path / "junk.backup"
    junk.write_bytes(b"not a backup\n" * 100)
    wrong = flask(["restore", str(junk)], dict(subprocess_env, DATABASE_URL=fresh_database_url))
    _, err = wrong.communicate(timeout=120)
    assert wrong.returncode != 0
    assert b"junk.backup" in err and b"Traceback" not in err
