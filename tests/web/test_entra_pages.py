"""Entra's view in the pages and the API: event page and its SCIM join, timeline, cycle, job panel,
the disagreement flag, negative evidence ids linking to event pages, roles and escaping."""
from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from dashboard.admin import accounts
from dashboard.admin.jobs import get_job
from dashboard.analysis.agreement import compare_health, reason_kind
from dashboard.db import db
from dashboard.demo.simulate import simulate_lines
from dashboard.demo.truth import SimConfig
from dashboard.formats.entra.jobstatus import parse_job_status
from dashboard.formats.entra.parse import convert_record
from dashboard.ingest.entra import import_events, import_job_status
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.models import EntraEvent, Exchange, ScimUser, Signature
from dashboard.notify.reports import send_report_if_due
from tests.formats.entra.conftest import DATA
from tests.web.signin import signed_in

JOB = "uniflow-prod"
SCRIPT = "<script>alert(1)</script>"
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_login_state(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))



def _options(settings):  # type: ignore[no-untyped-def]
    return options_from(settings.ingest, cycles=settings.cycles)


def _scim(settings, **config) -> datetime:  # type: ignore[no-untyped-def]
    lines, truth = simulate_lines(SimConfig(users=20, cycles=2, seed=7, job=JOB, **config))
    ingest_lines(db.engine, get_job(JOB), enumerate(lines, start=1), source="sim.jsonl", via="cli", options=_options(settings))
    return truth.cycles[-1].ended_at


def _record(n: int, *, at: datetime, user: str, status: str = "success", action: str = "update",
            cycle: str = "entra-cycle-1", reason: str | None = None) -> dict:
    error = None
    if status == "failure":
        error = {"errorCode": "SystemForCrossDomainIdentityManagementBadRequest", "errorCategory": "nonServiceFailure",
                 "recommendedAction": "Fix the department attribute mapping.",
                 "reason": reason or ("StatusCode: BadRequest\r\nMessage: department is not a cost center. This "
                                      "operation was retried 2 times. It will be retried again after this date: "
                                      "2026-11-28T15:00:00Z UTC")}
    return {
        "id": f"ev-{cycle}-{n}", "activityDateTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "cycleId": cycle,
        "changeId": f"change-{n}", "jobId": "uniFLOWOnline.tenant.job", "provisioningAction": action,
        "provisioningStatusInfo": {"status": status, "errorInformation": error},
        "provisioningSteps": [
            {"name": "EntryImport", "provisioningStepType": "import", "status": "success",
             "description": f"Retrieved User '{user}' from Microsoft Entra ID", "details": {}},
            {"name": "EntryExportUpdate", "provisioningStepType": "export", "status": status,
             "description": f"User '{user}' was processed", "details": {"ReportableIdentifier": user}},
        ],
        "modifiedProperties": [{"displayName": "department", "oldValue": "Sales", "newValue": "Marketing"}],
        "sourceIdentity": {"id": f"src-{n}", "displayName": user, "identityType": "User",
                           "details": {"UserPrincipalName": user}},
        "targetIdentity": {"id": f"tgt-{n}", "displayName": user, "identityType": "User", "details": {}},
    }


def _import(settings, records: list[dict]) -> list[EntraEvent]:  # type: ignore[no-untyped-def]
    import_events(db.engine, get_job(JOB), (("t", convert_record(r, i)) for i, r in enumerate(records, 1)),
                  source="t", via="cli", options=_options(settings))
    db.session.expire_all()
    return db.session.scalars(select(EntraEvent).order_by(EntraEvent.activity_us)).all()


def _status(settings, data: dict, *, observed: datetime | None = None) -> None:  # type: ignore[no-untyped-def]
    if observed is not None:
        data = json.loads(json.dumps(data))
        data["status"]["progress"][0]["progressObservationDateTime"] = observed.strftime("%Y-%m-%dT%H:%M:%SZ")
    import_job_status(db.engine, get_job(JOB), data, parse_job_status(data), source="t", rules=_options(settings).rules,
                      now=observed or NOW)


def _quarantined_doc() -> dict:
    return orjson.loads((DATA / "job-quarantined.json").read_bytes())


def _active_doc() -> dict:
    data = _quarantined_doc()
    data["status"]["code"] = "Active"
    data["status"]["quarantine"] = None
    return data


