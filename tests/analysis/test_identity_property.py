"""Who is who, for any story: generated sequences of identity events, any arrival order, any batch.

Hypothesis writes a small story (2-6 people, 2-5 cycles) of renames, Unicode and case
corrections, collisions, re-creations, people going out of scope and back, lookups that find
nothing, with or without failures and a shipper's disorder; the simulator tells it as a SCIM log
with its ground truth per person. The log is ingested in a shuffled order and random batches on
the fixture's database (SQLite; PostgreSQL with --database-url), and:
the ingest never raises and rejects no line; each person is one user; every cycle's outcome per
person, user count and counts, the failing users and each person's state are the ground truth's;
`recompute` gives the same.
"""
from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import text

from dashboard.admin.jobs import get_job, sync_jobs
from dashboard.db import db
from dashboard.demo.simulate import simulate_lines
from dashboard.demo.truth import EVENT_KINDS, SimConfig, SimEvent, name_key
from dashboard.ingest.scim import ingest_lines, options_from
from tests.analysis.test_identity_truth import (
    JOB,
    analysed,
    assert_one_user_per_person,
    assert_per_cycle,
    failing,
    recompute,
    states,
    stored_people,
)


@st.composite
def stories(draw: st.DrawFn) -> SimConfig:
    users = draw(st.integers(2, 6), label="people")
    cycles = draw(st.integers(2, 5), label="cycles")
    event = st.builds(SimEvent, cycle=st.integers(0, cycles - 1), kind=st.sampled_from(EVENT_KINDS),
                      person=st.integers(0, users - 1), other=st.integers(0, users - 1),
                      variant=st.sampled_from(["409", "patch"]))
    return SimConfig(
        users=users, cycles=cycles, job=JOB, seed=draw(st.integers(0, 2**16), label="seed"),
        events=tuple(draw(st.lists(event, max_size=12), label="events")),
        failure_rate=draw(st.sampled_from([0.0, 0.0, 0.1]), label="failure_rate"),
        change_rate=0.0, leave_rate=0.0, join_rate=0.0, delete_rate=0.0,
        realities=draw(st.sampled_from([(), ("disorder",)]), label="realities"), duplicate_rate=0.1,
        flag_scim062020=draw(st.booleans(), label="flag_scim062020"),
        with_cycle_ids=draw(st.booleans(), label="with_cycle_ids"),
    )


