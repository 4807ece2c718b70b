"""The endpoint check as the job page shows it (admins): whether a credential is stored (never
the token), its expiry warning, and the history of checks, newest first."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.analysis.probe import token_warning
from dashboard.models import EndpointCheck, EndpointCredential, Job
from dashboard.times import aware, format_ts


def endpoint_view(session: Session, job: Job, now: datetime, *, limit: int = 10) -> dict[str, Any]:
    row = session.get(EndpointCredential, job.id)
    history = session.scalars(select(EndpointCheck).where(EndpointCheck.job_id == job.id)
                              .order_by(EndpointCheck.id.desc()).limit(limit))
    expires = aware(row.token_expires_at) if row is not None and row.token_expires_at is not None else None
    return {
        "configured": row is not None,
        "tenant_url": row.tenant_url if row is not None else "",
        "token_set_at": format_ts(aware(row.set_at)) if row is not None else None,
        "token_set_by": row.set_by if row is not None else None,
        "token_expires_at": format_ts(expires) if expires else None,
        "token_warning": token_warning(expires, now),
        "history": [{"id": c.id, "at": format_ts(aware(c.at)), "outcome": c.outcome, "tenant_url": c.tenant_url,
                     "by": c.by, "checks": json.loads(c.checks or "[]")} for c in history],
    }