@pytest.fixture
def joined(app, settings):  # type: ignore[no-untyped-def]
    """A SCIM log with failures, and one failing Entra event of a failing user 20 s after its
    failed exchange (its reason carries a script tag), plus a successful event of another user."""
    ended = _scim(settings, failure_rate=0.3)
    bad = db.session.scalars(select(Exchange).where(Exchange.failed.is_(True), Exchange.user_id.is_not(None),
                                                    Exchange.status >= 400).order_by(Exchange.ts_us)).first()
    user = db.session.get(ScimUser, bad.user_id)
    other = db.session.scalars(select(ScimUser).where(ScimUser.id != user.id, ScimUser.user_name.is_not(None))).first()
    events = _import(settings, [
        _record(1, at=bad.ts + timedelta(seconds=20), user=user.user_name, status="failure",
                reason=f"StatusCode: BadRequest\r\nMessage: {SCRIPT} was rejected. This operation was retried 3 times."),
        _record(2, at=bad.ts + timedelta(seconds=25), user=other.user_name),
    ])
    app.extensions["clock"] = lambda: ended + timedelta(minutes=30)
    return {"exchange": bad, "user": user, "event": events[0], "ok_event": events[1], "ended": ended}


# -- the comparison (pure) ------------------------------------------------------------------------


@pytest.mark.parametrize(("reason", "kind"), [
    ("EncounteredEscrowProportionThreshold", "escrow"), ("EncounteredTotalEscrowThreshold", "escrow"),
    ("EncounteredBaseEscrowThreshold", "escrow"), ("EncounteredQuarantineException", "credentials"),
    ("TooManyDeletes", "deletes"), ("QuarantinedOnDemand", "on_demand"), ("QuarantineOnDemand", "on_demand"),
    ("IngestionInterrupted", "ingestion"), ("Unknown", "unknown"), ("SomethingNew", "unknown"), (None, None),
])
def test_it_maps_each_quarantine_reason_to_its_kind(reason, kind):
    assert reason_kind(reason) == kind


@pytest.mark.parametrize(("ours", "our_reason", "code", "entra_reason", "disagreement"), [
    ("healthy", None, "Active", None, None),
    ("warning", None, "Quarantine", "EncounteredEscrowProportionThreshold", "state"),  # Entra quarantined, we did not
    ("quarantined", "EncounteredQuarantineException", "Active", None, "state"),  # we say quarantine, Entra does not
    ("disabled", "TooManyDeletes", "Active", None, "state"),
    ("quarantined", "EncounteredQuarantineException", "Quarantine", "EncounteredEscrowProportionThreshold", "reason"),
    ("quarantined", "EncounteredTotalEscrowThreshold", "Quarantine", "EncounteredEscrowProportionThreshold", None),
    ("quarantined", "TooManyDeletes", "Quarantine", "TooManyDeletes", None),
    ("quarantined", "EncounteredQuarantineException", "Quarantine", "Unknown", None),  # nothing to tell apart
    ("quarantined", "EncounteredQuarantineException", "Quarantine", None, None),
    ("stalled", None, "Quarantine", "QuarantineOnDemand", "state"),
])
def test_it_compares_entra_s_code_and_reason_with_ours(ours, our_reason, code, entra_reason, disagreement):
    result = compare_health(our_state=ours, our_reason=our_reason, entra_code=code, entra_reason=entra_reason,
                            observed_at=NOW - timedelta(minutes=5), now=NOW)

    assert result.comparable and result.disagreement == disagreement
    assert not result.stale and result.age_s == 300


def test_it_does_not_compare_without_traffic_or_without_a_code():
    for ours, code in (("unknown", "Quarantine"), ("healthy", None)):
        result = compare_health(our_state=ours, our_reason=None, entra_code=code, entra_reason=None,
                                observed_at=None, now=NOW)
        assert not result.comparable and result.disagreement is None and result.age_s is None


def test_it_calls_a_status_older_than_two_intervals_stale():
    result = compare_health(our_state="healthy", our_reason=None, entra_code="Quarantine", entra_reason="Unknown",
                            observed_at=NOW - timedelta(hours=3), now=NOW)

    assert result.stale and result.disagreement == "state" and "old" in result.message


# -- the event page and its join ------------------------------------------------------------------


