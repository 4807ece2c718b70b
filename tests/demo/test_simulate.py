from __future__ import annotations

import hashlib
import io
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote_plus

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.demo.simulate import (
    ENTERPRISE,
    ERROR,
    UNIFLOW,
    simulate,
    simulate_lines,
    write_log,
)
from dashboard.demo.truth import (
    EVENT_KINDS,
    REALITIES,
    GroundTruth,
    Operation,
    Outcome,
    SimConfig,
    SimEvent,
    UserOutcome,
    name_key,
    person_state,
)

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
BUSY = dict(failure_rate=0.15, change_rate=0.2, leave_rate=0.05, join_rate=0.05,
            delete_rate=0.03)


def raw(config: SimConfig) -> tuple[bytes, GroundTruth]:
    out = io.BytesIO()
    truth = write_log(config, out)
    return out.getvalue(), truth


def run(config: SimConfig) -> tuple[list[dict[str, Any]], GroundTruth]:
    lines, truth = simulate(config)
    return list(lines), truth


def by_cycle(lines: list[dict[str, Any]], truth: GroundTruth) -> dict[int, list[dict]]:
    index_of = {c.cycle_id: c.index for c in truth.cycles}
    grouped: dict[int, list[dict]] = defaultdict(list)
    for line in lines:
        grouped[index_of[line["cycle_id"]]].append(line)
    return grouped


