"""Issue 10 item 6: a person's page shows the names they went by ("Names over time"); the users
page, the logs' user filter, the export and the read API find them by any past name, their
externalId or a SCIM id they once had. One renamed and re-created person, and one other person
who must never be what those searches find.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from dashboard.admin import accounts
from dashboard.admin.accounts import add_account, create_api_token
from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.models import ScimUser
from tests.web.signin import signed_in

JOB = "uniflow-prod"
T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
OLD, NEW = "alice@contoso.com", "alice.smith@contoso.com"
EXT = "ext-alice-7f3a"
SID_OLD, SID_NEW = "scim-alice-old", "scim-alice-new"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
# all the keys alice is found by; the other person must be found by none of them
KEYS = [OLD, NEW, "ALICE@Contoso.com", EXT, SID_OLD, SID_NEW]


@pytest.fixture(autouse=True)
def _fresh_login_state(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def _line(at: datetime, method: str, path: str, status: int, request_id: str, **fields) -> bytes:  # type: ignore[no-untyped-def]
    ts = at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return orjson.dumps({"ts": ts, "method": method, "path": path, "status": status, "request_id": request_id,
                         "job": JOB, **fields})


def _lookup(at: datetime, name: str, request_id: str) -> bytes:
    return _line(at, "GET", "/scim/v2/Users", 200, request_id, query=f'filter=userName eq "{name}"',
                 response_body={"schemas": [LIST], "totalResults": 0, "Resources": []})


def _create(at: datetime, name: str, ext: str, sid: str | None, request_id: str) -> bytes:
    body = {"schemas": [USER], "userName": name, "externalId": ext, "active": True}
    if sid is None:  # 409 uniqueness
        return _line(at, "POST", "/scim/v2/Users", 409, request_id, request_body=body,
                     response_body={"schemas": [ERROR], "status": "409", "scimType": "uniqueness",
                                    "detail": f"A user with externalId '{ext}' already exists"})
    return _line(at, "POST", "/scim/v2/Users", 201, request_id, request_body=body,
                 response_body={**body, "id": sid})


ALICE_REQUESTS = {"a1", "a2", "a3", "a4", "a5", "a6"}


@pytest.fixture
def renamed(app, settings):  # type: ignore[no-untyped-def]
    """alice: created as OLD (cycle 1), renamed to NEW (cycle 2: lookup, POST 409), deleted in the
    target and created again as NEW with a new SCIM id (cycle 3); bob, created once."""
    c2, c3 = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    lines = [
        _lookup(T0, OLD, "a1"), _create(T0 + timedelta(seconds=1), OLD, EXT, SID_OLD, "a2"),
        _lookup(T0 + timedelta(seconds=2), "bob@contoso.com", "b1"),
        _create(T0 + timedelta(seconds=3), "bob@contoso.com", "ext-bob", "scim-bob", "b2"),
        _lookup(c2, NEW, "a3"), _create(c2 + timedelta(seconds=1), NEW, EXT, None, "a4"),
        _lookup(c3, NEW, "a5"), _create(c3 + timedelta(seconds=1), NEW, EXT, SID_NEW, "a6"),
    ]
    result = ingest_lines(db.engine, get_job(JOB), enumerate(lines, start=1), source="test.jsonl", via="cli",
                          options=options_from(settings.ingest, cycles=settings.cycles))
    assert (result.accepted, result.rejected) == (8, 0)
    db.session.expire_all()
    alice = db.session.scalars(select(ScimUser).where(ScimUser.external_id == EXT)).one()
    assert (alice.user_name, alice.scim_id) == (NEW, SID_NEW)
    assert len(db.session.scalars(select(ScimUser)).all()) == 2
    return alice


def test_the_user_page_shows_the_names_over_time(renamed, client):  # type: ignore[no-untyped-def]
    signed_in(client, "support")

    for key in KEYS:
        response = client.get(f"/jobs/{JOB}/users/{key}")
        assert response.status_code == 200, key
        html = response.get_data(as_text=True)
        assert "Names over time" in html, key
        history = html.split("Names over time", 1)[1].split("</ol>", 1)[0]
        assert history.index(OLD) < history.index(NEW), key  # oldest first
        assert history.count("current") == 1 and re.search(rf"{re.escape(NEW)}</code>.*current", history), key
        assert "SCIM ids over time" in html and SID_OLD in html and SID_NEW in html
        assert "bob@contoso.com" not in html
    assert client.get(f"/jobs/{JOB}/users/nobody@contoso.com").status_code == 404


def test_the_user_page_of_a_person_never_renamed_has_no_names_over_time(renamed, client):  # type: ignore[no-untyped-def]
    signed_in(client, "support")

    html = client.get(f"/jobs/{JOB}/users/ext-bob").get_data(as_text=True)

    assert "bob@contoso.com" in html and "Names over time" not in html


def test_the_users_page_search_finds_the_person_by_any_past_name_or_id(renamed, client):  # type: ignore[no-untyped-def]
    signed_in(client, "support")

    for key in [*KEYS, "alice@contoso"]:
        html = client.get(f"/jobs/{JOB}/users", query_string={"q": key}).get_data(as_text=True)
        assert NEW in html, key  # listed under the current name
        assert "bob@contoso.com" not in html, key
    assert "bob@contoso.com" in client.get(f"/jobs/{JOB}/users", query_string={"q": "bob"}).get_data(as_text=True)


def test_the_logs_user_filter_finds_every_exchange_of_the_person_by_any_key(renamed, client):  # type: ignore[no-untyped-def]
    signed_in(client, "support")

    for key in KEYS:
        response = client.get(f"/jobs/{JOB}/logs/export.jsonl", query_string={"user": key})
        assert response.status_code == 200, key
        ids = {orjson.loads(line)["request_id"] for line in response.get_data().splitlines() if line.strip()}
        assert ids == ALICE_REQUESTS, key
        page = client.get(f"/jobs/{JOB}/logs", query_string={"user": key})
        assert page.status_code == 200
        assert "bob@contoso.com" not in page.get_data(as_text=True)
    bob = client.get(f"/jobs/{JOB}/logs/export.jsonl", query_string={"user": "bob@contoso.com"}).get_data()
    assert {orjson.loads(line)["request_id"] for line in bob.splitlines() if line.strip()} == {"b1", "b2"}


def test_the_cli_export_finds_the_person_by_an_old_name(renamed, runner, tmp_path):  # type: ignore[no-untyped-def]
    for key in (OLD, SID_OLD, EXT):
        out = tmp_path / "alice.jsonl"
        result = runner.invoke(args=["export", "--job", JOB, "--user", key, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert {orjson.loads(line)["request_id"] for line in out.read_bytes().splitlines()} == ALICE_REQUESTS, key


def test_the_read_api_timeline_finds_the_person_by_any_past_name_or_id(renamed, client):  # type: ignore[no-untyped-def]
    token = create_api_token(add_account("support@example.com", "support", "a long password"))
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"

    for key in KEYS:
        response = client.get(f"/api/v1/jobs/{JOB}/users/{key}/timeline")
        assert response.status_code == 200, key
        data = response.json
        assert data["user"]["id"] == renamed.id, key
        assert [n["value"] for n in data["names"]["userName"]] == [OLD, NEW]
        assert [n["current"] for n in data["names"]["userName"]] == [False, True]
        assert {n["value"] for n in data["names"]["scim_id"]} == {SID_OLD, SID_NEW}
        assert len(data["cycles"]) == 3
    listed = client.get(f"/api/v1/jobs/{JOB}/users", query_string={"q": OLD}).json
    assert [u["id"] for u in listed["users"]] == [renamed.id]
    assert client.get(f"/api/v1/jobs/{JOB}/users/nobody@contoso.com/timeline").status_code == 404
