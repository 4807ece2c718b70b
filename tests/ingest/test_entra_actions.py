"""Issue 10 item 7: the action names of Graph beta as published in 2019 and of Entra's steps.

Graph beta's provisioningObjectSummary examples (microsoft-graph-docs,
api-reference/beta/api/provisioningobjectsummary-list.md, 2019) carry `"action":
"EntryExportUpdate"`, and their steps are named EntryImport, EntryImportAdd,
EntrySynchronizationAdd, EntryExportAdd, EntryExportUpdate. Such a name says what Entra did to the
target (export), decided (synchronization) or only read from the source (import).
"""
from __future__ import annotations

import pytest

from dashboard.formats.entra.facts import fact_of
from dashboard.formats.entra.normalize import action_of
from dashboard.formats.entra.parse import convert_record
from dashboard.formats.entra.records import ProvisioningAction as A

ENTRY_NAMES = [
    ("EntryExportUpdate", A.UPDATE),
    ("EntryExportAdd", A.CREATE),
    ("EntryExportCreate", A.CREATE),
    ("EntryExportDelete", A.DELETE),
    ("EntryExportUpdateSoftDelete", A.DISABLE),
    ("EntryExportSoftDelete", A.DISABLE),
    ("EntryExportDisable", A.DISABLE),
    ("EntrySynchronizationAdd", A.CREATE),
    ("EntrySynchronizationUpdate", A.UPDATE),
    ("EntrySynchronizationDelete", A.DELETE),
    ("EntrySynchronizationSkipped", A.OTHER),
    ("EntryImport", A.OTHER),
    ("EntryImportAdd", A.OTHER),
    ("EntryImportUpdate", A.OTHER),
    ("EntryImportDelete", A.OTHER),
    ("EntryImportObjectDelete", A.OTHER),
]


@pytest.mark.parametrize(("name", "expected"), ENTRY_NAMES)
def test_each_entry_step_name_maps_to_its_action(name, expected):
    assert action_of(name) == (expected, None)


@pytest.mark.parametrize(("name", "expected"), [
    ("entryexportupdate", A.UPDATE), ("ENTRYEXPORTADD", A.CREATE), ("Entry Export Update Soft Delete", A.DISABLE),
    ("entry_export_delete", A.DELETE),
])
def test_other_casings_and_separators_of_the_names_are_the_same_action(name, expected):
    assert action_of(name) == (expected, None)


@pytest.mark.parametrize(("name", "expected"), [
    ("create", A.CREATE), ("Create", A.CREATE), ("add", A.CREATE), ("update", A.UPDATE), ("Delete", A.DELETE),
    ("disable", A.DISABLE), ("stagedDelete", A.STAGED_DELETE), ("Staged delete", A.STAGED_DELETE),
    ("StagedAction", A.STAGED_DELETE), ("other", A.OTHER), ("unknownFutureValue", A.OTHER), ("", A.OTHER),
    (None, A.OTHER),
])
def test_the_v1_and_portal_spellings_still_map(name, expected):
    assert action_of(name) == (expected, None)


@pytest.mark.parametrize("name", ["Restore", "EntryExport", "EntryExportFrobnicate"])
def test_an_unknown_word_is_other_and_kept(name):
    assert action_of(name) == (A.OTHER, name)


def _beta_record(action: str, status: str = "success") -> dict:
    """A Graph beta record shaped as the 2019 sample, for a user."""
    return {
        "id": "75b5b0ae-9fc5-8d0e-e0a9-7y6a4728de56", "activityDateTime": "2019-05-04T03:00:54Z",
        "jobId": "aws.74beb1753b704b63b8d56f0b76082b16.10a7a801", "cycleId": "b6502552-018d-79bd-8869-j47194dc65c1",
        "changeId": "b6502552-018d-89bd-9969-b49194dc65c1", "action": action, "durationInMilliseconds": 3236,
        "statusInfo": {"status": status},
        "provisioningSteps": [
            {"name": "EntryImport", "provisioningStepType": "Import", "status": "success", "details": {}},
            {"name": action, "provisioningStepType": "Export", "status": status, "details": {}},
        ],
        "sourceIdentity": {"identityType": "User", "id": "60a7a801", "displayName": "Alex", "details": {}},
        "targetIdentity": {"identityType": "User", "id": "6nn35b93", "displayName": "Alex", "details": {}},
    }


@pytest.mark.parametrize(("action", "operation"), [
    ("EntryExportUpdate", "update"), ("EntryExportAdd", "create"), ("EntryExportDelete", "delete"),
    ("EntryExportUpdateSoftDelete", "disable"), ("EntryImport", "lookup"),
])
def test_a_beta_record_s_entry_action_is_the_analysis_s_operation(action, operation):
    event = convert_record(_beta_record(action), 1)

    assert fact_of(event).operation == operation
    assert event.action_raw is None  # a known name: stored as the action itself


def test_a_skipped_synchronization_is_a_skip_not_a_write():
    event = convert_record(_beta_record("EntrySynchronizationSkipped", status="skipped"), 1)

    assert event.action is A.OTHER and fact_of(event).operation == "skip"


def test_imported_beta_records_are_stored_with_their_action_and_operation(runner, tmp_path):  # type: ignore[no-untyped-def]
    import orjson
    from sqlalchemy import select

    from dashboard.db import db
    from dashboard.models import EntraEvent

    names = ["EntryExportUpdate", "EntryExportAdd", "EntryExportDelete", "EntryExportUpdateSoftDelete", "EntryImport"]
    records = []
    for number, name in enumerate(names, 1):
        record = _beta_record(name)
        record["id"] = f"beta-{number}"
        record["changeId"] = f"change-{number}"
        record["sourceIdentity"] = {**record["sourceIdentity"], "id": f"src-{number}"}
        record["targetIdentity"] = {**record["targetIdentity"], "id": f"tgt-{number}"}
        records.append(record)
    page = tmp_path / "beta.json"
    page.write_bytes(orjson.dumps({"@odata.context": "https://graph.microsoft.com/beta/$metadata#auditLogs/provisioning",
                                   "value": records}))

    result = runner.invoke(args=["ingest", str(page), "--job", "uniflow-prod"])

    assert result.exit_code == 0, result.output
    stored = dict(db.session.execute(select(EntraEvent.entra_id, EntraEvent.action)).all())
    operations = dict(db.session.execute(select(EntraEvent.entra_id, EntraEvent.operation)).all())
    assert stored == {"beta-1": "update", "beta-2": "create", "beta-3": "delete", "beta-4": "disable",
                      "beta-5": "other"}
    assert operations == {"beta-1": "update", "beta-2": "create", "beta-3": "delete", "beta-4": "disable",
                          "beta-5": "lookup"}
