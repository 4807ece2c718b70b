"""Microsoft's published samples (tests/data/samples, sources in each SOURCE.md), each ingested as a
person would (`flask ingest`), with the outcome it must give.

* the SCIM tutorial's request/response pairs, converted to v1 lines (entra-scim-tutorial/);
* Graph's provisioningObjectSummary list examples, v1.0 and the 2019 beta, as published: two of
  the four pages hold a trailing comma, and the published page must still be read;
* Graph's synchronizationJob examples: a paused job, and a job in quarantine.

Identity is as Entra and the target define it: a person is their externalId (Entra's source
object) and the target's SCIM id; userName is a mutable attribute two people may share for a
while; a lookup that finds nothing provisions nobody.
"""
from __future__ import annotations

import json

import orjson
import pytest
from sqlalchemy import select

from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.models import Cycle, EntraEvent, EntraJobStatus, Exchange, Reject
from dashboard.queries.entra import latest_status
from tests.samples.helpers import JOB, SAMPLES, count, ingest, load_script, users

TUTORIAL = SAMPLES / "entra-scim-tutorial"
GRAPH = SAMPLES / "graph"
V1_SUCCESS = GRAPH / "provisioningobjectsummary-list.v1.0.example-1-success.json"
V1_ERROR = GRAPH / "provisioningobjectsummary-list.v1.0.example-2-error.json"
BETA_SUCCESS = GRAPH / "provisioningobjectsummary-list.beta-2019.example-1-success.json"
BETA_ERROR = GRAPH / "provisioningobjectsummary-list.beta-2019.example-2-error.json"
JOB_PAUSED = GRAPH / "synchronizationjob-get.paused.json"
JOB_QUARANTINE = GRAPH / "synchronizationjob.quarantine.json"

# The tutorial's people: externalId -> the target's SCIM id, as the published bodies give them.
TUTORIAL_PEOPLE = {
    "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef": "48af03ac28ad4fb88478",  # Create User
    "58342554-38d6-4ec8-948c-50044d0a33fd": "5d48a0a8e9f04aa38008",  # Get User (found)
    "7fce0092-d52e-4f76-b727-3955bd72c939": "2441309d85324e7793ae",  # Get User by query
    "6c75de36-30fa-4d2d-a196-6bdcdb6b6539": "6764549bef60420686bc",  # Update User [multi-valued]
    "aa1eca08-7179-4eeb-a0be-a519f7e5cd1a": "5171a35d82074e068ce2",  # renamed, disabled, deleted
}
SHARED_NAME = "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee"  # four of them carry it


# -- the files are what was published, and regenerate identically ------------------------------------


def test_the_tutorial_log_is_the_converter_s_output_of_the_published_excerpt():
    convert = load_script(TUTORIAL / "convert.py")
    excerpt = (TUTORIAL / "use-scim-to-provision-users-and-groups.excerpt.md").read_text(encoding="utf-8")

    assert (TUTORIAL / "scim-tutorial.jsonl").read_text(encoding="utf-8") == convert.render(excerpt)
    lines = [json.loads(line) for line in (TUTORIAL / "scim-tutorial.jsonl").read_text().splitlines()]
    assert len(lines) == 17  # 9 user, 7 group exchanges and the schema discovery, as published
    # the bodies that are not strict JSON as published are kept verbatim beside the parsed body
    create = lines[0]
    assert '"givenName": "givenName",\n    },' in create["response_body_published"]
    assert create["response_body"]["name"]["givenName"] == "givenName"
    assert "request_body_published" not in create  # the request was strict JSON