def fresh_database(settings) -> None:  # type: ignore[no-untyped-def]
    """Each example on empty tables (the fixture empties them once per test, not per example)."""
    db.session.remove()
    tables = list(reversed(db.metadata.sorted_tables))
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(t.name for t in tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(table.delete())
    sync_jobs(settings.jobs)


def ingest_story(app, config: SimConfig, arrival: random.Random | None, batch_size: int):  # type: ignore[no-untyped-def]
    """The story's log, shuffled by `arrival` (None: as told), ingested in batches on empty tables."""
    settings = app.extensions["dashboard"]  # (not the fixture: a failing example would print it whole)
    fresh_database(settings)
    lines, truth = simulate_lines(config)
    numbered = list(enumerate(lines, start=1))
    if arrival is not None:
        arrival.shuffle(numbered)
    note(f"{len(numbered)} lines, batches of {batch_size}")
    options = replace(options_from(settings.ingest, cycles=settings.cycles), batch_size=batch_size)
    return ingest_lines(db.engine, get_job(JOB), numbered, source="sim", via="cli", options=options), truth


QUIET = dict(job=JOB, change_rate=0.0, leave_rate=0.0, join_rate=0.0, delete_rate=0.0, duplicate_rate=0.1)
INCOMPLETE_THEN_RENAMED = SimConfig(users=3, cycles=4, seed=0, failure_rate=0.0, **QUIET, events=(
    SimEvent(0, "rename", 0), SimEvent(0, "rename", 0), SimEvent(0, "rename", 0), SimEvent(2, "incomplete", 0),
    SimEvent(3, "rename", 0), SimEvent(3, "incomplete", 1)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=stories(), arrival=st.randoms(use_true_random=False), batch_size=st.integers(1, 60))
# Stories found by this test, kept: a collision, then the holder's name corrected to a variant of it
# (one name key; the 409 variant): the new name's lookup is the holder's, whatever the order
@example(config=SimConfig(users=2, cycles=3, seed=0, failure_rate=0.0, **QUIET,
                          events=(SimEvent(1, "collide", 0, other=1), SimEvent(2, "unicode", 1))),
         arrival=random.Random(0), batch_size=1)
# a create refused (409), the account found by its userName (no externalId) and the PATCH that
# links it refused too (400): one person, in any order (in time order it is)
@example(config=SimConfig(users=6, cycles=4, seed=1072, failure_rate=0.1, **QUIET,
                          events=(SimEvent(1, "delete", 1), SimEvent(2, "case", 0))),
         arrival=random.Random(0), batch_size=1)
# a person looked up for cycles before being created (incomplete), then renamed (409), their lines
# arriving one by one: the 409 under the new name first, then the create; the earlier lookups of the
# first name are theirs, however long before the create (in time order, the create adopts them).
# Random(10): the lookups' provisional row is there before the create; Random(0): lookups after it
@example(config=INCOMPLETE_THEN_RENAMED, arrival=random.Random(10), batch_size=1)
@example(config=INCOMPLETE_THEN_RENAMED, arrival=random.Random(0), batch_size=1)
# a person's last line, a lookup (failed) two cycles after their create, arrives first: no one holds
# the name yet, it starts a provisional row; the person's lines (all before it) arrive later and
# are the only holder of the name: the row is theirs (in time order, the lookup finds them)
@example(config=SimConfig(users=4, cycles=3, seed=41800, failure_rate=0.1, **QUIET,
                          events=(*[SimEvent(0, "rename", 0)] * 7, SimEvent(1, "update", 0),
                                  SimEvent(2, "incomplete", 3))),
         arrival=random.Random(1), batch_size=1)
def test_any_story_in_any_order_gives_the_ground_truth(app, config, arrival, batch_size):  # type: ignore[no-untyped-def]
    result, truth = ingest_story(app, config, arrival, batch_size)
    db.session.expire_all()

    assert (result.rejected, [p.reason for p in result.problems]) == (0, [])
    assert_one_user_per_person(truth)
    assert_per_cycle(truth)
    assert failing(truth) == truth.failing()
    assert states(truth) == truth.states()

    before = (analysed(truth), states(truth))
    recompute(app)
    assert (analysed(truth), states(truth)) == before



@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=stories(), arrival=st.randoms(use_true_random=False), batch_size=st.integers(1, 30),
       share=st.floats(0.1, 0.9))
def test_a_story_delivered_twice_gives_the_ground_truth_and_each_person_s_latest_name(app, config, arrival, batch_size,  # type: ignore[no-untyped-def]
                                                                                   share):
    """Part of the log (shuffled) in one `ingest` run, then all of it in another (a shipper's
    retry, a re-run after a crash): the second run's resolver starts from the database, not from
    the first run's memory. The people, cycles, states are the ground truth's, and each person's
    shown userName is their latest one (compared as the product compares names: the spelling of a
    name two people share is the limit docs/analysis.md describes)."""
    settings = app.extensions["dashboard"]
    fresh_database(settings)
    lines, truth = simulate_lines(config)
    numbered = list(enumerate(lines, start=1))
    arrival.shuffle(numbered)
    cut = int(len(numbered) * share)
    note(f"{cut} lines, then all {len(numbered)}, batches of {batch_size}")
    options = replace(options_from(settings.ingest, cycles=settings.cycles), batch_size=batch_size)
    ingest_lines(db.engine, get_job(JOB), numbered[:cut], source="first", via="cli", options=options)
    result = ingest_lines(db.engine, get_job(JOB), numbered, source="again", via="cli", options=options)
    db.session.expire_all()

    assert (result.rejected, result.accepted + result.duplicates) == (0, len(numbered))
    assert_one_user_per_person(truth)
    assert_per_cycle(truth)
    assert states(truth) == truth.states()
    shown = {key: sorted({name_key(row.user_name) for row in rows}) for key, rows in stored_people(truth).items()}
    assert shown == {key: [name_key(person.user_name)] for key, person in truth.people.items()}