def parse_ts(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


def is_connection_test(line: dict[str, Any]) -> bool:
    query = unquote_plus(line.get("query", ""))
    return query.startswith("filter=externalId eq ") and bool(GUID.match(query[22:-1]))


def is_disable_patch(line: dict[str, Any]) -> bool:
    ops = line["request_body"]["Operations"]
    return [op.get("path") for op in ops] == ["active"] and ops[0]["value"] in ("False", False)


def derive_outcomes(lines: list[dict[str, Any]], ids: dict[str, str]) -> dict[str, tuple]:
    """What a reader of one cycle's lines can tell: (outcome, operation, status) per userName."""
    last: dict[str, tuple[str, dict]] = {}
    for line in lines:
        if is_connection_test(line):
            continue
        method, body = line["method"], line.get("response_body")
        if method == "GET":
            user = re.fullmatch(r'filter=userName eq "(.+)"', unquote_plus(line["query"]))[1]
            if line["status"] == 200 and body["totalResults"] == 1:
                ids[body["Resources"][0]["id"]] = user
            operation = "none"
        elif method == "POST":
            user, operation = line["request_body"]["userName"], "create"
            if line["status"] == 201:
                ids[body["id"]] = user
        elif method == "PATCH":
            user = ids[line["path"].rsplit("/", 1)[1]]
            ops = line["request_body"]["Operations"]
            operation = "update"
            if [op.get("path") for op in ops] == ["active"]:
                operation = "disable" if ops[0]["value"] in ("False", False) else "enable"
        else:
            user, operation = ids[line["path"].rsplit("/", 1)[1]], "delete"
        last[user] = (operation, line)
    derived = {}
    for user, (operation, line) in last.items():
        status = line["status"]
        if status == 0 or status >= 400:
            outcome = "failed"
        else:
            outcome = "skipped" if line["method"] == "GET" else "succeeded"
        derived[user] = (outcome, operation, status)
    return derived


def test_it_writes_byte_identical_output_for_the_same_config():
    config = SimConfig(users=80, cycles=5, **BUSY)

    first, first_truth = raw(config)
    second, second_truth = raw(config)

    assert first == second
    assert orjson.dumps(first_truth.to_dict()) == orjson.dumps(second_truth.to_dict())


def test_it_writes_different_output_for_another_seed():
    assert raw(SimConfig(users=40, cycles=2, seed=1))[0] != raw(
        SimConfig(users=40, cycles=2, seed=2))[0]


def test_it_writes_lines_with_the_contracts_required_fields():
    output, _ = raw(SimConfig(users=60, cycles=4, **BUSY))

    for text in output.splitlines():
        line = orjson.loads(text)
        assert TS.match(line["ts"])
        assert line["method"] in {"GET", "POST", "PATCH", "DELETE"}
        assert line["path"].startswith("/scim/v2/Users")
        assert type(line["status"]) is int
        assert isinstance(line["duration_ms"], float)
        assert line["client"] == "Microsoft Entra SCIM Client"
        assert line["job"] == "uniflow-demo"
        assert line["request_headers"]["authorization"].startswith("Bearer ")
        writes = line["method"] in {"POST", "PATCH"}
        assert ("content-type" in line["request_headers"]) is writes
        assert ("request_body" in line) is writes
    assert output.endswith(b"\n")


def test_it_gives_every_line_a_unique_request_id():
    lines, _ = run(SimConfig(users=50, cycles=3))

    assert len({line["request_id"] for line in lines}) == len(lines)


def test_it_leaves_request_ids_and_cycle_ids_out_when_asked():
    lines, _ = run(SimConfig(users=10, cycles=2, with_request_ids=False))

    assert not any("request_id" in line or "cycle_id" in line for line in lines)


def test_it_writes_the_cycle_id_of_the_ground_truth_on_each_line():
    lines, truth = run(SimConfig(users=30, cycles=3, with_cycle_ids=True))

    cycle_ids = [c.cycle_id for c in truth.cycles]
    assert [line["cycle_id"] for line in lines] == sorted(
        (line["cycle_id"] for line in lines), key=cycle_ids.index)
    assert Counter(line["cycle_id"] for line in lines) == {
        c.cycle_id: c.requests for c in truth.cycles}


def test_it_creates_every_user_once_in_the_initial_cycle():
    lines, truth = run(SimConfig(users=100, cycles=1, failure_rate=0.0))

    posts = [line for line in lines if line["method"] == "POST"]
    assert len(posts) == 100
    assert {p["request_body"]["userName"] for p in posts} == set(truth.cycles[0].users)
    assert all(p["status"] == 201 and GUID.match(p["response_body"]["id"]) for p in posts)
    assert truth.cycles[0].kind == "initial"
    assert truth.cycles[0].counts()["create"] == {"success": 100, "failure": 0, "skipped": 0}


def test_it_looks_each_user_up_before_creating_it():
    lines, _ = run(SimConfig(users=20, cycles=1, failure_rate=0.0))

    for lookup, post in zip(lines[1::2], lines[2::2]):
        user = post["request_body"]["userName"]
        assert unquote_plus(lookup["query"]) == f'filter=userName eq "{user}"'
        assert lookup["response_body"]["totalResults"] == 0


def test_it_posts_the_full_uniflow_user():
    lines, _ = run(SimConfig(users=5, cycles=1, failure_rate=0.0))

    body = lines[2]["request_body"]
    assert body["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE, UNIFLOW]
    assert set(body[UNIFLOW]) == {"cardNumber", "cardRegistrationCode", "localUsername", "pin"}
    assert body["externalId"] == body["userName"].split("@")[0]  # mailNickname, not a GUID
    assert body["active"] is True
    assert body["emails"][0]["type"] == "work" and body["addresses"][0]["streetAddress"]
    assert body[ENTERPRISE]["department"] and body["name"]["givenName"]


def test_it_starts_each_cycle_with_a_connection_test():
    lines, truth = run(SimConfig(users=20, cycles=3, with_cycle_ids=True))

    for index, cycle_lines in by_cycle(lines, truth).items():
        first = cycle_lines[0]
        assert is_connection_test(first) and first["method"] == "GET"
        assert first["status"] == 200 and first["response_body"]["Resources"] == []
        assert truth.cycles[index].connection_test_status == 200


def test_it_leaves_the_connection_test_out_when_asked():
    lines, truth = run(SimConfig(users=20, cycles=2, connection_test=False))

    assert not any(is_connection_test(line) for line in lines)
    assert truth.to_dict()["cycles"][0]["connection_test"] is False


def test_it_records_what_the_lines_show_for_every_user_and_cycle():
    # the ground truth is what a reader of the lines can tell; attempts count failed cycles in a row
    config = SimConfig(users=120, cycles=8, with_cycle_ids=True, **BUSY)
    lines, truth = run(config)
    grouped, ids = by_cycle(lines, truth), {}
    previous: dict[str, Any] = {}

    for cycle in truth.cycles:
        derived = derive_outcomes(grouped[cycle.index], ids)
        recorded = {name: (u.outcome, u.operation, u.status) for name, u in cycle.users.items()}
        assert derived == recorded
        for name, user in cycle.users.items():
            before = previous.get(name)
            retried = before is not None and before.outcome == "failed"
            assert user.attempts == (before.attempts + 1 if retried else 1)
        previous = cycle.users


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), cycles=st.integers(1, 6), data=st.data())
def test_it_records_what_the_lines_show_whatever_the_scenario(seed, cycles, data):
    indexes = st.lists(st.integers(0, cycles - 1), max_size=2, unique=True).map(tuple)
    config = SimConfig(
        users=data.draw(st.integers(1, 60)), cycles=cycles, seed=seed, with_cycle_ids=True,
        failure_rate=data.draw(st.sampled_from([0.0, 0.1, 0.5, 1.0])),
        change_rate=data.draw(st.sampled_from([0.0, 0.3, 1.0])),
        leave_rate=data.draw(st.sampled_from([0.0, 0.1])), join_rate=0.1, delete_rate=0.1,
        auth_outage_cycles=data.draw(indexes), lookup_404_cycles=data.draw(indexes),
        deletion_storm_cycle=data.draw(st.none() | st.integers(0, cycles - 1)),
        deletion_storm_size=20, flag_scim062020=data.draw(st.booleans()),
        connection_test=data.draw(st.booleans()))
    lines, truth = run(config)
    grouped, ids = by_cycle(lines, truth), {}

    for cycle in truth.cycles:
        recorded = {name: (u.outcome, u.operation, u.status) for name, u in cycle.users.items()}
        assert derive_outcomes(grouped[cycle.index], ids) == recorded


def test_it_counts_posts_and_patches_like_the_lines_do():
    lines, truth = run(SimConfig(users=150, cycles=6, with_cycle_ids=True, **BUSY))

    for index, cycle_lines in by_cycle(lines, truth).items():
        counts = truth.cycles[index].counts()
        patches = [x for x in cycle_lines if x["method"] == "PATCH" and x["status"] == 200]
        statuses = Counter((x["method"], x["status"]) for x in cycle_lines)
        assert statuses["POST", 201] == counts["create"]["success"]
        assert statuses["DELETE", 204] == counts["delete"]["success"]
        assert sum(map(is_disable_patch, patches)) == counts["disable"]["success"]
        assert len(cycle_lines) == truth.cycles[index].requests


def test_it_retries_failed_users_in_the_next_cycle():
    _, truth = run(SimConfig(users=150, cycles=4, **BUSY))

    for cycle, following in zip(truth.cycles, truth.cycles[1:]):
        failed = {n for n, u in cycle.users.items() if u.outcome == "failed"}
        assert failed and failed <= set(following.users)


