"""Keep cycles, per-user outcomes, user states and signatures current as batches arrive.

Each batch touches only its own cycles, users and signatures: a handful of queries keyed by
what the batch contains, whatever the size of the history.
"""
from __future__ import annotations

from collections import defaultdict

import orjson
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.engine import Connection

from dashboard.analysis.cycles import CycleIndex, Span
from dashboard.analysis.outcomes import Fact, Summary, bucket_of, empty_counts
from dashboard.analysis.signatures import is_signature_worthy, signature_of
from dashboard.analysis.users import (
    CycleOutcome,
    Prefix,
    StateOfUser,
    in_order,
    prefix_of,
    state_after,
    user_state,
)
from dashboard.db import executemany
from dashboard.models import (
    Cycle,
    EntraEvent,
    Exchange,
    JobAnalysis,
    ScimUser,
    ScimUserAlias,
    Signature,
    SignatureUser,
    UserCycle,
)

_cycles = Cycle.__table__
_user_cycles = UserCycle.__table__
_exchanges = Exchange.__table__
_users = ScimUser.__table__
_sigs = Signature.__table__
_sig_users = SignatureUser.__table__
_jobs_analysis = JobAnalysis.__table__
_events = EntraEvent.__table__
_aliases = ScimUserAlias.__table__
_USER_CYCLE_INSERT = f"INSERT INTO {_user_cycles.name} (cycle_id, user_id, operation, outcome, summary) VALUES (?, ?, ?, ?, ?)"
_USER_CYCLE_UPDATE = f"UPDATE {_user_cycles.name} SET operation = ?, outcome = ?, summary = ? WHERE id = ?"
REFERENCE_OPS = {"group_update", "group_create", "group_delete"}  # membership and group changes
NO_USER_OPS = {"connection_test"}
_CHUNK = 300


