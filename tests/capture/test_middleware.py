"""The WSGI and ASGI recorders: scim2-server wrapped by the WSGI middleware and driven by
scim2-client, its file ingested as a person would; a push to our own app served for real, with
the dashboard unreachable first (spooled) and back later (drained, nothing twice)."""
from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections import Counter

import orjson
from scim2_client.engines.wsgi import WSGISCIMClient
from scim2_models import Error, SearchRequest, User
from scim2_server.memory import InMemoryStorage
from scim2_server.service import ScimService
from scim2_server.testserver.application import BearerTokenApplication
from sqlalchemy import func, select
from werkzeug.serving import make_server

from dashboard.admin.jobs import create_token, get_job
from dashboard.capture.middleware import CaptureASGIMiddleware, CaptureMiddleware, LineFile, PushWriter
from dashboard.db import db
from dashboard.models import Exchange
from tests.capture.conftest import JOB, TOKEN, _provider


def _scim_app(sink):  # type: ignore[no-untyped-def]
    provider = _provider()
    server = BearerTokenApplication(InMemoryStorage(), provider, service=ScimService(provider, secret="s" * 32),
                                    bearer_tokens=[TOKEN])

    def mounted(environ, start_response):  # type: ignore[no-untyped-def]
        environ["SCRIPT_NAME"], environ["PATH_INFO"] = "/scim", environ["PATH_INFO"].removeprefix("/scim")
        return server(environ, start_response)

    return CaptureMiddleware(mounted, sink), provider


def _drive(app, provider) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    """What Entra does to two people, through scim2-client's WSGI engine; (operation, status) of each."""
    scim = WSGISCIMClient(app, base_url="http://localhost/scim/v2", provider=provider,
                          headers={"Authorization": f"Bearer {TOKEN}"}, raise_scim_errors=False)
    did = []
    for name in ("ann@contoso.com", "ann@contoso.com", "ben@contoso.com"):
        found = scim.query(User, query_parameters=SearchRequest(filter=f'userName eq "{name}"'), expected_status_codes=None)
        did.append(("GET", 200 if not isinstance(found, Error) else 0))
        made = scim.create(User(user_name=name, external_id=f"x-{name}"), expected_status_codes=None)
        did.append(("POST", 201 if not isinstance(made, Error) else int(made.status)))
    return did


def test_the_wsgi_middleware_writes_the_lines_flask_ingest_reads(runner, tmp_path):
    path = tmp_path / "scim.jsonl"
    app, provider = _scim_app(LineFile(path))
    did = _drive(app, provider)
    lines = [json.loads(line) for line in path.read_text().splitlines()]

    assert Counter((line["method"], line["status"]) for line in lines) == Counter(did)
    assert ("POST", 409) in did  # the second create of the same userName
    assert all("authorization" not in line["request_headers"] for line in lines) and TOKEN not in path.read_text()
    result = runner.invoke(args=["ingest", str(path), "--job", JOB])
    assert result.exit_code == 0, result.output
    assert f"{len(did)} lines: {len(did)} accepted, 0 duplicates, 0 rejected" in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_push_spools_while_the_dashboard_is_away_and_drains_when_it_is_back(app, tmp_path):
    token = create_token(get_job(JOB))[1]
    db.session.commit()
    port = _free_port()  # nothing listens there yet: the dashboard is down
    writer = PushWriter(f"http://127.0.0.1:{port}", JOB, token, tmp_path / "spool", flush_seconds=0.05,
                        retry_seconds=0.05).start()
    try:
        scim, provider = _scim_app(writer.submit)
        first = _drive(scim, provider)
        assert writer.flush(60) and writer.spool_files() and writer.counters.database_errors >= 1
        server = make_server("127.0.0.1", port, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        thread.start()
        try:
            assert writer.flush(60)
            assert writer.spool_files() == []
            assert writer.flush(60)
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
    finally:
        writer.close()
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Exchange)) == len(first) == writer.counters.stored


def test_the_asgi_middleware_records_an_exchange(tmp_path):
    path = tmp_path / "asgi.jsonl"

    async def scim(scope, receive, send):  # type: ignore[no-untyped-def]
        body = (await receive())["body"]
        user = orjson.loads(body)
        answer = orjson.dumps({"id": "42", "userName": user["userName"]})
        await send({"type": "http.response.start", "status": 201,
                    "headers": [(b"content-type", b"application/scim+json")]})
        await send({"type": "http.response.body", "body": answer})

    app = CaptureASGIMiddleware(scim, LineFile(path), job=JOB)
    sent = []

    async def run() -> None:
        messages = [{"type": "http.request", "body": b'{"userName": "cy@contoso.com", "password": "hunter2"}',
                     "more_body": False}]

        async def receive():  # type: ignore[no-untyped-def]
            return messages.pop(0)

        async def send(message):  # type: ignore[no-untyped-def]
            sent.append(message)

        await app({"type": "http", "method": "POST", "path": "/scim/v2/Users", "root_path": "", "query_string": b"",
                   "headers": [(b"authorization", b"Bearer " + TOKEN.encode()), (b"user-agent", b"Entra")]},
                  receive, send)

    asyncio.run(run())
    [line] = [json.loads(text) for text in path.read_text().splitlines()]

    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert (line["method"], line["path"], line["status"], line["job"]) == ("POST", "/scim/v2/Users", 201, JOB)
    assert line["response_body"] == {"id": "42", "userName": "cy@contoso.com"}
    assert line["request_body"]["password"] != "hunter2" and TOKEN not in path.read_text()
