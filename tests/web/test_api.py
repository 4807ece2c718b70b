"""HTTP push of exchanges: per-job tokens, bodies, limits, per-line results."""
from __future__ import annotations

import orjson
from sqlalchemy import func, select

from dashboard.admin.jobs import add_job, create_token, get_job, revoke_token
from dashboard.db import db
from dashboard.models import Exchange

URL = "/api/v1/jobs/uniflow-prod/exchanges"


def body(*records: dict) -> bytes:
    return b"\n".join(orjson.dumps(r) for r in records)


def record(n: int, **extra) -> dict:  # type: ignore[no-untyped-def]
    return {"ts": f"2026-11-28T09:00:{n:02d}Z", "method": "GET", "path": "/scim/v2/Users",
            "query": f'filter=userName eq "u{n}@contoso.com"', "status": 200, "request_id": f"p{n}", **extra}


def token() -> str:
    return create_token(get_job("uniflow-prod"))[1]


def test_it_ingests_json_lines_with_a_valid_token(client):  # type: ignore[no-untyped-def]
    response = client.post(URL, data=body(record(1), record(2)), headers={"Authorization": f"Bearer {token()}"})

    assert response.status_code == 200
    assert response.json == {"lines": 2, "accepted": 2, "duplicates": 0, "rejected": 0, "rejects": []}
    assert db.session.scalar(select(func.count()).select_from(Exchange)) == 2


def test_it_ingests_a_json_array_and_answers_per_line_rejects(client):  # type: ignore[no-untyped-def]
    payload = orjson.dumps([record(1), {"ts": "2026-11-28T09:00:00Z"}, record(3), record(1)])

    response = client.post(URL, data=payload, headers={"Authorization": f"Bearer {token()}"})

    assert response.json["accepted"] == 2
    assert response.json["duplicates"] == 1
    assert response.json["rejects"] == [{"line": 2, "reason": "missing required field 'method'"}]


def test_it_refuses_a_missing_wrong_or_revoked_token(client):  # type: ignore[no-untyped-def]
    good_row, good = create_token(get_job("uniflow-prod"))
    add_job("uniflow-emea")
    other = create_token(get_job("uniflow-emea"))[1]

    assert client.post(URL, data=body(record(1))).status_code == 401
    assert client.post(URL, data=body(record(1)), headers={"Authorization": "Bearer nope"}).status_code == 403
    assert client.post(URL, data=body(record(1)), headers={"Authorization": f"Bearer {other}"}).status_code == 403
    revoke_token(good_row.id)
    assert client.post(URL, data=body(record(1)), headers={"Authorization": f"Bearer {good}"}).status_code == 403
    assert db.session.scalar(select(func.count()).select_from(Exchange)) == 0


def test_it_rejects_lines_that_name_another_job(client):  # type: ignore[no-untyped-def]
    add_job("uniflow-emea")

    response = client.post(URL, data=body(record(1, job="uniflow-emea")), headers={"Authorization": f"Bearer {token()}"})

    assert response.json["rejected"] == 1
    assert "this token is for job 'uniflow-prod'" in response.json["rejects"][0]["reason"]


def test_it_answers_413_to_an_oversize_body(client, app):  # type: ignore[no-untyped-def]
    app.config["MAX_CONTENT_LENGTH"] = 1000
    big = body(*[record(n) for n in range(30)])

    response = client.post(URL, data=big, headers={"Authorization": f"Bearer {token()}"})

    assert response.status_code == 413
    assert "error" in response.json