class BatchAnalyzer:
    """Called by the loader inside each batch's transaction.

    `before_insert` adds `cycle_id` and `sig_id` to the new exchange rows; `after_insert` (the
    rows now have their `id`) folds them into cycles, user outcomes, user states, signatures.
    """

    def __init__(self, gap_us: int = 15 * 60 * 1_000_000) -> None:
        self.gap_us = gap_us

    # -- before the insert: which cycle, which signature -------------------------------------

    def before_insert(self, conn: Connection, rows: list[dict]) -> None:
        by_job: dict[int, list[dict]] = defaultdict(list)
        for row in rows:
            row["sig_id"] = None  # every row carries the same keys for executemany
            row["cycle_id"] = None
            by_job[row["job_id"]].append(row)
        for job_id, job_rows in by_job.items():
            self.place(conn, job_id, job_rows)

    def place(self, conn: Connection, job_id: int, rows: list[dict], *, adopt: bool = False) -> None:
        """Set `cycle_id` and `sig_id` of one job's rows (exchanges, or Entra events' analysis views).

        A row with a `cycle_key` goes to that cycle; with `adopt`, a new key takes over the inferred
        cycle the rows fall in (Entra's cycleId over SCIM traffic without ids). The others are
        placed by time. Rows need ts_us, cycle_key, status, operation, scim_type, error_detail.
        """
        self._assign_keyed(conn, job_id, [r for r in rows if r.get("cycle_key")], adopt=adopt)
        self._assign_inferred(conn, job_id, [r for r in rows if not r.get("cycle_key")])
        self._assign_signatures(conn, job_id, rows)

    def _assign_inferred(self, conn: Connection, job_id: int, rows: list[dict]) -> None:
        rows = self._into_entra_cycles(conn, job_id, rows)
        if not rows:
            return
        rows.sort(key=lambda r: r["ts_us"])
        low, high = rows[0]["ts_us"] - self.gap_us, rows[-1]["ts_us"] + self.gap_us
        stored = conn.execute(
            select(_cycles.c.id, _cycles.c.started_us, _cycles.c.ended_us).where(
                _cycles.c.job_id == job_id, _cycles.c.key.is_(None),
                _cycles.c.ended_us >= low, _cycles.c.started_us <= high,
            )
        ).all()
        index = CycleIndex(self.gap_us, [Span(start, end, cycle_id) for cycle_id, start, end in stored])
        original = {cycle_id: (start, end) for cycle_id, start, end in stored}
        into: dict[int, Span] = {}  # id(absorbed span) -> the span that absorbed it
        absorbed: list[Span] = []
        placed: list[tuple[dict, Span]] = []
        for row in rows:
            placement = index.place(row["ts_us"])
            for gone in placement.absorbed:
                into[id(gone)] = placement.span
                absorbed.append(gone)
            placed.append((row, placement.span))

        def final(span: Span) -> Span:
            while id(span) in into:
                span = into[id(span)]
            return span

        for gone in absorbed:  # stored cycles swallowed by a neighbour: adopt or merge the rows
            if gone.ref is None:
                continue
            target = final(gone)
            if target.ref is None:
                target.ref = gone.ref
            elif target.ref != gone.ref:
                merge_cycles(conn, keep=target.ref, drop=gone.ref)  # type: ignore[arg-type]
        for row, span in placed:
            target = final(span)
            if target.ref is None:
                target.ref = _insert_cycle(conn, job_id, None, target.start, target.end)
            row["cycle_id"] = target.ref
        for span in index.spans:
            if span.ref is not None and original.get(span.ref) not in (None, (span.start, span.end)):  # type: ignore[arg-type]
                conn.execute(update(_cycles).where(_cycles.c.id == span.ref).values(started_us=span.start, ended_us=span.end))
                _mark_dirty(conn, job_id, min(span.start, original[span.ref][0]))  # type: ignore[index]
                if span.start < original[span.ref][0]:  # type: ignore[index]
                    forget_folds(conn, [span.ref])  # type: ignore[list-item]
            elif span.ref is not None and span.ref not in original:
                conn.execute(update(_cycles).where(_cycles.c.id == span.ref).values(started_us=span.start, ended_us=span.end))

    def _into_entra_cycles(self, conn: Connection, job_id: int, rows: list[dict]) -> list[dict]:
        """Place rows without a cycle id into the Entra cycle (one with imported events) they fall
        in, within the gap; Entra's cycleId is authoritative. The rows left are inferred as usual."""
        if not rows:
            return rows
        low = min(r["ts_us"] for r in rows) - self.gap_us
        high = max(r["ts_us"] for r in rows) + self.gap_us
        keyed = conn.execute(
            select(_cycles.c.id, _cycles.c.started_us, _cycles.c.ended_us).where(
                _cycles.c.job_id == job_id, _cycles.c.key.is_not(None), _cycles.c.events > 0,
                _cycles.c.ended_us >= low, _cycles.c.started_us <= high,
            ).order_by(_cycles.c.started_us)
        ).all()
        if not keyed:
            return rows
        spans = {cycle_id: [start, end] for cycle_id, start, end in keyed}
        left = []
        for row in rows:
            t = row["ts_us"]
            near = [(0 if start <= t <= end else min(abs(t - start), abs(t - end)), cycle_id)
                    for cycle_id, (start, end) in spans.items() if start - self.gap_us <= t <= end + self.gap_us]
            if not near:
                left.append(row)
                continue
            cycle_id = min(near)[1]
            row["cycle_id"] = cycle_id
            span = spans[cycle_id]
            span[0], span[1] = min(span[0], t), max(span[1], t)
        for cycle_id, start, end in keyed:
            if spans[cycle_id] != [start, end]:
                conn.execute(update(_cycles).where(_cycles.c.id == cycle_id)
                             .values(started_us=spans[cycle_id][0], ended_us=spans[cycle_id][1]))
                _mark_dirty(conn, job_id, spans[cycle_id][0])
                if spans[cycle_id][0] < start:
                    forget_folds(conn, [cycle_id])
        return left

    def _adopt_inferred(self, conn: Connection, job_id: int, key: str, low: int, high: int) -> int | None:
        """The inferred cycle (from SCIM traffic without cycle ids) that an Entra cycle's events
        fall in: it takes Entra's cycleId as its key, so both sources show as one cycle."""
        found = conn.execute(
            select(_cycles.c.id, _cycles.c.started_us, _cycles.c.ended_us).where(
                _cycles.c.job_id == job_id, _cycles.c.key.is_(None),
                _cycles.c.ended_us >= low - self.gap_us, _cycles.c.started_us <= high + self.gap_us,
            )
        ).all()
        if not found:
            return None
        cycle_id, start, end = max(found, key=lambda c: (min(c[2], high) - max(c[1], low), -c[0]))
        conn.execute(update(_cycles).where(_cycles.c.id == cycle_id).values(
            key=key, started_us=min(start, low), ended_us=max(end, high)))
        _mark_dirty(conn, job_id, min(start, low))
        if low < start:
            forget_folds(conn, [cycle_id])
        return int(cycle_id)

    def _assign_keyed(self, conn: Connection, job_id: int, rows: list[dict], *, adopt: bool = False) -> None:
        if not rows:
            return
        spans: dict[str, list[int]] = {}
        for row in rows:
            low_high = spans.setdefault(row["cycle_key"], [row["ts_us"], row["ts_us"]])
            low_high[0], low_high[1] = min(low_high[0], row["ts_us"]), max(low_high[1], row["ts_us"])
        found = dict(
            ((key, (cycle_id, start, end)) for cycle_id, key, start, end in conn.execute(
                select(_cycles.c.id, _cycles.c.key, _cycles.c.started_us, _cycles.c.ended_us).where(
                    _cycles.c.job_id == job_id, _cycles.c.key.in_(list(spans))
                )
            ))
        )
        ids: dict[str, int] = {}
        for key, (low, high) in spans.items():
            if key in found:
                cycle_id, start, end = found[key]
                if low < start or high > end:
                    conn.execute(update(_cycles).where(_cycles.c.id == cycle_id)
                                 .values(started_us=min(low, start), ended_us=max(high, end)))
                    _mark_dirty(conn, job_id, min(low, start))
                    if low < start:
                        forget_folds(conn, [cycle_id])
                ids[key] = cycle_id
            else:
                adopted = self._adopt_inferred(conn, job_id, key, low, high) if adopt else None
                ids[key] = adopted if adopted is not None else _insert_cycle(conn, job_id, key, low, high)
        for row in rows:
            row["cycle_id"] = ids[row["cycle_key"]]

    def _assign_signatures(self, conn: Connection, job_id: int, rows: list[dict]) -> None:
        failing = [r for r in rows if is_signature_worthy(r["status"])]
        if not failing:
            return
        sigs = {}
        for row in failing:
            sig = signature_of(row["operation"], row["status"], row.get("scim_type"), row.get("error_detail"))
            sigs.setdefault(sig.key, (sig, []))[1].append(row)
        existing = {
            key: (sig_id, first, last)
            for sig_id, key, first, last in conn.execute(
                select(_sigs.c.id, _sigs.c.key, _sigs.c.first_us, _sigs.c.last_us).where(
                    _sigs.c.job_id == job_id, _sigs.c.key.in_(list(sigs))
                )
            )
        }
        for key, (sig, sig_rows) in sigs.items():
            low = min(r["ts_us"] for r in sig_rows)
            high = max(r["ts_us"] for r in sig_rows)
            if key in existing:
                sig_id, first, last = existing[key]
                conn.execute(
                    update(_sigs).where(_sigs.c.id == sig_id).values(
                        first_us=min(first, low), last_us=max(last, high), exchanges=_sigs.c.exchanges + len(sig_rows)
                    )
                )
            else:
                sig_id = conn.execute(
                    _sigs.insert().values(
                        job_id=job_id, key=key, operation=sig.operation, status=sig.status, scim_type=sig.scim_type,
                        pattern=sig.pattern, first_us=low, last_us=high, exchanges=len(sig_rows), users=0,
                    )
                ).inserted_primary_key[0]
            for row in sig_rows:
                row["sig_id"] = sig_id

    # -- after the insert: fold into cycles, users, signatures --------------------------------

    def after_insert(self, conn: Connection, rows: list[dict]) -> None:
        self._count_cycles(conn, rows)
        self.fold_outcomes(conn, rows)

    def fold_outcomes(self, conn: Connection, rows: list[dict], *, user_rows: list[dict] | None = None) -> None:
        """Fold inserted rows (with `id`) into per-user outcomes, user states and signature users.

        `user_rows`: the rows that count for their user's outcome, when not all of them do.
        """
        touched = self._fold_user_cycles(conn, rows if user_rows is None else user_rows)
        self._count_signature_users(conn, rows)
        advance_user_states(conn, touched)

    def _count_cycles(self, conn: Connection, rows: list[dict]) -> None:
        deltas: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for row in rows:
            d = deltas[row["cycle_id"]]
            status, operation = row["status"], row["operation"]
            d["requests"] += 1
            d["failed_requests"] += 1 if (status == 0 or status >= 400) else 0
            d["rejected_credentials"] += 1 if status in (401, 403) else 0
            d["lookup_404s"] += 1 if status == 404 and operation in ("lookup", "connection_test") else 0
            d["connection_tests"] += 1 if operation == "connection_test" else 0
            d["reference_failures"] += 1 if operation in REFERENCE_OPS and (status == 0 or status >= 400) else 0
            d["duration_ms_total"] += row.get("duration_ms") or 0.0
        for cycle_id, d in deltas.items():
            conn.execute(
                update(_cycles).where(_cycles.c.id == cycle_id).values(
                    **{name: getattr(_cycles.c, name) + (int(v) if name != "duration_ms_total" else v) for name, v in d.items()}
                )
            )

    def _fold_user_cycles(self, conn: Connection, rows: list[dict]) -> dict[int, dict[int, Summary]]:
        """Fold the rows into their (cycle, user) outcomes; per user, the outcomes now stored of
        the cycles the rows touched."""
        fresh: dict[tuple[int, int], Summary] = {}
        for row in rows:
            if row.get("user_id") is None or row["operation"] in NO_USER_OPS or row["operation"].startswith("group_"):
                continue
            key = (row["cycle_id"], row["user_id"])
            summary = Summary.of(Fact(row["id"], row["ts_us"], row["operation"], row["status"], row.get("found")))
            fresh[key] = fresh[key].merge(summary) if key in fresh else summary
        if not fresh:
            return {}
        existing = load_user_cycles(conn, list(fresh))
        touched: dict[int, dict[int, Summary]] = defaultdict(dict)
        matrix: dict[int, dict] = {}
        users_delta: dict[int, int] = defaultdict(int)
        looked_delta: dict[int, int] = defaultdict(int)
        inserts, updates = [], []
        for key, summary in fresh.items():
            cycle_id, user_id = key
            old = existing.get(key)
            merged = old[1].merge(summary) if old else summary
            touched[user_id][cycle_id] = merged
            counts = matrix.setdefault(cycle_id, {})
            if old:
                _bump(counts, bucket_of(old[1].operation), old[1].outcome.value, -1)
                looked_delta[cycle_id] += (1 if merged.lookups and not old[1].lookups else 0)
                updates.append((merged.operation, merged.outcome.value, orjson.dumps(merged.to_dict()).decode(), old[0]))
            else:
                users_delta[cycle_id] += 1
                looked_delta[cycle_id] += 1 if merged.lookups else 0
                inserts.append((cycle_id, user_id, merged.operation, merged.outcome.value,
                                orjson.dumps(merged.to_dict()).decode()))
            _bump(counts, bucket_of(merged.operation), merged.outcome.value, +1)
        executemany(conn, _USER_CYCLE_INSERT, inserts)
        executemany(conn, _USER_CYCLE_UPDATE, updates)
        _apply_cycle_deltas(conn, matrix, users_delta, looked_delta)
        return touched

    def _count_signature_users(self, conn: Connection, rows: list[dict]) -> None:
        pairs = {(r["sig_id"], r["user_id"]) for r in rows if r.get("sig_id") and r.get("user_id")}
        samples: dict[int, int] = {}
        for row in rows:
            if row.get("sig_id"):
                samples.setdefault(row["sig_id"], row["id"])
        if pairs:
            known = set()
            sig_ids = sorted({s for s, _u in pairs})
            for start in range(0, len(sig_ids), _CHUNK):
                known.update(conn.execute(
                    select(_sig_users.c.sig_id, _sig_users.c.user_id).where(
                        _sig_users.c.sig_id.in_(sig_ids[start : start + _CHUNK]),
                        _sig_users.c.user_id.in_(sorted({u for _s, u in pairs})),
                    )
                ).all())
            new = pairs - set(map(tuple, known))
            if new:
                conn.execute(_sig_users.insert(), [{"sig_id": s, "user_id": u} for s, u in new])
                per_sig: dict[int, int] = defaultdict(int)
                for sig_id, _u in new:
                    per_sig[sig_id] += 1
                for sig_id, n in per_sig.items():
                    conn.execute(update(_sigs).where(_sigs.c.id == sig_id).values(users=_sigs.c.users + n))
        for sig_id, exchange_id in samples.items():
            conn.execute(update(_sigs).where(_sigs.c.id == sig_id, _sigs.c.sample_exchange_id.is_(None))
                         .values(sample_exchange_id=exchange_id))


