"""Traffic recorded live from real SCIM software (scim2-server driven by scim2-client, see
recording.py), ingested as a person would (`flask ingest`), and the dashboard's report checked
against what the driver did.

Identity is as Entra and the target define it: a person is their externalId and the target's SCIM
id; userName is a mutable attribute that two people may share for a while (the second create is
answered 409); a lookup that finds nothing provisions nobody.
"""
from __future__ import annotations

import json
from datetime import timedelta

import orjson
import pytest

from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.models import Reject
from dashboard.queries.replay import report
from dashboard.queries.users import find_user, list_users
from tests.samples import recording
from tests.samples.helpers import JOB, count, ingest, users

PEOPLE = recording.PEOPLE
END_OF_RUN = recording.START + 2 * recording.CYCLE_EVERY + timedelta(minutes=1)
EXCHANGES = 34


@pytest.fixture(scope="module")
def run() -> recording.Recording:
    """One live recording per module: scim2-server in memory, driven in-process (no network)."""
    return recording.record()


@pytest.fixture
def ingested(run, runner, tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "scim2-server-live.jsonl"
    path.write_text(recording.render(run.lines), encoding="utf-8")
    result = ingest(runner, path)
    assert result.exit_code == 0, result.output
    assert f"{EXCHANGES} lines: {EXCHANGES} accepted, 0 duplicates, 0 rejected" in result.output
    assert count(Reject) == 0
    return run


def _by_external_id() -> dict[str, dict]:
    return {u["externalId"]: u for u in users() if u["externalId"]}


def _person(run, key):  # type: ignore[no-untyped-def]
    return _by_external_id()[run.people[key].external_id]


def _report(settings):  # type: ignore[no-untyped-def]
    db.session.rollback()
    return report(db.session, get_job(JOB), END_OF_RUN + timedelta(hours=1), settings)


# -- the recording itself ----------------------------------------------------------------------------


def test_the_server_answered_what_the_scenario_needs(run):
    answers = [(s.cycle, s.person, s.action, s.status, s.scim_type) for s in run.steps]
    # scim2-server keeps userName unique: frank2's create collides with frank's, in every cycle
    assert [a for a in answers if a[1] == "frank2" and a[2] == "create"] == [
        (1, "frank2", "create", 409, "uniqueness"), (2, "frank2", "create", 409, "uniqueness"),
        (3, "frank2", "create", 409, "uniqueness")]
    assert (2, "carol", "update", 404, None) in answers  # deleted in the target behind Entra's back
    assert [(s.cycle, s.found) for s in run.steps if s.person == recording.GHOST] == [(1, 0), (2, 0), (3, 0)]
    assert [(s.cycle, s.found) for s in run.steps if s.action == "test"] == [(1, 0), (2, 0), (3, 0)]
    assert len(run.people["carol"].scim_ids) == 2  # created again with a new id
    assert run.people["frank2"].scim_ids == []  # never created
    assert len(run.lines) == EXCHANGES
    assert all(line["request_headers"]["authorization"] == "[redacted]" for line in run.lines)
    assert not any(recording.TOKEN in json.dumps(line) for line in run.lines)


def test_the_committed_recording_is_this_run(run):
    committed = [json.loads(line) for line in recording.RECORDED.read_text(encoding="utf-8").splitlines()]
    assert [recording.comparable(line) for line in committed] == [recording.comparable(line) for line in run.lines], (
        "regenerate it: .venv/bin/python -m tests.samples.recording")


# -- the dashboard's report against what the driver did -----------------------------------------------


def test_every_person_is_one_user_keyed_by_external_id(ingested):
    listed = users()
    durable = _by_external_id()
    assert set(durable) == {p.external_id for p in PEOPLE.values()}
    assert len(listed) == len(PEOPLE) + 1  # and the provisional one of the lookups that found nothing


def test_a_rename_under_the_same_external_id_is_the_same_person(ingested):
    alice = _person(ingested, "alice")
    assert (alice["userName"], alice["scim_id"]) == ("alice.smith@contoso.com", ingested.people["alice"].scim_ids[0])
    assert (alice["state"], alice["provisioned"], alice["streak"]) == ("in_sync", True, 0)


def test_a_case_only_rename_is_the_same_person(ingested):
    bob = _person(ingested, "bob")
    assert (bob["userName"], bob["scim_id"]) == ("Bob@Contoso.com", ingested.people["bob"].scim_ids[0])
    assert (bob["state"], bob["provisioned"]) == ("in_sync", True)


def test_two_people_colliding_on_one_username_stay_two(ingested):
    frank, frank2 = _person(ingested, "frank"), _person(ingested, "frank2")
    assert frank["id"] != frank2["id"]
    assert (frank["userName"], frank["scim_id"], frank["state"], frank["provisioned"]) == (
        "frank@contoso.com", ingested.people["frank"].scim_ids[0], "in_sync", True)
    # the 409 user: failing since the first cycle, in all three, never provisioned, no SCIM id
    assert (frank2["userName"], frank2["scim_id"], frank2["state"], frank2["provisioned"], frank2["streak"]) == (
        "frank@contoso.com", None, "failing", False, 3)
    assert frank2["failing_since"] is not None and frank2["failing_since"] < "2026-03-02T08:01"


def test_a_user_deleted_in_the_target_and_created_again_is_one_person_with_the_new_id(ingested):
    carol = _person(ingested, "carol")
    old_id, new_id = ingested.people["carol"].scim_ids
    assert carol["scim_id"] == new_id != old_id
    assert (carol["userName"], carol["state"], carol["provisioned"], carol["streak"]) == (
        "carol@contoso.com", "in_sync", True, 0)
    assert not any(u["scim_id"] == old_id for u in users())  # no second row left for the old id


def test_disable_re_enable_and_delete(ingested):
    dave, erin = _person(ingested, "dave"), _person(ingested, "erin")
    assert (dave["state"], dave["provisioned"]) == ("in_sync", True)
    assert (erin["state"], erin["provisioned"]) == ("deleted", True)


def test_lookups_that_find_nothing_provision_nobody(ingested):
    others = [u for u in users() if not u["externalId"]]
    assert [u["userName"] for u in others] == [recording.GHOST]
    assert (others[0]["state"], others[0]["provisioned"], others[0]["scim_id"]) == ("never_provisioned", False, None)
    # the connection tests (a random GUID at each cycle's start) concern nobody
    assert not any(name in json.dumps(users()) for name in recording.TEST_GUIDS)


def test_the_report_counts_each_cycle_as_the_driver_did_it(ingested, settings):
    report = _report(settings)
    cycles = list(reversed(report["cycles"]))  # the report lists the latest first
    assert [c["started_at"][:19] for c in cycles] == ["2026-03-02T08:00:00", "2026-03-02T08:40:00",
                                                      "2026-03-02T09:20:00"]
    assert [c["requests"] for c in cycles] == [16, 9, 9]
    assert [c["connection_tests"] for c in cycles] == [1, 1, 1]
    assert [c["failed_requests"] for c in cycles] == [1, 2, 1]
    empty = {"success": 0, "failure": 0, "skipped": 0}

    def counts(**rows: dict) -> dict:
        return {bucket: {**empty, **rows.get(bucket, {})} for bucket in ("create", "update", "disable", "delete", "other")}

    # cycle 1: six created, frank2's create failed, the ghost looked up and skipped
    assert (cycles[0]["users"], cycles[0]["counts"]) == (
        8, counts(create={"success": 6, "failure": 1}, other={"skipped": 1}))
    # cycle 2: alice and bob renamed, carol's update 404, dave disabled, frank2 again, the ghost
    assert (cycles[1]["users"], cycles[1]["counts"]) == (6, counts(
        update={"success": 2, "failure": 1}, disable={"success": 1}, create={"failure": 1}, other={"skipped": 1}))
    # cycle 3: carol created again, dave enabled, erin deleted, frank2 again; alice, bob and the
    # ghost only looked up
    assert (cycles[2]["users"], cycles[2]["counts"]) == (7, counts(
        create={"success": 1, "failure": 1}, delete={"success": 1}, other={"success": 1, "skipped": 3}))


def test_the_report_names_the_failing_user_and_nobody_else(ingested, settings):
    report = _report(settings)

    failing = [(u["externalId"], u["userName"], u["streak"]) for u in report["failing_users"]]
    assert failing == [(PEOPLE["frank2"].external_id, "frank@contoso.com", 3)]
    signature = next(s for s in report["signatures"] if s["status"] == 409)
    assert (signature["operation"], signature["scimType"], signature["users"]) == ("create", "uniqueness", 1)
    assert orjson.loads(orjson.dumps(report))  # the report serialises as the API sends it


def test_a_person_is_found_by_any_past_name_or_scim_id(ingested):
    job = get_job(JOB)
    alice, carol = _person(ingested, "alice"), _person(ingested, "carol")
    db.session.rollback()
    found = find_user(db.session, job, "alice@contoso.com")  # her name until cycle 2
    assert found is not None and found.id == alice["id"]
    found = find_user(db.session, job, ingested.people["carol"].scim_ids[0])  # her first SCIM id
    assert found is not None and found.id == carol["id"]
    listed = list_users(db.session, job, search="alice@contoso.com")["users"]
    assert [u["id"] for u in listed] == [alice["id"]]
