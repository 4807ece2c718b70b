"""The demo data `make run` loads: SCIM traffic for three jobs and Entra's view of the same writes."""
from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from dashboard.db import db
from dashboard.demo.loader import load_demo
from dashboard.ingest.scim import options_from
from dashboard.models import Cycle, EntraEvent, EntraJobStatus, Exchange, Job


def test_the_demo_joins_entra_events_to_the_scim_traffic(app, settings):  # type: ignore[no-untyped-def]
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)

    message = load_demo(db.engine, users=60, cycles=4, options=options_from(settings.ingest, cycles=settings.cycles), now=now)

    assert "Entra events" in message
    assert db.session.scalar(select(func.count()).select_from(Exchange)) > 0
    events = db.session.scalars(select(EntraEvent)).all()
    assert events and all(e.user_id is not None and e.cycle_id is not None for e in events)
    joined = db.session.scalars(select(Cycle).where(Cycle.events > 0)).all()
    assert joined and all(c.requests > 0 and c.key for c in joined)  # one cycle holds both sources
    codes = dict(db.session.execute(select(Job.name, EntraJobStatus.code).join(Job, Job.id == EntraJobStatus.job_id)).all())
    assert codes == {"uniflow-prod": "Active", "uniflow-emea": "Quarantine", "uniflow-lab": "Active"}
    again = load_demo(db.engine, users=60, cycles=4, options=options_from(settings.ingest, cycles=settings.cycles), now=now)
    assert "nothing loaded" in again
