"""GET /metrics (Prometheus text format) and GET /healthz, for the configured scraper only.

Both read through `queries/ops.py`; neither writes. The scraper sends `Authorization: Bearer
<token>`; its SHA-256 is `[ops] scraper_token_hash`. No header: 401; any other token (or none
configured): 403. A signed-in session does not open them: they are for machines, not people.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any

from flask import Blueprint, Response, jsonify, request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from dashboard import runtime
from dashboard.admin.scraper import is_scraper_token
from dashboard.analysis.health import State
from dashboard.db import db
from dashboard.queries.ops import (
    database_ok,
    job_metrics,
    outbox_state,
    run_stats,
    scheduler_state,
)
from dashboard.web.auth import json_error

bp = Blueprint("ops", __name__)
STATES = tuple(s.value for s in State)
# The classic text format, which generate_latest writes and every Prometheus version reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def scraper_only(view: Callable) -> Callable:
    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return json_error("the scraper token is required: Authorization: Bearer <token>", 401, realm="metrics")
        if not is_scraper_token(token.strip(), runtime.settings().ops.scraper_token_hash):
            return json_error("not the scraper token (or none is configured: [ops] scraper_token_hash)", 403, realm="metrics")
        return view(*args, **kwargs)

    return guarded


@bp.get("/healthz")
@scraper_only
def healthz() -> Response:
    """200 when the database answers, a scheduler holds its lease and no email waits too long; else 503."""
    settings = runtime.settings()
    now = runtime.now()
    checks: dict[str, dict[str, Any]] = {}
    checks["database"] = {"ok": database_ok(db.session)}
    if checks["database"]["ok"]:
        lease = scheduler_state(db.session, now)
        checks["scheduler"] = {"ok": lease["held"], "heartbeat_age_s": lease["heartbeat_age_s"],
                               "lease_seconds": settings.scheduler.lease_seconds}
        if not lease["held"]:
            checks["scheduler"]["error"] = "no scheduler holds the lease: is `flask --app app scheduler` running?"
        outbox = outbox_state(db.session, now)
        limit_s = settings.ops.outbox_max_age_minutes * 60
        checks["outbox"] = {"ok": outbox["oldest_age_s"] is None or outbox["oldest_age_s"] <= limit_s,
                            "pending": outbox["pending"], "oldest_age_s": outbox["oldest_age_s"], "max_age_s": limit_s}
    else:
        checks["database"]["error"] = "the database cannot be reached"
    ok = all(c["ok"] for c in checks.values())
    response = jsonify(status="ok" if ok else "failing", checks=checks)
    response.status_code = 200 if ok else 503
    return response


@bp.get("/metrics")
@scraper_only
def metrics() -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(list(_families())))
    return Response(generate_latest(registry), mimetype=None, content_type=CONTENT_TYPE)


class _Collector:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def _families() -> Iterator[Metric]:
    settings = runtime.settings()
    now = runtime.now()
    jobs = job_metrics(db.session, now, settings)

    ingested = GaugeMetricFamily("dashboard_ingested_lines", "Lines ingested by the ingest runs kept by retention, "
                                 "per job, way in (cli, push, graph, demo) and result", labels=["job", "via", "result"])
    state = GaugeMetricFamily("dashboard_job_state", "1 for the job's current state (as the pages show it), "
                              "0 for the others", labels=["job", "state"])
    failing = GaugeMetricFamily("dashboard_failing_users", "Users whose latest outcome is a failure", labels=["job"])
    running = GaugeMetricFamily("dashboard_cycle_running", "1 while a cycle is running", labels=["job"])
    processed = GaugeMetricFamily("dashboard_cycle_processed_users", "Users processed so far by the running cycle",
                                  labels=["job"])
    expected = GaugeMetricFamily("dashboard_cycle_expected_users", "Users the running cycle is expected to process "
                                 "(absent when unknown)", labels=["job"])
    duration = GaugeMetricFamily("dashboard_last_cycle_duration_seconds", "Duration of the last completed cycle",
                                 labels=["job"])
    lag = GaugeMetricFamily("dashboard_ingest_lag_seconds", "Seconds since the newest exchange or Entra event "
                            "of the job", labels=["job"])
    for job in jobs:
        name = job["job"]
        for row in job["ingested"]:
            for result in ("accepted", "duplicates", "rejected"):
                ingested.add_metric([name, row["via"], result], row[result])
        for value in STATES:
            state.add_metric([name, value], 1 if job["state"] == value else 0)
        failing.add_metric([name], job["failing_users"])
        running.add_metric([name], 1 if job["cycle_running"] else 0)
        processed.add_metric([name], job["cycle_processed_users"])
        if job["cycle_expected_users"] is not None:
            expected.add_metric([name], job["cycle_expected_users"])
        if job["last_cycle_duration_s"] is not None:
            duration.add_metric([name], job["last_cycle_duration_s"])
        if job["ingest_lag_s"] is not None:
            lag.add_metric([name], job["ingest_lag_s"])
    yield from (ingested, state, failing, running, processed, expected, duration, lag)

    outbox = outbox_state(db.session, now)
    yield GaugeMetricFamily("dashboard_outbox_pending", "Emails not sent yet", value=outbox["pending"])
    yield GaugeMetricFamily("dashboard_outbox_oldest_age_seconds", "Age of the oldest email not sent yet (0: none)",
                            value=outbox["oldest_age_s"] or 0)

    runs = CounterMetricFamily("dashboard_scheduler_job_runs", "Runs of each scheduled job", labels=["job"])
    errors = CounterMetricFamily("dashboard_scheduler_job_errors", "Runs of each scheduled job that failed",
                                 labels=["job"])
    last = GaugeMetricFamily("dashboard_scheduler_job_last_duration_seconds", "Duration of the job's last run",
                             labels=["job"])
    for row in run_stats(db.session):
        runs.add_metric([row["job"]], row["runs"])
        errors.add_metric([row["job"]], row["errors"])
        last.add_metric([row["job"]], row["last_duration_s"])
    yield from (runs, errors, last)

    lease = scheduler_state(db.session, now)
    yield GaugeMetricFamily("dashboard_scheduler_lease_held", "1 while a scheduler holds the lease",
                            value=1 if lease["held"] else 0)
    heartbeat = GaugeMetricFamily("dashboard_scheduler_heartbeat_age_seconds",
                                  "Seconds since the active scheduler last renewed its lease (absent: never ran)")
    if lease["heartbeat_age_s"] is not None:
        heartbeat.add_metric([], lease["heartbeat_age_s"])
    yield heartbeat
    yield CounterMetricFamily("dashboard_scheduler_lease_takeovers", "Times a scheduler took the lease over "
                              "(the first start counts one)", value=lease["takeovers"])
