"""The diagnostics page for support staff: why the job is in this state, the evidence, what Entra
does next (read-only)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from dashboard.analysis.health import next_attempt_us
from dashboard.models import Exchange, Job
from dashboard.queries.entra import event_json, event_of
from dashboard.queries.exchanges import exchange_json
from dashboard.queries.health import health_json
from dashboard.queries.signatures import list_signatures
from dashboard.settings import Settings, timing_for
from dashboard.times import format_ts, from_us, to_us


def diagnostics(session: Session, job: Job, now: datetime, settings: Settings) -> dict[str, Any]:
    health = health_json(session, job, now, settings)
    schedule = []
    if health.get("quarantine_series_began"):
        began = to_us(datetime.fromisoformat(health["quarantine_series_began"].replace("Z", "+00:00")))
        timing = timing_for(job, settings)
        moment = began
        for _ in range(5):
            moment = next_attempt_us(began, moment, timing)
            schedule.append(format_ts(from_us(moment)))
    signatures = list_signatures(session, job, limit=10)
    samples = {}
    event_samples = {}  # a signature seen only in Entra's logs: its sample is an event (negative id)
    for s in signatures:
        ref = s["sample_exchange_id"]
        if ref and ref > 0 and (exchange := session.get(Exchange, ref)) is not None:
            samples[s["id"]] = exchange_json(session, exchange)
        elif ref and ref < 0 and (event := event_of(session, job, -ref)) is not None:
            event_samples[s["id"]] = event_json(event)
    return {"health": health, "schedule": schedule, "signatures": signatures, "samples": samples,
            "event_samples": event_samples}
