"""Who is who, on the database: the analysis per person against the simulator's ground truth.

A person is Entra's source object (externalId); userName is an attribute that changes (renames,
Unicode and case corrections) and that two people may briefly share (a collision); the target's
SCIM id changes when the user is created again. The simulated logs here hold all of that, in the
order a shipper delivers it (creates after the PATCH of their id, lines twice). Rows are matched
to people by externalId (or, for a person never created, whose lines name only a userName, by
that name). Each test states one thing the product must get right; they run on SQLite, and on
PostgreSQL with --database-url.
"""
from __future__ import annotations

import random
from dataclasses import replace

import orjson
import pytest
from sqlalchemy import func, select

from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.demo.entra_pages import simulated_records
from dashboard.demo.simulate import simulate_lines
from dashboard.demo.truth import GroundTruth, SimConfig, SimEvent, name_key
from dashboard.formats.entra.parse import convert_record
from dashboard.ingest.entra import import_events
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.models import Cycle, Reject, ScimUser, UserCycle

JOB = "uniflow-prod"
OUTCOME = {"succeeded": "success", "failed": "failure", "skipped": "skipped"}
REALISTIC = SimConfig.realistic(users=60, cycles=8, seed=21, job=JOB, failure_rate=0.05)


def ingest(settings, config: SimConfig, *, shuffle: int | None = None, batch_size: int = 50):  # type: ignore[no-untyped-def]
    """Ingest the run's lines (numbered as written; shuffled when asked); (truth, result)."""
    lines, truth = simulate_lines(config)
    numbered = list(enumerate(lines, start=1))
    if shuffle is not None:
        random.Random(shuffle).shuffle(numbered)
    options = replace(options_from(settings.ingest, cycles=settings.cycles), batch_size=batch_size)
    result = ingest_lines(db.engine, get_job(JOB), numbered, source="sim", via="cli", options=options)
    db.session.expire_all()
    return truth, result


def person_of(truth: GroundTruth):  # type: ignore[no-untyped-def]
    """row -> the externalId of the person it stands for ("?..." when it stands for nobody)."""
    by_id = {sid: key for key, p in truth.people.items() for sid in p.scim_ids}
    keys: dict[str, set[str]] = {}
    for key, person in truth.people.items():
        for name in person.name_keys():
            keys.setdefault(name, set()).add(key)

    def find(row: ScimUser) -> str:
        if row.external_id in truth.people:
            return row.external_id
        if row.scim_id in by_id:
            return by_id[row.scim_id]
        owners = keys.get(name_key(row.user_name or ""), set())
        if len(owners) == 1:
            return next(iter(owners))
        return f"?{row.user_name or row.scim_id or row.id}"

    return find


def stored_people(truth: GroundTruth) -> dict[str, list[ScimUser]]:
    """The job's user rows, grouped by the person each stands for."""
    find = person_of(truth)
    rows = db.session.scalars(select(ScimUser).where(ScimUser.job_id == get_job(JOB).id)).all()
    grouped: dict[str, list[ScimUser]] = {}
    for row in rows:
        grouped.setdefault(find(row), []).append(row)
    return grouped


def analysed(truth: GroundTruth) -> list[dict]:
    """Per stored cycle: its user count, counts, and (operation, outcome) per person."""
    find = person_of(truth)
    job_id = get_job(JOB).id
    rows = {r.id: find(r) for r in db.session.scalars(select(ScimUser).where(ScimUser.job_id == job_id))}
    out = []
    for cycle in db.session.scalars(select(Cycle).where(Cycle.job_id == job_id).order_by(Cycle.started_us)):
        people: dict[str, tuple[str, str]] = {}
        for uc in db.session.scalars(select(UserCycle).where(UserCycle.cycle_id == cycle.id)):
            key = rows.get(uc.user_id, f"?row {uc.user_id}")
            people[key if key not in people else f"{key} (again: row {uc.user_id})"] = (uc.operation, uc.outcome)
        out.append({"span": (cycle.started_us, cycle.ended_us), "users": cycle.users, "people": people,
                    "counts": orjson.loads(cycle.counts)})
    return out


