"""Each documented shape of Entra's provisioning logs becomes the same ProvisioningEvent."""
from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from dashboard.formats.entra.parse import (
    UNKNOWN,
    dedupe_key,
    detect_format,
    read_events,
    read_paths,
)
from dashboard.formats.entra.records import (
    Identity,
    ProvisioningAction,
    ProvisioningStatus,
    ServicePrincipal,
    counts_toward_deletion_threshold,
    is_escrow_retry,
    is_failure,
)
from dashboard.formats.scim.records import ParseProblem
from tests.formats.entra.conftest import DATA, events, problems, read


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


# --- hostile records (issue 10 item 4; regressions found by `make fuzz`) ----------------------------


def _record(**fields):  # type: ignore[no-untyped-def]
    record = {"id": "r1", "activityDateTime": "2026-03-01T00:00:00Z", "provisioningAction": "create",
              "provisioningStatusInfo": {"status": "success"}, "targetIdentity": {"id": "t1"}}
    record.update(fields)
    return record


def _read_bytes(data: bytes, fmt: str | None = None, **kwargs) -> list:  # type: ignore[no-untyped-def]
    return list(read_events(io.BytesIO(data), fmt, **kwargs))


def _page(*records: bytes) -> bytes:
    return b'{"value":[' + b",".join(records) + b"]}"


@pytest.mark.parametrize("levels", [65, 300, 990, 1020])
def test_a_record_nested_deeper_than_the_limit_is_a_reject_naming_its_field(levels):
    import orjson

    deep = b'{"a":' * levels + b'{"pin":"1234"}' + b"}" * levels
    bad = orjson.dumps(_record(id="r2"))[:-1] + b',"modifiedProperties":' + deep + b"}"

    items = _read_bytes(_page(orjson.dumps(_record()), bad, orjson.dumps(_record(id="r3"))))

    assert [e.id for e in events(items)] == ["r1", "r3"]
    (problem,) = problems(items)
    assert problem.reason == "record 2: field 'modifiedProperties' is nested deeper than 64 levels"
    kept = orjson.loads(problem.raw)  # cut below the limit, redacted, serialisable
    assert kept["id"] == "r2" and "1234" not in problem.raw


def test_a_log_analytics_column_holding_json_nested_too_deep_is_a_reject_naming_it():
    import orjson

    row = {"TimeGenerated": "2026-03-01T00:00:00Z", "ResultType": "Success",
           "ProvisioningSteps": "[" * 300 + "]" * 300}

    (problem,) = _read_bytes(orjson.dumps([row]), "log-analytics")

    assert problem.reason == "record 1: field 'ProvisioningSteps' is nested deeper than 64 levels"


def test_a_steps_file_whose_details_are_nested_too_deep_is_a_reject_of_that_row():
    logs = b"Date,Id,Change ID,Action,Status\n2026-03-28T06:00:01Z,csv-1,CH-A,Create,Success\n"
    steps = (b'Change Id,Step Name,Step Details\nCH-A,EntryExportAdd,"' + b"[" * 300 + b"]" * 300 + b'"\n'
             b"CH-A,EntryImportAdd,\n")

    items = _read_bytes(logs, "entra-csv", steps=io.BytesIO(steps))

    assert [p.reason for p in problems(items)] == [
        "steps file record 1 (line 2): field 'details' is nested deeper than 64 levels"]
    assert [s.name for s in events(items)[0].steps] == ["EntryImportAdd"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"targetIdentity": {"id": "t\u0000"}}, "targetIdentity.id"),
        ({"sourceIdentity": {"id": "s", "displayName": "\u0000"}}, "sourceIdentity.displayName"),
        ({"provisioningStatusInfo": {"status": "failure", "errorInformation": {"reason": "x\u0000"}}},
         "provisioningStatusInfo.reason"),
    ],
)
def test_a_record_with_a_nul_character_where_a_column_holds_it_is_a_reject(fields, field):
    import orjson

    (problem,) = _read_bytes(orjson.dumps({"value": [_record(**fields)]}))

    assert problem.reason == f"record 1: field '{field}' contains a NUL character"
    assert "\x00" not in problem.raw


def test_a_csv_cell_with_a_nul_character_is_a_reject_of_its_row():
    logs = b"Date,Id,Action,Status\n2026-03-28T06:00:01Z,csv-\x001,Create,Success\n2026-03-28T06:00:02Z,csv-2,Create,Success\n"

    items = _read_bytes(logs, "entra-csv")

    assert [e.id for e in events(items)] == ["csv-2"]
    assert [p.reason for p in problems(items)] == ["record 1 (line 2): field 'id' contains a NUL character"]
    assert "\x00" not in problems(items)[0].raw


def test_a_csv_whose_header_is_not_entras_is_a_reject_and_so_is_each_row():
    items = _read_bytes(b"foo,bar\n1,2\n", "entra-csv")

    reasons = [p.reason for p in problems(items)]
    assert not events(items) and len(reasons) == 2
    assert reasons[0].startswith("the header names no date column of Entra's provisioning logs")
    assert reasons[1].startswith("record 1 (line 2): ")
    assert _read_bytes(b"foo,bar\n", "entra-csv")  # a garbage header alone is not silence


