"""Issue 13 items 1, 2 and 6 on the job, cycle and diagnostics pages: one state from the best
evidence wherever the state shows, and the words that were wrong."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from dashboard.admin import accounts
from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.demo.simulate import SimConfig, simulate_lines
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.models import Cycle
from tests.web.signin import signed_in
from tests.web.test_entra_pages import _quarantined_doc, _status

JOB = "uniflow-prod"


@pytest.fixture(autouse=True)
def _fast_hashes(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def _feed(settings, **config) -> tuple[list[bytes], datetime]:  # type: ignore[no-untyped-def]
    made, truth = simulate_lines(SimConfig(**({"users": 20, "cycles": 2, "seed": 7, "job": JOB} | config)))
    lines = list(made)
    ingest_lines(db.engine, get_job(JOB), enumerate(lines, start=1), source="sim.jsonl", via="cli",
                 options=options_from(settings.ingest, cycles=settings.cycles))
    return lines, truth.cycles[-1].ended_at


def _credentials_doc() -> dict:
    data = _quarantined_doc()
    data["status"]["quarantine"]["reason"] = "EncounteredQuarantineException"
    data["status"]["quarantine"]["error"]["message"] = "The target answered 401 Unauthorized at 2026-11-28T09:59:00Z."
    return data


def test_entra_s_fresh_quarantine_is_the_state_in_the_header_the_api_and_diagnostics(app, client, settings):  # type: ignore[no-untyped-def]
    _, ended = _feed(settings, failure_rate=0.0)
    now = ended + timedelta(minutes=30)
    app.extensions["clock"] = lambda: now
    _status(settings, _credentials_doc(), observed=now - timedelta(minutes=10))
    signed_in(client, "support")

    health = client.get(f"/api/v1/jobs/{JOB}/health").get_json()
    assert health["state"] == "quarantined" and health["state_source"] == "entra"
    assert health["state_label"] == "Quarantined by Entra" and health["inferred_state"] == "healthy"
    assert health["reason"] == "EncounteredQuarantineException"
    assert health["next_expected_attempt"] == "2026-03-24T13:44:11.000Z"
    assert health["disagreement"].startswith("Entra says Quarantine")
    assert "transitions" in health and "last_traffic" in health  # the old keys stay

    job_page = client.get(f"/jobs/{JOB}").get_data(as_text=True)
    header = job_page.split("<h1>", 1)[1].split("</h1>", 1)[0]
    assert "Quarantined by Entra" in header and "disagrees with Entra" in header
    assert "From Entra&#39;s own job status" in job_page
    # Entra's reason text: its moment is a <time> element, not preformatted UTC
    assert '<time datetime="2026-11-28T09:59:00Z"' in job_page

    diagnostics = client.get(f"/jobs/{JOB}/diagnostics").get_data(as_text=True)
    assert "Quarantine diagnostics" in diagnostics and "Quarantine checklist" in diagnostics
    assert "Regular incremental cycles" not in diagnostics
    assert '<section class="card entra-status">' in diagnostics  # the Entra panel is there too
    assert "Entra and the traffic disagree" in diagnostics

    current = client.get(f"/api/v1/jobs/{JOB}/cycles/current").get_json()
    assert current["health"]["state"] == "quarantined" and current["health"]["state_label"] == "Quarantined by Entra"


def test_an_old_entra_status_leaves_the_inference_labelled_as_inferred(app, client, settings):  # type: ignore[no-untyped-def]
    _, ended = _feed(settings, failure_rate=0.0)
    now = ended + timedelta(minutes=30)
    app.extensions["clock"] = lambda: now
    _status(settings, _credentials_doc(), observed=now - timedelta(hours=5))
    signed_in(client, "viewer")

    health = client.get(f"/api/v1/jobs/{JOB}/health").get_json()
    assert health["state"] == "healthy" and health["state_source"] == "inferred"
    assert health["state_label"] == "Healthy (inferred from traffic)"


def test_a_healthy_job_gets_nothing_to_fix_and_a_stalled_one_the_stall_checklist(app, client, settings):  # type: ignore[no-untyped-def]
    _, ended = _feed(settings, failure_rate=0.0)
    app.extensions["clock"] = lambda: ended + timedelta(minutes=30)
    signed_in(client, "support")

    healthy = client.get(f"/jobs/{JOB}/diagnostics").get_data(as_text=True)
    assert "Nothing to fix" in healthy and '<ol class="checklist">' not in healthy

    app.extensions["clock"] = lambda: ended + timedelta(hours=3)
    stalled = client.get(f"/jobs/{JOB}/diagnostics").get_data(as_text=True)
    assert "Stall checklist" in stalled and "Quarantine checklist" not in stalled
    assert "Restart provisioning" not in stalled
    # the stall sentence carries its moment as a <time> element, not "… UTC" text
    why = stalled.split("<dt>Why</dt>", 1)[1].split("</dd>", 1)[0]
    assert "No traffic since <time datetime=" in why and " UTC:" not in why


def test_a_stall_compares_entra_s_last_run_with_what_arrived(app, client, settings):  # type: ignore[no-untyped-def]
    _, ended = _feed(settings, failure_rate=0.0)
    now = ended + timedelta(hours=3)
    app.extensions["clock"] = lambda: now
    data = _quarantined_doc()
    data["status"]["code"] = "Active"
    data["status"]["quarantine"] = None
    data["status"]["lastExecution"]["timeBegan"] = (now - timedelta(minutes=50)).strftime("%Y-%m-%dT%H:%M:%SZ")
    data["status"]["lastExecution"]["timeEnded"] = (now - timedelta(minutes=45)).strftime("%Y-%m-%dT%H:%M:%SZ")
    data["status"]["lastExecution"]["countExported"] = 120
    _status(settings, data, observed=now - timedelta(minutes=10))
    signed_in(client, "support")

    html = client.get(f"/jobs/{JOB}/diagnostics").get_data(as_text=True)
    run = html.split("Entra's last run against what arrived", 1)[1].split("</section>", 1)[0]
    assert "exported 120 changes" in run and "That run never reached us" in run


def test_a_credentials_quarantine_cites_the_rejected_requests_and_the_credentials_fix(app, client, settings):  # type: ignore[no-untyped-def]
    _, ended = _feed(settings, cycles=3, failure_rate=0.2, auth_outage_cycles=(2,))
    app.extensions["clock"] = lambda: ended + timedelta(minutes=30)
    signed_in(client, "support")

    health = client.get(f"/api/v1/jobs/{JOB}/health").get_json()
    assert health["reason"] == "EncounteredQuarantineException"
    assert health["evidence"] and {e["status"] for e in health["evidence"]} <= {401, 403}
    assert health["recommended_action"]["title"] == "Credentials rejected (401/403)"
    checklist = client.get(f"/jobs/{JOB}/diagnostics").get_data(as_text=True).split("Quarantine checklist", 1)[1]
    checklist = checklist.split("</ol>", 1)[0]
    assert "→ 401" in checklist or "→ 403" in checklist
    assert "→ 500" not in checklist and "→ 400" not in checklist
    evidence = client.get(f"/jobs/{JOB}").get_data(as_text=True).split("<h3>Evidence</h3>", 1)[1].split("</ul>", 1)[0]
    assert re.findall(r"→ (\d+)", evidence) and set(re.findall(r"→ (\d+)", evidence)) <= {"401", "403"}


def test_entra_s_credentials_quarantine_cites_401s_even_when_we_infer_a_warning(app, client, settings):  # type: ignore[no-untyped-def]
    # a 401 cycle early on, then cycles with other failures: we infer a warning, Entra says credentials
    _, ended = _feed(settings, cycles=4, failure_rate=0.3, auth_outage_cycles=(1,))
    now = ended + timedelta(minutes=30)
    app.extensions["clock"] = lambda: now
    _status(settings, _credentials_doc(), observed=now - timedelta(minutes=10))
    signed_in(client, "support")

    health = client.get(f"/api/v1/jobs/{JOB}/health").get_json()
    assert health["state_source"] == "entra" and health["inferred_state"] != "quarantined"
    assert health["evidence"] and {e["status"] for e in health["evidence"]} <= {401, 403}
    assert health["recommended_action"]["title"] == "Credentials rejected (401/403)"


def test_the_cycle_page_words(app, client, settings):  # type: ignore[no-untyped-def]
    lines, ended = _feed(settings, cycles=3, failure_rate=0.3)
    signed_in(client, "support")
    latest = db.session.scalars(select(Cycle).order_by(Cycle.started_us.desc())).first()

    app.extensions["clock"] = lambda: ended + timedelta(seconds=5)  # the last cycle is still running
    running = client.get(f"/jobs/{JOB}/cycles/{latest.id}").get_data(as_text=True)
    facts = running.split('<p class="muted">', 1)[1].split("</p>", 1)[0]
    assert "still running, last request" in facts and "ended" not in facts
    assert "0.0 min" not in facts and re.search(r"\d+ (s|min \d+ s) ·", facts)

    app.extensions["clock"] = lambda: ended + timedelta(hours=1)
    done = client.get(f"/jobs/{JOB}/cycles/{latest.id}").get_data(as_text=True)
    assert "ended <time" in done
    still = done.split("Still failing", 1)[1].split("</ul>", 1)[0]
    assert "· 0 cycles" not in still
    assert not re.search(r"\b1 users\b", done) and not re.search(r"\b1 requests\b", done)


def test_the_missing_entra_status_suggests_a_command_that_exists(app, client, settings, runner):  # type: ignore[no-untyped-def]
    _feed(settings)
    signed_in(client, "viewer")
    html = client.get(f"/jobs/{JOB}").get_data(as_text=True)
    command = re.search(r"<code>flask --app app (ingest [^<]*)</code>", html)
    assert command, "no suggested command"
    assert "entra status" not in html
    args = command.group(1).replace("FILE", "missing.json").replace(f"--job {JOB}", "").split()
    result = runner.invoke(args=[*args, "--help"])
    assert result.exit_code == 0 and "entra-job-status" in result.output


def test_the_entra_panel_words(app, client, settings):  # type: ignore[no-untyped-def]
    _, ended = _feed(settings)
    now = ended + timedelta(minutes=30)
    app.extensions["clock"] = lambda: now
    data = _quarantined_doc()
    data["status"]["quarantine"]["seriesCount"] = 0
    data["status"]["countSuccessiveCompleteFailures"] = "1"
    data["schedule"] = {"interval": "PT40M", "state": "Active"}
    _status(settings, data, observed=now - timedelta(minutes=10))
    signed_in(client, "viewer")

    panel = client.get(f"/jobs/{JOB}").get_data(as_text=True).split('<section class="card entra-status">', 1)[1]
    panel = panel.split("</section>", 1)[0]
    assert "Series count" not in panel and "1 complete failure in a row" in panel
    assert "PT40M" not in panel and "every 40 min" in panel


def test_the_403_page_names_the_role_needed(app, client, settings):  # type: ignore[no-untyped-def]
    _feed(settings)
    signed_in(client, "viewer")
    response = client.get(f"/jobs/{JOB}/diagnostics")
    assert response.status_code == 403
    text = response.get_data(as_text=True)
    assert "needs the support role" in text and "signed in as viewer" in text


def test_a_first_cycle_with_failures_is_not_unknown(app, client, settings):  # type: ignore[no-untyped-def]
    lines, _ = _feed(settings, cycles=1, users=60, failure_rate=0.3)
    last = datetime.fromisoformat(json.loads(lines[-1])["ts"].replace("Z", "+00:00"))
    app.extensions["clock"] = lambda: last + timedelta(seconds=5)
    signed_in(client, "viewer")

    health = client.get(f"/api/v1/jobs/{JOB}/health").get_json()
    assert health["state"] == "warning" and "No completed cycle yet" not in health["explanation"]
    assert "First cycle still running" in health["explanation"]
    assert health["inferred_state"] == "unknown"
    assert health["since"] == client.get(f"/api/v1/jobs/{JOB}/cycles/current").get_json()["cycle"]["started_at"]


def test_the_progress_card_never_reads_n_of_fewer(app, client, settings):  # type: ignore[no-untyped-def]
    lines, truth_end = _feed(settings, cycles=3, users=30)
    app.extensions["clock"] = lambda: truth_end + timedelta(seconds=5)
    signed_in(client, "viewer")
    html = client.get(f"/jobs/{JOB}").get_data(as_text=True)
    summary = re.search(r'<span class="summary"[^>]*>([^<]*)</span>', html)
    assert summary
    numbers = re.match(r"([\d,]+) of ([\d,]+)", summary.group(1))
    if numbers:  # "N of M users" only while N is at most M
        assert int(numbers.group(1).replace(",", "")) <= int(numbers.group(2).replace(",", ""))
    current = client.get(f"/api/v1/jobs/{JOB}/cycles/current").get_json()["cycle"]["progress"]
    assert current["expected_source"] in ("median", "last_complete", "scope", "entra", "earlier")
    if current["processed_users"] > (current["expected_users"] or 0):
        assert "about" in current["summary"]
