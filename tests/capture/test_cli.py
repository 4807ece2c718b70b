"""`flask capture` as a real process: it forwards, records, and on SIGTERM stores what is queued
and says what it recorded; bad options are usage errors naming the option."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import urllib3
from sqlalchemy import func, select

from dashboard.db import db
from dashboard.models import Exchange
from tests.capture.conftest import JOB, TOKEN
from tests.conftest import ROOT


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int, proc: subprocess.Popen) -> None:
    while proc.poll() is None:  # bounded by the process: it exits on any start-up error
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(proc.communicate()[0])


def test_the_capture_command_forwards_records_and_reports_on_sigterm(app, upstream, subprocess_env, tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "app", "capture", "--listen", f"127.0.0.1:{port}", "--upstream",
         upstream, "--job", JOB, "--spool", str(tmp_path / "spool")],
        cwd=ROOT, env=subprocess_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _listening(port, proc)
        http = urllib3.PoolManager()
        statuses = [http.request("GET", f"http://127.0.0.1:{port}/scim/v2/Users", headers={
            "Authorization": f"Bearer {TOKEN}"}, fields={"filter": f'userName eq "n{i}@contoso.com"'}).status
            for i in range(5)]
        http.clear()
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=120)[0]

    assert statuses == [200] * 5
    assert proc.returncode == 0, output
    assert "capture: 5 exchanges: 5 stored, 0 duplicates, 0 rejected, 0 dropped (spool full); 0 spool file(s) left" in output
    assert TOKEN not in output
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Exchange)) == 5


def test_bad_options_are_usage_errors(runner):
    listen = runner.invoke(args=["capture", "--listen", "nowhere", "--upstream", "http://127.0.0.1:1", "--job", JOB])
    upstream = runner.invoke(args=["capture", "--listen", "127.0.0.1:0", "--upstream", "ftp://x", "--job", JOB])
    job = runner.invoke(args=["capture", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:1", "--job", "nope"])

    assert listen.exit_code == 2 and "--listen must be HOST:PORT" in listen.output
    assert upstream.exit_code == 2 and "--upstream must be an http:// or https:// URL" in upstream.output
    assert job.exit_code == 2 and "nope" in job.output