def _apply_cycle_deltas(conn: Connection, matrix: dict[int, dict], users_delta: dict[int, int],
                        looked_delta: dict[int, int]) -> None:
    """Add per-cycle changes to the cycles' outcome matrix, user and looked-up-user counts."""
    for cycle_id in sorted(set(matrix) | set(users_delta) | set(looked_delta)):
        stored = conn.execute(select(_cycles.c.counts).where(_cycles.c.id == cycle_id)).scalar_one()
        counts = orjson.loads(stored or "{}") or empty_counts()
        for bucket, outcomes in matrix.get(cycle_id, {}).items():
            for outcome, n in outcomes.items():
                counts.setdefault(bucket, {}).setdefault(outcome, 0)
                counts[bucket][outcome] += n
        conn.execute(
            update(_cycles).where(_cycles.c.id == cycle_id).values(
                counts=orjson.dumps(counts).decode(),
                users=_cycles.c.users + users_delta.get(cycle_id, 0),
                looked_up_users=_cycles.c.looked_up_users + looked_delta.get(cycle_id, 0),
            )
        )


class _Folds:
    """Two users' outcomes in one cycle folded into one (a merge of two rows, or lookups moved to
    their writer): the kept row absorbs the other, which goes, and the cycle's counts change by
    exactly that (never a recount of the whole cycle: its cost would grow with the cycle)."""

    def __init__(self) -> None:
        self.matrix: dict[int, dict] = {}
        self.users: dict[int, int] = defaultdict(int)
        self.looked: dict[int, int] = defaultdict(int)

    def fold(self, conn: Connection, cycle_id: int, keep: tuple[int, Summary], drop: tuple[int, Summary]) -> Summary:
        (keep_rid, mine), (drop_rid, theirs) = keep, drop
        merged = mine.merge(theirs)
        conn.execute(update(_user_cycles).where(_user_cycles.c.id == keep_rid).values(
            operation=merged.operation, outcome=merged.outcome.value, summary=orjson.dumps(merged.to_dict()).decode()))
        conn.execute(delete(_user_cycles).where(_user_cycles.c.id == drop_rid))
        counts = self.matrix.setdefault(cycle_id, {})
        for gone in (mine, theirs):
            _bump(counts, bucket_of(gone.operation), gone.outcome.value, -1)
        _bump(counts, bucket_of(merged.operation), merged.outcome.value, +1)
        self.users[cycle_id] -= 1
        self.looked[cycle_id] += (1 if merged.lookups else 0) - (1 if mine.lookups else 0) - (1 if theirs.lookups else 0)
        return merged

    def apply(self, conn: Connection) -> set[int]:
        """Write the cycles' counts; the cycles that changed."""
        _apply_cycle_deltas(conn, self.matrix, self.users, self.looked)
        return set(self.matrix)


