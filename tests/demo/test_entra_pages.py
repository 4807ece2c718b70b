"""Generated Entra provisioning logs: the benchmark's pages are Graph-shaped and parse without a
problem; a simulated run's logs tell the same story per person as its SCIM log."""
from __future__ import annotations

import pytest

from dashboard.demo.entra_pages import (
    entra_action,
    entra_operation,
    simulated_records,
    write_pages,
    write_simulated_pages,
)
from dashboard.demo.simulate import simulate_lines
from dashboard.demo.truth import SimConfig, SimEvent
from dashboard.formats.entra.facts import fact_of
from dashboard.formats.entra.parse import (
    convert_record,
    dedupe_key,
    detect_format,
    read_paths,
)
from dashboard.formats.entra.records import ProvisioningEvent


def test_it_generates_pages_that_parse_cleanly_and_redacted(tmp_path):
    paths = write_pages(tmp_path, 250, page_size=100)

    items = [item for _, item in read_paths(paths)]
    assert len(paths) == 3 and detect_format(paths[0].read_bytes()[:65536]) == "entra-graph"
    assert all(isinstance(i, ProvisioningEvent) for i in items) and len(items) == 250
    assert len({dedupe_key(i) for i in items}) == 250
    assert all(p.new_value == "[REDACTED]" for i in items for p in i.modified_properties if p.display_name.endswith("pin"))
    assert {i.action.value for i in items} >= {"create", "update", "disable", "other"}


# --- Entra's provisioning logs of a simulated run ------------------------------------------------

REALISTIC = SimConfig.realistic(users=50, cycles=7, seed=4, failure_rate=0.08)


def _run(config: SimConfig):  # type: ignore[no-untyped-def]
    lines, truth = simulate_lines(config)
    scim = list(lines)
    return scim, truth, list(simulated_records(truth))


def test_it_logs_one_event_per_person_and_cycle_of_the_same_run():
    scim, truth, records = _run(REALISTIC)

    assert len(records) == sum(len(c.people) for c in truth.cycles) == len(truth.events)
    cycle_ids = {c.cycle_id for c in truth.cycles}
    assert {r["cycleId"] for r in records} <= cycle_ids
    assert len({r["id"] for r in records}) == len(records)
    assert [r["activityDateTime"] for r in records] == sorted(r["activityDateTime"] for r in records)
    assert records == list(simulated_records(_run(REALISTIC)[1]))  # deterministic


def test_each_record_parses_and_names_the_person_by_source_id_and_external_id():
    _, truth, records = _run(REALISTIC)

    for number, (record, event) in enumerate(zip(records, truth.events, strict=True), 1):
        parsed = convert_record(record, number)
        person = truth.people[event.external_id]
        assert parsed.__class__.__name__ == "ProvisioningEvent", parsed
        assert parsed.source.id == person.source_id
        assert parsed.external_id == person.external_id and parsed.user_name == event.user_name
        assert parsed.target.id == event.scim_id and (event.scim_id is None or event.scim_id in person.scim_ids)
        fact = fact_of(parsed)
        assert fact.operation == entra_operation(event)
        assert fact.failed == (str(event.outcome.outcome) == "failed")
        if fact.failed:
            assert fact.status == event.outcome.status  # Entra's reason holds the target's answer


def test_a_person_keeps_one_source_id_across_renames_and_re_creations():
    _, truth, records = _run(REALISTIC)

    names: dict[str, set[str]] = {}
    targets: dict[str, set[str]] = {}
    for record in records:
        names.setdefault(record["sourceIdentity"]["id"], set()).add(record["sourceIdentity"]["displayName"])
        if record["targetIdentity"]["id"]:
            targets.setdefault(record["sourceIdentity"]["id"], set()).add(record["targetIdentity"]["id"])
    assert len(names) == len(truth.people)
    assert any(len(n) > 1 for n in names.values()) and any(len(t) > 1 for t in targets.values())
    by_source = {p.source_id: p for p in truth.people.values()}
    for source, seen in names.items():
        assert seen == {name for _, name in by_source[source].names}


def test_a_rename_shows_the_old_and_new_user_name():
    events = (SimEvent(1, "rename", 0, variant="409"), SimEvent(1, "unicode", 1, variant="patch"))
    _, truth, records = _run(SimConfig(users=3, cycles=3, events=events, record_events=True, failure_rate=0.0))

    renamed = [r for r in records if r["modifiedProperties"][0]["oldValue"]]
    assert sorted((r["provisioningAction"], r["provisioningStatusInfo"]["status"]) for r in renamed) == [
        ("create", "failure"), ("update", "success"), ("update", "success")]  # 409, then matched; patched
    conflict = next(r for r in renamed if r["provisioningStatusInfo"]["status"] == "failure")
    assert "StatusCode: Conflict" in conflict["provisioningStatusInfo"]["errorInformation"]["reason"]
    assert "externalId" in conflict["provisioningStatusInfo"]["errorInformation"]["reason"]


def test_a_collision_is_two_people_with_one_user_name():
    _, truth, records = _run(SimConfig(users=2, cycles=2, events=(SimEvent(0, "collide", 1, other=0),),
                                       record_events=True, failure_rate=0.0))

    first = [r for r in records if r["cycleId"] == truth.cycles[0].cycle_id]
    assert len({r["sourceIdentity"]["id"] for r in first}) == 2
    assert len({r["modifiedProperties"][0]["newValue"] for r in first}) == 1
    assert sorted(entra_action(e) for e in truth.events) == [
        ("create", "failure"), ("create", "failure"), ("create", "success")]


def test_it_writes_the_run_as_graph_pages(tmp_path):
    _, truth, records = _run(REALISTIC)

    paths = write_simulated_pages(tmp_path, truth, page_size=100)

    items = [item for _, item in read_paths(paths)]
    assert detect_format(paths[0].read_bytes()[:65536]) == "entra-graph"
    assert all(isinstance(i, ProvisioningEvent) for i in items) and len(items) == len(records)


def test_it_needs_the_run_s_events():
    lines, truth = simulate_lines(SimConfig(users=3, cycles=1))
    list(lines)

    with pytest.raises(ValueError):
        list(simulated_records(truth))