def test_it_matches_a_conflicting_account_in_a_later_cycle():
    # a 409 on create may be followed by a lookup that finds the account and a PATCH Add externalId
    lines, _ = run(SimConfig(users=200, cycles=6, failure_rate=0.3))

    adds = [x for x in lines if x["method"] == "PATCH"
            and x["request_body"]["Operations"][0].get("path") == "externalId"]
    assert adds and all(x["request_body"]["Operations"][0]["op"] == "Add" for x in adds)
    assert any(x["status"] == 409 and x["response_body"]["scimType"] == "uniqueness"
               for x in lines)


def test_it_answers_every_request_of_an_auth_outage_cycle_with_401():
    config = SimConfig(users=60, cycles=4, auth_outage_cycles=(1,), with_cycle_ids=True, **BUSY)
    lines, truth = run(config)

    outage = by_cycle(lines, truth)[1]
    assert {x["status"] for x in outage} == {401}
    assert {x["response_body"]["detail"] for x in outage} == {"Bearer token is invalid or expired"}
    assert {u.outcome for u in truth.cycles[1].users.values()} == {"failed"}
    assert set(truth.cycles[1].users) <= set(truth.cycles[2].users)  # all retried on recovery


def test_it_starts_the_cycle_after_an_auth_outage_six_hours_later():
    _, truth = run(SimConfig(users=30, cycles=4, auth_outage_cycles=(1, 2)))

    gaps = [b.started_at - a.ended_at for a, b in zip(truth.cycles, truth.cycles[1:])]
    assert timedelta(minutes=37) <= gaps[0] <= timedelta(minutes=43)
    assert timedelta(hours=6) <= gaps[1] <= timedelta(hours=6, minutes=3)
    assert timedelta(hours=12) <= gaps[2] <= timedelta(hours=12, minutes=3)
    scenario = truth.to_dict()["scenarios"][0]
    assert (scenario["kind"], scenario["cycles"]) == ("auth_outage", [1, 2])


def test_it_answers_lookups_of_a_lookup_404_cycle_with_404():
    config = SimConfig(users=60, cycles=3, lookup_404_cycles=(2,), with_cycle_ids=True,
                       delete_rate=0.0)
    lines, truth = run(config)

    cycle = by_cycle(lines, truth)[2]
    assert {(x["method"], x["status"]) for x in cycle} == {("GET", 404)}
    assert {x["response_body"]["detail"] for x in cycle} == {"Resource not found"}
    assert {u.outcome for u in truth.cycles[2].users.values()} == {"failed"}
    assert truth.to_dict()["scenarios"][0]["kind"] == "lookup_404"


def test_it_disables_the_deletion_storm_users_in_one_cycle():
    config = SimConfig(users=300, cycles=3, deletion_storm_cycle=2, deletion_storm_size=150,
                       failure_rate=0.0, leave_rate=0.0, with_cycle_ids=True)
    lines, truth = run(config)

    disables = [x for x in by_cycle(lines, truth)[2] if x["method"] == "PATCH"
                and is_disable_patch(x)]
    assert len(disables) == 150
    assert all(x["request_body"]["Operations"][0]["value"] == "False" for x in disables)
    assert truth.cycles[2].counts()["disable"]["success"] == 150
    assert truth.to_dict()["scenarios"] == [{
        "kind": "deletion_storm", "cycles": [2], "from": truth.to_dict()["cycles"][2]["started_at"],
        "to": truth.to_dict()["cycles"][2]["ended_at"], "size": 150}]


def test_it_clamps_the_deletion_storm_to_the_active_users():
    config = SimConfig(users=50, cycles=2, deletion_storm_cycle=1, failure_rate=0.0,
                       change_rate=0.0, leave_rate=0.0)
    _, truth = run(config)

    assert truth.scenarios()[0].size == 50
    assert truth.cycles[1].counts()["disable"]["success"] == 50


def test_it_goes_silent_after_the_silent_cycle():
    lines, truth = run(SimConfig(users=30, cycles=6, silent_after_cycle=2))

    assert [c.index for c in truth.cycles] == [0, 1, 2]
    assert parse_ts(lines[-1]["ts"]) == truth.cycles[-1].ended_at
    silent = truth.to_dict()["scenarios"][0]
    assert silent == {"kind": "silent", "cycles": [3, 4, 5],
                      "from": truth.to_dict()["cycles"][2]["ended_at"], "to": None}


def test_it_writes_secrets_in_clear_for_the_redaction_tests():
    output, _ = raw(SimConfig(users=100, cycles=4, change_rate=0.3))
    lines = [orjson.loads(x) for x in output.splitlines()]
    patches = [op for x in lines if x["method"] == "PATCH"
               for op in x["request_body"]["Operations"]]

    assert re.search(rb'"authorization":"Bearer [A-Za-z0-9_-]{40,}', output)
    assert b'"pin":"' in output and b'"cardRegistrationCode":"' in output
    assert any(op.get("path") == f"{UNIFLOW}:pin" for op in patches)
    assert any("path" not in op and "cardRegistrationCode" in op["value"][UNIFLOW]
               for op in patches)


def test_it_sends_capitalised_ops_and_string_booleans_without_the_flag():
    lines, _ = run(SimConfig(users=150, cycles=4, change_rate=0.3, leave_rate=0.05))
    ops = [op for x in lines if x["method"] == "PATCH" for op in x["request_body"]["Operations"]]

    assert {op["op"] for op in ops} <= {"Replace", "Add"}
    assert {op["value"] for op in ops if op.get("path") == "active"} == {"False", "True"}


