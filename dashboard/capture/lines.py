"""One HTTP exchange as a SCIM request log v1 line, redacted before it leaves this module.

The Authorization header (and every other secret header) is never recorded: it is dropped here,
and the rest of the line goes through the ingest's own redaction (formats.scim.redact), so that
what a spool file or a pushed batch holds is what the database would hold.
"""
from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from dashboard.formats.scim.redact import RedactionRules, redact_document, redact_headers, redact_text

MAX_RECORDED_BODY = 1_048_576  # bytes of a body kept for the record; a longer one is forwarded, not recorded
NEVER_RECORDED = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def json_body(raw: bytes | None, encoding: str | None = None) -> Any:
    """The parsed JSON of a body (decompressed when it came gzip- or deflate-encoded); None when
    empty, not JSON, or cut (longer than MAX_RECORDED_BODY)."""
    if not raw:
        return None
    try:
        if encoding and encoding.lower() in ("gzip", "x-gzip"):
            raw = gzip.decompress(raw)
        elif encoding and encoding.lower() == "deflate":
            raw = zlib.decompress(raw)
        return orjson.loads(raw)
    except (orjson.JSONDecodeError, OSError, EOFError, zlib.error):
        return None


def exchange_line(
    *,
    at: datetime,
    method: str,
    target: str,
    status: int,
    duration_ms: float | None,
    request_id: str,
    headers: Iterable[tuple[str, str]],
    request_body: Any,
    response_body: Any,
    rules: RedactionRules,
    job: str | None = None,
) -> bytes:
    """The v1 line (UTF-8 JSON, no newline) for one exchange; `target` is the path and query as
    received, `headers` the request's."""
    path, _, query = target.partition("?")
    kept: dict[str, str] = {}
    for name, value in headers:
        name = name.lower()
        if name in NEVER_RECORDED:
            continue
        kept[name] = value if name not in kept else f"{kept[name]}, {value}"
    line: dict[str, Any] = {"ts": rfc3339(at), "method": method.upper(), "path": path or "/"}
    if query:
        line["query"] = query
    line["status"] = status
    if duration_ms is not None:
        line["duration_ms"] = round(duration_ms, 3)
    line["request_id"] = request_id
    if kept.get("user-agent"):
        line["client"] = redact_text(kept["user-agent"], rules)
    if job:
        line["job"] = job
    line["request_headers"] = redact_headers(kept, rules) or {}
    line["request_body"] = request_body
    line["response_body"] = response_body
    return orjson.dumps(redact_document(line, rules))
