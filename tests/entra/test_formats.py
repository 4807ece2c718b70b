"""Each documented shape of Entra's provisioning logs becomes the same ProvisioningEvent."""
from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from dashboard.entra.parse import UNKNOWN, dedupe_key, detect_format, read_events, read_paths
from dashboard.entra.records import (
    Identity, ProvisioningAction, ProvisioningStatus, ServicePrincipal, counts_toward_deletion_threshold, is_escrow_retry,
    is_failure,
)

from .conftest import DATA, events, problems, read


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("graph-v1-example-success.json", "entra-graph"),
        ("graph-v1-example-failure.json", "entra-graph"),
        ("graph-escrow-page-1.json", "entra-graph"),
        ("graph-mixed-versions.json", "entra-graph"),
        ("graph-truncated.json", "entra-graph"),
        ("portal-download.json", "entra-portal-json"),
        ("csv/ProvisioningLogs_2026-03-28.csv", "entra-csv"),
        ("la-rows.json", "log-analytics"),
        ("la-query-api.json", "log-analytics"),
        ("la-export.csv", "log-analytics"),
        ("diagnostic-events.jsonl", "log-analytics"),
    ],
)
def test_it_detects_the_format_of_each_fixture(name, expected):
    assert detect_format((DATA / name).read_bytes()[:65536]) == expected


def test_it_detects_gzip_and_says_unknown_for_anything_else():
    import gzip

    assert detect_format(gzip.compress((DATA / "portal-download.json").read_bytes())) == "entra-portal-json"
    assert detect_format(b"hello world\n") == UNKNOWN
    assert detect_format(b'{"something": "else"}') == UNKNOWN
    scim_line = (b'{"ts":"2026-11-28T09:00:00Z","method":"PATCH","path":"/scim/v2/Users/1","status":204,'
                 b'"request_body":{"Operations":[{"op":"add","path":"members","value":[{"value":"x"}]}]}}\n')
    assert detect_format(scim_line) == UNKNOWN  # the SCIM request log is not ours
    assert detect_format(b'{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#auditLogs/provisioning",'
                         b'"value":[]}') == "entra-graph"  # an empty page


def test_it_turns_an_undetectable_file_into_one_problem():
    items = list(read_events(io.BytesIO(b"hello world\n")))

    assert len(items) == 1 and items[0].line_no == 0 and "cannot tell the format" in items[0].reason


def test_it_reads_the_graph_v1_success_example():
    (event,) = read("graph-v1-example-success.json")

    assert event.id == "75b5b0ae-9fc5-8d0e-e0a9-7y6a4728de56"
    assert event.activity_at == datetime(2019, 5, 4, 3, 0, 54, tzinfo=UTC)
    assert event.cycle_id == "b6502552-018d-79bd-8869-j47194dc65c1"
    assert event.change_id == "b6502552-018d-89bd-9969-b49194dc65c1"
    assert (event.action, event.status, event.duration_ms) == (ProvisioningAction.CREATE, ProvisioningStatus.SUCCESS, 3236)
    assert [s.step_type for s in event.steps] == ["import", "export"]  # "Import" in the sample
    assert event.steps[1].details == {"ReportableIdentifier": "60a7a801-7101-4c69-ae00-ce9f75f8460a"}
    assert len(event.modified_properties) == 5
    assert event.service_principal == ServicePrincipal("6cc35b93-185a-4485-a519-50c09549g3ad", "Contoso")
    assert event.target == Identity("6nn35b93-185a-4485-a519-50c09549f3ad", None, "ServicePrincipal", {})
    assert event.extra["tenantId"] == "74beb175-3b80-7b63-b9d5-6f0b76082b16"  # unknown fields are kept
    assert event.error_code is None and event.reason is None and event.raw_format == "entra-graph"


def test_it_reads_the_documented_failure_of_appendix_b1():
    (event,) = read("graph-v1-example-failure.json")

    assert is_failure(event)
    assert event.error_code == "ContosoEntryConflict"
    assert event.error_category == "nonServiceFailure"
    assert event.reason.startswith("Message: Contoso returned an error response with the HTTP status code 409.")
    assert event.recommended_action is None
    assert event.target.id is None  # "" in the sample: never created
    assert event.source == Identity("5e6c9rae-ab4d-5239-8ad0-174391d110eb", "Self-service Pilot", "Group", {})
    assert [(s.name, s.step_type, s.status) for s in event.steps] == [
        ("EntryImportAdd", "import", "success"),
        ("EntrySynchronizationAdd", "matching", "success"),
        ("EntryExportAdd", "export", "failure"),
    ]
    assert event.retry_count is None and event.next_retry_at is None  # the reason does not say