def _bump(counts: dict, bucket: str, outcome: str, n: int) -> None:
    counts.setdefault(bucket, {}).setdefault(outcome, 0)
    counts[bucket][outcome] += n


def _insert_cycle(conn: Connection, job_id: int, key: str | None, start: int, end: int) -> int:
    cycle_id = conn.execute(
        _cycles.insert().values(
            job_id=job_id, key=key, started_us=start, ended_us=end, requests=0, failed_requests=0,
            rejected_credentials=0, lookup_404s=0, connection_tests=0, reference_failures=0, users=0,
            looked_up_users=0, counts=orjson.dumps(empty_counts()).decode(), duration_ms_total=0.0,
        )
    ).inserted_primary_key[0]
    _mark_dirty(conn, job_id, start)
    return int(cycle_id)


def load_user_cycles(conn: Connection, keys: list[tuple[int, int]]) -> dict[tuple[int, int], tuple[int, Summary]]:
    found: dict[tuple[int, int], tuple[int, Summary]] = {}
    cycle_ids = sorted({c for c, _u in keys})
    user_ids = sorted({u for _c, u in keys})
    wanted = set(keys)
    for start in range(0, len(user_ids), _CHUNK):
        rows = conn.execute(
            select(_user_cycles.c.id, _user_cycles.c.cycle_id, _user_cycles.c.user_id, _user_cycles.c.summary).where(
                _user_cycles.c.cycle_id.in_(cycle_ids), _user_cycles.c.user_id.in_(user_ids[start : start + _CHUNK])
            )
        )
        for rid, cycle_id, user_id, summary in rows:
            if (cycle_id, user_id) in wanted:
                found[(cycle_id, user_id)] = (rid, Summary.from_dict(orjson.loads(summary)))
    return found