def test_the_event_page_shows_entra_s_error_beside_the_exchange(client, joined):  # type: ignore[no-untyped-def]
    signed_in(client, "support")
    event, exchange = joined["event"], joined["exchange"]

    response = client.get(f"/jobs/{JOB}/entra-events/{event.id}")
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    assert "SystemForCrossDomainIdentityManagementBadRequest" in html
    assert "change-1" in html and "Fix the department attribute mapping." in html
    assert "EntryExportUpdate" in html and "Marketing" in html and "Sales" in html  # steps, modified properties
    assert "src-1" in html and "tgt-1" in html
    assert "3 times" in html  # Entra's retry count, read from the reason
    joined_part = html.split("The SCIM exchanges behind it", 1)[1]
    assert f"/jobs/{JOB}/exchanges/{exchange.id}" in joined_part
    assert "(-20 s from the event)" in joined_part
    assert "Request and response" in joined_part  # the failing exchange's bodies, expanded
    if event.cycle_id:
        assert f"/jobs/{JOB}/cycles/{event.cycle_id}" in html


def test_the_event_page_escapes_entra_s_reason(client, joined):  # type: ignore[no-untyped-def]
    signed_in(client, "support")

    html = client.get(f"/jobs/{JOB}/entra-events/{joined['event'].id}").get_data(as_text=True)

    assert SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_viewer_cannot_open_an_event_or_its_reason(client, joined):  # type: ignore[no-untyped-def]
    signed_in(client, "viewer")
    event = joined["event"]

    assert client.get(f"/jobs/{JOB}/entra-events/{event.id}").status_code == 403
    assert client.get(f"/api/v1/jobs/{JOB}/entra/events/{event.id}").status_code == 403
    assert client.get(f"/api/v1/jobs/{JOB}/entra/events").status_code == 403
    assert client.get(f"/jobs/{JOB}/exchanges/{joined['exchange'].id}").status_code == 403  # the same rule
    job_html = client.get(f"/jobs/{JOB}").get_data(as_text=True)
    assert "Entra's view" in job_html and "was rejected" not in job_html


def test_an_event_of_another_job_is_not_found(client, joined):  # type: ignore[no-untyped-def]
    from dashboard.admin.jobs import add_job

    add_job("other-job")
    signed_in(client, "support")

    assert client.get(f"/jobs/other-job/entra-events/{joined['event'].id}").status_code == 404
    assert client.get(f"/api/v1/jobs/other-job/entra/events/{joined['event'].id}").status_code == 404


# -- timeline, cycle, lists -----------------------------------------------------------------------


def test_the_user_timeline_interleaves_entra_events_with_exchanges(client, joined):  # type: ignore[no-untyped-def]
    signed_in(client, "support")
    user, event, exchange = joined["user"], joined["event"], joined["exchange"]

    html = client.get(f"/jobs/{JOB}/users/{user.user_name}").get_data(as_text=True)

    event_link, exchange_link = f"/jobs/{JOB}/entra-events/{event.id}", f"/jobs/{JOB}/exchanges/{exchange.id}"
    assert event_link in html and exchange_link in html
    assert 'class="item entra bad"' in html and "<details open><summary>Entra's reason" in html
    assert "source-entra" in html and "source-scim" in html
    assert SCRIPT not in html


def test_the_json_timeline_interleaves_the_same_items(client, joined):  # type: ignore[no-untyped-def]
    signed_in(client, "support")
    user, event, exchange = joined["user"], joined["event"], joined["exchange"]

    timeline = client.get(f"/api/v1/jobs/{JOB}/users/{user.user_name}/timeline").get_json()

    items = [(i["source"], i["id"]) for c in timeline["cycles"] for i in c["items"]]
    assert items.index(("scim", exchange.id)) < items.index(("entra", event.id))
    assert timeline["entra_events"] >= 1


def test_the_timeline_puts_an_event_after_the_exchange_before_it(client, joined):  # type: ignore[no-untyped-def]
    signed_in(client, "support")
    user, event, exchange = joined["user"], joined["event"], joined["exchange"]

    html = client.get(f"/jobs/{JOB}/users/{user.user_name}").get_data(as_text=True)
    # the event came 20 s after the failed exchange: newest cycle first, items in time order
    timeline = html.split('<ol class="timeline">', 1)[1]
    items = re.findall(rf"/jobs/{JOB}/(entra-events|exchanges|cycles)/(\d+)", timeline)
    cycle = items[items.index(("cycles", str(event.cycle_id))):]
    assert cycle.index(("exchanges", str(exchange.id))) < cycle.index(("entra-events", str(event.id)))


def test_the_cycle_page_lists_failing_events_and_joins_both_sources(client, joined):  # type: ignore[no-untyped-def]
    signed_in(client, "support")
    event = joined["event"]
    assert event.cycle_id

    html = client.get(f"/jobs/{JOB}/cycles/{event.cycle_id}").get_data(as_text=True)

    assert "Entra's provisioning logs for this cycle" in html
    assert "2 events" in html and "1 failed" in html and "0 held deletes" in html
    assert f"/jobs/{JOB}/entra-events/{event.id}" in html
    joined_part = html.split("Both sources, joined by user", 1)[1]
    assert joined["user"].label in joined_part and f"/jobs/{JOB}/exchanges/{joined['exchange'].id}" in joined_part