def test_it_reads_the_escrow_retry_of_appendix_b2():
    (event,) = read("graph-escrow-page-1.json")

    assert event.error_code == "SystemForCrossDomainIdentityManagementServiceIncompatibleFiltering"
    assert event.retry_count == 1
    assert event.next_retry_at == datetime(2026, 3, 24, 13, 23, 44, 919851, tzinfo=UTC)
    assert is_escrow_retry(event)
    assert event.user_name == "craig_ranger@test.com"
    assert event.external_id == "b028a46a-9c4a-424a-954b-521d60f8e8da"
    assert event.duration_ms == 91009
    assert event.job_id.startswith("airtable.")


def test_it_reads_several_page_files_following_next_link(tmp_path):
    items = list(read_paths([DATA / "graph-escrow-page-1.json", DATA / "graph-escrow-page-2.json"]))

    assert [type(i).__name__ for _, i in items] == ["ProvisioningEvent"] * 5
    assert [i.action.value for _, i in items] == ["create", "update", "disable", "stagedDelete", "other"]


def test_it_chooses_the_user_name_the_target_knows():
    page = events(read("graph-escrow-page-2.json"))

    # modified property / export step userName, else the target's userName detail, else the UPN
    assert [e.user_name for e in page] == ["ryan@contoso.com", "ann@contoso.com", "bob@contoso.com", "cleo@contoso.com"]
    assert page[0].external_id == "ryan" and page[0].target.id == "5d48a0a8e9f04aa38008"


def test_it_counts_staged_deletes_and_disables_toward_the_deletion_threshold():
    page = events(read("graph-escrow-page-2.json"))

    assert [counts_toward_deletion_threshold(e) for e in page] == [False, True, True, False]


def test_it_reads_beta_names_and_v1_names_in_one_page():
    items = read("graph-mixed-versions.json")

    assert problems(items) == []
    first, second, third, fourth, fifth = items
    assert (first.action, first.status) == (ProvisioningAction.CREATE, ProvisioningStatus.FAILURE)
    assert first.error_code == "SystemForCrossDomainIdentityManagementBadRequest"  # flat in beta statusInfo
    assert first.recommended_action == "Check the attribute mappings"
    assert first.retry_count == 3  # "retried 3 time"
    assert first.next_retry_at == datetime(2026, 3, 25, 14, 0, tzinfo=UTC)  # "after 3/25/2026 2:00:00 PM"
    assert first.extra["additionalDetails"] == "see target"
    assert second.status is ProvisioningStatus.WARNING
    assert third.action is ProvisioningAction.STAGED_DELETE  # "Staged delete"
    assert third.activity_at == datetime(2026, 3, 25, 7, 0, 2, tzinfo=UTC)  # +01:00 converted to UTC
    assert fourth.action is ProvisioningAction.DELETE  # both names present, they agree
    assert (fifth.action, fifth.action_raw) == (ProvisioningAction.OTHER, "Restore")  # unknown word kept


def test_it_reads_the_portal_json_download_with_older_names():
    items = read("portal-download.json")

    assert [i.raw_format for i in items] == ["entra-portal-json"] * 2
    ivy, jo = items
    assert (ivy.action, ivy.status, ivy.duration_ms) == (ProvisioningAction.CREATE, ProvisioningStatus.SUCCESS, 512)
    assert ivy.service_principal == ServicePrincipal("sp-1", "uniFLOW Online")  # "name", not "displayName"
    assert [s.status for s in ivy.steps] == ["success", "success"]  # "Success"
    assert (jo.status, jo.retry_count) == (ProvisioningStatus.FAILURE, 2)
    assert jo.user_name == "jo@contoso.com"  # the source's userPrincipalName, nothing better shown


