"""Retention: whole cycles older than the cutoff go with their exchanges; the rest stays consistent."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import orjson
import pytest
from sqlalchemy import func, select

from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.models import Cycle, Exchange, Notification, Signature, UserCycle
from dashboard.notify.emails import RenderedEmail
from dashboard.notify.outbox import enqueue
from dashboard.queries.replay import report
from dashboard.settings import RetentionSettings, gap_us
from dashboard.tracking.rebuild import rebuild
from dashboard.tracking.retention import prune
from tests.notify.helpers import BAD_DEPARTMENT, cycle_end, cycle_lines, ingest

TIMEOUT = (0, None, "no response")


@pytest.fixture
def settings(settings):  # type: ignore[no-untyped-def]
    return replace(settings, retention=RetentionSettings(days=1))


def count(model) -> int:  # type: ignore[no-untyped-def]
    return db.session.scalar(select(func.count()).select_from(model))


def test_it_prunes_whole_old_cycles_with_their_exchanges_and_keeps_the_rest_true(app, settings):
    ingest(settings, cycle_lines(0, failing={1: TIMEOUT}))  # a signature seen only in a pruned cycle
    ingest(settings, cycle_lines(1, failing={2: BAD_DEPARTMENT}))
    ingest(settings, cycle_lines(2))
    ingest(settings, cycle_lines(3, failing={2: BAD_DEPARTMENT}))
    kept_before = [(c.id, c.requests, c.counts) for c in db.session.scalars(select(Cycle).order_by(Cycle.id))][2:]
    now = cycle_end(1) + timedelta(days=1, minutes=1)  # the cutoff falls between cycles 1 and 2

    result = prune(db.session, now, settings)

    kept = [(c.id, c.requests, c.counts) for c in db.session.scalars(select(Cycle).order_by(Cycle.id))]
    assert (result.cycles, result.exchanges, result.signatures) == (2, 20, 1)
    assert kept == kept_before
    assert count(Exchange) == 20 and count(UserCycle) == 10
    [sig] = db.session.scalars(select(Signature)).all()
    assert (sig.exchanges, sig.users, sig.pattern) == (1, 1, "Attribute '<value>' value '<value>' is not a cost center")
    assert db.session.get(Exchange, sig.sample_exchange_id) is not None


def test_it_leaves_an_analysis_that_a_recompute_reproduces(app, settings):
    for index in range(4):
        ingest(settings, cycle_lines(index, failing={2: BAD_DEPARTMENT} if index % 2 else {}))
    prune(db.session, cycle_end(1) + timedelta(days=1, minutes=1), settings)
    pruned = [(c.requests, orjson.loads(c.counts)) for c in db.session.scalars(select(Cycle).order_by(Cycle.started_us))]

    rebuild(db.engine, get_job("uniflow-prod").id, gap_us=gap_us(settings))

    rebuilt = [(c.requests, orjson.loads(c.counts)) for c in db.session.scalars(select(Cycle).order_by(Cycle.started_us))]
    assert rebuilt == pruned
    assert report(db.session, get_job("uniflow-prod"), cycle_end(3), settings)["cycles"]


def test_it_never_prunes_an_unsent_email(app, settings):
    email = RenderedEmail("s", "t", "h")
    old = cycle_end(0)
    sent = enqueue(db.session, email, to="a@example.com", kind="report", now=old)
    enqueue(db.session, email, to="b@example.com", kind="report", now=old)
    sent.sent_at = old  # type: ignore[union-attr]
    db.session.commit()

    result = prune(db.session, old + timedelta(days=30), settings)

    assert result.notifications == 1
    assert [n.recipient for n in db.session.scalars(select(Notification))] == ["b@example.com"]


def test_it_prunes_old_entra_events_with_their_cycle_and_recounts_their_signatures(app, settings):
    from dashboard.formats.entra.parse import convert_record
    from dashboard.ingest.entra import import_events
    from dashboard.ingest.scim import options_from
    from dashboard.models import EntraEvent
    from tests.notify.helpers import T0

    def record(n: int, cycle: int, failed: bool) -> dict:
        return {
            "id": f"ev-{cycle}-{n}", "activityDateTime": (T0 + timedelta(days=cycle, seconds=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "cycleId": f"c{cycle}", "provisioningAction": "update",
            "provisioningStatusInfo": {"status": "failure" if failed else "success", "errorInformation": {
                "errorCode": "EntryConflict", "reason": "StatusCode: Conflict\r\nMessage: exists"} if failed else None},
            "sourceIdentity": {"id": f"s{n}", "identityType": "User", "details": {"UserPrincipalName": f"u{n}@contoso.com"}},
            "targetIdentity": {"id": f"t{n}", "identityType": "User"},
        }

    records = [record(n, 0, n < 2) for n in range(4)] + [record(n, 3, n < 1) for n in range(4)]
    import_events(db.engine, get_job("uniflow-prod"), (("t", convert_record(r, i)) for i, r in enumerate(records, 1)),
                  source="t", via="cli", options=options_from(settings.ingest, cycles=settings.cycles))

    result = prune(db.session, T0 + timedelta(days=2), settings)

    assert (result.cycles, result.events) == (1, 4)
    assert sorted(e.entra_id for e in db.session.scalars(select(EntraEvent))) == [f"ev-3-{n}" for n in range(4)]
    sig = db.session.scalars(select(Signature)).one()
    assert (sig.exchanges, sig.users) == (1, 1)
    assert sig.sample_exchange_id < 0  # the event left