def refresh_user_states(conn: Connection, user_ids: set[int]) -> None:
    """Recompute the stored state of these users from their cycles."""
    if not user_ids:
        return
    ordered = sorted(user_ids)
    histories: dict[int, list[CycleOutcome]] = defaultdict(list)
    for start in range(0, len(ordered), _CHUNK):
        rows = conn.execute(
            select(_user_cycles.c.user_id, _user_cycles.c.cycle_id, _cycles.c.started_us, _user_cycles.c.summary)
            .join(_cycles, _cycles.c.id == _user_cycles.c.cycle_id)
            .where(_user_cycles.c.user_id.in_(ordered[start : start + _CHUNK]))
        ).all()  # one fetch of the chunk: iterating a Result fetches row by row
        for user_id, cycle_id, started_us, summary in rows:
            histories[user_id].append(_outcome(cycle_id, started_us, Summary.from_dict(orjson.loads(summary))))
    params = []
    for user_id in ordered:
        history = in_order(histories.get(user_id, []))
        if not history:
            params.append(_state_params(user_id, user_state([]), None))
            continue
        prefix = prefix_of(history[:-1])
        params.append(_state_params(user_id, state_after(prefix, history[-1]), _fold_text(prefix, history[-1])))
    _write_states(conn, params)


def advance_user_states(conn: Connection, touched: dict[int, dict[int, Summary]]) -> None:
    """Bring the stored state of the users a batch touched up to date, folding only the cycles
    the batch touched onto each user's stored fold (work bounded by the batch, not the history).

    A user is folded from the whole history instead (`refresh_user_states`) when they have no
    stored fold, or when the batch touched a cycle before their last one or that cycle moved (the
    order of their cycles may have changed)."""
    if not touched:
        return
    ordered = sorted(touched)
    stored: dict[int, tuple[Prefix, CycleOutcome | None]] = {}
    states: dict[int, str] = {}
    for start in range(0, len(ordered), _CHUNK):
        for user_id, text, last_cycle_id, state in conn.execute(
                select(_users.c.id, _users.c.fold, _users.c.last_cycle_id, _users.c.state)
                .where(_users.c.id.in_(ordered[start : start + _CHUNK]))):
            states[user_id] = state
            if text:
                try:
                    stored[user_id] = _read_fold(text)
                except (ValueError, TypeError, IndexError):  # not a fold this version wrote: fold it whole
                    continue
            elif last_cycle_id is None:  # never folded: no history but what this batch brings
                stored[user_id] = (Prefix(), None)
    cycle_ids = sorted({c for per in touched.values() for c in per}
                       | {last.cycle_id for _p, last in stored.values() if last is not None})
    started: dict[int, int] = {}
    for start in range(0, len(cycle_ids), _CHUNK):
        started.update(conn.execute(
            select(_cycles.c.id, _cycles.c.started_us).where(_cycles.c.id.in_(cycle_ids[start : start + _CHUNK]))).all())
    params, same, whole = [], [], set()
    for user_id in ordered:
        if user_id not in stored:
            whole.add(user_id)
            continue
        prefix, last = stored[user_id]
        per = touched[user_id]
        if last is not None and (started.get(last.cycle_id) != last.cycle_started_us or any(
                (started.get(c, -1), c) < (last.cycle_started_us, last.cycle_id) for c in per)):
            whole.add(user_id)
            continue
        rows = [] if last is None or last.cycle_id in per else [last]
        rows += [_outcome(c, started[c], summary) for c, summary in per.items()]
        rows = in_order(rows)
        prefix = prefix_of(rows[:-1], prefix)
        state = state_after(prefix, rows[-1])
        if state.state.value == states.get(user_id):
            # the state column is left out of the UPDATE: its index entry is not rewritten (a page
            # of ix_scim_user_job_state dirtied per user and batch, for nothing)
            same.append(_state_params(user_id, state, _fold_text(prefix, rows[-1]))[1:])
        else:
            params.append(_state_params(user_id, state, _fold_text(prefix, rows[-1])))
    _write_states(conn, params)
    executemany(conn, _SAME_STATE_SQL, same)
    refresh_user_states(conn, whole)


