"""/metrics (Prometheus text format, parsed by prometheus_client's own parser) and /healthz."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dashboard import lease, scheduler
from dashboard.admin.scraper import make_token
from dashboard.db import db
from dashboard.notify.emails import RenderedEmail
from dashboard.notify.outbox import enqueue
from dashboard.settings import OpsSettings
from dashboard.times import US, to_us
from tests.notify.helpers import BAD_DEPARTMENT, after_cycle, cycle_lines, ingest


@pytest.fixture
def scraper(app, settings):  # type: ignore[no-untyped-def]
    token, digest = make_token()
    app.extensions["dashboard"] = replace(settings, ops=OpsSettings(scraper_token_hash=digest, outbox_max_age_minutes=60))
    return {"Authorization": f"Bearer {token}"}


def samples(client, headers) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:  # type: ignore[no-untyped-def]
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=0.0.4")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.get_data(as_text=True)) for s in family.samples}


def test_it_exposes_the_jobs_the_outbox_and_the_scheduler(app, client, settings, scraper):
    ingest(settings, cycle_lines(0, failing={2: BAD_DEPARTMENT}))
    ingest(settings, cycle_lines(1, failing={2: BAD_DEPARTMENT}))
    now = after_cycle(1)
    app.extensions["clock"] = lambda: now
    enqueue(db.session, RenderedEmail("s", "t", "h"), to="a@example.com", kind="report", now=now - timedelta(minutes=5))
    db.session.commit()
    assert scheduler.run_once(scheduler.JOBS[1], app, None) == 0  # deliver-email: no smtp.host, nothing sent; counted
    lease.acquire(db.engine, "host:1:abc", to_us(now) - 4 * US, 30 * US)

    got = samples(client, scraper)

    job = (("job", "uniflow-prod"),)
    assert got["dashboard_ingested_lines", (("job", "uniflow-prod"), ("result", "accepted"), ("via", "cli"))] == 20
    assert got["dashboard_ingested_lines", (("job", "uniflow-prod"), ("result", "rejected"), ("via", "cli"))] == 0
    states = {labels[1][1]: value for (name, labels), value in got.items() if name == "dashboard_job_state"}
    assert sum(states.values()) == 1 and set(states) >= {"healthy", "warning", "quarantined", "stalled"}
    assert got["dashboard_failing_users", job] == 1
    assert got["dashboard_cycle_running", job] == 0
    assert got["dashboard_last_cycle_duration_seconds", job] == 9  # five users, two seconds apart, last PATCH +1 s
    assert got["dashboard_ingest_lag_seconds", job] == 16 * 60
    assert got["dashboard_outbox_pending", ()] == 1
    assert got["dashboard_outbox_oldest_age_seconds", ()] == 300
    assert got["dashboard_scheduler_job_runs_total", (("job", "deliver-email"),)] == 1
    assert got["dashboard_scheduler_job_errors_total", (("job", "deliver-email"),)] == 0
    assert got["dashboard_scheduler_lease_held", ()] == 1
    assert got["dashboard_scheduler_heartbeat_age_seconds", ()] == 4
    assert got["dashboard_scheduler_lease_takeovers_total", ()] == 1


def test_it_counts_a_failing_scheduled_job_as_an_error(app, client, scraper):
    def broken(app):  # type: ignore[no-untyped-def]
        raise RuntimeError("the SMTP password is hunter2")  # the message is not stored: it may hold a secret

    with pytest.raises(RuntimeError):
        scheduler.run_once(scheduler.ScheduledJob("broken", broken, scheduler.JOBS[0].trigger, 60), app, None)

    got = samples(client, scraper)
    assert got["dashboard_scheduler_job_runs_total", (("job", "broken"),)] == 1
    assert got["dashboard_scheduler_job_errors_total", (("job", "broken"),)] == 1
    assert "hunter2" not in client.get("/metrics", headers=scraper).get_data(as_text=True)


def test_its_health_check_needs_a_live_scheduler_and_a_moving_outbox(app, client, scraper):
    now = after_cycle(0)
    app.extensions["clock"] = lambda: now

    alone = client.get("/healthz", headers=scraper)
    lease.acquire(db.engine, "host:1:abc", to_us(now), 30 * US)
    healthy = client.get("/healthz", headers=scraper)
    enqueue(db.session, RenderedEmail("s", "t", "h"), to="a@example.com", kind="report", now=now - timedelta(minutes=61))
    db.session.commit()
    stuck = client.get("/healthz", headers=scraper)
    app.extensions["clock"] = lambda: now + timedelta(seconds=31)  # the lease was not renewed
    late = client.get("/healthz", headers=scraper)

    assert (alone.status_code, healthy.status_code, stuck.status_code, late.status_code) == (503, 200, 503, 503)
    assert alone.json["checks"]["scheduler"]["ok"] is False and "flask --app app scheduler" in \
        alone.json["checks"]["scheduler"]["error"]
    assert healthy.json == {"status": "ok", "checks": {
        "database": {"ok": True},
        "scheduler": {"ok": True, "heartbeat_age_s": 0.0, "lease_seconds": 30},
        "outbox": {"ok": True, "pending": 0, "oldest_age_s": None, "max_age_s": 3600}}}
    assert stuck.json["checks"]["outbox"] == {"ok": False, "pending": 1, "oldest_age_s": 3660.0, "max_age_s": 3600}
    assert late.json["checks"]["scheduler"]["heartbeat_age_s"] == 31.0