def test_it_sends_lowercase_ops_booleans_and_pathless_replaces_with_the_flag():
    config = SimConfig(users=150, cycles=4, change_rate=0.3, leave_rate=0.05,
                       flag_scim062020=True)
    lines, _ = run(config)
    ops = [op for x in lines if x["method"] == "PATCH" for op in x["request_body"]["Operations"]]

    assert {op["op"] for op in ops} <= {"replace", "add"}
    assert {op["value"] for op in ops if op.get("path") == "active"} == {False, True}
    pathless = [op["value"] for op in ops if "path" not in op]
    assert any(f"{UNIFLOW}:cardRegistrationCode" in value for value in pathless)
    assert any(f"{ENTERPRISE}:department" in value and "title" in value for value in pathless)


def test_it_percent_encodes_about_half_the_lookups():
    lines, _ = run(SimConfig(users=200, cycles=1))
    queries = [x["query"] for x in lines if x["method"] == "GET"]

    encoded = [q for q in queries if "%22" in q]
    assert 0.4 < len(encoded) / len(queries) < 0.6
    assert all(re.fullmatch(r"filter=(userName|externalId)\+eq\+%22[^ \"]+%22", q)
               for q in encoded)


def test_it_answers_failures_with_scim_errors():
    lines, _ = run(SimConfig(users=200, cycles=4, **BUSY))
    failures = [x for x in lines if x["status"] == 0 or x["status"] >= 400]

    assert {x["status"] for x in failures} >= {0, 400, 404, 409, 429, 500}
    for line in failures:
        if line["status"] == 0:
            assert line["response_body"] is None
        else:
            body = line["response_body"]
            assert body["schemas"] == [ERROR] and body["status"] == str(line["status"])
            assert body["detail"]


def test_it_names_the_user_in_uniqueness_errors():
    lines, _ = run(SimConfig(users=100, cycles=1, failure_rate=0.3))
    conflicts = [x for x in lines if x["status"] == 409]

    assert conflicts
    for line in conflicts:
        user = line["request_body"]["userName"]
        assert line["response_body"]["detail"] == f"User '{user}' already exists"


def test_it_keeps_timestamps_strictly_increasing_within_a_cycle():
    lines, truth = run(SimConfig(users=80, cycles=3, with_cycle_ids=True, **BUSY))

    for index, cycle_lines in by_cycle(lines, truth).items():
        stamps = [parse_ts(x["ts"]) for x in cycle_lines]
        assert all(a < b for a, b in zip(stamps, stamps[1:]))
        assert stamps[0] == truth.cycles[index].started_at
        assert stamps[-1] == truth.cycles[index].ended_at


def test_it_spaces_cycles_about_the_interval():
    _, truth = run(SimConfig(users=20, cycles=8))

    assert truth.cycles[0].started_at == datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    for before, after in zip(truth.cycles, truth.cycles[1:]):
        gap = after.started_at - before.ended_at
        assert timedelta(minutes=37) <= gap <= timedelta(minutes=43)


def test_it_paces_requests_about_the_requested_rate():
    _, truth = run(SimConfig(users=500, cycles=1, requests_per_second=20.0))

    cycle = truth.cycles[0]
    seconds = (cycle.ended_at - cycle.started_at).total_seconds()
    assert 18 < cycle.requests / seconds < 22


def test_it_stops_exactly_after_max_lines_and_marks_the_cycle_truncated():
    config = SimConfig(users=50, cycles=4, **BUSY)
    full, _ = raw(config)
    cut, truth = raw(SimConfig(users=50, cycles=4, max_lines=150, **BUSY))

    assert cut == b"".join(full.splitlines(keepends=True)[:150])
    assert sum(c.requests for c in truth.cycles) == 150
    assert truth.cycles[-1].truncated and not any(c.truncated for c in truth.cycles[:-1])
    assert truth.to_dict()["cycles"][-1]["truncated"] is True
    assert parse_ts(orjson.loads(cut.splitlines()[-1])["ts"]) == truth.cycles[-1].ended_at


def test_it_serialises_the_ground_truth():
    _, truth = raw(SimConfig(users=30, cycles=2, lookup_404_cycles=(1,)))

    data = orjson.loads(orjson.dumps(truth.to_dict()))
    assert (data["job"], data["seed"], data["users_in_scope_initial"]) == ("uniflow-demo", 1, 30)
    cycle = data["cycles"][0]
    assert set(cycle) >= {"index", "cycle_id", "kind", "started_at", "ended_at", "requests",
                          "connection_test", "users", "counts"}
    assert set(cycle["counts"]) == {"create", "update", "disable", "delete", "other"}
    user = next(iter(cycle["users"].values()))
    assert user == {"outcome": "succeeded", "operation": "create", "status": 201, "attempts": 1}
    assert TS.match(cycle["started_at"]) and TS.match(data["scenarios"][0]["from"])


def test_it_fills_the_ground_truth_while_lines_are_read():
    lines, truth = simulate_lines(SimConfig(users=10, cycles=3))

    assert truth.cycles == []
    consumed = sum(1 for _ in lines)
    assert [c.index for c in truth.cycles] == [0, 1, 2]
    assert sum(c.requests for c in truth.cycles) == consumed


@pytest.mark.parametrize("override", [
    {"users": 0}, {"cycles": 0}, {"failure_rate": 1.5}, {"requests_per_second": 0},
    {"start": datetime(2026, 11, 28, 8, 0)}, {"max_lines": -1},
])
def test_it_rejects_a_bad_config(override):
    with pytest.raises(ValueError):
        SimConfig(**override)


def test_it_generates_a_large_initial_cycle():
    lines, truth = simulate_lines(SimConfig(users=20000, cycles=1))

    count = sum(1 for _ in lines)
    counts = truth.cycles[0].counts()
    assert len(truth.cycles[0].users) == 20000
    assert counts["create"]["success"] + counts["create"]["failure"] + counts["other"][
        "failure"] == 20000
    assert count == truth.cycles[0].requests > 38000