def expected(truth: GroundTruth) -> list[dict]:
    out = []
    for cycle in truth.cycles:
        if not cycle.requests:
            continue
        people = {key: (str(o.operation), OUTCOME[o.outcome]) for key, o in cycle.people.items()}
        out.append({"users": len(cycle.people), "people": people, "counts": cycle.counts()})
    return out


def states(truth: GroundTruth) -> dict[str, str]:
    return {key: ",".join(sorted(r.state for r in rows)) for key, rows in stored_people(truth).items()}


def failing(truth: GroundTruth) -> set[str]:
    return {key for key, rows in stored_people(truth).items() if any(r.state == "failing" for r in rows)}


def assert_one_user_per_person(truth: GroundTruth) -> None:
    people = stored_people(truth)
    assert sorted(people) == sorted(truth.people), "the people stored are the ground truth's"
    assert {key: len(rows) for key, rows in people.items() if len(rows) > 1} == {}, "a person on several rows"


def assert_per_cycle(truth: GroundTruth) -> None:
    got, want = analysed(truth), expected(truth)
    assert len(got) == len(want), f"{len(got)} cycles stored, {len(want)} in the ground truth"
    for index, (mine, theirs) in enumerate(zip(got, want, strict=True)):
        assert mine["people"] == theirs["people"], f"cycle {index}: outcomes per person"
        assert mine["users"] == theirs["users"], f"cycle {index}: user count"
        assert mine["counts"] == theirs["counts"], f"cycle {index}: counts"


# -- the realistic run -------------------------------------------------------------------------


def test_a_realistic_log_goes_in_whole_without_a_reject(app, settings):
    truth, result = ingest(settings, REALISTIC)

    assert (result.rejected, [p.reason for p in result.problems]) == (0, [])
    assert db.session.scalar(select(func.count()).select_from(Reject)) == 0
    assert result.accepted == sum(c.requests for c in truth.cycles)


def test_each_person_is_one_user(app, settings):
    truth, _ = ingest(settings, REALISTIC)

    assert_one_user_per_person(truth)


def test_each_person_has_the_outcome_of_the_ground_truth_in_each_cycle(app, settings):
    truth, _ = ingest(settings, REALISTIC)

    assert_per_cycle(truth)


def test_the_failing_users_and_each_person_s_state_are_the_ground_truth_s(app, settings):
    truth, _ = ingest(settings, REALISTIC)

    assert failing(truth) == truth.failing()
    assert states(truth) == truth.states()


def test_each_person_keeps_their_latest_name_and_scim_id(app, settings):
    truth, _ = ingest(settings, REALISTIC)

    stored = {key: rows[0] for key, rows in stored_people(truth).items() if len(rows) == 1}
    assert {key: name_key(row.user_name or "") for key, row in stored.items()} == {
        key: name_key(p.user_name) for key, p in truth.people.items()}
    assert {key: row.scim_id for key, row in stored.items()} == {key: p.scim_id for key, p in truth.people.items()}


def test_each_person_keeps_the_names_and_scim_ids_they_had(app, settings):
    from dashboard.models import ScimUserAlias

    truth, _ = ingest(settings, REALISTIC)
    rows = {key: found[0].id for key, found in stored_people(truth).items() if len(found) == 1}
    history: dict[int, dict[str, set[str]]] = {}
    for alias in db.session.scalars(select(ScimUserAlias)):
        history.setdefault(alias.user_id, {}).setdefault(alias.kind, set()).add(alias.value)

    renamed = {key: p.name_keys() for key, p in truth.people.items() if len(p.name_keys()) > 1}
    recreated = {key: set(p.scim_ids) for key, p in truth.people.items() if len(p.scim_ids) > 1}
    assert renamed and recreated
    assert {key: {name_key(v) for v in history.get(rows.get(key), {}).get("n", ())} for key in renamed} == renamed
    assert {key: history.get(rows.get(key), {}).get("s", set()) for key in recreated} == recreated


def recompute(app) -> None:  # type: ignore[no-untyped-def]
    """`flask recompute --job ...`: the job's analysis rebuilt from what is stored."""
    result = app.test_cli_runner().invoke(args=["recompute", "--job", JOB])
    assert result.exit_code == 0, result.output
    db.session.expire_all()