def forget_folds(conn: Connection, cycle_ids: list[int]) -> None:
    """The cycles' start moved or they merged: the users in them fold their whole history next time."""
    if cycle_ids:
        conn.execute(update(_users).where(_users.c.id.in_(
            select(_user_cycles.c.user_id).where(_user_cycles.c.cycle_id.in_(cycle_ids)))).values(fold=None))


def _outcome(cycle_id: int, started_us: int, folded: Summary) -> CycleOutcome:
    failure = folded.last_failure
    return CycleOutcome(cycle_id, started_us, folded.operation, folded.outcome.value, folded.last_us,
                        failure.id if failure else None, failure.ts_us if failure else None, lookup_result(folded),
                        folded.done)


def _read_fold(text: str) -> tuple[Prefix, CycleOutcome]:
    prefix, last = orjson.loads(text)
    if len(prefix) != 6 or len(last) not in (8, 9):
        raise ValueError("not a fold")
    lookup = last[7]
    done = last[8] if len(last) == 9 else None  # (a fold written before `done` was kept: none)
    return Prefix.from_list(prefix), CycleOutcome(*last[:7], None if lookup is None else bool(lookup), done)


def _fold_text(prefix: Prefix, last: CycleOutcome) -> str:
    return orjson.dumps([prefix.to_list(), [
        last.cycle_id, last.cycle_started_us, last.operation, last.outcome, last.last_us, last.last_failure_id,
        last.last_failure_us, None if last.lookup is None else int(last.lookup), last.done]]).decode()


def _state_params(user_id: int, state: StateOfUser, fold: str | None) -> tuple:
    return (state.state.value, state.provisioned, state.last_cycle_id, state.last_seen_us, state.failing_since_us,
            state.failing_since_cycle_id, state.streak, state.last_failure_exchange_id, fold, user_id)


_STATE_SQL = (f"UPDATE {_users.name} SET state = ?, provisioned = ?, last_cycle_id = ?, last_seen_us = ?,"
              " failing_since_us = ?, failing_since_cycle_id = ?, streak = ?, last_failure_exchange_id = ?, fold = ?"
              " WHERE id = ?")


_SAME_STATE_SQL = (f"UPDATE {_users.name} SET provisioned = ?, last_cycle_id = ?, last_seen_us = ?,"
                   " failing_since_us = ?, failing_since_cycle_id = ?, streak = ?, last_failure_exchange_id = ?,"
                   " fold = ? WHERE id = ?")


def _write_states(conn: Connection, params: list[tuple]) -> None:
    executemany(conn, _STATE_SQL, params)


def lookup_result(summary: Summary) -> bool | None:
    """What a cycle's lookups said of the account: found (True), not there (False), or unknown
    (None: no lookup answered, or exchanges stored before lookups' answers were kept)."""
    if summary.found:
        return True
    if summary.missed:
        return False
    return None