def test_the_graph_files_are_the_published_bodies_trailing_commas_included():
    extract = load_script(GRAPH / "extract.py")
    pages = {page: extract.bodies((GRAPH / page).read_text(encoding="utf-8")) for page in extract.PAGES}
    for page, names in extract.PAGES.items():
        assert [(GRAPH / name).read_text(encoding="utf-8") for name in names] == pages[page]
    for path in (V1_SUCCESS, BETA_SUCCESS):  # as published: `},\n            ],` in modifiedProperties
        with pytest.raises(json.JSONDecodeError):
            json.loads(path.read_text())
        assert '},\n            ],\n            "servicePrincipal"' in path.read_text()
    for path in (V1_ERROR, BETA_ERROR, JOB_PAUSED, JOB_QUARANTINE):
        json.loads(path.read_text())


# -- the SCIM tutorial ------------------------------------------------------------------------------


def test_the_tutorial_log_is_accepted_whole(runner):
    result = ingest(runner, TUTORIAL / "scim-tutorial.jsonl")

    assert result.exit_code == 0, result.output
    assert "17 lines: 17 accepted, 0 duplicates, 0 rejected" in result.output
    assert count(Reject) == 0
    again = ingest(runner, TUTORIAL / "scim-tutorial.jsonl")
    assert "17 lines: 0 accepted, 17 duplicates, 0 rejected" in again.output


def test_each_tutorial_exchange_is_classified(runner):
    ingest(runner, TUTORIAL / "scim-tutorial.jsonl")

    rows = {e.request_id: e for e in db.session.scalars(select(Exchange))}
    operations = {key: row.operation for key, row in rows.items()}
    expected = {
        "tutorial-01": "create",  # POST /Users
        "tutorial-02": "read",  # GET /Users/{id}, found
        "tutorial-03": "read",  # GET /Users/{id}, 404
        "tutorial-04": "lookup",  # GET /Users?filter=userName eq "…", one found
        "tutorial-06": "update",  # PATCH emails and name.familyName
        "tutorial-07": "update",  # PATCH userName: a rename
        "tutorial-08": "disable",  # PATCH active false
        "tutorial-09": "delete",
        "tutorial-10": "group_create",
        "tutorial-11": "group_read",
        "tutorial-12": "group_lookup",
        "tutorial-13": "group_update",
        "tutorial-14": "group_update",
        "tutorial-15": "group_update",
        "tutorial-16": "group_delete",
        "tutorial-17": "connection_test",  # GET /Schemas: discovery
    }
    assert {k: v for k, v in operations.items() if k != "tutorial-05"} == expected
    # the zero-result query ("non-existent user") is a lookup that found nothing, or Entra's test
    assert operations["tutorial-05"] in ("lookup", "connection_test")
    # only the GET by id that answered 404 failed (a 404 on a lookup by filter would be tolerated)
    assert {key for key, row in rows.items() if row.failed} == {"tutorial-03"}
    assert rows["tutorial-03"].status == 404 and rows["tutorial-03"].error_detail.startswith("Resource 23B51B0E")


def test_the_tutorial_people_are_told_apart_by_external_id_and_scim_id(runner):
    ingest(runner, TUTORIAL / "scim-tutorial.jsonl")

    listed = users()
    durable = {u["externalId"]: u for u in listed if u["externalId"]}
    assert {ext: u["scim_id"] for ext, u in durable.items()} == TUTORIAL_PEOPLE
    # four different people carried the same userName: none was merged into another
    assert [durable[ext]["userName"] for ext in list(TUTORIAL_PEOPLE)[:4]] == [SHARED_NAME] * 4
    states = {ext: (u["state"], u["provisioned"]) for ext, u in durable.items()}
    renamed = states.pop("aa1eca08-7179-4eeb-a0be-a519f7e5cd1a")
    assert states == {
        "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef": ("in_sync", True),  # created
        "58342554-38d6-4ec8-948c-50044d0a33fd": ("in_sync", True),  # the target returned it by id
        "7fce0092-d52e-4f76-b727-3955bd72c939": ("in_sync", True),  # the lookup found it
        "6c75de36-30fa-4d2d-a196-6bdcdb6b6539": ("in_sync", True),  # updated
    }
    assert renamed[0] == "deleted"  # renamed, disabled, then deleted, all in the one cycle
    # nobody else: at most the provisional identity of the lookup that found nothing, never provisioned
    others = [u for u in listed if not u["externalId"]]
    assert all(u["userName"] == "non-existent user" for u in others), others
    assert all((u["state"], u["provisioned"]) == ("never_provisioned", False) for u in others), others


