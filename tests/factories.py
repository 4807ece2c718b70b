"""Test data: a fixed clock, Exchange records and v1 log lines (STYLE.md section 9)."""
from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import orjson

from dashboard.formats.scim.records import Exchange

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)

_ids = itertools.count(1)


def make_exchange(**overrides: Any) -> Exchange:
    """A successful `GET /scim/v2/Users?filter=...` at NOW, with a fresh request_id."""
    fields: dict[str, Any] = {
        "ts": NOW,
        "method": "GET",
        "path": "/scim/v2/Users",
        "status": 200,
        "query": 'filter=userName eq "ryan@contoso.com"',
        "request_id": f"req-{next(_ids):06d}",
        "job": "uniflow-prod",
        "client": "Microsoft Entra SCIM Client",
        "response_body": {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": 0,
            "Resources": [],
        },
    }
    fields.update(overrides)
    return Exchange(**fields)


MISSING: Any = object()  # jsonl_line(ts=MISSING) leaves the field out of the line


def jsonl_line(**fields: Any) -> bytes:
    """One v1 log line, newline included: a valid GET /scim/v2/Users with `fields` merged in."""
    record: dict[str, Any] = {
        "ts": "2026-11-28T09:00:00Z",  # NOW
        "method": "GET",
        "path": "/scim/v2/Users",
        "status": 200,
    }
    record.update(fields)
    record = {k: v for k, v in record.items() if v is not MISSING}
    return orjson.dumps(record) + b"\n"