def test_it_records_a_cycle_without_lines_when_there_is_nothing_to_do():
    config = SimConfig(users=10, cycles=3, connection_test=False, failure_rate=0.0,
                       change_rate=0.0, leave_rate=0.0, join_rate=0.0, delete_rate=0.0)
    _, truth = run(config)

    idle = truth.cycles[1]
    assert (idle.requests, idle.users, idle.started_at) == (0, {}, idle.ended_at)
    assert truth.cycles[2].started_at - truth.cycles[0].ended_at > timedelta(minutes=74)


# --- realities of identity --------------------------------------------------------------------

REALISTIC = dict(users=60, cycles=8, seed=3, failure_rate=0.05)
QUIET = dict(failure_rate=0.0, change_rate=0.0, leave_rate=0.0, join_rate=0.0, delete_rate=0.0)


def scripted(*events: SimEvent, users: int = 4, cycles: int = 4, **config: Any) -> SimConfig:
    return SimConfig(users=users, cycles=cycles, events=events, record_events=True, **{**QUIET, **config})


def derive_people(raw_lines: list[bytes], truth: GroundTruth) -> dict[tuple[int, str], tuple]:
    """What a reader of the lines can tell per (cycle, externalId): (outcome, operation, status).

    The lines are taken once each (by request_id) in time order; a POST names its person by the
    body's externalId, a PATCH or DELETE by the id a response gave; a lookup that shows a
    resource with an externalId names its person; any other lookup (nothing found, failed) names
    only a userName: it goes to the people with that userName in the cycle.
    """
    seen, lines = set(), []
    for raw in raw_lines:
        line = orjson.loads(raw)
        if line["request_id"] not in seen:
            seen.add(line["request_id"])
            lines.append(line)
    lines.sort(key=lambda x: x["ts"])
    starts = [c.started_at for c in truth.cycles]
    ids: dict[str, str] = {}
    last: dict[tuple[int, str], tuple[str, dict]] = {}
    for line in lines:
        cycle = max(i for i, at in enumerate(starts) if at <= parse_ts(line["ts"]))
        method, body, sent = line["method"], line.get("response_body"), line.get("request_body")
        if method == "GET":
            if is_connection_test(line):
                continue
            name = re.fullmatch(r'filter=userName eq "(.+)"', unquote_plus(line["query"]), re.S)[1]
            found = isinstance(body, dict) and body.get("totalResults") == 1
            resource = body["Resources"][0] if found else {}
            people = ([resource["externalId"]] if "externalId" in resource else
                      [k for k, p in truth.people.items() if cycle in p.cycles and p.name_at(cycle) == name])
            if found:
                ids[resource["id"]] = people[0]
            operation = "none"
        elif method == "POST":
            people, operation = [sent["externalId"]], "create"
            if line["status"] == 201:
                ids[body["id"]] = sent["externalId"]
        elif method == "PATCH":
            people, operation = [ids[line["path"].rsplit("/", 1)[1]]], "update"
            ops = sent["Operations"]
            if [op.get("path") for op in ops] == ["active"]:
                operation = "disable" if ops[0]["value"] in ("False", False) else "enable"
        else:
            people, operation = [ids[line["path"].rsplit("/", 1)[1]]], "delete"
        for person in people:
            last[cycle, person] = (operation, line)
    derived = {}
    for key, (operation, line) in last.items():
        status = line["status"]
        outcome = ("failed" if status == 0 or status >= 400 else
                   "skipped" if line["method"] == "GET" else "succeeded")
        derived[key] = (outcome, operation, status)
    return derived


def by_time(lines: list[dict[str, Any]], truth: GroundTruth) -> dict[int, list[dict]]:
    """Lines per cycle index, by their time (for runs without cycle ids)."""
    starts = [c.started_at for c in truth.cycles]
    grouped: dict[int, list[dict]] = defaultdict(list)
    for line in lines:
        grouped[max(i for i, at in enumerate(starts) if at <= parse_ts(line["ts"]))].append(line)
    return grouped


def operations(person: Any) -> list[str]:
    return [str(person.cycles[i].operation) for i in sorted(person.cycles)]


def created_ids(output: bytes) -> Counter:
    """How often each SCIM id was created (POST answered 201), each line taken once."""
    lines = {x["request_id"]: x for x in map(orjson.loads, output.splitlines())}
    return Counter(x["response_body"]["id"] for x in lines.values()
                   if x["method"] == "POST" and x["status"] == 201)


def recorded_people(truth: GroundTruth) -> dict[tuple[int, str], tuple]:
    return {(c.index, key): (u.outcome, u.operation, u.status)
            for c in truth.cycles for key, u in c.people.items()}


def test_it_writes_what_it_always_wrote_without_realities():
    # pinned: the output of configs without realities is what it was before they existed
    pinned = {
        SimConfig(users=80, cycles=5, **BUSY): (
            "08dca3e11b0b1cbb9a0d561a4a05e071eb03c1113ebe73378831604990fb7ac8",
            "0a7b33a1769f731a2d5045e184fbd7b3cfee906f70a6f03add79be6bef0b8805"),
        SimConfig(users=60, cycles=6, seed=9, auth_outage_cycles=(2,), lookup_404_cycles=(4,),
                  flag_scim062020=True, with_cycle_ids=True, deletion_storm_cycle=3,
                  deletion_storm_size=10, **BUSY): (
            "9460ded095b7a2fbc5af862cc91b8c59760386140d82d9c4fa96b9c3ae6c27ad",
            "deeaf39b6f5f69877862b70c0f0bcb7711707813f866032bc417dc656bee0d4d"),
    }
    for config, (lines_digest, truth_digest) in pinned.items():
        output, truth = raw(config)
        assert hashlib.sha256(output).hexdigest() == lines_digest
        assert hashlib.sha256(orjson.dumps(truth.to_dict())).hexdigest() == truth_digest
        assert "people" not in truth.to_dict()