def test_the_cycle_list_marks_each_cycle_s_source(client, joined):  # type: ignore[no-untyped-def]
    signed_in(client, "viewer")

    html = client.get(f"/jobs/{JOB}/cycles").get_data(as_text=True)

    assert "source-scim" in html and ("source-entra" in html or "source-both" in html)


# -- the job page's Entra panel and the disagreement flag -----------------------------------------


def test_the_job_page_flags_entra_s_quarantine_that_we_do_not_see(app, client, settings):  # type: ignore[no-untyped-def]
    ended = _scim(settings, failure_rate=0.0)
    now = ended + timedelta(minutes=30)
    app.extensions["clock"] = lambda: now
    _status(settings, _quarantined_doc(), observed=now - timedelta(minutes=10))
    signed_in(client, "viewer")

    html = client.get(f"/jobs/{JOB}").get_data(as_text=True)
    panel = html.split('<section class="card entra-status">', 1)[1].split("</section>", 1)[0]

    assert "DISAGREEMENT" in panel and "Entra says Quarantine" in panel
    assert "EncounteredEscrowProportionThreshold" in panel and "10 min ago" in panel
    assert 'aria-valuenow="70.0"' in panel and "7 of 10 pages" in panel
    assert "640 of 1170 exported" in panel and "530 escrowed" in panel and "44 min 10 s" in panel
    assert "Next attempt" in panel and "Series count" in panel


def test_the_job_page_flags_our_quarantine_that_entra_does_not_report(app, client, settings):  # type: ignore[no-untyped-def]
    ended = _scim(settings, failure_rate=0.0, auth_outage_cycles=(1,))
    now = ended + timedelta(minutes=30)
    app.extensions["clock"] = lambda: now
    _status(settings, _active_doc(), observed=now - timedelta(minutes=5))
    signed_in(client, "viewer")

    html = client.get(f"/jobs/{JOB}").get_data(as_text=True)
    data = client.get(f"/api/v1/jobs/{JOB}/entra/status").get_json()

    assert "DISAGREEMENT" in html and "We infer quarantined" in html
    assert data["status"]["code"] == "Active" and data["comparison"]["disagreement"] == "state"
    assert data["comparison"]["ours_quarantined"] and not data["comparison"]["entra_quarantined"]


def test_the_job_page_flags_quarantine_reasons_of_different_kinds(app, client, settings):  # type: ignore[no-untyped-def]
    ended = _scim(settings, failure_rate=0.0, auth_outage_cycles=(1,))  # ours: EncounteredQuarantineException
    now = ended + timedelta(minutes=30)
    app.extensions["clock"] = lambda: now
    _status(settings, _quarantined_doc(), observed=now - timedelta(minutes=5))  # Entra: proportion threshold
    signed_in(client, "viewer")

    data = client.get(f"/api/v1/jobs/{JOB}/entra/status").get_json()

    assert data["comparison"]["disagreement"] == "reason"
    assert (data["comparison"]["entra_kind"], data["comparison"]["our_kind"]) == ("escrow", "credentials")


def test_the_job_page_says_when_they_agree_and_when_entra_s_status_is_missing(app, client, settings):  # type: ignore[no-untyped-def]
    ended = _scim(settings, failure_rate=0.0)
    now = ended + timedelta(minutes=30)
    app.extensions["clock"] = lambda: now
    signed_in(client, "viewer")

    assert "No job status from Entra yet" in client.get(f"/jobs/{JOB}").get_data(as_text=True)
    assert client.get(f"/api/v1/jobs/{JOB}/entra/status").get_json() == {"status": None, "comparison": None}

    _status(settings, _active_doc(), observed=now - timedelta(minutes=5))
    html = client.get(f"/jobs/{JOB}").get_data(as_text=True)
    assert "DISAGREEMENT" not in html and "agree: no quarantine" in html


# -- negative evidence, sample and last-failure ids go to event pages ------------------------------


