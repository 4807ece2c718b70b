"""A user's stored state is folded batch by batch (tracking/fold.py advance_user_states): only the
cycles a batch touches are folded onto the user's stored fold. Whatever the story, the arrival
order and the batch size, every stored column of every user equals the fold of their whole
history (`refresh_user_states`, which reloads it), on SQLite and PostgreSQL."""
from __future__ import annotations

import random
from dataclasses import replace

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.demo.simulate import simulate_lines
from dashboard.demo.truth import SimConfig, SimEvent
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.models import ScimUser
from dashboard.tracking.fold import refresh_user_states
from tests.analysis.test_identity_property import fresh_database, ingest_story, stories
from tests.analysis.test_identity_truth import JOB

COLUMNS = ("state", "provisioned", "last_cycle_id", "last_seen_us", "failing_since_us", "failing_since_cycle_id",
           "streak", "last_failure_exchange_id", "fold")
_users = ScimUser.__table__
DAMAGED = '[[1,2,3],["not", "a fold"]]'


def _stored() -> dict[int, tuple]:
    with db.engine.connect() as conn:
        return {row[0]: tuple(row[1:]) for row in conn.execute(
            select(_users.c.id, *(_users.c[name] for name in COLUMNS)).order_by(_users.c.id))}


def _refolded(user_ids: list[int]) -> dict[int, tuple]:
    """The same columns, folded again from each user's whole history (rolled back after)."""
    with db.engine.connect() as conn:
        trans = conn.begin()
        try:
            refresh_user_states(conn, set(user_ids))
            return {row[0]: tuple(row[1:]) for row in conn.execute(
                select(_users.c.id, *(_users.c[name] for name in COLUMNS)).order_by(_users.c.id))}
        finally:
            trans.rollback()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=stories(), arrival=st.randoms(use_true_random=False), batch_size=st.integers(1, 80),
       in_time_order=st.booleans())
@example(config=SimConfig(users=3, cycles=5, seed=3, failure_rate=0.1, job=JOB, change_rate=0.0, leave_rate=0.0,
                          join_rate=0.0, delete_rate=0.0, duplicate_rate=0.1,
                          events=(SimEvent(1, "delete", 1), SimEvent(3, "rename", 0))),
         arrival=random.Random(0), batch_size=7, in_time_order=True)
def test_the_fold_kept_per_batch_is_the_fold_of_the_whole_history(app, config, arrival, batch_size, in_time_order):  # type: ignore[no-untyped-def]
    if in_time_order:  # in time order (what logs mostly are, no shipper's disorder), in small batches: the fast path
        result, _truth = ingest_story(app, replace(config, realities=()), None, batch_size)
    else:
        result, _truth = ingest_story(app, config, arrival, batch_size)
    assert result.rejected == 0
    stored = _stored()
    assert stored, "the story has users"
    if in_time_order:  # (out of order, a cycle whose start moves back forgets its users' folds)
        assert all(row[-1] is not None for row in stored.values() if row[0] != "unknown"), "every user keeps a fold"
    refolded = _refolded(list(stored))
    kept = {user_id: row for user_id, row in stored.items() if row[-1] is not None}
    assert kept == {user_id: refolded[user_id] for user_id in kept}
    assert {user_id: row[:-1] for user_id, row in stored.items()} == {
        user_id: row[:-1] for user_id, row in refolded.items()}


def test_a_batch_folds_only_its_cycles_onto_the_stored_fold(app):  # type: ignore[no-untyped-def]
    """In time order, a batch's users keep their fold (no history reload): the fold after the last
    batch names the last cycle, and the prefix covers the cycles before it."""
    config = SimConfig(users=4, cycles=6, seed=5, failure_rate=0.2, job=JOB, change_rate=0.0, leave_rate=0.0,
                       join_rate=0.0, delete_rate=0.0, duplicate_rate=0.0)
    settings_ = app.extensions["dashboard"]
    fresh_database(settings_)
    lines, _truth = simulate_lines(config)
    options = replace(options_from(settings_.ingest, cycles=settings_.cycles), batch_size=3)
    ingest_lines(db.engine, get_job(JOB), list(enumerate(lines, start=1)), source="sim", via="cli", options=options)
    stored = _stored()
    for user_id, row in stored.items():
        state, last_cycle_id, fold = row[0], row[2], row[-1]
        if state == "unknown":
            continue
        _prefix, last = orjson.loads(fold)
        assert last[0] == last_cycle_id, f"user {user_id}: the fold's last cycle is the user's last cycle"
    assert stored == _refolded(list(stored))


def test_a_fold_this_version_cannot_read_is_folded_whole(app):  # type: ignore[no-untyped-def]
    """A fold written by another version (or damaged) never fails a batch: the user is folded
    from their whole history, and their fold is written anew."""
    config = SimConfig(users=3, cycles=4, seed=9, failure_rate=0.1, job=JOB, change_rate=0.0, leave_rate=0.0,
                       join_rate=0.0, delete_rate=0.0, duplicate_rate=0.0)
    settings_ = app.extensions["dashboard"]
    fresh_database(settings_)
    lines = list(simulate_lines(config)[0])
    half = len(lines) // 2
    options = replace(options_from(settings_.ingest, cycles=settings_.cycles), batch_size=5)
    ingest_lines(db.engine, get_job(JOB), list(enumerate(lines[:half], start=1)), source="sim", via="cli", options=options)
    with db.engine.begin() as conn:
        conn.execute(_users.update().values(fold=DAMAGED))

    result = ingest_lines(db.engine, get_job(JOB), list(enumerate(lines[half:], start=half + 1)), source="sim",
                          via="cli", options=options)

    assert (result.rejected, result.accepted) == (0, len(lines) - half)
    stored = _stored()
    refolded = _refolded(list(stored))
    assert {u: row[:-1] for u, row in stored.items()} == {u: row[:-1] for u, row in refolded.items()}
    rewritten = {u for u, row in stored.items() if row[-1] != DAMAGED}
    assert rewritten, "the users of the second half have their fold written anew"
    assert {u: stored[u] for u in rewritten} == {u: refolded[u] for u in rewritten}