def test_it_turns_every_reality_on_in_the_realistic_preset():
    config = SimConfig.realistic(users=10)

    assert set(config.realities) == set(REALITIES) and config.record_events and config.identity
    assert not SimConfig().identity and SimConfig().realities == ()
    assert SimConfig.realistic(realities=("rename",)).realities == ("rename",)


def test_it_records_what_the_lines_show_for_every_person_and_cycle():
    for seed in range(6):
        config = SimConfig.realistic(**{**REALISTIC, "seed": seed}, auth_outage_cycles=(4,))
        output, truth = raw(config)

        assert derive_people(output.splitlines(), truth) == recorded_people(truth)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), cycles=st.integers(2, 7), data=st.data())
def test_it_records_what_the_lines_show_whatever_the_realities(seed, cycles, data):
    outages = st.lists(st.integers(0, cycles - 1), max_size=1).map(tuple)
    config = SimConfig.realistic(
        users=data.draw(st.integers(2, 50)), cycles=cycles, seed=seed,
        realities=tuple(data.draw(st.sets(st.sampled_from(REALITIES), min_size=1))),
        identity_rate=data.draw(st.sampled_from([0.02, 0.2, 0.6])),
        failure_rate=data.draw(st.sampled_from([0.0, 0.1, 0.4])),
        change_rate=data.draw(st.sampled_from([0.0, 0.2])), leave_rate=0.05,
        auth_outage_cycles=data.draw(outages), lookup_404_cycles=data.draw(outages),
        flag_scim062020=data.draw(st.booleans()), connection_test=data.draw(st.booleans()))
    output, truth = raw(config)

    assert derive_people(output.splitlines(), truth) == recorded_people(truth)
    assert [i for i, n in created_ids(output).items() if n > 1] == []  # an id is created once
    held = Counter(p.user_name.lower() for p in truth.people.values()
                   if p.state in ("in_sync", "disabled"))
    assert [name for name, n in held.items() if n > 1] == []  # the target's names stay unique


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_it_records_what_the_lines_show_for_any_scripted_story(data):
    users, cycles = data.draw(st.integers(2, 6)), data.draw(st.integers(2, 5))
    event = st.builds(SimEvent, cycle=st.integers(0, cycles - 1), kind=st.sampled_from(EVENT_KINDS),
                      person=st.integers(0, users - 1), other=st.integers(0, users - 1),
                      variant=st.sampled_from(["409", "patch"]))
    config = scripted(*data.draw(st.lists(event, max_size=12)), users=users, cycles=cycles,
                      seed=data.draw(st.integers(0, 999)),
                      failure_rate=data.draw(st.sampled_from([0.0, 0.2])),
                      realities=data.draw(st.sampled_from([(), ("disorder",)])),
                      auth_outage_cycles=data.draw(st.sampled_from([(), (1,)])))
    output, truth = raw(config)

    assert derive_people(output.splitlines(), truth) == recorded_people(truth)
    assert len(truth.events) == sum(len(c.people) for c in truth.cycles)
    assert [i for i, n in created_ids(output).items() if n > 1] == []  # an id is created once


def test_it_keeps_users_by_name_and_people_by_external_id():
    _, truth = run(scripted(SimEvent(1, "collide", 1, other=0), cycles=3))

    cycle = truth.cycles[1]
    assert len(cycle.people) == 2 and len(cycle.users) == 1  # two people, one userName
    assert cycle.counts()["create"] == {"success": 1, "failure": 1, "skipped": 0}
    data = orjson.loads(orjson.dumps(truth.to_dict()))
    assert set(data["people"]) == set(truth.people) and set(data["cycles"][1]["people"]) == {
        p.external_id for p in truth.people.values() if 1 in p.cycles}


@pytest.mark.parametrize("variant", ["409", "patch"])
def test_it_renames_a_person_keeping_their_external_id(variant):
    lines, truth = run(scripted(SimEvent(1, "rename", 2, variant=variant), cycles=4))

    person = truth.people[next(k for k, p in truth.people.items() if len(p.names) > 1)]
    (_, old), (since, new) = person.names
    assert since == 1 and name_key(old) != name_key(new) and len(person.scim_ids) == 1
    cycle = [x for x in by_time(lines, truth)[1] if not is_connection_test(x)]
    assert unquote_plus(cycle[0]["query"]) == f'filter=userName eq "{new}"'
    assert cycle[0]["response_body"]["totalResults"] == 0
    if variant == "409":
        assert (cycle[1]["method"], cycle[1]["status"]) == ("POST", 409)
        assert cycle[1]["request_body"]["externalId"] == person.external_id
        assert cycle[1]["response_body"]["scimType"] == "uniqueness"
        assert [str(person.cycles[i].operation) for i in (1, 2)] == ["create", "update"]
        assert [str(person.cycles[i].outcome) for i in (1, 2)] == ["failed", "succeeded"]
        cycle = [x for x in by_time(lines, truth)[2] if not is_connection_test(x)]
    patch = cycle[-1]
    assert patch["path"].endswith("/" + person.scim_id) and patch["status"] == 200
    assert patch["request_body"]["Operations"] == [{"op": "Replace", "path": "userName", "value": new}]
    assert patch["response_body"]["userName"] == new
    assert patch["response_body"]["externalId"] == person.external_id
    assert person.state == "in_sync"