def test_negative_ids_link_to_event_pages_everywhere(app, client, settings):  # type: ignore[no-untyped-def]
    # A job seen only through Entra's provisioning logs, with thresholds low enough that its
    # cycle quarantines: evidence, signature samples and users' last failures are events.
    job = get_job(JOB)
    job.quarantine_overrides = json.dumps({"min_failures": 2})
    db.session.commit()
    t0 = NOW - timedelta(hours=2)
    records = [_record(n, at=t0 + timedelta(seconds=n), user=f"user{n}@contoso.com",
                       status="failure" if n < 4 else "success") for n in range(6)]
    events = _import(settings, records)
    app.extensions["clock"] = lambda: NOW
    signed_in(client, "support")

    sig = db.session.scalars(select(Signature)).first()
    assert sig.sample_exchange_id < 0
    failing = db.session.scalars(select(ScimUser).where(ScimUser.last_failure_exchange_id.is_not(None))).first()
    report = send_report_if_due(db.session, job, NOW, settings, force=True)
    pages = {
        "job": client.get(f"/jobs/{JOB}").get_data(as_text=True),
        "diagnostics": client.get(f"/jobs/{JOB}/diagnostics").get_data(as_text=True),
        "users": client.get(f"/jobs/{JOB}/users").get_data(as_text=True),
        "user": client.get(f"/jobs/{JOB}/users/{failing.user_name}").get_data(as_text=True),
        "cycle": client.get(f"/jobs/{JOB}/cycles/{events[0].cycle_id}").get_data(as_text=True),
        "report": client.get(f"/reports/{report.id}").get_data(as_text=True),
    }

    ids = {e.id for e in events}
    for name, html in pages.items():
        assert "/exchanges/-" not in html, name
        linked = {int(i) for i in re.findall(rf"/jobs/{JOB}/entra-events/(\d+)", html)}
        assert linked and linked <= ids, name
    assert f"/jobs/{JOB}/entra-events/{-sig.sample_exchange_id}" in pages["diagnostics"]
    assert "quarantined" in pages["diagnostics"]  # the evidence is that of a quarantine transition
    assert f"/jobs/{JOB}/entra-events/{-failing.last_failure_exchange_id}" in pages["users"]


# -- the API --------------------------------------------------------------------------------------


def test_the_api_gives_an_event_with_the_exchanges_behind_it(client, joined):  # type: ignore[no-untyped-def]
    signed_in(client, "support")
    event, exchange = joined["event"], joined["exchange"]

    data = client.get(f"/api/v1/jobs/{JOB}/entra/events/{event.id}").get_json()

    assert data["id"] == event.id and data["outcome"] == "failure" and data["change_id"] == "change-1"
    assert SCRIPT in data["reason"]  # JSON carries the text as is; pages escape it
    assert data["steps"][1]["name"] == "EntryExportUpdate"
    assert data["modified_properties"] == [{"name": "department", "old": "Sales", "new": "Marketing"}]
    assert data["exchanges"][0]["id"] == exchange.id and -21 < data["exchanges"][0]["offset_s"] <= -19
    assert "response_body" in data["exchanges"][0] and data["window_s"] == 600


def test_the_api_pages_and_filters_events(client, joined):  # type: ignore[no-untyped-def]
    signed_in(client, "support")
    event, ok = joined["event"], joined["ok_event"]
    base = f"/api/v1/jobs/{JOB}/entra/events"

    first = client.get(base + "?limit=1").get_json()
    second = client.get(base + f"?limit=1&after={first['next_after']}").get_json()

    assert [e["id"] for e in first["events"] + second["events"]] == [ok.id, event.id]  # newest first
    assert second["next_after"] is None and "reason" not in first["events"][0]
    assert [e["id"] for e in client.get(base + "?status=failure").get_json()["events"]] == [event.id]
    assert [e["id"] for e in client.get(base + "?action=UPDATE").get_json()["events"]] == [ok.id, event.id]
    assert [e["id"] for e in client.get(base + f"?user={joined['user'].user_name}").get_json()["events"]] == [event.id]
    assert [e["id"] for e in client.get(base + "?cycle=entra-cycle-1").get_json()["events"]] == [ok.id, event.id]
    assert [e["id"] for e in client.get(base + f"?cycle={event.cycle_id}").get_json()["events"]] == [ok.id, event.id]
    assert client.get(base + "?since=2030-01-01T00:00:00Z").get_json()["events"] == []


@pytest.mark.parametrize("query", ["status=broken", "action=explode", "since=yesterday", "after=nonsense", "limit=0"])
def test_the_api_refuses_a_bad_filter_with_400_json(client, joined, query):  # type: ignore[no-untyped-def]
    signed_in(client, "support")

    response = client.get(f"/api/v1/jobs/{JOB}/entra/events?{query}")

    assert response.status_code == 400 and "error" in response.get_json()
