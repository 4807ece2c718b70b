"""The read API on a simulated job: health, cycles, progress, users, timelines, signatures, report."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from dashboard.admin import accounts
from dashboard.admin.accounts import add_account, create_api_token
from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.demo.simulate import simulate_lines
from dashboard.demo.truth import GroundTruth, SimConfig
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.models import HealthTransition
from dashboard.times import format_ts

API = "/api/v1/jobs/uniflow-prod"
UNIFLOW = "urn:ietf:params:scim:schemas:extension:uniFLOWOnline:2.0:User"
# 60 users, 5 cycles; cycle index 3 answers 401 everywhere (Entra quarantines the job), index 4
# comes 6 h later and lifts the quarantine. A 10 % failure rate leaves a user failing at the end.
CONFIG = SimConfig(users=60, cycles=5, seed=3, job="uniflow-prod", auth_outage_cycles=(3,), failure_rate=0.1)
REPORT_KEYS = {"schema", "job", "generated_at", "as_of", "health", "cycles", "failing_users", "signatures"}


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch):  # type: ignore[no-untyped-def]
    # Argon2 with its default cost takes half a second per hash; these tests are not about that.
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def truth(app, settings) -> GroundTruth:  # type: ignore[no-untyped-def]
    truth = load(settings, CONFIG)
    set_clock(app, truth.cycles[-1].ended_at + timedelta(minutes=30))  # the last cycle has completed
    return truth


def load(settings, config: SimConfig) -> GroundTruth:  # type: ignore[no-untyped-def]
    lines, truth = simulate_lines(config)
    ingest_lines(db.engine, get_job("uniflow-prod"), enumerate(lines, start=1), source="sim.jsonl", via="cli",
                 options=options_from(settings.ingest, cycles=settings.cycles))
    return truth


@pytest.fixture
def api(client, truth):  # type: ignore[no-untyped-def]
    """A client that signs its requests with a support account's personal API token."""
    return signed(client)


def signed(client):  # type: ignore[no-untyped-def]
    token = create_api_token(add_account("support@example.com", "support", "a long password"))
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def set_clock(app, moment) -> None:  # type: ignore[no-untyped-def]
    app.extensions["clock"] = lambda: moment


def get(api, path: str) -> dict:  # type: ignore[no-untyped-def]
    response = api.get(API + path)
    assert response.status_code == 200, response.json
    return response.json


def cycle_ids(api) -> list[int]:  # type: ignore[no-untyped-def]
    """Database ids of the cycles, oldest first (the simulator's index order)."""
    return [c["id"] for c in reversed(get(api, "/cycles")["cycles"])]


def failed_in(truth: GroundTruth, index: int) -> set[str]:
    return {name for name, u in truth.cycles[index].users.items() if u.outcome == "failed"}


# -- health -----------------------------------------------------------------------------------------


def test_it_shows_the_quarantine_and_its_reason_while_the_outage_lasts(app, client, settings):  # type: ignore[no-untyped-def]
    # The log ends with the 401 cycle; half an hour later the next attempt is still 6 h away.
    truth = load(settings, replace(CONFIG, cycles=4))
    set_clock(app, truth.cycles[3].ended_at + timedelta(minutes=30))

    health = get(signed(client), "/health")

    assert health["state"] == "quarantined"
    assert health["reason"] == "EncounteredQuarantineException"
    assert health["next_expected_attempt"] == format_ts(truth.cycles[3].ended_at + timedelta(hours=6))
    assert health["recommended_action"]["code"] == "EncounteredQuarantineException"
    assert {e["status"] for e in health["evidence"]} == {401}


def test_it_records_the_quarantine_and_its_lifting_as_transitions(api):  # type: ignore[no-untyped-def]
    health = get(api, "/health")

    chronological = list(reversed(health["transitions"]))
    states = [t["new"] for t in chronological]
    quarantined = states.index("quarantined")
    assert chronological[quarantined]["reason"] == "EncounteredQuarantineException"
    assert states[quarantined + 1] != "quarantined"
    assert health["state"] == states[-1] != "quarantined"
    assert health["reason"] is None


# -- cycles and progress ------------------------------------------------------------------------------