def merge_cycles(conn: Connection, *, keep: int, drop: int) -> None:
    """Two cycles turned out to be one (a late exchange filled the gap between them)."""
    conn.execute(update(_exchanges).where(_exchanges.c.cycle_id == drop).values(cycle_id=keep))
    dropped = conn.execute(
        select(_user_cycles.c.id, _user_cycles.c.user_id, _user_cycles.c.summary).where(_user_cycles.c.cycle_id == drop)
    ).all()
    if dropped:
        kept = load_user_cycles(conn, [(keep, user_id) for _rid, user_id, _s in dropped])
        for rid, user_id, summary in dropped:
            other = Summary.from_dict(orjson.loads(summary))
            if (keep, user_id) in kept:
                keep_rid, mine = kept[(keep, user_id)]
                merged = mine.merge(other)
                conn.execute(update(_user_cycles).where(_user_cycles.c.id == keep_rid).values(
                    operation=merged.operation, outcome=merged.outcome.value, summary=orjson.dumps(merged.to_dict()).decode()))
                conn.execute(delete(_user_cycles).where(_user_cycles.c.id == rid))
            else:
                conn.execute(update(_user_cycles).where(_user_cycles.c.id == rid).values(cycle_id=keep))
    span = conn.execute(select(func.min(_cycles.c.started_us), func.max(_cycles.c.ended_us), func.min(_cycles.c.job_id))
                        .where(_cycles.c.id.in_([keep, drop]))).one()
    conn.execute(delete(_cycles).where(_cycles.c.id == drop))
    conn.execute(update(_cycles).where(_cycles.c.id == keep).values(started_us=span[0], ended_us=span[1]))
    forget_folds(conn, [keep])
    recount_cycle(conn, keep)
    refresh_user_states(conn, {user_id for _rid, user_id, _s in dropped})
    _mark_dirty(conn, span[2], span[0])


def merge_users(conn: Connection, *, keep: int, drop: int) -> None:
    """Two rows turned out to be one person (ingest/resolve.py): everything of `drop` becomes
    `keep`'s (exchanges, Entra events, per-cycle outcomes, signatures, aliases), then `drop` goes.
    Cycles where both took part are folded into one outcome (the cycle's counts adjusted)."""
    conn.execute(update(_exchanges).where(_exchanges.c.user_id == drop).values(user_id=keep))
    conn.execute(update(_events).where(_events.c.user_id == drop).values(user_id=keep))
    dropped = conn.execute(
        select(_user_cycles.c.id, _user_cycles.c.cycle_id, _user_cycles.c.summary).where(_user_cycles.c.user_id == drop)
    ).all()
    folds = _Folds()
    if dropped:
        kept = load_user_cycles(conn, [(cycle_id, keep) for _rid, cycle_id, _s in dropped])
        for rid, cycle_id, summary in dropped:
            if (cycle_id, keep) in kept:
                folds.fold(conn, cycle_id, kept[(cycle_id, keep)], (rid, Summary.from_dict(orjson.loads(summary))))
            else:
                conn.execute(update(_user_cycles).where(_user_cycles.c.id == rid).values(user_id=keep))
    sig_ids = conn.scalars(select(_sig_users.c.sig_id).where(_sig_users.c.user_id == drop)).all()
    if sig_ids:
        both = set(conn.scalars(select(_sig_users.c.sig_id).where(
            _sig_users.c.user_id == keep, _sig_users.c.sig_id.in_(sig_ids))).all())
        conn.execute(delete(_sig_users).where(_sig_users.c.user_id == drop))
        moved = [s for s in sig_ids if s not in both]
        if moved:
            conn.execute(_sig_users.insert(), [{"sig_id": s, "user_id": keep} for s in moved])
        for sig_id in both:
            conn.execute(update(_sigs).where(_sigs.c.id == sig_id).values(users=_sigs.c.users - 1))
    mine = {(kind, key): (first, last) for kind, key, first, last in conn.execute(
        select(_aliases.c.kind, _aliases.c.key, _aliases.c.first_us, _aliases.c.last_us).where(_aliases.c.user_id == keep))}
    for alias_id, kind, key, first, last in conn.execute(
        select(_aliases.c.id, _aliases.c.kind, _aliases.c.key, _aliases.c.first_us, _aliases.c.last_us)
        .where(_aliases.c.user_id == drop)
    ).all():
        if (kind, key) in mine:
            low, high = mine[(kind, key)]
            conn.execute(update(_aliases).where(_aliases.c.user_id == keep, _aliases.c.kind == kind, _aliases.c.key == key)
                         .values(first_us=min(low, first), last_us=max(high, last)))
            conn.execute(delete(_aliases).where(_aliases.c.id == alias_id))
        else:
            conn.execute(update(_aliases).where(_aliases.c.id == alias_id).values(user_id=keep))
    conn.execute(delete(_users).where(_users.c.id == drop))
    recount = folds.apply(conn)
    refresh_user_states(conn, {keep})
    if recount:
        job_id, start = conn.execute(select(_cycles.c.job_id, func.min(_cycles.c.started_us))
                                     .where(_cycles.c.id.in_(sorted(recount))).group_by(_cycles.c.job_id)).first()  # type: ignore[misc]
        _mark_dirty(conn, job_id, start)


