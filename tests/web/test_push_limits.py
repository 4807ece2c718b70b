"""Issue 10 item 5: a push without Content-Length (Transfer-Encoding: chunked) over the limit is
refused whole with 413 and stores nothing, never cut silently at the limit; one within the limit
is stored whole. Through a real HTTP server (Werkzeug's, in a thread) and a real HTTP client
sending chunks, because the test client always knows the body's length.
"""
from __future__ import annotations

import http.client
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import orjson
import pytest
from sqlalchemy import func, select

from dashboard import create_app
from dashboard.admin.jobs import create_token, get_job
from dashboard.db import db
from dashboard.models import Exchange, IngestRun, Reject
from tests.local_http import serving_app

JOB = "uniflow-prod"
URL = f"/api/v1/jobs/{JOB}/exchanges"
LIMIT = 2000


@contextmanager
def served(settings) -> Iterator[int]:  # type: ignore[no-untyped-def]
    """The app, with push_max_bytes = LIMIT, served on 127.0.0.1; yields the port."""
    small = replace(settings, ingest=replace(settings.ingest, push_max_bytes=LIMIT))
    web = create_app(small)
    try:
        with serving_app(web) as base:
            yield int(base.rsplit(":", 1)[1])
    finally:
        with web.app_context():
            db.engine.dispose()


def lines(count: int, *, pad_last: int = 0) -> bytes:
    records = [{"ts": f"2026-11-28T09:{n // 60:02d}:{n % 60:02d}Z", "method": "GET", "path": "/scim/v2/Users",
                "query": f'filter=userName eq "u{n}@contoso.com"', "status": 200, "request_id": f"chunk-{n}"}
               for n in range(count)]
    if pad_last:
        records[-1]["client"] = "x" * pad_last
    return b"\n".join(orjson.dumps(r) for r in records)


def sized(size: int) -> bytes:
    """A body of exactly `size` bytes: whole lines, the last padded."""
    count = 1
    while len(lines(count + 1)) < size - 30:
        count += 1
    body = lines(count, pad_last=1)
    body = lines(count, pad_last=1 + size - len(body))
    assert len(body) == size
    return body


def push_chunked(port: int, token: str, body: bytes, chunk: int = 317) -> tuple[int, dict, dict]:
    """POST `body` in chunks of `chunk` bytes (no Content-Length); (status, JSON answer, headers)."""
    def pieces() -> Iterator[bytes]:
        for start in range(0, len(body), chunk):
            yield body[start:start + chunk]

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        try:
            conn.request("POST", URL, body=pieces(), encode_chunked=True,
                         headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson",
                                  "Transfer-Encoding": "chunked"})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered before the whole body was sent: read its answer
        response = conn.getresponse()
        payload = response.read()
        return response.status, orjson.loads(payload) if payload else {}, dict(response.getheaders())
    finally:
        conn.close()


def stored() -> tuple[int, int, int]:
    db.session.rollback()
    return tuple(db.session.scalar(select(func.count()).select_from(m)) for m in (Exchange, Reject, IngestRun))  # type: ignore[return-value]


@pytest.fixture
def token(app) -> str:  # type: ignore[no-untyped-def]
    return create_token(get_job(JOB))[1]


@pytest.mark.parametrize("size", [LIMIT + 1, 3 * LIMIT, 40 * LIMIT])
def test_a_chunked_body_over_the_limit_answers_413_and_stores_nothing(app, settings, token, size):  # type: ignore[no-untyped-def]
    body = sized(size)

    with served(settings) as port:
        status, answer, _headers = push_chunked(port, token, body)

    assert status == 413, answer
    assert str(LIMIT) in answer["error"] and "nothing was stored" in answer["error"]
    assert stored() == (0, 0, 0)


@pytest.mark.parametrize("size", [LIMIT, LIMIT - 1, 700])
def test_a_chunked_body_within_the_limit_is_stored_whole(app, settings, token, size):  # type: ignore[no-untyped-def]
    body = sized(size)
    count = body.count(b"\n") + 1

    with served(settings) as port:
        status, answer, _headers = push_chunked(port, token, body, chunk=97)  # chunks cut lines in two

    assert status == 200, answer
    assert (answer["lines"], answer["accepted"], answer["rejected"]) == (count, count, 0)
    db.session.rollback()
    assert set(db.session.scalars(select(Exchange.request_id))) == {f"chunk-{n}" for n in range(count)}
    assert stored()[1] == 0


def test_a_body_with_content_length_over_the_limit_answers_413_too(app, settings, token):  # type: ignore[no-untyped-def]
    body = sized(LIMIT + 500)

    with served(settings) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("POST", URL, body=body, headers={"Authorization": f"Bearer {token}"})
            response = conn.getresponse()
            status = response.status
            response.read()
        finally:
            conn.close()

    assert status == 413
    assert stored() == (0, 0, 0)