def test_it_joins_the_three_csv_files_on_change_id_with_odd_headers():
    items = [i for _, i in read_paths([DATA / "csv"])]
    found = events(items)

    kim, lee, max_, ned = found
    assert kim.activity_at == datetime(2026, 3, 28, 6, 0, 1, 250000, tzinfo=UTC)
    assert (kim.change_id, kim.cycle_id, kim.job_id) == ("CH-A", "c-5", "uniFLOWOnline.t.j")
    assert [s.name for s in kim.steps] == ["EntryImportAdd", "EntryExportAdd"]  # by step number; "ch-a" matches
    assert [p.display_name for p in kim.modified_properties][0] == "userName"  # ";"-separated file
    assert kim.user_name == "kim@contoso.com" and kim.duration_ms == 812
    assert kim.source == Identity("s-kim", "Kim", "User", {})
    assert kim.extra == {"Source System": "Microsoft Entra ID", "Target System": "uniFLOW Online", "Tenant Id": "7584ba9c"}
    assert (lee.status, lee.retry_count, lee.duration_ms) == (ProvisioningStatus.FAILURE, 4, 1204)
    assert lee.reason.startswith("StatusCode: Conflict\r\n")  # a quoted field over two lines
    assert lee.recommended_action == "Check the target"
    assert lee.steps[0].details == {"ReportableIdentifier": "lee@contoso.com", "userName": "lee@contoso.com"}
    assert max_.activity_at == datetime(2026, 3, 28, 18, 0, 3, tzinfo=UTC)  # "6:00:03 PM"
    assert ned.change_id is None and ned.steps == ()
    reasons = sorted(p.reason for p in problems(items))
    assert reasons == [
        "record 5 (line 8): has 7 fields, the header has 20 (truncated?)",
        "steps file record 4 (line 5): no change ID",
        "steps file: change ID 'zzz' has no row in the logs file",
    ]


def test_it_reads_a_csv_given_as_streams():
    with open(DATA / "csv/ProvisioningLogs_2026-03-28.csv", "rb") as logs, \
            open(DATA / "csv/ProvisioningLogs_ProvisioningSteps_2026-03-28.csv", "rb") as steps:
        items = list(read_events(logs, "entra-csv", steps=steps))

    assert [len(e.steps) for e in events(items)] == [2, 1, 0, 0]


@pytest.mark.parametrize("name", ["la-rows.json", "la-query-api.json", "la-export.csv"])
def test_it_reads_log_analytics_rows_with_nested_json_strings(name):
    items = read(name)
    mo, nia = events(items)[:2]

    assert mo.raw_format == "log-analytics"
    assert (mo.id, mo.action, mo.status) == ("la-1", ProvisioningAction.CREATE, ProvisioningStatus.FAILURE)
    assert mo.error_code == "SystemForCrossDomainIdentityManagementBadRequest"
    assert (mo.retry_count, mo.next_retry_at) == (0, datetime(2026, 3, 30, 12, 0, tzinfo=UTC))
    assert mo.source == Identity("s-mo", "Mo", "User", {"UserPrincipalName": "mo@contoso.com"})  # Id/Name spelling
    assert (mo.user_name, mo.external_id, mo.duration_ms) == ("mo@contoso.com", "mo", 734)
    assert [p.new_value for p in mo.modified_properties] == ["mo@contoso.com", "[REDACTED]"]
    assert mo.service_principal == ServicePrincipal("sp-1", "uniFLOW Online")
    assert mo.extra["TenantId"] == "workspace-guid"  # the workspace, not Entra's tenant: kept, not mapped
    assert nia.status is ProvisioningStatus.SUCCESS  # from ResultType: ProvisioningStatusInfo is empty
    assert nia.error_code is None and nia.user_name == "nia@contoso.com" and nia.duration_ms == 120


def test_it_reads_the_raw_diagnostic_event_shape():
    items = read("diagnostic-events.jsonl")
    found = events(items)

    assert [e.id[-4:] for e in found] == ["0eac", "0002", "0003", "0005"]
    first = found[0]
    assert first.activity_at == datetime(2021, 1, 22, 20, 14, 33, 894875, tzinfo=UTC)
    assert (first.action, first.status, first.error_code) == (ProvisioningAction.CREATE, ProvisioningStatus.SUCCESS, None)
    assert first.user_name == "john.doe@example.com" and first.external_id == "john.doe"
    assert first.target.id == "2819c223-7f76-453a-919d-413861904646"
    assert first.extra["category"] == "ProvisioningLogs"
    assert (found[1].status, found[1].error_code) == (ProvisioningStatus.FAILURE, "Timeout")
    assert found[2].status is ProvisioningStatus.SKIPPED  # the outer resultType fills the gap
    (bad,) = problems(items)
    assert bad.line_no == 3 and "malformed JSON" in bad.reason


def test_it_gives_the_same_dedupe_key_to_the_same_event_from_any_export():
    keys = [{dedupe_key(e) for e in events(read(name))} for name in ("la-rows.json", "la-query-api.json", "la-export.csv")]

    assert keys[0] >= keys[1] == keys[2]