def test_it_lists_the_cycles_newest_first_with_the_oldest_as_initial(api, truth):  # type: ignore[no-untyped-def]
    cycles = get(api, "/cycles")

    assert [c["started_at"] for c in cycles["cycles"]] == [format_ts(c.started_at) for c in reversed(truth.cycles)]
    assert [c["kind"] for c in cycles["cycles"]] == ["incremental"] * 4 + ["initial"]
    assert cycles["next_before"] is None


def test_it_pages_the_cycles_with_next_before(api, truth):  # type: ignore[no-untyped-def]
    first = get(api, "/cycles?limit=2")
    second = get(api, f"/cycles?limit=2&before={first['next_before']}")

    assert [c["started_at"] for c in first["cycles"] + second["cycles"]] == [
        format_ts(c.started_at) for c in reversed(truth.cycles[1:])
    ]


def test_it_shows_a_completed_current_cycle_at_100_percent(api, truth):  # type: ignore[no-untyped-def]
    current = get(api, "/cycles/current")["cycle"]

    assert current["started_at"] == format_ts(truth.cycles[-1].started_at)
    assert current["state"] == "completed"
    assert current["progress"]["percent"] == 100.0
    assert current["progress"]["processed_users"] == len(truth.cycles[-1].users)


def test_it_shows_a_cycles_operation_by_outcome_matrix(api, truth):  # type: ignore[no-untyped-def]
    detail = get(api, f"/cycles/{cycle_ids(api)[1]}")

    assert detail["counts"] == truth.cycles[1].counts()


def test_it_diffs_a_cycle_with_the_previous_one(api, truth):  # type: ignore[no-untyped-def]
    ids = cycle_ids(api)
    before, now = failed_in(truth, 0), failed_in(truth, 1)

    diff = get(api, f"/cycles/{ids[1]}")["diff"]

    names = {key: {u["userName"] for u in users} for key, users in diff.items()}
    assert names == {
        "new_failures": now - before,
        "fixed": (before - now) & set(truth.cycles[1].users),
        "still_failing": now & before,
    }
    assert names["still_failing"]  # the scenario has some: 409 and 400 persist for a few cycles


def test_it_lists_a_cycles_error_signatures(api, truth):  # type: ignore[no-untyped-def]
    outage = get(api, f"/cycles/{cycle_ids(api)[3]}")

    assert [(s["status"], s["action"]["code"]) for s in outage["signatures"]] == [
        (401, "EncounteredQuarantineException"),
    ]
    assert outage["signatures"][0]["in_cycle"] == {"exchanges": truth.cycles[3].requests,
                                                   "users": len(truth.cycles[3].users)}


# -- users and timelines ----------------------------------------------------------------------------


def test_it_lists_the_failing_users(api, truth):  # type: ignore[no-untyped-def]
    last_outcome: dict[str, str] = {}
    for cycle in truth.cycles:
        last_outcome.update({name: u.outcome for name, u in cycle.users.items()})

    users = get(api, "/users?state=failing")

    assert {u["userName"] for u in users["users"]} == {n for n, o in last_outcome.items() if o == "failed"} != set()
    assert {u["state"] for u in users["users"]} == {"failing"}


def test_it_shows_a_users_timeline_cycle_by_cycle(api, truth):  # type: ignore[no-untyped-def]
    name = next(n for n, u in truth.cycles[0].users.items() if u.status == 409)

    timeline = get(api, f"/users/{name}/timeline")

    appears = [format_ts(c.started_at) for c in truth.cycles if name in c.users]
    assert timeline["user"]["userName"] == name
    assert [c["cycle"]["started_at"] for c in timeline["cycles"]] == appears
    assert all(c["exchanges"] for c in timeline["cycles"])


def test_it_shows_failing_exchanges_in_full_with_the_pin_redacted(api, truth):  # type: ignore[no-untyped-def]
    name = next(n for n, u in truth.cycles[0].users.items() if u.status == 409)

    timeline = get(api, f"/users/{name}/timeline")

    post = next(e for e in timeline["cycles"][0]["exchanges"] if e["method"] == "POST")
    assert post["status"] == 409
    assert post["request_body"]["userName"] == name
    assert post["request_body"][UNIFLOW]["pin"] == "[REDACTED]"
    assert post["request_headers"]["authorization"] == "[REDACTED]"
    assert post["response_body"]["status"] == "409"
    assert post["recommended_action"]["code"] == "EntryConflict"


