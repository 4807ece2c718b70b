"""Recorders for Python SCIM servers: a WSGI and an ASGI middleware that write each exchange as a
v1 line (redacted, the Authorization header never recorded) to a sink:

- `LineFile(path)`: appends to a JSON Lines file (for `flask ingest`, or a log shipper);
- `PushWriter(dashboard_url, job, token, spool_dir)`: pushes batches to a dashboard's
  `/api/v1/jobs/JOB/exchanges` with an ingest token, from a background thread, spooling to disk
  (bounded) while the dashboard is unreachable or answers an error, and draining the spool when
  it answers again. Every line carries a request_id, so nothing is stored twice.

    from dashboard.capture.middleware import CaptureMiddleware, PushWriter
    app.wsgi_app = CaptureMiddleware(app.wsgi_app, PushWriter("https://dashboard.example.com",
                                     "uniflow-prod", os.environ["DASHBOARD_INGEST_TOKEN"], "/var/spool/scim").start())

The response is passed on as the application produces it; the exchange is recorded when the
response ends (or is closed), never before.
"""
from __future__ import annotations

import io
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import urllib3

from dashboard.capture.lines import MAX_RECORDED_BODY, exchange_line, json_body
from dashboard.capture.writer import CaptureWriter, _Job
from dashboard.formats.scim.records import ParseProblem
from dashboard.formats.scim.redact import DEFAULT_RULES, RedactionRules
from dashboard.ingest.scim import IngestResult

Sink = Callable[[bytes], None]


class LineFile:
    """A sink appending each line to a JSON Lines file (thread-safe; flushed per line)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def __call__(self, line: bytes) -> None:
        with self._lock, open(self.path, "ab") as out:
            out.write(line + b"\n")


class PushError(RuntimeError):
    pass


class PushWriter(CaptureWriter):
    """A CaptureWriter whose store is a dashboard's push API (see the module's docstring)."""

    store_name = "dashboard"

    def __init__(self, dashboard_url: str, job: str, token: str, spool_dir: str | Path, *,
                 timeout: float = 30.0, **options: Any) -> None:
        super().__init__(None, _Job(0, job), None, Path(spool_dir), **options)
        self.url = f"{dashboard_url.rstrip('/')}/api/v1/jobs/{job}/exchanges"
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
        self._http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=timeout, read=timeout))

    def _ingest(self, lines: list[bytes]) -> IngestResult:
        try:
            response = self._http.request("POST", self.url, body=b"\n".join(lines) + b"\n", headers=self._headers)
        except urllib3.exceptions.HTTPError as error:
            raise PushError(f"{self.url} did not answer: {type(error).__name__}") from error
        if response.status != 200:
            raise PushError(f"{self.url} answered {response.status}: {response.data[:200].decode('utf-8', 'replace')}")
        answer = orjson.loads(response.data)
        return IngestResult(lines=answer["lines"], accepted=answer["accepted"], duplicates=answer["duplicates"],
                            rejected=answer["rejected"],
                            problems=[ParseProblem(r["line"], r["reason"], "") for r in answer.get("rejects", [])])

    def close(self, timeout: float | None = 30.0) -> None:
        super().close(timeout)
        self._http.clear()


def _record(sink: Sink, rules: RedactionRules, job: str | None, *, at: datetime, started: float, method: str,
            target: str, status: int, headers: Iterable[tuple[str, str]], request: bytes, response: bytes,
            request_encoding: str | None, response_encoding: str | None) -> None:
    sink(exchange_line(
        at=at, method=method, target=target, status=status, duration_ms=(time.perf_counter() - started) * 1000,
        request_id=f"capture-{uuid.uuid4()}", headers=headers,
        request_body=json_body(request if len(request) <= MAX_RECORDED_BODY else None, request_encoding),
        response_body=json_body(response if len(response) <= MAX_RECORDED_BODY else None, response_encoding),
        rules=rules, job=job,
    ))


# -- WSGI --------------------------------------------------------------------------------------------


class CaptureMiddleware:
    """WSGI middleware recording every exchange of `app` to `sink`."""

    def __init__(self, app: Callable[..., Iterable[bytes]], sink: Sink, *, rules: RedactionRules = DEFAULT_RULES,
                 job: str | None = None) -> None:
        self.app, self.sink, self.rules, self.job = app, sink, rules, job

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        at, started = datetime.now(UTC), time.perf_counter()
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        state: dict[str, Any] = {"status": 0, "encoding": None}

        def recording_start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            state["status"] = int(status.split(" ", 1)[0])
            state["encoding"] = next((v for k, v in headers if k.lower() == "content-encoding"), None)
            return start_response(status, headers, exc_info)

        headers = [(key[5:].replace("_", "-").lower(), value) for key, value in environ.items()
                   if key.startswith("HTTP_")]
        if environ.get("CONTENT_TYPE"):
            headers.append(("content-type", environ["CONTENT_TYPE"]))
        target = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")) or "/"
        if environ.get("QUERY_STRING"):
            target += "?" + environ["QUERY_STRING"]
        result = self.app(environ, recording_start)
        return _Recorded(result, lambda answer: _record(
            self.sink, self.rules, self.job, at=at, started=started, method=environ.get("REQUEST_METHOD", "GET"),
            target=target, status=state["status"], headers=headers, request=body, response=answer,
            request_encoding=environ.get("HTTP_CONTENT_ENCODING"), response_encoding=state["encoding"]))


class _Recorded:
    """The app's response iterable, passed on chunk by chunk; recorded once, when closed."""

    def __init__(self, result: Iterable[bytes], done: Callable[[bytes], None]) -> None:
        self.result, self.done = result, done
        self.kept = bytearray()
        self.recorded = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.result:
            if len(self.kept) <= MAX_RECORDED_BODY:
                self.kept += chunk
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self.result, "close", None)
            if close is not None:
                close()
        finally:
            if not self.recorded:
                self.recorded = True
                self.done(bytes(self.kept))


