"""HTTP push of exchanges: per-job tokens, bodies, limits, per-line results."""
from __future__ import annotations

import gzip

import orjson
import pytest
from sqlalchemy import func, select

from dashboard.admin.jobs import add_job, create_token, get_job, revoke_token
from dashboard.db import db
from dashboard.models import Exchange, Reject

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


def test_it_splits_a_body_without_lf_on_bare_crs(client):  # type: ignore[no-untyped-def]
    response = client.post(URL, data=body(record(1), record(2)).replace(b"\n", b"\r") + b"\r",
                           headers={"Authorization": f"Bearer {token()}"})

    assert response.json == {"lines": 3, "accepted": 2, "duplicates": 0, "rejected": 0, "rejects": []}


def test_it_answers_413_to_an_oversize_body(client, app):  # type: ignore[no-untyped-def]
    app.config["MAX_CONTENT_LENGTH"] = 1000
    big = body(*[record(n) for n in range(30)])

    response = client.post(URL, data=big, headers={"Authorization": f"Bearer {token()}"})

    assert response.status_code == 413
    assert "error" in response.json


@pytest.mark.parametrize("headers", [{"Content-Encoding": "gzip"}, {"Content-Encoding": "x-gzip"}, {}])
def test_it_ingests_a_gzip_body_as_its_lines(client, headers):  # type: ignore[no-untyped-def]
    # Log shippers compress (Vector's `compression = "gzip"`, Fluent Bit's `compress gzip`); without
    # the header the body is recognised by its first bytes, as `flask ingest` does.
    response = client.post(URL, data=gzip.compress(body(record(1), record(2))),
                           headers={"Authorization": f"Bearer {token()}", **headers})

    assert response.status_code == 200
    assert response.json == {"lines": 2, "accepted": 2, "duplicates": 0, "rejected": 0, "rejects": []}


def _damaged(kind: str) -> bytes:
    zipped = gzip.compress(body(*[record(n) for n in range(20)]))
    if kind == "crc":
        damaged = bytearray(zipped)
        damaged[-8] ^= 0xFF
        return bytes(damaged)
    if kind == "cut":
        return zipped[: len(zipped) // 2]
    if kind == "junk":
        return zipped + b"garbage"
    return b"not gzip at all"  # sent as Content-Encoding: gzip


@pytest.mark.parametrize(("kind", "damage"), [
    ("crc", "CRC check failed"), ("cut", "it ends early (cut off)"),
    ("junk", "it is followed by data that is not gzip"), ("plain", "not a gzip header"),
])
def test_it_refuses_a_damaged_gzip_body_whole_with_400_naming_the_damage(client, kind, damage):  # type: ignore[no-untyped-def]
    response = client.post(URL, data=_damaged(kind),
                           headers={"Authorization": f"Bearer {token()}", "Content-Encoding": "gzip"})

    assert response.status_code == 400
    assert response.json == {"error": f"the body's gzip data is damaged: {damage}; nothing was stored (send it again)"}
    assert db.session.scalar(select(func.count()).select_from(Exchange)) == 0
    assert db.session.scalar(select(func.count()).select_from(Reject)) == 0


def test_it_answers_413_to_a_gzip_body_too_large_once_decompressed(client, app):  # type: ignore[no-untyped-def]
    app.config["MAX_CONTENT_LENGTH"] = 1000
    big = gzip.compress(body(*[record(n) for n in range(30)]))
    assert len(big) < 1000

    response = client.post(URL, data=big, headers={"Authorization": f"Bearer {token()}", "Content-Encoding": "gzip"})

    assert response.status_code == 413
    assert response.json == {"error": "body larger than 1000 bytes once decompressed: nothing was stored; "
                                      "send it in smaller pushes"}
    assert db.session.scalar(select(func.count()).select_from(Exchange)) == 0


def test_it_answers_415_to_an_encoding_it_cannot_read(client):  # type: ignore[no-untyped-def]
    response = client.post(URL, data=body(record(1)),
                           headers={"Authorization": f"Bearer {token()}", "Content-Encoding": "br"})

    assert response.status_code == 415
    assert "'br' is not supported" in response.json["error"]
    assert db.session.scalar(select(func.count()).select_from(Exchange)) == 0