def test_recompute_gives_the_same_people_outcomes_and_states(app, settings):
    truth, _ = ingest(settings, REALISTIC)
    before = (analysed(truth), states(truth))

    recompute(app)

    assert (analysed(truth), states(truth)) == before
    assert_per_cycle(truth)
    assert states(truth) == truth.states()


@pytest.mark.parametrize(("shuffle", "batch_size"), [(1, 7), (2, 500)])
def test_any_order_of_arrival_and_batch_size_gives_the_ground_truth(app, settings, shuffle, batch_size):
    truth, result = ingest(settings, REALISTIC, shuffle=shuffle, batch_size=batch_size)

    assert result.rejected == 0
    assert_one_user_per_person(truth)
    assert_per_cycle(truth)
    assert states(truth) == truth.states()


def test_entra_s_logs_of_the_same_run_count_each_person_once(app, settings):
    lines, truth = simulate_lines(REALISTIC)
    for _ in lines:
        pass
    options = options_from(settings.ingest, cycles=settings.cycles)
    items = ((f"sim:{n}", convert_record(record, n, rules=options.rules))
             for n, record in enumerate(simulated_records(truth), 1))

    result = import_events(db.engine, get_job(JOB), items, source="sim (Entra)", via="cli", options=options)
    db.session.expire_all()

    assert (result.rejected, result.accepted) == (0, len(truth.events))
    assert_one_user_per_person(truth)
    assert failing(truth) == truth.failing()


# -- one reality at a time (small scripted runs) ------------------------------------------------


def scripted(*events: SimEvent, users: int = 4, cycles: int = 4, **config) -> SimConfig:  # type: ignore[no-untyped-def]
    values = dict(users=users, cycles=cycles, seed=3, job=JOB, failure_rate=0.0, change_rate=0.0, leave_rate=0.0,
                  join_rate=0.0, delete_rate=0.0, events=events)
    values.update(config)
    return SimConfig(**values)


CASES = {
    # the item 1: a corrected UPN (a no-break space); the create answers 409 on the externalId
    "a no-break space corrected, 409": scripted(SimEvent(1, "unicode", 1, variant="409")),
    "a no-break space corrected, matched by id": scripted(SimEvent(1, "unicode", 1, variant="patch")),
    "a rename answered 409 on the externalId": scripted(SimEvent(1, "rename", 0, variant="409")),
    "a rename matched by id": scripted(SimEvent(2, "rename", 2, variant="patch")),
    "a case-only change": scripted(SimEvent(1, "case", 3)),
    # the item 2: two people, one userName, one cycle; the second stays failing, then is fixed
    "a collision": scripted(SimEvent(1, "collide", 3, other=2), cycles=4),
    "a collision fixed by a rename": scripted(SimEvent(0, "collide", 1, other=0), SimEvent(2, "rename", 1)),
    # the holder of a shared name corrects it to a variant of it (one name key): the lookup of the
    # new name is the holder's (their PATCH follows), not the waiting person's
    "a collision, then the holder's full-width @ corrected": scripted(
        SimEvent(0, "collide", 1, other=0), SimEvent(2, "unicode", 0, variant="patch")),
    "deleted in the target and created again": scripted(SimEvent(1, "recreate", 0)),
    "out of scope by DELETE and back": scripted(SimEvent(1, "delete", 1), SimEvent(2, "enable", 1)),
    "disabled and enabled": scripted(SimEvent(1, "disable", 2), SimEvent(2, "enable", 2)),
    # the item 3: a lookup that found nothing does not make the user provisioned
    "looked up, not found, nothing written": scripted(SimEvent(9, "incomplete", 1), SimEvent(2, "incomplete", 2)),
    "a PATCH by id before the create": scripted(SimEvent(1, "update", 0), SimEvent(1, "update", 1),
                                                realities=("disorder",), duplicate_rate=0.2),
}


@pytest.mark.parametrize("case", list(CASES))
def test_one_reality_gives_the_ground_truth(app, settings, case):
    truth, result = ingest(settings, CASES[case], batch_size=4)

    assert result.rejected == 0
    assert_one_user_per_person(truth)
    assert_per_cycle(truth)
    assert states(truth) == truth.states()
