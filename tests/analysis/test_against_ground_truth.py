"""The analysis on the database, checked against the simulator's ground truth."""
from __future__ import annotations

import json
import random
from datetime import timedelta

import orjson
import pytest
from sqlalchemy import func, select

from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.demo.simulate import simulate_lines
from dashboard.demo.truth import SimConfig
from dashboard.formats.scim.parse import parse_ts
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.models import Cycle, HealthTransition, ScimUser, UserCycle
from dashboard.queries.cycles import current_cycle
from dashboard.queries.health import health_json
from dashboard.times import from_us
from dashboard.tracking.health import evaluate
from dashboard.tracking.rebuild import rebuild

OUTCOME = {"succeeded": "success", "failed": "failure", "skipped": "skipped"}


def load(settings, config: SimConfig, *, order: list[int] | None = None, batch_size: int = 50):  # type: ignore[no-untyped-def]
    lines, truth = simulate_lines(config)
    numbered = list(enumerate(lines, start=1))
    if order is not None:
        numbered = [numbered[i] for i in order[: len(numbered)]]
    options = options_from(settings.ingest, cycles=settings.cycles)
    options = type(options)(**{**options.__dict__, "batch_size": batch_size})
    ingest_lines(db.engine, get_job("uniflow-prod"), numbered, source="sim", via="cli", options=options)
    return truth.to_dict()


def analysed(job_id: int) -> list[dict]:
    names = dict(db.session.execute(select(ScimUser.id, ScimUser.user_name).where(ScimUser.job_id == job_id)).all())
    cycles = db.session.scalars(select(Cycle).where(Cycle.job_id == job_id).order_by(Cycle.started_us)).all()
    result = []
    for c in cycles:
        users = {names[u.user_id]: u.outcome for u in db.session.scalars(select(UserCycle).where(UserCycle.cycle_id == c.id))}
        result.append({"span": (c.started_us, c.ended_us), "requests": c.requests, "users": users, "counts": orjson.loads(c.counts)})
    return result


