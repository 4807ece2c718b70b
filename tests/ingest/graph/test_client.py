"""The Graph pull client against a real local HTTP server serving Graph's documented shapes."""
from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from dashboard.formats.entra.records import ProvisioningEvent
from dashboard.formats.scim.records import ParseProblem
from dashboard.ingest.graph.client import (
    GraphClient,
    GraphConfig,
    GraphError,
    Watermark,
)
from tests.formats.entra.conftest import DATA
from tests.local_http import serving

NOW = datetime(2026, 3, 26, 8, 0, tzinfo=UTC)  # after the samples' records (2026-03-25)


class FakeGraph:
    """Scripted answers: `routes[(method, path)]` is a list of (status, headers, body) used in turn."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[tuple[int, dict[str, str], object]]] = {}
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.tokens = iter(f"token-{n}" for n in range(1, 100))
        self.valid_tokens: set[str] = set()

    def answer(self, method: str, path: str, status: int = 200, body: object = None, **headers: str) -> None:
        self.routes.setdefault((method, path), []).append((status, headers, body))

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        parts = urlsplit(handler.path)
        self.requests.append((handler.command, handler.path, dict(handler.headers), body))
        if parts.path.endswith("/oauth2/v2.0/token") and (handler.command, parts.path) not in self.routes:
            token = next(self.tokens)
            self.valid_tokens.add(token)
            return self._send(handler, 200, {}, {"token_type": "Bearer", "expires_in": 3599, "access_token": token})
        key = (handler.command, parts.path + ("?" + parts.query if "skiptoken" in parts.query else ""))
        script = self.routes.get(key) or self.routes.get((handler.command, parts.path))
        if not script:
            return self._send(handler, 404, {}, {"error": {"code": "Request_ResourceNotFound", "message": "no"}})
        status, headers, answer = script.pop(0) if len(script) > 1 else script[0]
        if status == 200 and not parts.path.endswith("/token"):
            bearer = handler.headers.get("Authorization", "").removeprefix("Bearer ")
            if bearer not in self.valid_tokens:  # an expired token: Graph's 401
                return self._send(handler, 401, {}, {"error": {"code": "InvalidAuthenticationToken",
                                                               "message": "Access token has expired."}})
        return self._send(handler, status, headers, answer)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: object) -> None:
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.end_headers()
        handler.wfile.write(data)


@pytest.fixture
def graph() -> Iterator[tuple[FakeGraph, str]]:
    fake = FakeGraph()
    with serving(fake.handle) as base:
        yield fake, base


def _client(base: str, sleeps: list[float], **overrides) -> GraphClient:
    config = GraphConfig(tenant="contoso-tenant", client_id="app-id", client_secret="s3cret", login_base=base,
                         graph_base=base + "/v1.0", **overrides)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return GraphClient(config, now=lambda: NOW, sleep=sleeps.append, opener=opener)


def _page(name: str, next_link: str | None) -> dict:
    page = orjson.loads((DATA / name).read_bytes())
    page.pop("@odata.nextLink", None)
    if next_link:
        page["@odata.nextLink"] = next_link
    return page


def test_it_pages_through_throttling_and_a_token_expiry_and_returns_the_watermark(graph):
    fake, base = graph
    path = "/v1.0/auditLogs/provisioning"
    fake.answer("GET", path, body=_page("graph-escrow-page-1.json", f"{base}{path}?$skiptoken=2"))
    fake.answer("GET", f"{path}?$skiptoken=2", 429, {"error": {"code": "TooManyRequests"}}, Retry_After="7")
    fake.answer("GET", f"{path}?$skiptoken=2", body=_page("graph-mixed-versions.json", f"{base}{path}?$skiptoken=3"))
    fake.answer("GET", f"{path}?$skiptoken=3", body=_page("graph-escrow-page-2.json", None))
    sleeps: list[float] = []
    client = _client(base, sleeps)

    pull = client.pull(None)
    items = []
    for item in pull:
        items.append(item)
        if len(items) == 1:
            fake.valid_tokens.clear()  # the token expires while we page: the next page gets a 401

    assert [type(i) for i in items] == [ProvisioningEvent] * 10
    assert [i.record_no for i in items] == list(range(1, 11))
    assert sleeps == [7.0]  # Retry-After honoured
    token_calls = [r for r in fake.requests if r[1].endswith("/token")]
    assert len(token_calls) == 2  # one new token, once
    form = parse_qs(token_calls[0][3].decode())
    assert form["grant_type"] == ["client_credentials"] and form["scope"] == ["https://graph.microsoft.com/.default"]
    assert token_calls[0][1] == "/contoso-tenant/oauth2/v2.0/token"
    first = fake.requests[1][1]
    assert first == "/v1.0/auditLogs/provisioning?$filter=activityDateTime%20gt%202026-02-24T08:00:00Z"  # 30 days back
    assert fake.requests[-1][2]["Authorization"] == "Bearer token-2"
    assert pull.complete and pull.pages == 3 and pull.records == 10
    assert pull.watermark.activity_at == datetime(2026, 3, 25, 8, 0, 4, tzinfo=UTC)  # the latest record
    assert pull.watermark.seen_ids == {"mixed-1", "mixed-2", "mixed-4", "mixed-5"}  # mixed-3 was at 07:00:02Z


def test_it_resumes_from_the_watermark_and_skips_what_it_has_seen(graph):
    fake, base = graph
    path = "/v1.0/auditLogs/provisioning"
    fake.answer("GET", path, body=_page("graph-mixed-versions.json", None))
    mark = Watermark(datetime(2026, 3, 25, 8, 0, 1, tzinfo=UTC), frozenset({"mixed-1", "mixed-2"}))

    pull = _client(base, [], page_size=500).pull(Watermark.from_json(mark.to_json()))
    items = list(pull)

    assert [i.id for i in items] == ["mixed-3", "mixed-4", "mixed-5"] and pull.skipped == 2
    assert fake.requests[-1][1] == (
        "/v1.0/auditLogs/provisioning?$filter=activityDateTime%20gt%202026-03-25T07:30:01Z&$top=500")
    assert pull.watermark.activity_at == datetime(2026, 3, 25, 8, 0, 4, tzinfo=UTC)


def test_a_record_dated_ahead_of_now_never_moves_the_watermark(graph):
    fake, base = graph
    path = "/v1.0/auditLogs/provisioning"
    body = _page("graph-mixed-versions.json", None)
    body["value"][0]["activityDateTime"] = "9999-12-31T23:59:59Z"  # a clock gone wrong
    fake.answer("GET", path, body=body)

    pull = _client(base, []).pull(None)
    items = list(pull)

    assert len(items) == 5 and pull.complete  # still read (the import rejects it, by its date)
    assert pull.watermark.activity_at == datetime(2026, 3, 25, 8, 0, 4, tzinfo=UTC)


def test_it_keeps_the_old_watermark_when_a_pull_fails_part_way(graph):
    fake, base = graph
    path = "/v1.0/auditLogs/provisioning"
    fake.answer("GET", path, body=_page("graph-escrow-page-1.json", f"{base}{path}?$skiptoken=2"))
    fake.answer("GET", f"{path}?$skiptoken=2", 503, {"error": {"code": "ServiceUnavailable"}})
    sleeps: list[float] = []
    mark = Watermark(datetime(2026, 3, 20, tzinfo=UTC))
    pull = _client(base, sleeps, max_attempts=3).pull(mark)

    with pytest.raises(GraphError, match="still throttled after 3 attempts") as error:
        list(pull)

    assert error.value.status == 503 and error.value.code == "ServiceUnavailable"
    assert sleeps == [2.0, 4.0]  # no Retry-After: exponential, bounded
    assert pull.watermark is mark and not pull.complete


def test_it_reports_bad_records_of_a_page_with_page_and_record_numbers(graph):
    fake, base = graph
    page = orjson.loads((DATA / "graph-malformed-records.json").read_bytes().replace(b'"status": success"', b'"status":"x"'))
    fake.answer("GET", "/v1.0/auditLogs/provisioning", body=page)

    items = list(_client(base, []).pull(None))

    bad = [i for i in items if isinstance(i, ParseProblem)]
    assert [p.line_no for p in bad] == [2, 3, 4, 5, 6, 7, 8]
    assert bad[1].reason == "page 1 record 3: field 'activityDateTime' is missing"


def test_it_honours_a_retry_after_date_and_caps_long_waits(graph):
    fake, base = graph
    when = format_datetime(NOW + timedelta(seconds=30), usegmt=True)
    fake.answer("GET", "/v1.0/auditLogs/provisioning", 429, {}, Retry_After=when)
    fake.answer("GET", "/v1.0/auditLogs/provisioning", 429, {}, Retry_After="3600")
    fake.answer("GET", "/v1.0/auditLogs/provisioning", body={"value": []})
    sleeps: list[float] = []

    assert list(_client(base, sleeps, max_wait_s=120).pull(None)) == []
    assert sleeps == [30.0, 120.0]


def test_it_gives_up_after_a_second_401(graph):
    fake, base = graph
    fake.answer("GET", "/v1.0/auditLogs/provisioning", 401, {"error": {"code": "InvalidAuthenticationToken"}})

    with pytest.raises(GraphError) as error:
        list(_client(base, []).pull(None))
    assert error.value.status == 401 and error.value.code == "InvalidAuthenticationToken"
    assert len([r for r in fake.requests if r[1].endswith("/token")]) == 2


def test_it_reports_a_refused_token_without_the_secret(graph):
    fake, base = graph
    fake.answer("POST", "/contoso-tenant/oauth2/v2.0/token", 401,
                {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."})

    with pytest.raises(GraphError) as error:
        _client(base, []).token()
    assert error.value.code == "invalid_client" and "s3cret" not in str(error.value)


def test_it_refuses_to_send_the_token_to_another_host(graph):
    fake, base = graph
    fake.answer("GET", "/v1.0/auditLogs/provisioning", body={"value": [], "@odata.nextLink": "https://evil.example/x"})

    with pytest.raises(GraphError, match="refusing to follow"):
        list(_client(base, []).pull(None))


def test_it_gets_the_job_status(graph):
    fake, base = graph
    job = orjson.loads((DATA / "job-quarantined.json").read_bytes())
    fake.answer("GET", "/v1.0/servicePrincipals/sp-1/synchronization/jobs/uniFLOWOnline.t.j", body=job)

    status = _client(base, []).get_job("sp-1", "uniFLOWOnline.t.j")

    assert status.is_quarantined and status.quarantine.reason == "EncounteredEscrowProportionThreshold"


def test_it_reuses_a_token_until_shortly_before_it_expires(graph):
    fake, base = graph
    clock = [NOW]
    config = GraphConfig(tenant="t", client_id="c", client_secret="s", login_base=base, graph_base=base + "/v1.0")
    client = GraphClient(config, now=lambda: clock[0], sleep=lambda s: None,
                         opener=urllib.request.build_opener(urllib.request.ProxyHandler({})))

    first = client.token()
    clock[0] += timedelta(minutes=50)
    assert client.token() == first
    clock[0] += timedelta(minutes=6)  # 5 minutes before expires_in (3599 s)
    assert client.token() != first


def test_it_retries_when_the_server_cannot_be_reached():
    sleeps: list[float] = []
    client = _client("http://127.0.0.1:9", sleeps, max_attempts=2, timeout_s=2)

    with pytest.raises(GraphError, match="could not be reached after 2 attempts"):
        client.token()
    assert sleeps == [2.0]


def test_it_starts_a_first_pull_at_the_given_time(graph):
    fake, base = graph
    fake.answer("GET", "/v1.0/auditLogs/provisioning", body={"value": []})

    pull = _client(base, []).pull(None, since=datetime(2026, 3, 1, 12, 30, 15, 999, tzinfo=UTC))

    assert list(pull) == [] and pull.complete and pull.watermark is None  # nothing seen: nothing to resume from
    assert fake.requests[-1][1].endswith("$filter=activityDateTime%20gt%202026-03-01T12:30:15Z")