def test_a_response_about_another_resource_does_not_rename_the_user_at_the_path(runner):
    """The published Disable User answer (PATCH /Users/5171a35d…) describes another resource: id
    CEC50F27…@834d…, userName deanruiz@testuser.com. The user at the path keeps the name of the
    rename just before (whose answer has the path's id): 5b50642d-…@testuser.com."""
    ingest(runner, TUTORIAL / "scim-tutorial.jsonl")

    durable = {u["externalId"]: u for u in users() if u["externalId"]}
    renamed = durable["aa1eca08-7179-4eeb-a0be-a519f7e5cd1a"]
    assert (renamed["userName"], renamed["scim_id"]) == (
        "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com", "5171a35d82074e068ce2")
    assert not any(u["userName"] == "deanruiz@testuser.com" for u in users())


def test_the_tutorial_is_one_cycle_with_its_writes_counted(runner):
    ingest(runner, TUTORIAL / "scim-tutorial.jsonl")

    cycles = db.session.scalars(select(Cycle)).all()
    assert len(cycles) == 1
    cycle = cycles[0]
    counts = orjson.loads(cycle.counts)
    assert cycle.requests == 17 and cycle.failed_requests == 1 and cycle.connection_tests >= 1
    assert counts["create"] == {"success": 1, "failure": 0, "skipped": 0}
    assert counts["update"] == {"success": 1, "failure": 0, "skipped": 0}
    assert counts["delete"] == {"success": 1, "failure": 0, "skipped": 0}
    assert counts["disable"] == {"success": 0, "failure": 0, "skipped": 0}  # the disabled user was then deleted
    # the two people only read or found, and perhaps the provisional one: nothing to change
    assert counts["other"]["success"] == counts["other"]["failure"] == 0
    assert cycle.users == 3 + counts["other"]["skipped"]
    assert counts["other"]["skipped"] in (2, 3)


# -- Graph provisioningObjectSummary pages ----------------------------------------------------------


def _events() -> dict[str, EntraEvent]:
    db.session.rollback()
    return {e.entra_id: e for e in db.session.scalars(select(EntraEvent))}


@pytest.mark.parametrize("path", [V1_SUCCESS, BETA_SUCCESS], ids=["v1.0", "beta-2019"])
def test_a_published_page_with_a_trailing_comma_is_read(runner, path):
    result = ingest(runner, path)

    assert result.exit_code == 0, result.output
    assert "1 Entra records: 1 accepted, 0 duplicates, 0 rejected" in result.output
    assert count(Reject) == 0
    event = _events()["75b5b0ae-9fc5-8d0e-e0a9-7y6a4728de56"]
    assert (event.outcome, event.failed, event.status) == ("success", False, 200)
    assert event.cycle_key == "b6502552-018d-79bd-8869-j47194dc65c1"
    assert event.change_id == "b6502552-018d-89bd-9969-b49194dc65c1"
    assert event.duration_ms == 3236


def _without_the_trailing_comma(path, tmp_path):  # type: ignore[no-untyped-def]
    """The page with its one trailing comma removed: the action mapping is then tested on its own,
    apart from reading the page as published (test above)."""
    text = path.read_text()
    fixed = text.replace("},\n            ],\n            \"servicePrincipal\"", "}\n            ],\n            \"servicePrincipal\"")
    assert fixed != text
    json.loads(fixed)
    copy = tmp_path / path.name
    copy.write_text(fixed)
    return copy


def test_the_v1_success_example_is_a_create(runner, tmp_path):
    ingest(runner, _without_the_trailing_comma(V1_SUCCESS, tmp_path))

    event = _events()["75b5b0ae-9fc5-8d0e-e0a9-7y6a4728de56"]
    assert (event.action, event.operation) == ("create", "create")


