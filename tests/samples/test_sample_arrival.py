"""Traffic we did not write, in any arrival order and any batch: the same analysis.

The two request logs kept as samples (scim2-server's recorded traffic, and the exchanges of
Microsoft's SCIM tutorial) are ingested as told in one batch, then on empty tables shuffled and in
small batches (a log shipper's disorder, a push endpoint's small requests), then rebuilt with
`recompute`. Each time the people (by externalId, else SCIM id), their states, and every cycle's
user count, counts and per-person outcome are the same: the incremental fold over batches is the
fold of the whole history, on traffic whose shape the simulator did not choose.
"""
from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.models import Cycle, ScimUser, UserCycle
from tests.analysis.test_identity_property import fresh_database
from tests.samples.helpers import JOB, SAMPLES

LOGS = {
    "scim2-server": SAMPLES / "scim2-server" / "recorded.jsonl",
    "entra-scim-tutorial": SAMPLES / "entra-scim-tutorial" / "scim-tutorial.jsonl",
}


def _ingest(settings, path: Path, *, seed: int | None, batch_size: int) -> None:  # type: ignore[no-untyped-def]
    fresh_database(settings)
    numbered = list(enumerate(path.read_text(encoding="utf-8").splitlines(), start=1))
    if seed is not None:
        random.Random(seed).shuffle(numbered)
    options = replace(options_from(settings.ingest, cycles=settings.cycles), batch_size=batch_size)
    result = ingest_lines(db.engine, get_job(JOB), numbered, source=path.name, via="cli", options=options)
    assert (result.accepted, result.rejected, [p.reason for p in result.problems]) == (len(numbered), 0, [])


def _person(user: ScimUser) -> str:
    return user.external_id or f"id:{user.scim_id}"


def _view() -> dict:
    """What the pages show, keyed by person rather than by row number (rows differ by arrival)."""
    db.session.expire_all()
    job_id = get_job(JOB).id
    rows = {u.id: u for u in db.session.scalars(select(ScimUser).where(ScimUser.job_id == job_id))}
    people = {_person(u): (u.state, u.scim_id, u.user_name.casefold() if u.user_name else None) for u in rows.values()}
    cycles = []
    for cycle in db.session.scalars(select(Cycle).where(Cycle.job_id == job_id).order_by(Cycle.started_us)):
        outcomes = {_person(rows[uc.user_id]): (uc.operation, uc.outcome)
                    for uc in db.session.scalars(select(UserCycle).where(UserCycle.cycle_id == cycle.id))}
        cycles.append({"span": (cycle.started_us, cycle.ended_us), "requests": cycle.requests,
                       "failed": cycle.failed_requests, "users": cycle.users,
                       "counts": orjson.loads(cycle.counts), "outcomes": outcomes})
    return {"people": people, "cycles": cycles}


# (seed, batch size): a spread, and the arrivals that showed lookups moved to another holder's write
ARRIVALS = [(1, 1), (2, 2), (3, 3), (4, 5), (5, 7), (6, 1), (101, 2), (106, 13), (107, 1), (110, 4), (147, 9),
            (157, 2)]


@pytest.mark.parametrize("name", sorted(LOGS))
def test_a_sample_log_in_any_order_and_batch_gives_the_same_analysis(app, settings, name):  # type: ignore[no-untyped-def]
    path = LOGS[name]
    lines = len(path.read_text(encoding="utf-8").splitlines())
    _ingest(settings, path, seed=None, batch_size=lines)
    as_told = _view()
    assert len(as_told["people"]) >= 2 and as_told["cycles"], "the sample is about several people"
    assert len({json.dumps(c["span"]) for c in as_told["cycles"]}) == len(as_told["cycles"])

    for seed, batch_size in ARRIVALS:
        _ingest(settings, path, seed=seed, batch_size=batch_size)
        assert _view() == as_told, f"shuffled with seed {seed}, batches of {batch_size}"

    result = app.test_cli_runner().invoke(args=["recompute", "--job", JOB])
    assert result.exit_code == 0, result.output
    assert _view() == as_told, "recompute after the last shuffled ingest"


# seeds whose split showed a renamed person's old name made current again by the second delivery
REDELIVERIES = [1, 2, 3, 15, 22, 24, 40, 56]


@pytest.mark.parametrize("name", sorted(LOGS))
def test_a_sample_log_delivered_twice_with_duplicates_gives_the_same_analysis(app, settings, name):  # type: ignore[no-untyped-def]
    """A shipper's retry, or a re-run after a crash: part of the log arrives (shuffled, with some
    lines twice), then the whole of it again in another `ingest` run. The second run's resolver
    starts from what the database holds, not from the first run's memory."""
    path = LOGS[name]
    lines = path.read_text(encoding="utf-8").splitlines()
    _ingest(settings, path, seed=None, batch_size=len(lines))
    as_told = _view()
    for seed in REDELIVERIES:
        arrival = random.Random(seed)
        numbered = list(enumerate(lines, start=1))
        numbered += arrival.sample(numbered, k=len(numbered) // 4)
        arrival.shuffle(numbered)
        cut, batch_size = arrival.randrange(len(numbered)), arrival.choice([1, 2, 3, 5])
        fresh_database(settings)
        options = replace(options_from(settings.ingest, cycles=settings.cycles), batch_size=batch_size)
        ingest_lines(db.engine, get_job(JOB), numbered[:cut], source="first", via="cli", options=options)
        again = ingest_lines(db.engine, get_job(JOB), numbered, source="again", via="cli", options=options)
        assert again.rejected == 0
        assert _view() == as_told, f"seed {seed}: {cut} lines, then all {len(numbered)}, batches of {batch_size}"


def test_a_lookup_that_found_one_holder_stays_theirs_when_another_holder_writes(app, settings):  # type: ignore[no-untyped-def]
    """The tutorial's "Get User by query" (line 4: userName Test_User_..., found id 2441309d...,
    externalId 7fce0092...) and, two seconds later, "Update User" of another account under the
    same userName (line 6: id 6764549b...), one line per batch. The lookup named the account it
    found: it is 7fce0092's, not moved to the writer as a lookup naming only the userName would be."""
    fresh_database(settings)
    lines = LOGS["entra-scim-tutorial"].read_text(encoding="utf-8").splitlines()
    options = replace(options_from(settings.ingest, cycles=settings.cycles), batch_size=1)
    ingest_lines(db.engine, get_job(JOB), [(4, lines[3]), (6, lines[5])], source="tutorial", via="cli", options=options)

    view = _view()
    assert view["cycles"][0]["outcomes"] == {
        "7fce0092-d52e-4f76-b727-3955bd72c939": ("none", "skipped"),
        "6c75de36-30fa-4d2d-a196-6bdcdb6b6539": ("update", "success"),
    }
    assert view["people"]["7fce0092-d52e-4f76-b727-3955bd72c939"][0] == "in_sync"
