"""deploy/ as written: the systemd units' commands started for real (gunicorn with several workers,
one scheduler), /healthz answering through them, and nginx running deploy/nginx-dashboard.conf in
front of them on loopback (pid, logs and temp files in a temporary prefix).

Substituted, and only that: the install path /opt/dashboard (this checkout), the EnvironmentFile
(the test's environment, with the keys deploy/dashboard.env.example names) and gunicorn's port
(127.0.0.1:8000 is a free port here, in DASHBOARD_BIND and in the nginx snippet).
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from dashboard.admin.scraper import make_token
from dashboard.db import db
from dashboard.models import SchedulerLease
from tests.notify.helpers import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
INSTALL = "/opt/dashboard"
CANARY = "pmi_CANARYtokenInAQueryString0123456789"


def unit(name: str) -> dict[str, list[str]]:
    """A unit file's keys (every value of a repeated key), with the install path made this checkout's."""
    values: dict[str, list[str]] = {}
    for line in (DEPLOY / name).read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip().replace(INSTALL, str(ROOT)))
    return values


def env_keys() -> set[str]:
    text = (DEPLOY / "dashboard.env.example").read_text(encoding="utf-8")
    return set(re.findall(r"(?m)^([A-Z_]+)=", text))


def get(url: str, *, token: str | None = None, source: str | None = None) -> tuple[int, str]:
    """GET with an optional bearer token, from an optional loopback source address."""
    host, port = url.split("/")[2].split(":")
    path = "/" + url.split("/", 3)[3]
    with socket.create_connection((host, int(port)), timeout=10, source_address=(source, 0) if source else None) as sock:
        headers = f"GET {path} HTTP/1.1\r\nHost: dashboard.test\r\nConnection: close\r\n"
        if token:
            headers += f"Authorization: Bearer {token}\r\n"
        sock.sendall((headers + "\r\n").encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode("utf-8", "replace")


def _nginx() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)


@pytest.mark.slow
def test_the_units_and_the_proxy_snippet_serve_as_written(app, tmp_path, subprocess_env):
    nginx = _nginx()
    if nginx is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI: nginx is required (.ci/run installs nginx-light)")
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    web, scheduler = unit("dashboard-web.service"), unit("dashboard-scheduler.service")
    assert web["EnvironmentFile"] == scheduler["EnvironmentFile"] == ["/etc/dashboard/dashboard.env"]
    assert web["WorkingDirectory"] == scheduler["WorkingDirectory"] == [str(ROOT)]
    token, digest = make_token()
    port = free_port()
    env = dict(subprocess_env, DASHBOARD_SCRAPER_TOKEN_HASH=digest, WEB_CONCURRENCY="2",
               DASHBOARD_BIND=f"127.0.0.1:{port}")
    assert env_keys() <= set(env) | {"DASHBOARD_CONFIG", "DATABASE_URL", "DASHBOARD_SECRET_KEY"}
    cwd = web["WorkingDirectory"][0]

    for command in web["ExecStartPre"]:
        done = subprocess.run(shlex.split(command), cwd=cwd, env=env, capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr.decode()
    logs = {name: tmp_path / f"{name}.log" for name in ("web", "scheduler", "nginx-error")}
    started = []
    try:
        for name, service in (("web", web), ("scheduler", scheduler)):
            [command] = service["ExecStart"]
            with open(logs[name], "wb") as out:
                started.append(subprocess.Popen(shlex.split(command), cwd=cwd, env=env, stdout=out,
                                                stderr=subprocess.STDOUT))
        gunicorn, flask_scheduler = started
        base = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            try:
                return get(base + "/healthz", token=token)[0] == 200
            except OSError:
                return False

        assert wait_for(healthy, timeout=90), logs["web"].read_text() + logs["scheduler"].read_text()
        # Two workers, and the lease is the scheduler process's: no worker started a scheduler.
        workers = Path(f"/proc/{gunicorn.pid}/task/{gunicorn.pid}/children").read_text().split()
        assert len(workers) == 2
        db.session.rollback()
        holder = db.session.scalars(select(SchedulerLease.holder)).one()
        assert holder.split(":")[-2] == str(flask_scheduler.pid)
        assert get(base + "/metrics")[0] == 401
        assert get(base + f"/api/v1/jobs?access_token={CANARY}")[0] == 401

        # nginx in front, with the snippet as written (only gunicorn's port differs).
        prefix = tmp_path / "nginx"
        prefix.mkdir()
        snippet = (DEPLOY / "nginx-dashboard.conf").read_text(encoding="utf-8")
        assert "127.0.0.1:8000" in snippet
        (prefix / "nginx-dashboard.conf").write_text(snippet.replace("127.0.0.1:8000", f"127.0.0.1:{port}"))
        proxy_port = free_port()
        temp = " ".join(f"{kind}_temp_path {prefix}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (prefix / "nginx.conf").write_text(
            ("user root;\n" if os.geteuid() == 0 else "")
            + f"daemon off; worker_processes 1; pid {prefix}/nginx.pid; error_log {logs['nginx-error']};\n"
            f"events {{ worker_connections 64; }}\n"
            f"http {{ access_log off; {temp}\n"
            f"  server {{ listen 127.0.0.1:{proxy_port}; server_name dashboard.test;\n"
            f"    include {prefix}/nginx-dashboard.conf;\n  }}\n}}\n")
        proxy = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(proxy)
        front = f"http://127.0.0.1:{proxy_port}"

        def proxied() -> bool:
            try:
                return get(front + "/healthz", token=token)[0] == 200
            except OSError:
                return False

        assert wait_for(proxied, timeout=30), logs["nginx-error"].read_text() if logs["nginx-error"].exists() else ""
        status, body = get(front + "/metrics", token=token)
        assert status == 200 and "dashboard_scheduler_lease_held 1.0" in body
        assert get(front + "/metrics", token=token, source="127.0.0.2")[0] == 403  # not the scraper's address
        assert get(front + "/healthz", token=token, source="127.0.0.2")[0] == 403
        assert get(front + "/", source="127.0.0.2")[0] == 302  # the pages: to the sign-in form
    finally:
        for process in reversed(started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # systemd's stop; nginx's fast shutdown
        for process in started:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    output = logs["web"].read_text() + logs["scheduler"].read_text()
    assert CANARY not in output and "/api/v1/jobs?access_token=" in output  # the request was logged, redacted
    assert started[1].returncode == 0  # the scheduler stopped cleanly on SIGTERM


@pytest.mark.slow
def test_make_serve_runs_the_workers_and_one_scheduler_and_stops_both(app, tmp_path, subprocess_env):
    token, digest = make_token()
    port = free_port()
    env = dict(subprocess_env, DASHBOARD_SCRAPER_TOKEN_HASH=digest, WEB_CONCURRENCY="2",
               DASHBOARD_BIND=f"127.0.0.1:{port}")
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        serve = subprocess.Popen([str(ROOT / "scripts" / "serve.sh")], cwd=ROOT, env=env, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def healthy() -> bool:
            try:
                return get(f"http://127.0.0.1:{port}/healthz", token=token)[0] == 200
            except OSError:
                return False

        assert wait_for(healthy, timeout=90), log.read_text()
        children = Path(f"/proc/{serve.pid}/task/{serve.pid}/children").read_text().split()
        assert len(children) == 2  # gunicorn's master and the scheduler

        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=90) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in children)
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
    db.session.rollback()
    assert db.session.get(SchedulerLease, "scheduler").expires_us == 0  # type: ignore[union-attr]  # given up
