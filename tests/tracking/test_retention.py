"""Retention: whole cycles older than the cutoff go with their exchanges; the rest stays consistent."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import orjson
import pytest
from sqlalchemy import event, func, select

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


def test_it_keeps_thirty_days_by_default_as_entra_keeps_its_logs():
    assert RetentionSettings().days == 30


def test_it_deletes_in_short_batches_one_transaction_each(app, settings):
    # Four cycles of 10 exchanges; batches of 3 rows: every DELETE removes at most 3 rows and is
    # committed before the next (no long-held lock), and the result is the same as in one go.
    for index in range(4):
        ingest(settings, cycle_lines(index, failing={2: BAD_DEPARTMENT}))
    deletes: list[int] = []
    commits: list[int] = []

    def on_execute(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("DELETE"):
            deletes.append(cursor.rowcount)

    def on_commit(conn):  # type: ignore[no-untyped-def]
        commits.append(len(deletes))

    event.listen(db.engine, "after_cursor_execute", on_execute)
    event.listen(db.engine, "commit", on_commit)
    try:
        result = prune(db.session, cycle_end(1) + timedelta(days=1, minutes=1),
                       replace(settings, retention=RetentionSettings(days=1, batch_rows=3)))
    finally:
        event.remove(db.engine, "after_cursor_execute", on_execute)
        event.remove(db.engine, "commit", on_commit)

    assert (result.cycles, result.exchanges) == (2, 20)
    assert count(Exchange) == 20 and count(Cycle) == 2
    row_deletes = [n for n in deletes if n > 0]
    assert max(row_deletes) == 3 and len(row_deletes) >= 20 // 3
    per_transaction = [sum(1 for n in deletes[a:b] if n > 0) for a, b in zip([0, *commits], commits, strict=False)]
    assert max(per_transaction) == 1  # one batch per transaction
    assert sum(per_transaction) == len(row_deletes)  # every delete was committed