def test_it_corrects_names_born_with_a_unicode_variant_to_the_same_name_key():
    events = [SimEvent(1, "unicode", person) for person in range(6)]
    _, truth = run(scripted(*events, users=6, cycles=3, seed=5))

    corrected = [p for p in truth.people.values() if len(p.names) == 2]
    assert len(corrected) == 6
    kinds = set()
    for person in corrected:
        (_, dirty), (_, clean) = person.names
        assert dirty != clean and name_key(dirty) == name_key(clean)
        kinds.add("nbsp" if "\u00a0" in dirty else "fullwidth" if "\uff20" in dirty
                  else "nfd" if unicodedata.normalize("NFC", dirty) != dirty else "?")
        assert clean == unicodedata.normalize("NFC", clean) and "\u00a0" not in clean
    assert kinds <= {"nbsp", "fullwidth", "nfd"} and {"nbsp", "fullwidth"} <= kinds


def test_it_finds_a_case_only_change_and_patches_the_name():
    lines, truth = run(scripted(SimEvent(1, "case", 0)))

    person = next(p for p in truth.people.values() if len(p.names) > 1)
    (_, old), (_, new) = person.names
    assert old != new and old.lower() == new.lower()
    lookup, patch = [x for x in by_time(lines, truth)[1] if not is_connection_test(x)]
    assert lookup["response_body"]["Resources"][0]["userName"] == old  # the target ignores case
    assert patch["request_body"]["Operations"][0]["value"] == new
    assert person.cycles[1].operation == "update" and person.state == "in_sync"


def test_it_collides_two_joiners_on_one_name_until_the_second_is_renamed():
    events = (SimEvent(1, "collide", 3, other=2), SimEvent(3, "rename", 3))
    lines, truth = run(scripted(*events, users=4, cycles=5))

    pair = [p for p in truth.people.values() if min(p.cycles) == 1]
    first = next(p for p in pair if p.cycles[1].outcome == "succeeded")
    second = next(p for p in pair if p.cycles[1].outcome == "failed")
    assert first.names[0] == second.names[0] and first.external_id != second.external_id
    cycle = [x for x in by_time(lines, truth)[1] if not is_connection_test(x)]
    assert [(x["method"], x["status"]) for x in cycle] == [
        ("GET", 200), ("GET", 200), ("POST", 201), ("POST", 409)]
    assert unquote_plus(cycle[0]["query"]) == unquote_plus(cycle[1]["query"])
    assert cycle[3]["response_body"]["scimType"] == "uniqueness"
    assert [str(second.cycles[i].outcome) for i in sorted(second.cycles)] == [
        "failed", "failed", "succeeded"]
    retry = [x for x in by_time(lines, truth)[2] if not is_connection_test(x)]
    assert [(x["method"], x["status"], x["request_body"]["externalId"]) for x in retry] == [
        ("POST", 409, second.external_id)]  # Entra retries the create; the name is still held
    assert second.names[1][0] == 3 and name_key(second.names[1][1]) != name_key(first.user_name)
    assert second.state == first.state == "in_sync"
    assert len(first.scim_ids) == len(second.scim_ids) == 1


def test_it_keeps_a_collided_person_failing_while_the_name_is_held():
    _, truth = run(scripted(SimEvent(0, "collide", 1, other=0), users=2, cycles=4))

    second = truth.people[max(truth.people, key=lambda k: len(truth.people[k].cycles))]
    assert [str(o.outcome) for o in second.cycles.values()] == ["failed"] * 4
    assert second.state == "failing" and second.scim_ids == [] and truth.failing() == {second.external_id}


def test_it_creates_a_user_again_with_a_new_id_after_the_target_deleted_it():
    lines, truth = run(scripted(SimEvent(2, "recreate", 1)))

    person = next(p for p in truth.people.values() if len(p.scim_ids) == 2)
    lookup, post = [x for x in by_time(lines, truth)[2] if not is_connection_test(x)]
    assert lookup["response_body"]["totalResults"] == 0
    assert post["status"] == 201 and post["response_body"]["id"] == person.scim_ids[1]
    assert post["request_body"]["externalId"] == person.external_id
    assert person.cycles[2].operation == "create" and person.state == "in_sync"


def test_it_takes_people_out_of_scope_and_back():
    events = (SimEvent(1, "delete", 0), SimEvent(2, "enable", 0), SimEvent(1, "disable", 1),
              SimEvent(2, "enable", 1), SimEvent(3, "delete", 1), SimEvent(2, "delete", 2))
    _, truth = run(scripted(*events, cycles=4))
    people = sorted(truth.people.values(), key=operations)

    assert [operations(p) for p in people] == [
        ["create"], ["create", "delete"], ["create", "delete", "create"],
        ["create", "disable", "enable", "delete"]]
    assert [p.state for p in people] == ["in_sync", "deleted", "in_sync", "deleted"]
    assert [len(p.scim_ids) for p in people] == [1, 1, 2, 1]  # back in scope: created again


def test_it_looks_up_an_incomplete_person_without_writing_until_complete():
    lines, truth = run(scripted(SimEvent(2, "incomplete", 0), SimEvent(9, "incomplete", 1), cycles=3))

    skipped = {k: [(str(o.outcome), str(o.operation), o.found) for o in p.cycles.values()]
               for k, p in truth.people.items() if not p.cycles[0].found}
    assert sorted(skipped.values()) == [
        [("skipped", "none", False), ("skipped", "none", False), ("skipped", "none", False)],
        [("skipped", "none", False), ("skipped", "none", False), ("succeeded", "create", True)]]
    never = next(k for k, v in skipped.items() if v[-1][2] is False)
    assert truth.people[never].state == "never_provisioned" and truth.people[never].scim_ids == []
    assert truth.to_dict()["cycles"][0]["people"][never]["found"] is False


