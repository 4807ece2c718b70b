from __future__ import annotations

import io
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote_plus

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.simulate import (
    ENTERPRISE,
    ERROR,
    UNIFLOW,
    GroundTruth,
    SimConfig,
    simulate,
    simulate_lines,
    write_log,
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