def assert_matches(truth: dict, got: list[dict]) -> None:
    cycles = [c for c in truth["cycles"] if c["requests"]]
    assert len(got) == len(cycles)
    for mine, want in zip(got, cycles, strict=True):
        assert mine["requests"] == want["requests"]
        assert mine["users"] == {name: OUTCOME[u["outcome"]] for name, u in want["users"].items()}
        assert mine["counts"] == want["counts"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_it_matches_the_ground_truth_per_cycle_and_user(app, settings, seed):
    truth = load(settings, SimConfig(users=120, cycles=6, seed=seed, job="uniflow-prod", failure_rate=0.08))

    assert_matches(truth, analysed(get_job("uniflow-prod").id))


def test_it_uses_explicit_cycle_ids_when_the_log_has_them(app, settings):
    truth = load(settings, SimConfig(users=60, cycles=4, seed=5, job="uniflow-prod", with_cycle_ids=True))

    keys = db.session.scalars(select(Cycle.key).order_by(Cycle.started_us)).all()
    assert keys == [c["cycle_id"] for c in truth["cycles"]]
    assert_matches(truth, analysed(get_job("uniflow-prod").id))


def test_it_gives_the_same_analysis_in_any_order_of_arrival(app, settings):
    config = SimConfig(users=80, cycles=5, seed=11, job="uniflow-prod", failure_rate=0.1, auth_outage_cycles=(2,))
    count = sum(1 for _ in simulate_lines(config)[0])
    order = list(range(count))
    random.Random(4).shuffle(order)

    truth = load(settings, config, order=order, batch_size=37)

    assert_matches(truth, analysed(get_job("uniflow-prod").id))


def test_it_recomputes_the_same_analysis_from_stored_exchanges(app, settings):
    load(settings, SimConfig(users=80, cycles=5, seed=12, job="uniflow-prod", failure_rate=0.1))
    job = get_job("uniflow-prod")
    before = analysed(job.id)

    rebuild(db.engine, job.id, gap_us=settings.cycles.gap_minutes * 60_000_000)
    db.session.expire_all()

    after = analysed(job.id)
    assert [(c["span"], c["users"], c["counts"]) for c in after] == [(c["span"], c["users"], c["counts"]) for c in before]


def _health_after(settings, truth: dict, *, hours: float = 0.5) -> dict:  # type: ignore[no-untyped-def]
    from dashboard.formats.scim.parse import parse_ts

    last = max(parse_ts(c["ended_at"]) for c in truth["cycles"] if c["requests"])
    return health_json(db.session, get_job("uniflow-prod"), last + timedelta(hours=hours), settings)


def test_it_quarantines_a_run_of_401s_then_lifts_it_on_recovery(app, settings):
    truth = load(settings, SimConfig(users=60, cycles=6, seed=2, job="uniflow-prod", auth_outage_cycles=(3,)))

    health = _health_after(settings, truth)

    moves = [(t["new"], t["reason"]) for t in reversed(health["transitions"])]
    assert ("quarantined", "EncounteredQuarantineException") in moves
    assert moves[-1][0] in ("healthy", "warning")
    entered = next(t for t in health["transitions"] if t["new"] == "quarantined")
    assert entered["evidence"], "the quarantine names the exchanges behind it"


def test_it_shows_the_next_attempt_while_quarantined(app, settings):
    truth = load(settings, SimConfig(users=40, cycles=4, seed=2, job="uniflow-prod", auth_outage_cycles=(3,)))

    health = _health_after(settings, truth, hours=2)

    assert health["state"] == "quarantined"
    assert health["reason"] == "EncounteredQuarantineException"
    assert health["recommended_action"]["code"] == "EncounteredQuarantineException"
    outage_end = truth["cycles"][3]["ended_at"]
    assert health["since"][:16] == outage_end[:16]
    from dashboard.formats.scim.parse import parse_ts

    assert parse_ts(health["next_expected_attempt"]) - parse_ts(outage_end) == timedelta(hours=6)


def test_it_quarantines_a_lookup_that_answers_404(app, settings):
    truth = load(settings, SimConfig(users=40, cycles=3, seed=3, job="uniflow-prod", lookup_404_cycles=(2,)))

    health = _health_after(settings, truth)

    assert health["state"] == "quarantined"
    assert "404" in health["detail"] and "SCIM" in health["explanation"]


def test_it_quarantines_a_proportion_breach_with_scaled_down_thresholds(app, settings):
    job = get_job("uniflow-prod")
    job.quarantine_overrides = json.dumps({"min_failures": 10})
    db.session.commit()
    truth = load(settings, SimConfig(users=60, cycles=2, seed=4, job="uniflow-prod", failure_rate=0.7))

    health = _health_after(settings, truth)

    assert (health["state"], health["reason"]) == ("quarantined", "EncounteredEscrowProportionThreshold")


def test_it_quarantines_a_deletion_storm(app, settings):
    job = get_job("uniflow-prod")
    job.quarantine_overrides = json.dumps({"deletion_threshold": 50})
    db.session.commit()
    truth = load(settings, SimConfig(users=120, cycles=3, seed=5, job="uniflow-prod", failure_rate=0.0,
                                     deletion_storm_cycle=2, deletion_storm_size=60))

    health = _health_after(settings, truth)

    assert (health["state"], health["reason"]) == ("quarantined", "TooManyDeletes")


def test_it_notices_a_job_that_goes_silent(app, settings):
    truth = load(settings, SimConfig(users=40, cycles=6, seed=6, job="uniflow-prod", failure_rate=0.0, silent_after_cycle=2))

    health = _health_after(settings, truth, hours=3)

    assert health["state"] == "stalled"
    assert "appears to have stopped" in health["explanation"]
    assert health["transitions"][0]["new"] == "stalled"  # shown at once, judged in memory


def test_the_scheduler_records_the_stall_that_a_page_only_shows(app, settings):
    truth = load(settings, SimConfig(users=40, cycles=6, seed=6, job="uniflow-prod", failure_rate=0.0, silent_after_cycle=2))
    last = max(parse_ts(c["ended_at"]) for c in truth["cycles"] if c["requests"])
    now = last + timedelta(hours=3)
    job = get_job("uniflow-prod")

    shown = health_json(db.session, job, now, settings)
    assert db.session.scalar(select(func.count()).select_from(HealthTransition)) == 0  # a read writes nothing

    evaluate(db.session, job, now, settings)
    recorded = db.session.scalars(select(HealthTransition.new).order_by(HealthTransition.at_us)).all()
    assert recorded[-1] == "stalled"
    assert health_json(db.session, job, now, settings)["transitions"] == shown["transitions"]


def test_it_tracks_failing_users_with_streaks(app, settings):
    load(settings, SimConfig(users=40, cycles=5, seed=2, job="uniflow-prod", auth_outage_cycles=(3, 4)))

    failing = db.session.scalars(select(ScimUser).where(ScimUser.state == "failing")).all()

    assert failing
    assert max(u.streak for u in failing) >= 2
    assert all(u.failing_since_us and from_us(u.failing_since_us) for u in failing)


def test_it_reports_progress_of_a_running_cycle_that_never_moves_backwards(app, settings):
    config = SimConfig(users=200, cycles=1, seed=8, job="uniflow-prod", failure_rate=0.0)
    lines = list(simulate_lines(config)[0])
    job = get_job("uniflow-prod")
    job.scope_size = 200
    db.session.commit()
    options = options_from(settings.ingest, cycles=settings.cycles)
    seen = []
    for start in range(0, len(lines), 100):
        chunk = lines[start:start + 100]
        ingest_lines(db.engine, job, [(start + i + 1, line) for i, line in enumerate(chunk)], source="live", via="cli", options=options)
        from dashboard.formats.scim.parse import parse_ts

        now = parse_ts(orjson.loads(chunk[-1])["ts"]) + timedelta(seconds=1)
        seen.append(current_cycle(db.session, job, now, settings)["progress"]["percent"])

    assert seen == sorted(seen)
    assert seen[0] < 50 and seen[-2] >= 90
    assert current_cycle(db.session, job, now + timedelta(hours=1), settings)["progress"]["percent"] == 100
