"""Damaged files: bad records become problems with their record number; nothing else is lost."""
from __future__ import annotations

import gzip
import io

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard.formats.entra.parse import dedupe_key, read_events
from dashboard.formats.entra.records import ProvisioningEvent
from dashboard.formats.scim.records import ParseProblem
from tests.formats.entra.conftest import DATA, events, problems, read


def test_it_keeps_the_records_before_the_cut_of_a_truncated_page():
    items = read("graph-truncated.json")

    assert [e.record_no for e in events(items)] == [1, 2]
    (problem,) = problems(items)
    assert problem.line_no == 3
    assert problem.reason.startswith("record 3: the file ends inside this record: truncated")
    assert '"id": "2f0f7c11-0000-4000-8000-000000000003"' in problem.raw


def test_it_names_the_record_and_the_field_of_each_bad_record_and_keeps_the_rest():
    items = read("graph-malformed-records.json")

    assert [e.id for e in events(items)] == ["bad-1", "bad-9"]
    assert [(p.line_no, p.reason) for p in problems(items)] == [
        (2, "record 2: malformed JSON: Expecting value at character 168 of the record"),
        (3, "record 3: field 'activityDateTime' is missing"),
        (4, "record 4: field 'provisioningStatusInfo.status' is not success, failure, skipped or warning: 'exploded'"),
        (5, "record 5: field 'activityDateTime' is not a date-time: 'yesterday'"),
        (6, "record 6: field 'provisioningSteps' must be an array"),
        (7, "record 7: field 'durationInMilliseconds' must be a number of milliseconds, got 'fast'"),
        (8, "record 8: must be a JSON object"),
    ]
    assert events(items)[1].record_no == 9  # numbering does not drift after a damaged record


def test_it_names_the_column_of_a_log_analytics_row_with_bad_nested_json():
    (problem,) = problems(read("la-rows.json"))

    assert problem.line_no == 3
    assert problem.reason.startswith("record 3: field 'ProvisioningSteps' is not valid JSON")


def test_it_reads_a_gzipped_page():
    data = gzip.compress((DATA / "graph-escrow-page-2.json").read_bytes())

    assert len(events(list(read_events(io.BytesIO(data))))) == 4


def test_it_never_raises_and_keeps_every_complete_record_whatever_the_cut():
    data = (DATA / "graph-escrow-page-2.json").read_bytes()
    ends = [data.index(b'"id": "2f0f7c11-0000-4000-8000-00000000000' + str(n).encode()) for n in (2, 3, 4)]
    for cut in range(0, len(data), 53):
        items = list(read_events(io.BytesIO(data[:cut]), "entra-graph"))
        complete = sum(1 for end in ends if end < cut)  # records that ended before the cut
        assert len(events(items)) >= complete, cut
        assert all(isinstance(i, ProvisioningEvent) or i.line_no >= 0 for i in items)


@pytest.mark.parametrize("junk", [b"", b"   ", b"\x00\x01\x02", b"[", b"{", b"[1, 2", b'{"value": 5}', b"null", b'"x"'])
def test_it_turns_junk_into_problems_not_exceptions(junk):
    items = list(read_events(io.BytesIO(junk), "entra-graph"))

    assert not events(items)


def test_it_rejects_json_in_a_non_json_format_file_gracefully():
    items = list(read_events(io.BytesIO(b"not json at all\n"), "entra-graph"))

    assert [p.reason for p in items] == ["a entra-graph file must be JSON"]


def test_it_gives_stable_dedupe_keys_so_a_reimport_is_idempotent():
    first = [dedupe_key(e) for e in events(read("graph-escrow-page-2.json"))]
    again = [dedupe_key(e) for e in events(read("graph-escrow-page-2.json"))]

    assert first == again and len(set(first)) == 4
    # the key does not depend on the record's position, the format or the id's case
    page = orjson.loads((DATA / "graph-escrow-page-2.json").read_bytes())
    page["value"].reverse()
    page["value"][0]["id"] = page["value"][0]["id"].upper()
    moved = [dedupe_key(e) for e in events(list(read_events(io.BytesIO(orjson.dumps(page["value"])))))]
    assert sorted(moved) == sorted(first)


def test_it_keys_an_event_without_id_by_change_cycle_action_and_target():
    record = orjson.loads((DATA / "graph-escrow-page-2.json").read_bytes())["value"][0]
    del record["id"]
    one = events(list(read_events(io.BytesIO(orjson.dumps([record])))))[0]
    record["durationInMilliseconds"] = 999  # the same change, seen again
    two = events(list(read_events(io.BytesIO(orjson.dumps([record])))))[0]
    record["provisioningAction"] = "disable"  # a different action on the same change id
    three = events(list(read_events(io.BytesIO(orjson.dumps([record])))))[0]

    assert dedupe_key(one) == dedupe_key(two) != dedupe_key(three)


def test_it_keys_an_event_without_any_id_by_its_content():
    record = {"activityDateTime": "2026-03-24T07:40:02Z", "provisioningAction": "create",
              "provisioningStatusInfo": {"status": "success"}, "sourceIdentity": {"id": "s"}}
    later = dict(record, activityDateTime="2026-03-24T07:40:03Z")

    one, again, other = (_only_event(r) for r in (record, record, later))

    assert dedupe_key(one) == dedupe_key(again) != dedupe_key(other)


def _only_event(record: dict) -> ProvisioningEvent:
    (event,) = events(list(read_events(io.BytesIO(orjson.dumps([record])))))
    return event


def test_it_salvages_a_truncated_minified_portal_download():
    data = (DATA / "portal-download.json").read_bytes()
    cut = data.index(b'"id":"p-2"') + 40

    items = list(read_events(io.BytesIO(data[:cut])))

    assert [e.id for e in events(items)] == ["p-1"]
    assert [(p.line_no, p.reason.split(":")[0]) for p in problems(items)] == [(2, "record 2")]


def test_it_salvages_the_rows_of_a_truncated_log_analytics_query_answer():
    data = (DATA / "la-query-api.json").read_bytes()
    cut = data.index(b'"la-2"') + 10

    items = list(read_events(io.BytesIO(data[:cut])))

    assert [e.id for e in events(items)] == ["la-1"]
    assert [p.line_no for p in problems(items)] == [2]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(["graph-escrow-page-2.json", "portal-download.json", "la-rows.json", "diagnostic-events.jsonl",
                          "csv/ProvisioningLogs_2026-03-28.csv", "la-export.csv"]),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.binary(min_size=1, max_size=3)), max_size=4),
)
def test_it_never_raises_whatever_bytes_are_damaged(name, flips):
    data = bytearray((DATA / name).read_bytes())
    for where, junk in flips:
        at = int(where * len(data))
        data[at : at + len(junk)] = junk

    items = list(read_events(io.BytesIO(bytes(data))))

    assert all(isinstance(i, ProvisioningEvent | ParseProblem) for i in items)
