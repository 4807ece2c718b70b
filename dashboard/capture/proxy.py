"""The recording reverse proxy: `flask --app app capture --listen 127.0.0.1:PORT --upstream URL --job NAME`.

Every request is forwarded unchanged (method, path, query, headers — the Authorization header
included — and body) to the upstream, over TLS when its URL is https (certificates verified),
and the upstream's answer is streamed back as it arrives (status, headers, body, chunk by chunk).
After the answer is sent, the exchange becomes one v1 line (lines.py: the Authorization header
is never recorded, secrets are redacted) handed to the writer (writer.py), which never makes a
response wait for the database.

A threaded server (one thread per connection, HTTP/1.1 keep-alive) and urllib3's connection pool
to the upstream: Entra sends about 25 requests a second per tenant, well within it.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import orjson
import urllib3

from dashboard.capture.lines import MAX_RECORDED_BODY, exchange_line, json_body
from dashboard.formats.scim.redact import RedactionRules

log = logging.getLogger(__name__)
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "trailers",
                        "transfer-encoding", "upgrade"})
MAX_REQUEST_BODY = 64 * 1_048_576
CHUNK = 65_536

Submit = Callable[[bytes], None]


class CaptureProxy:
    """Forwards to `upstream` and hands each exchange to `submit` as a v1 line."""

    def __init__(self, listen: tuple[str, int], upstream: str, submit: Submit, rules: RedactionRules, *,
                 job: str | None = None, ca_file: str | None = None, connect_timeout: float = 10.0,
                 read_timeout: float = 120.0, pool_size: int = 32) -> None:
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--upstream must be an http:// or https:// URL, not {upstream!r}")
        self.upstream = f"{parts.scheme}://{parts.netloc}"
        self.upstream_host = parts.netloc
        self.base_path = parts.path.rstrip("/")
        self.submit = submit
        self.rules = rules
        self.job = job
        self.pool = urllib3.PoolManager(
            num_pools=4, maxsize=pool_size, block=False, retries=False,
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            cert_reqs="CERT_REQUIRED", ca_certs=ca_file,
        )
        self.server = _Server(listen, _handler(self))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> CaptureProxy:
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="capture-proxy", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever(poll_interval=0.5)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join()
        self.pool.clear()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def _handler(proxy: CaptureProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "dashboard-capture"
        disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass  # the exchange is the record; the request line would carry the query unredacted

        def do_any(self) -> None:
            _forward(proxy, self)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_any

    return Handler


def _read_body(handler: BaseHTTPRequestHandler) -> bytes | None:
    """The request body (Content-Length or chunked); None when over MAX_REQUEST_BODY."""
    length = handler.headers.get("Content-Length")
    if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
        parts, size = [], 0
        while True:
            head = handler.rfile.readline(1024)
            chunk_size = int(head.split(b";", 1)[0].strip() or b"0", 16)
            if chunk_size == 0:
                while handler.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            size += chunk_size
            if size > MAX_REQUEST_BODY:
                return None
            parts.append(handler.rfile.read(chunk_size))
            handler.rfile.readline(8)
    if length:
        size = int(length)
        if size > MAX_REQUEST_BODY:
            return None
        return handler.rfile.read(size)
    return b""


def _forward(proxy: CaptureProxy, handler: BaseHTTPRequestHandler) -> None:
    at = datetime.now(UTC)
    started = time.perf_counter()
    method = handler.command
    target = handler.path if handler.path.startswith("/") else "/" + handler.path
    request_headers = [(name, value) for name, value in handler.headers.items()]
    try:
        body = _read_body(handler)
    except (ValueError, OSError):
        handler.close_connection = True
        _answer_error(handler, 400, "the request body could not be read")
        return
    if body is None:
        handler.close_connection = True
        _answer_error(handler, 413, f"request body over {MAX_REQUEST_BODY} bytes")
        return
    forward_headers = urllib3.HTTPHeaderDict()
    for name, value in request_headers:
        low = name.lower()
        if low in HOP_BY_HOP or low in ("host", "content-length", "expect"):  # the body is here already
            continue
        forward_headers.add(name, value)
    forward_headers["Host"] = proxy.upstream_host
    if body or method in ("POST", "PUT", "PATCH"):
        forward_headers["Content-Length"] = str(len(body))
    status = 0
    recorded = bytearray()
    response_encoding = None
    try:
        response = proxy.pool.request(method, proxy.upstream + proxy.base_path + target, body=body or None,
                                      headers=forward_headers, preload_content=False, decode_content=False,
                                      redirect=False, assert_same_host=False)
    except urllib3.exceptions.HTTPError as error:
        log.warning("capture: the upstream %s did not answer %s %s: %s", proxy.upstream, method,
                    target.partition("?")[0], type(error).__name__)
        _answer_error(handler, 502, "the upstream did not answer (see the capture's log)")
    else:
        try:
            status = response.status
            response_encoding = response.headers.get("Content-Encoding")
            handler.send_response_only(status, response.reason)
            length = response.headers.get("Content-Length")
            for name, value in response.headers.items():
                if name.lower() in HOP_BY_HOP or name.lower() == "content-length":
                    continue
                handler.send_header(name, value)
            chunked = length is None and method != "HEAD" and status not in (204, 304) and status >= 200
            if length is not None:
                handler.send_header("Content-Length", length)
            elif chunked:
                handler.send_header("Transfer-Encoding", "chunked")
            elif status not in (204, 304):
                handler.send_header("Content-Length", "0")
            handler.end_headers()
            for chunk in response.stream(CHUNK, decode_content=False):
                if not chunk:
                    continue
                if len(recorded) <= MAX_RECORDED_BODY:
                    recorded += chunk
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            if chunked:
                handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except (OSError, urllib3.exceptions.HTTPError) as error:
            handler.close_connection = True
            log.warning("capture: %s %s broke off: %s", method, target.partition("?")[0], type(error).__name__)
        finally:
            response.release_conn()
    duration_ms = (time.perf_counter() - started) * 1000
    request_json = json_body(body if len(body) <= MAX_RECORDED_BODY else None,
                             handler.headers.get("Content-Encoding"))
    response_json = json_body(bytes(recorded) if len(recorded) <= MAX_RECORDED_BODY else None, response_encoding)
    try:
        proxy.submit(exchange_line(
            at=at, method=method, target=target, status=status, duration_ms=duration_ms,
            request_id=f"capture-{uuid.uuid4()}", headers=request_headers, request_body=request_json,
            response_body=response_json, rules=proxy.rules, job=proxy.job,
        ))
    except Exception:  # noqa: BLE001 - recording must never break the traffic
        log.exception("capture: an exchange could not be recorded")


def _answer_error(handler: BaseHTTPRequestHandler, status: int, detail: str) -> None:
    body = orjson.dumps({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": str(status),
                         "detail": f"capture proxy: {detail}"})
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/scim+json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        handler.wfile.flush()
    except OSError:
        handler.close_connection = True


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` (the host defaults to 127.0.0.1)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--listen must be HOST:PORT, e.g. 127.0.0.1:8443, not {value!r}")
    host = host.strip("[]") or "127.0.0.1"
    socket.getaddrinfo(host, int(port))  # a clear error now rather than at bind
    return host, int(port)