def test_the_2019_beta_action_entry_export_update_is_an_update(runner, tmp_path):
    ingest(runner, _without_the_trailing_comma(BETA_SUCCESS, tmp_path))

    event = _events()["75b5b0ae-9fc5-8d0e-e0a9-7y6a4728de56"]
    assert (event.action, event.operation) == ("update", "update")  # not a lookup


@pytest.mark.parametrize("path", [V1_ERROR, BETA_ERROR], ids=["v1.0", "beta-2019"])
def test_the_published_failure_is_a_409_conflict_on_a_group_create(runner, path):
    result = ingest(runner, path)

    assert result.exit_code == 0, result.output
    assert "1 Entra records: 1 accepted, 0 duplicates, 0 rejected" in result.output
    event = _events()["gc532ff9-r265-ec76-861e-42e2970a8218"]
    assert (event.action, event.operation, event.outcome) == ("create", "create", "failure")
    assert (event.status, event.failed, event.error_code) == (409, True, "ContosoEntryConflict")
    assert event.reason.startswith("Message: Contoso returned an error response with the HTTP status code 409.")
    assert event.cycle_key == "44576n58-v14b-70fj-8404-3d22tt46ed93"
    # a group: no user of the job is made of it
    assert users() == []


def test_the_four_published_pages_together(runner):
    result = ingest(runner, V1_SUCCESS, V1_ERROR, BETA_SUCCESS, BETA_ERROR)

    # the v1.0 and beta pages publish the same two events (same ids): each is stored once
    assert result.exit_code == 0, result.output
    assert "4 Entra records: 2 accepted, 2 duplicates, 0 rejected" in result.output
    assert sorted(_events()) == ["75b5b0ae-9fc5-8d0e-e0a9-7y6a4728de56", "gc532ff9-r265-ec76-861e-42e2970a8218"]
    keys = sorted(c.key for c in db.session.scalars(select(Cycle)))
    assert keys == ["44576n58-v14b-70fj-8404-3d22tt46ed93", "b6502552-018d-79bd-8869-j47194dc65c1"]


# -- Graph synchronizationJob documents -------------------------------------------------------------


def test_the_published_paused_job_status(runner):
    result = ingest(runner, JOB_PAUSED)

    assert result.exit_code == 0, result.output
    assert "Entra job status Paused" in result.output
    row = latest_status(db.session, get_job(JOB))
    assert row is not None and (row.code, row.entra_job_id) == ("Paused", "{jobId}")
    assert not row.quarantine_reason  # the example's quarantine block is empty but for its error


def test_the_published_quarantined_job_status(runner):
    result = ingest(runner, JOB_QUARANTINE)

    assert result.exit_code == 0, result.output
    assert "Entra job status Quarantine, quarantine: EncounteredQuarantineException" in result.output
    row = latest_status(db.session, get_job(JOB))
    assert row is not None and (row.code, row.quarantine_reason) == ("Quarantine", "EncounteredQuarantineException")


def test_a_provisioning_page_forced_as_a_job_status_is_a_listed_reject_and_keeps_the_quarantine(runner):
    ingest(runner, JOB_QUARANTINE)

    forced = ingest(runner, V1_ERROR, fmt="entra-job-status")
    broken = ingest(runner, V1_SUCCESS, fmt="entra-job-status")  # a trailing comma: not JSON to a job reader

    assert forced.exit_code == 1 and broken.exit_code == 1
    assert count(EntraJobStatus) == 1
    row = latest_status(db.session, get_job(JOB))
    assert (row.code, row.quarantine_reason) == ("Quarantine", "EncounteredQuarantineException")
    listed = runner.invoke(args=["rejects", "--job", JOB])
    assert str(V1_ERROR) in listed.output and str(V1_SUCCESS) in listed.output
    assert "2 rejected lines in all" in listed.output