# -- ASGI --------------------------------------------------------------------------------------------

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class CaptureASGIMiddleware:
    """ASGI middleware recording every HTTP exchange of `app` to `sink` (other scopes pass through).
    A sink that may block (a file) is fine: a line is small; PushWriter.submit never blocks."""

    def __init__(self, app: Callable[[dict[str, Any], Receive, Send], Awaitable[None]], sink: Sink, *,
                 rules: RedactionRules = DEFAULT_RULES, job: str | None = None) -> None:
        self.app, self.sink, self.rules, self.job = app, sink, rules, job

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        at, started = datetime.now(UTC), time.perf_counter()
        request, response = bytearray(), bytearray()
        state: dict[str, Any] = {"status": 0, "encoding": None}
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope.get("headers", [])]

        async def recording_receive() -> dict[str, Any]:
            message = await receive()
            if message.get("type") == "http.request" and len(request) <= MAX_RECORDED_BODY:
                request.extend(message.get("body", b""))
            return message

        async def recording_send(message: dict[str, Any]) -> None:
            if message.get("type") == "http.response.start":
                state["status"] = int(message["status"])
                state["encoding"] = next((v.decode("latin-1") for k, v in message.get("headers", [])
                                          if k.lower() == b"content-encoding"), None)
            elif message.get("type") == "http.response.body" and len(response) <= MAX_RECORDED_BODY:
                response.extend(message.get("body", b""))
            await send(message)

        target = (scope.get("root_path", "") + scope.get("path", "")) or "/"
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        try:
            await self.app(scope, recording_receive, recording_send)
        finally:
            _record(self.sink, self.rules, self.job, at=at, started=started, method=scope.get("method", "GET"),
                    target=target, status=state["status"], headers=headers, request=bytes(request),
                    response=bytes(response), request_encoding=dict(headers).get("content-encoding"),
                    response_encoding=state["encoding"])
