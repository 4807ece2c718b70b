"""The recording proxy end to end: independent SCIM software on both sides (scim2-server as the
upstream, scim2-client and scim2-tester's checks as the caller), the dashboard's view of the
captured traffic compared with what the caller did, and the database killed mid-run."""
from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import orjson
import pytest
from scim2_models import Error, PatchOp, PatchOperation, SearchRequest, User
from scim2_tester import check_server
from sqlalchemy import func, select

from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.models import Exchange
from dashboard.queries.export import export_lines
from dashboard.queries.users import list_users
from tests.capture.conftest import JOB, TOKEN, Capture


def _exported() -> list[dict]:
    db.session.rollback()
    return [orjson.loads(line) for line in export_lines(db.session, get_job(JOB))]


def _seen(lines: list[dict]) -> Counter:
    return Counter((line["method"], line["path"], line["status"]) for line in lines)


def _stored() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(Exchange))


def _provision(scim, names: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
    """What Entra does for each person: look up by userName, create, then update; the ids made."""
    ids = []
    for name in names:
        scim.query(User, query_parameters=SearchRequest(filter=f'userName eq "{name}"'), expected_status_codes=None)
        user = scim.create(User(user_name=name, external_id=f"ext-{name}", active=True, display_name=name),
                           expected_status_codes=None)
        assert not isinstance(user, Error), user
        ids.append(user.id)
        operation = PatchOperation[User](op=PatchOperation.Op.replace_, path="displayName", value=name.upper())
        scim.modify(User, user.id, PatchOp[User](operations=[operation]), expected_status_codes=None)
    return ids


def test_the_captured_traffic_is_what_the_caller_did(capture: Capture):
    scim = capture.client()
    scim.discover()
    ids = _provision(scim, ["ada@contoso.com", "bo@contoso.com"])
    assert not isinstance(scim.create(User(user_name="ada@contoso.com", external_id="other"),
                                      expected_status_codes=None), User)  # 409: the name is taken
    scim.delete(User, ids[1], expected_status_codes=None)
    scim.query(User, ids[1], expected_status_codes=None)  # 404: gone
    results = check_server(scim, include_tags={"discovery", "crud"}, resource_types=["User"])
    assert results  # scim2-tester ran its checks through the proxy
    assert capture.writer.flush(60)

    lines = _exported()
    assert _seen(lines) == Counter(capture.calls)
    assert len(lines) == len(capture.calls) == _stored()
    assert {409, 404, 201, 200, 204} <= {status for _m, _p, status in capture.calls}
    # the Authorization header was passed through (the upstream accepted it) and never recorded
    assert all("authorization" not in line.get("request_headers", {}) for line in lines)
    assert TOKEN not in orjson.dumps(lines).decode()
    db.session.rollback()
    people = {user["userName"] for user in list_users(db.session, get_job(JOB), limit=100)["users"]}
    assert {"ada@contoso.com", "bo@contoso.com"} <= people
    assert capture.writer.counters.dropped == 0 and capture.writer.counters.rejected == 0


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "child-process"])
def test_the_database_killed_mid_run_loses_nothing_and_stores_nothing_twice(capture: Capture):
    scim = capture.client()
    _provision(scim, [f"before{i}@contoso.com" for i in range(3)])
    assert capture.writer.flush(60)
    stored_before = _stored()
    assert stored_before == len(capture.calls)

    capture.database.cut()
    ids = _provision(scim, [f"during{i}@contoso.com" for i in range(4)])
    assert all(ids)  # the traffic flows while the database is down
    assert capture.writer.flush(60)
    assert capture.writer.counters.database_errors >= 1
    assert capture.writer.spool_files()  # waiting on disk, redacted
    spooled = b"".join(path.read_bytes() for path in capture.writer.spool_files())
    assert TOKEN.encode() not in spooled and b"authorization" not in spooled.lower()
    assert _stored() == stored_before

    capture.database.restore()
    _provision(scim, [f"after{i}@contoso.com" for i in range(2)])
    assert capture.writer.flush(60)
    assert capture.writer.spool_files() == []
    lines = _exported()
    assert _seen(lines) == Counter(capture.calls)
    assert _stored() == len(capture.calls) == len({line["request_id"] for line in lines})


def test_a_spool_ingested_again_stores_nothing_twice(capture: Capture):
    scim = capture.client()
    _provision(scim, ["twice@contoso.com"])
    assert capture.writer.flush(60)
    stored = _stored()
    # as if the writer had crashed after storing a spool file and before removing it
    (capture.spool / "00000000000000000001-1-000001.jsonl").write_bytes(b"\n".join(export_lines(db.session, get_job(JOB))) + b"\n")
    assert capture.writer.flush(60)
    assert _stored() == stored
    assert capture.writer.counters.duplicates == stored
    assert capture.writer.spool_files() == []


def test_a_full_spool_drops_with_a_clear_error_and_the_traffic_still_flows(capture: Capture, caplog):
    capture.writer.spool_max_bytes = 10  # nothing fits
    capture.database.cut()
    scim = capture.client()
    with caplog.at_level(logging.ERROR, logger="dashboard.capture.writer"):
        ids = _provision(scim, ["full@contoso.com"])
        assert capture.writer.flush(60)
    assert ids[0]
    assert capture.writer.counters.dropped == len(capture.calls)
    assert "is full" in caplog.text and "NOT recorded" in caplog.text and "--spool-max-mb" in caplog.text
    capture.database.restore()


def test_a_rejected_token_is_recorded_as_the_target_answered_it(capture: Capture):
    scim = capture.client(token="wrong-token")
    scim.query(User, query_parameters=SearchRequest(filter='userName eq "x@contoso.com"'), expected_status_codes=None)
    assert capture.writer.flush(60)
    [line] = _exported()
    assert line["status"] == 401
    assert "wrong-token" not in orjson.dumps(line).decode()


def test_spool_files_are_named_in_time_order(capture: Capture, tmp_path: Path):
    capture.database.cut()
    scim = capture.client()
    _provision(scim, ["one@contoso.com"])
    assert capture.writer.flush(60)
    _provision(scim, ["two@contoso.com"])
    assert capture.writer.flush(60)
    names = [path.name for path in capture.writer.spool_files()]
    assert len(names) >= 2 and sorted(names) == sorted(names, key=lambda n: int(n.split("-")[0]))
    capture.database.restore()