def test_it_ignores_events_that_do_not_fit():
    events = (SimEvent(0, "rename", 0),  # nobody is renamed before being created
              SimEvent(1, "enable", 0),  # not disabled
              SimEvent(1, "collide", 2, other=2),  # with oneself
              SimEvent(1, "unicode", 3, variant="patch"),  # fits: born with a variant of the name
              SimEvent(2, "delete", 1), SimEvent(3, "delete", 1),  # the second: already deleted
              SimEvent(3, "rename", 1), SimEvent(3, "case", 1))  # deleted: nothing to rename
    _, truth = run(scripted(*events))

    assert sorted(len(p.names) for p in truth.people.values()) == [1, 1, 1, 2]
    assert sorted(operations(p) for p in truth.people.values()) == [
        ["create"], ["create"], ["create", "delete"], ["create", "update"]]


def test_it_ignores_an_incomplete_event_for_a_person_of_a_collision():
    events = (SimEvent(1, "collide", 0, other=1), SimEvent(2, "incomplete", 1))
    output, truth = raw(scripted(*events, users=2, cycles=3))

    assert sorted(operations(p) for p in truth.people.values()) == [["create"], ["create", "create"]]
    assert list(created_ids(output).values()) == [1]  # the holder is not created twice


def test_it_delivers_lines_out_of_order_and_twice_when_disordered():
    config = SimConfig.realistic(**REALISTIC)
    ordered = SimConfig.realistic(**REALISTIC, realities=tuple(r for r in REALITIES if r != "disorder"))
    shuffled, truth = raw(config)
    plain, _ = raw(ordered)
    lines = [orjson.loads(x) for x in shuffled.splitlines()]

    assert set(shuffled.splitlines()) == set(plain.splitlines())  # only the order and copies differ
    assert len(lines) > len(plain.splitlines()) == sum(c.requests for c in truth.cycles)
    created = {}
    early = 0
    for number, line in enumerate(lines):
        if line["method"] == "POST" and line["status"] == 201:
            created.setdefault(line["response_body"]["id"], number)
    for number, line in enumerate(lines):
        ident = line["path"].rsplit("/", 1)[1] if line["method"] in ("PATCH", "DELETE") else None
        early += ident in created and number < created[ident]
    assert early > 0  # a PATCH or DELETE by id before the create that named the id
    assert any(b["ts"] < a["ts"] for a, b in zip(lines, lines[1:]))


def test_it_cuts_a_realistic_run_after_max_lines_as_a_prefix():
    config = SimConfig.realistic(**REALISTIC, realities=("rename", "collision", "recreate"))
    full, _ = raw(config)
    cut, truth = raw(replace(config, max_lines=200))

    assert cut == b"".join(full.splitlines(keepends=True)[:200])
    assert sum(c.requests for c in truth.cycles) == 200


def test_it_folds_a_person_s_outcomes_into_a_state():
    def o(outcome: str, operation: str, found: bool = True) -> UserOutcome:
        return UserOutcome(Outcome(outcome), Operation(operation), 200, 1, found)

    assert person_state([]) == "never_provisioned"
    assert person_state([o("skipped", "none", found=False)]) == "never_provisioned"
    assert person_state([o("skipped", "none")]) == "in_sync"
    assert person_state([o("succeeded", "create"), o("failed", "update")]) == "failing"
    assert person_state([o("succeeded", "create"), o("succeeded", "disable")]) == "disabled"
    assert person_state([o("succeeded", "create"), o("succeeded", "delete")]) == "deleted"
    assert person_state([o("succeeded", "create"), o("succeeded", "delete"),
                         o("succeeded", "create")]) == "in_sync"
    assert person_state([o("failed", "create"), o("failed", "none")]) == "failing"


def test_it_compares_names_after_nfkc_and_casefold():
    assert name_key("Ryan\u00a0Kim@Contoso.com") == name_key("ryan kim@contoso.com")
    assert name_key("ryan.kim\uff20contoso.com") == name_key("RYAN.KIM@contoso.com")
    assert name_key(unicodedata.normalize("NFD", "zoë@x")) == name_key("Zoë@x")
    assert name_key("ryan.kim@contoso.com") != name_key("ryan.kim2@contoso.com")


@pytest.mark.parametrize("override", [
    {"realities": ("teleport",)}, {"identity_rate": 2.0}, {"duplicate_rate": -0.1},
    {"events": (SimEvent(0, "rename", 7),)}, {"events": ("rename",)},
])
def test_it_rejects_a_bad_identity_config(override):
    with pytest.raises(ValueError):
        SimConfig(users=4, **override)


@pytest.mark.parametrize("event", [
    {"kind": "vanish"}, {"kind": "rename", "variant": "maybe"}, {"kind": "collide"},
    {"kind": "rename", "cycle": -1},
])
def test_it_rejects_a_bad_event(event):
    with pytest.raises(ValueError):
        SimEvent(**{"cycle": 0, "person": 0, **event})


def test_it_finds_the_people_of_a_plain_run_as_a_recording_run_keeps_them():
    config = SimConfig(users=60, cycles=6, **BUSY)
    _, plain = raw(config)
    _, recorded = raw(replace(config, record_events=True))

    assert plain.people == recorded.people and len(plain.people) > 60
    assert plain.states() == recorded.states() and plain.failing() == recorded.failing()
    assert set(plain.states().values()) >= {"in_sync", "failing", "disabled", "deleted"}
