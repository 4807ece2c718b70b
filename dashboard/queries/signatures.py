"""Error signatures with their recommended actions (read-only)."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.analysis.signatures import recommended_action
from dashboard.models import Job, Signature
from dashboard.times import format_ts, from_us


def signature_json(sig: Signature) -> dict[str, Any]:
    action = recommended_action(sig.operation, sig.status, sig.scim_type)
    return {
        "id": sig.id,
        "operation": sig.operation,
        "status": sig.status,
        "scimType": sig.scim_type,
        "detail": sig.pattern,
        "users": sig.users,
        "exchanges": sig.exchanges,
        "first_seen": format_ts(from_us(sig.first_us)),
        "last_seen": format_ts(from_us(sig.last_us)),
        "sample_exchange_id": sig.sample_exchange_id,  # negative: an Entra event (entra_load.evidence_ref)
        "sample_path": _sample_path(sig.sample_exchange_id),
        "action": asdict(action),
    }


def _sample_path(ref: int | None) -> str | None:
    """The page of a signature's sample under /jobs/<job>/: an exchange, or an Entra event."""
    if ref is None:
        return None
    return f"entra-events/{-ref}" if ref < 0 else f"exchanges/{ref}"


def list_signatures(session: Session, job: Job, *, limit: int = 50) -> list[dict[str, Any]]:
    rows = session.scalars(select(Signature).where(Signature.job_id == job.id)
                           .order_by(Signature.users.desc(), Signature.last_us.desc()).limit(limit)).all()
    return [signature_json(s) for s in rows]