def test_a_problem_never_holds_a_nul_character():
    (problem,) = _read_bytes(b"\x00", "entra-graph")

    assert "\x00" not in problem.raw and "\x00" not in problem.reason


def test_a_time_beyond_the_representable_range_in_utc_is_a_reject():
    import orjson

    (problem,) = _read_bytes(orjson.dumps([_record(activityDateTime="0001-01-01T00:00:00+01:00")]))

    assert problem.reason == "record 1: field 'activityDateTime' is out of range in UTC: '0001-01-01T00:00:00+01:00'"


def test_numbers_of_thousands_of_digits_are_not_counts_nor_durations():
    from dashboard.formats.entra.values import parse_iso_duration, retry_of

    assert retry_of("This operation was retried " + "9" * 5000 + " times") == (None, None)
    assert parse_iso_duration("P" + "9" * 5000 + "D") is None


def test_salvaged_records_mean_what_they_mean_in_a_file_that_decodes_whole():
    import orjson

    damaged = _page(orjson.dumps(_record()), b'{"id":"n","x": NaN}', b'{"id":"b","x": ' + b"9" * 5000 + b"}",
                    b'{"id":"s","x":"\\ud800"}', b"[" * 3000 + b"]" * 3000, orjson.dumps(_record(id="r9")))[:-2]

    items = _read_bytes(damaged, "entra-graph")

    assert [e.id for e in events(items)] == ["r1", "r9"]
    assert [p.line_no for p in problems(items)] == [2, 3, 4, 5, 7]
    assert all(p.reason.startswith(f"record {p.line_no}: malformed JSON") for p in problems(items)[:4])
    assert "truncated" in problems(items)[4].reason  # the array is not closed


@pytest.mark.parametrize(
    "tables",
    [
        [{"columns": 5, "rows": 7}],
        [{"columns": [{"name": {"a": 1}}, None, 3], "rows": [[1, 2, 3], "x"]}],
        [{"columns": [], "rows": {"TimeGenerated": "2026-03-01T00:00:00Z"}}],
        ["not a table", None],
    ],
)
def test_odd_query_api_tables_are_rejects_not_exceptions(tables):
    import orjson

    items = _read_bytes(orjson.dumps({"tables": tables}), "log-analytics")

    assert items and all(isinstance(i, ParseProblem) for i in items)


def test_a_page_with_a_byte_order_mark_is_read_whole():
    import orjson

    items = _read_bytes(b"\xef\xbb\xbf" + orjson.dumps({"value": [_record(), _record(id="r2")]}))

    assert [e.id for e in events(items)] == ["r1", "r2"]


def test_gzip_magic_followed_by_junk_is_no_known_format():
    assert detect_format(b"\x1f\x8b" + b"junk" * 10) == UNKNOWN


def test_a_csv_read_abandoned_after_its_stream_is_closed_raises_nothing():
    import gc
    import sys

    from dashboard.formats.entra.portal_csv import read_rows

    stream = io.BytesIO(b"Date,Id\n1,2\n3,4\n")
    rows = read_rows(stream)
    next(rows)
    stream.close()
    unraisable = []
    hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        del rows
        gc.collect()
    finally:
        sys.unraisablehook = hook

    assert unraisable == []


@pytest.mark.parametrize("status", [{"status": "success"}, ["success"], 3])
def test_a_status_that_is_not_a_string_is_a_reject_naming_it(status):
    import orjson

    (problem,) = _read_bytes(orjson.dumps([_record(provisioningStatusInfo={"status": status})]), "entra-portal-json")

    assert problem.reason == "record 1: field 'provisioningStatusInfo.status' must be a string"


def test_a_step_status_that_is_not_a_string_is_kept_as_text():
    import orjson

    (event,) = events(_read_bytes(orjson.dumps([_record(provisioningSteps=[{"name": "EntryImportAdd",
                                                                           "status": {"a": 1}}])])))

    assert event.steps[0].status == "{'a': 1}"


def test_a_page_with_trailing_commas_is_read_and_commas_inside_strings_are_kept():
    page = (b'{"value": [{"id": "r1", "activityDateTime": "2026-03-01T00:00:00Z", "provisioningAction": "create",'
            b' "provisioningStatusInfo": {"status": "failure", "errorInformation": {"reason": "a,]b,}",}},'
            b' "modifiedProperties": [{"displayName": "userName", "newValue": "a@contoso.com"},\n ],},'
            b' {"id": "r2", "activityDateTime": "2026-03-01T00:00:01Z", "provisioningStatusInfo": {"status": "success"}},'
            b"\n]}")

    items = _read_bytes(page)

    assert [e.id for e in events(items)] == ["r1", "r2"] and problems(items) == []
    assert events(items)[0].reason == "a,]b,}"
    assert events(items)[0].user_name == "a@contoso.com"