def test_it_shows_succeeding_exchanges_without_bodies(api, truth):  # type: ignore[no-untyped-def]
    name = next(n for n, u in truth.cycles[0].users.items() if u.status == 201)

    timeline = get(api, f"/users/{name}/timeline")

    created = next(e for e in timeline["cycles"][0]["exchanges"] if e["method"] == "POST")
    assert created["status"] == 201
    assert "request_body" not in created


def test_it_shows_one_exchange_redacted(api, truth):  # type: ignore[no-untyped-def]
    name = next(n for n, u in truth.cycles[0].users.items() if u.status == 201)
    created = next(e for e in get(api, f"/users/{name}/timeline")["cycles"][0]["exchanges"] if e["method"] == "POST")

    exchange = get(api, f"/exchanges/{created['id']}")

    assert exchange["request_body"][UNIFLOW]["pin"] == "[REDACTED]"
    assert exchange["response_body"][UNIFLOW]["pin"] == "[REDACTED]"


# -- signatures -----------------------------------------------------------------------------------


def test_it_lists_signatures_with_a_recommended_action(api):  # type: ignore[no-untyped-def]
    signatures = get(api, "/signatures")["signatures"]

    by_status = {s["status"]: s for s in signatures}
    assert by_status[401]["action"]["code"] == "EncounteredQuarantineException"
    assert by_status[409]["action"]["code"] == "EntryConflict"
    assert all(s["action"]["code"] and s["action"]["action"] for s in signatures)


# -- the report -----------------------------------------------------------------------------------


def test_it_answers_the_report_with_the_documented_keys(api, truth):  # type: ignore[no-untyped-def]
    report = get(api, "/report?cycles=2")

    assert set(report) == REPORT_KEYS
    assert report["schema"] == "provisioning-report/1"
    assert report["job"]["name"] == "uniflow-prod"
    assert [c["started_at"] for c in report["cycles"]] == [format_ts(truth.cycles[i].started_at) for i in (4, 3)]
    assert report["as_of"] == report["generated_at"]


def test_it_replays_the_report_at_a_past_moment(api, truth):  # type: ignore[no-untyped-def]
    # An hour after the 401 cycle: the job was quarantined and the last cycle had not happened.
    at = truth.cycles[3].ended_at + timedelta(hours=1)

    report = get(api, f"/report?at={format_ts(at)}")

    assert set(report) == REPORT_KEYS
    assert report["as_of"] == format_ts(at)
    assert [c["started_at"] for c in report["cycles"]] == [format_ts(c.started_at) for c in reversed(truth.cycles[:4])]
    assert report["health"]["state"] == "quarantined"
    assert report["health"]["reason"] == "EncounteredQuarantineException"


def test_it_writes_nothing_when_replaying(api, truth):  # type: ignore[no-untyped-def]
    get(api, "/health")
    before = db.session.scalar(select(func.count()).select_from(HealthTransition))

    get(api, f"/report?at={format_ts(truth.cycles[2].ended_at)}")

    assert db.session.scalar(select(func.count()).select_from(HealthTransition)) == before


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/api/v1/jobs/nope/health",
    "/api/v1/jobs/nope/cycles",
    f"{API}/cycles/999999",
    f"{API}/users/nobody@contoso.com/timeline",
    f"{API}/exchanges/999999",
])
def test_it_answers_404_json_for_unknown_objects(api, path):  # type: ignore[no-untyped-def]
    response = api.get(path)

    assert response.status_code == 404
    assert response.is_json
    assert set(response.json) == {"error"}


@pytest.mark.parametrize("path", [
    "/cycles?limit=abc",
    "/cycles?limit=0",
    "/users?state=bogus",
    "/users?after=x",
    "/report?at=yesterday",
    "/report?cycles=1000",
])
def test_it_answers_400_json_for_bad_query_parameters(api, path):  # type: ignore[no-untyped-def]
    response = api.get(API + path)

    assert response.status_code == 400
    assert response.is_json
    assert set(response.json) == {"error"}