def give_lookups_to_the_writer(conn: Connection, holders: list[int], gap_us: int = 15 * 60 * 1_000_000,
                               with_scim_id: frozenset[int] | set[int] = frozenset()) -> None:
    """Two people hold one userName (a collision). A lookup naming only that userName belongs to
    whichever of them Entra was working on, which the line does not say; the resolver guesses
    from what it has seen so far, and lines arriving out of order can prove it wrong. Here, per
    cycle: when exactly one of the holders wrote (create, update...) and another took part with
    lookups only, all made within the gap before that write, those lookups prepared the write
    (Entra looks a user up, then writes them): they move to the writer, whose outcome absorbs
    them (it does not change: they come before the write), and the cycle's counts follow.

    Lookups that found an account stay where they are when their holder has a SCIM id
    (`with_scim_id`): the answer named that account, so the resolver knew whose they were (a
    lookup by a shared userName that finds one of the holders is that holder's, whoever writes
    next; Microsoft's SCIM tutorial has several users under one userName)."""
    rows = conn.execute(
        select(_user_cycles.c.id, _user_cycles.c.cycle_id, _user_cycles.c.user_id, _user_cycles.c.summary)
        .where(_user_cycles.c.user_id.in_(holders))
    ).all()
    by_cycle: dict[int, list[tuple[int, int, Summary]]] = defaultdict(list)
    for rid, cycle_id, user_id, summary in rows:
        by_cycle[cycle_id].append((rid, user_id, Summary.from_dict(orjson.loads(summary))))
    touched: set[int] = set()
    folds = _Folds()
    for cycle_id, entries in by_cycle.items():
        writers = [e for e in entries if e[2].writes > 0]
        idle = [e for e in entries if e[2].writes == 0 and e[2].requests == e[2].lookups > 0
                and not (e[2].found and e[1] in with_scim_id)]
        if len(writers) != 1 or not idle:
            continue
        writer_rid, writer, mine = writers[0]
        write_us = mine.last_write.ts_us if mine.last_write is not None else mine.last_us
        for rid, user_id, theirs in idle:
            if not (write_us - gap_us <= theirs.first_us and theirs.last_us <= write_us):
                continue  # not the lookups that prepared this write (those come just before it)
            theirs_here = and_(_exchanges.c.cycle_id == cycle_id, _exchanges.c.user_id == user_id,
                               _exchanges.c.operation == "lookup")
            if conn.execute(select(func.count()).where(theirs_here)).scalar_one() != theirs.requests:
                continue  # not only exchanges (an Entra event too): leave it
            conn.execute(update(_exchanges).where(theirs_here).values(user_id=writer))
            mine = folds.fold(conn, cycle_id, (writer_rid, mine), (rid, theirs))
            touched.update((user_id, writer))
    folds.apply(conn)
    if touched:
        refresh_user_states(conn, touched)


def recount_cycle(conn: Connection, cycle_id: int) -> None:
    """Recompute a cycle's counters from its exchanges and user rows (after a merge)."""
    e = _exchanges.c
    bad = or_(e.status == 0, e.status >= 400)
    totals = conn.execute(
        select(
            func.count(),
            func.coalesce(func.sum(func.cast(bad, _cycles.c.requests.type)), 0),
            func.count().filter(e.status.in_([401, 403])),
            func.count().filter(and_(e.status == 404, e.operation.in_(["lookup", "connection_test"]))),
            func.count().filter(e.operation == "connection_test"),
            func.count().filter(and_(e.operation.in_(sorted(REFERENCE_OPS)), bad)),
            func.coalesce(func.sum(e.duration_ms), 0.0),
        ).where(e.cycle_id == cycle_id)
    ).one()
    counts = empty_counts()
    users = looked = 0
    for operation, outcome, summary in conn.execute(
        select(_user_cycles.c.operation, _user_cycles.c.outcome, _user_cycles.c.summary).where(_user_cycles.c.cycle_id == cycle_id)
    ):
        counts[bucket_of(operation)][outcome] += 1
        users += 1
        looked += 1 if Summary.from_dict(orjson.loads(summary)).lookups else 0
    conn.execute(update(_cycles).where(_cycles.c.id == cycle_id).values(
        requests=totals[0], failed_requests=totals[1], rejected_credentials=totals[2], lookup_404s=totals[3],
        connection_tests=totals[4], reference_failures=totals[5], duration_ms_total=float(totals[6]),
        users=users, looked_up_users=looked, counts=orjson.dumps(counts).decode(),
    ))


def _mark_dirty(conn: Connection, job_id: int, from_us: int) -> None:
    """Cycles from `from_us` on must be judged again (they changed after being judged)."""
    row = conn.execute(select(_jobs_analysis.c.dirty_from_us).where(_jobs_analysis.c.job_id == job_id)).first()
    if row is None:
        conn.execute(_jobs_analysis.insert().values(job_id=job_id, dirty_from_us=from_us, snapshot="{}"))
    elif row[0] is None or from_us < row[0]:
        conn.execute(update(_jobs_analysis).where(_jobs_analysis.c.job_id == job_id).values(dirty_from_us=from_us))
