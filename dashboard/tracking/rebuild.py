"""Rebuild a job's analysis from its stored exchanges (`flask recompute`): the same batch code
that ingestion runs, replayed in time order."""
from __future__ import annotations

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.engine import Engine

from dashboard.ingest.entra import refold_events
from dashboard.models import (
    Cycle,
    EntraEvent,
    Exchange,
    HealthTransition,
    JobAnalysis,
    ScimUser,
    Signature,
    SignatureUser,
    UserCycle,
)
from dashboard.tracking.fold import BatchAnalyzer

_e = Exchange.__table__
_COLUMNS = (_e.c.id, _e.c.job_id, _e.c.ts_us, _e.c.operation, _e.c.status, _e.c.failed, _e.c.user_id,
            _e.c.cycle_key, _e.c.scim_type, _e.c.error_detail, _e.c.duration_ms, _e.c.found)


def reset(conn, job_id: int) -> None:  # type: ignore[no-untyped-def]
    conn.execute(update(_e).where(_e.c.job_id == job_id).values(cycle_id=None, sig_id=None))
    conn.execute(update(EntraEvent.__table__).where(EntraEvent.job_id == job_id).values(cycle_id=None, sig_id=None))
    sig_ids = select(Signature.id).where(Signature.job_id == job_id)
    conn.execute(delete(SignatureUser.__table__).where(SignatureUser.sig_id.in_(sig_ids)))
    conn.execute(delete(Signature.__table__).where(Signature.job_id == job_id))
    cycle_ids = select(Cycle.id).where(Cycle.job_id == job_id)
    conn.execute(delete(UserCycle.__table__).where(UserCycle.cycle_id.in_(cycle_ids)))
    conn.execute(delete(Cycle.__table__).where(Cycle.job_id == job_id))
    conn.execute(delete(HealthTransition.__table__).where(HealthTransition.job_id == job_id))
    conn.execute(delete(JobAnalysis.__table__).where(JobAnalysis.job_id == job_id))
    conn.execute(update(ScimUser.__table__).where(ScimUser.job_id == job_id).values(
        state="unknown", provisioned=False, last_cycle_id=None, last_seen_us=None, failing_since_us=None,
        failing_since_cycle_id=None, streak=0, last_failure_exchange_id=None))


def rebuild(engine: Engine, job_id: int, *, gap_us: int, batch: int = 5000) -> int:
    """Returns the number of exchanges and Entra events replayed. One transaction for the reset
    and each batch; the events are folded after the exchanges (the folds do not mind the order)."""
    count = _replay_exchanges(engine, job_id, gap_us=gap_us, batch=batch)

    return count + refold_events(engine, job_id, gap_us=gap_us, batch=batch)


def _replay_exchanges(engine: Engine, job_id: int, *, gap_us: int, batch: int) -> int:
    analyzer = BatchAnalyzer(gap_us)
    with engine.begin() as conn:
        reset(conn, job_id)
    last = (-1, -1)
    count = 0
    while True:
        with engine.begin() as conn:
            rows = [dict(r._mapping) for r in conn.execute(
                select(*_COLUMNS).where(_e.c.job_id == job_id,
                                        (_e.c.ts_us > last[0]) | ((_e.c.ts_us == last[0]) & (_e.c.id > last[1])))
                .order_by(_e.c.ts_us, _e.c.id).limit(batch))]
            if not rows:
                return count
            analyzer.before_insert(conn, rows)
            conn.execute(update(_e).where(_e.c.id == bindparam("eid")).values(
                cycle_id=bindparam("cid"), sig_id=bindparam("sid")),
                [{"eid": r["id"], "cid": r["cycle_id"], "sid": r["sig_id"]} for r in rows])
            analyzer.after_insert(conn, rows)
            last = (rows[-1]["ts_us"], rows[-1]["id"])
            count += len(rows)
