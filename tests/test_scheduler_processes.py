"""Two real `flask --app app scheduler` processes on one database: one works, the other waits as a
hot standby; the active one killed with SIGKILL, the standby takes the lease and the work over.

What is observed is what people get: the cycle reports stored and emailed (to a real SMTP server on
loopback), each exactly once, and who holds the lease.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, update

from dashboard.db import db
from dashboard.models import NotifyState, ReportRun, SchedulerLease, SchedulerRunStat
from dashboard.times import to_us, utc_now
from tests.notify.helpers import SmtpServer, cycle_lines, ingest, wait_for

ROOT = Path(__file__).resolve().parent.parent
REPORTS_TO = "reports@example.com"


def _config(path: Path, smtp_port: int) -> Path:
    # A short lease and a one-second tick, so that a test sees several ticks and a takeover quickly.
    path.write_text(f"""
[scheduler]
lease_seconds = 4
renew_seconds = 1
tick_seconds = 1

[reports]
recipients = ["{REPORTS_TO}"]

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
from_address = "monitor@example.com"
timeout_seconds = 5

[[jobs]]
name = "uniflow-prod"
""", encoding="utf-8")
    return path


def _scheduler(env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "scheduler"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def _holder_pid() -> int | None:
    db.session.rollback()  # a new snapshot: other processes write
    row = db.session.get(SchedulerLease, "scheduler")
    if row is None or not row.holder or row.expires_us < to_us(utc_now()):
        return None
    return int(row.holder.split(":")[-2])


def _reports() -> list[tuple[int, int]]:
    db.session.rollback()
    return [(r.first_cycle_id, r.last_cycle_id) for r in db.session.scalars(select(ReportRun).order_by(ReportRun.id))]


def _ticks() -> int:
    db.session.rollback()
    stat = db.session.get(SchedulerRunStat, "deliver-email")
    return stat.runs if stat else 0


@pytest.mark.slow
def test_one_of_two_schedulers_reports_and_the_standby_takes_over_after_a_kill_9(app, settings, tmp_path,
                                                                                   subprocess_env):
    smtp = SmtpServer().start()
    env = dict(subprocess_env, DASHBOARD_CONFIG=str(_config(tmp_path / "config.toml", smtp.port)))
    ingest(settings, cycle_lines(0))
    ingest(settings, cycle_lines(1))

    def report_emails() -> list[str]:
        return [m.subject for m in smtp.messages if m.rcpt_tos == [REPORTS_TO]]

    processes = [_scheduler(env, tmp_path / "first.log"), _scheduler(env, tmp_path / "second.log")]
    try:
        assert wait_for(lambda: _holder_pid() is not None, timeout=60), (tmp_path / "first.log").read_text()
        active = next(p for p in processes if p.pid == _holder_pid())
        standby = next(p for p in processes if p is not active)

        # The active one reports the two cycles once and mails the report once; the standby does nothing.
        assert wait_for(lambda: len(report_emails()) == 1, timeout=60)
        ticks = _ticks()
        assert wait_for(lambda: _ticks() >= ticks + 3, timeout=60)  # three more ticks of the active scheduler
        assert _reports() == [(1, 2)] and len(report_emails()) == 1
        assert _holder_pid() == active.pid and standby.poll() is None

        # A third cycle, and its report falls due; the active scheduler dies before its next report tick.
        ingest(settings, cycle_lines(2))
        db.session.execute(update(NotifyState).values(next_report_at=None))
        db.session.commit()
        active.send_signal(signal.SIGKILL)
        active.wait(timeout=30)

        # The standby takes the lease over within a minute (a 4-second lease here) and reports the third
        # cycle once.
        assert wait_for(lambda: _holder_pid() == standby.pid, timeout=60), (tmp_path / "second.log").read_text()
        assert wait_for(lambda: len(report_emails()) == 2, timeout=60)
        ticks = _ticks()
        assert wait_for(lambda: _ticks() >= ticks + 3, timeout=60)
        assert _reports() == [(1, 2), (3, 3)] and len(report_emails()) == 2
        db.session.rollback()
        assert db.session.get(SchedulerRunStat, "cycle-reports").last_holder.split(":")[-2] == str(standby.pid)  # type: ignore[union-attr]

        # A clean stop (systemd's SIGTERM) gives the lease up at once.
        standby.send_signal(signal.SIGTERM)
        assert standby.wait(timeout=60) == 0
        assert _holder_pid() is None
        assert "standby" in (tmp_path / ("second.log" if standby is processes[1] else "first.log")).read_text()
    finally:
        for process in processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        smtp.stop()
