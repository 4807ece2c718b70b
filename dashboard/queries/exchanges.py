"""One exchange as the pages and the API show it (redacted at ingest; read-only)."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.analysis.signatures import recommended_action
from dashboard.models import Exchange
from dashboard.times import format_ts


def exchange_brief(exchange: Exchange) -> dict[str, Any]:
    details = exchange.details()
    return {
        "id": exchange.id,
        "ts": format_ts(exchange.ts),
        "method": exchange.method,
        "path": details.get("path"),
        "query": details.get("query"),
        "status": exchange.status,
        "operation": exchange.operation,
    }


def exchange_json(session: Session, exchange: Exchange, *, full: bool = True) -> dict[str, Any]:
    data = exchange_brief(exchange)
    data.update(failed=exchange.failed, duration_ms=exchange.duration_ms, request_id=exchange.request_id,
                scimType=exchange.scim_type, detail=exchange.error_detail, cycle=exchange.cycle_id,
                signature_id=exchange.sig_id)
    if full:
        details = exchange.details()
        data.update(request_headers=details.get("request_headers"), request_body=details.get("request_body"),
                    response_body=details.get("response_body"))
        if exchange.status >= 400 or exchange.status == 0:
            data["recommended_action"] = asdict(recommended_action(exchange.operation, exchange.status, exchange.scim_type))
    return data


def sibling_briefs(session: Session, exchange: Exchange, limit: int = 50) -> list[dict[str, Any]]:
    """The same user's exchanges in the same cycle, in time order (the exchange page's context)."""
    if not (exchange.user_id and exchange.cycle_id):
        return []
    return [exchange_brief(e) for e in session.scalars(
        select(Exchange).where(Exchange.cycle_id == exchange.cycle_id, Exchange.user_id == exchange.user_id)
        .order_by(Exchange.ts_us).limit(limit))]
