"""PURE: which kind a cycle is, and its progress bar (users processed of expected).

Entra's portal shows a progress bar during the initial cycle only (reference section 1.3); ours
runs for every cycle, with the expectation fixed by earlier cycles so the bar never moves back.
"""
from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from dashboard.times import US, format_ts, from_us

INITIAL_LOOKUP_SHARE = 0.5  # a cycle that looks up half the known users is a (re)start: an initial cycle
INITIAL_MIN_USERS = 20


def kind_of(*, earlier_cycles: int, largest_earlier: int | None, scope_size: int | None, looked_up_users: int) -> str:
    """"initial" for the first cycle and for a restart (most of the scope looked up again), else "incremental"."""
    if not earlier_cycles:
        return "initial"
    scope = scope_size or largest_earlier or 0
    if looked_up_users >= max(INITIAL_MIN_USERS, INITIAL_LOOKUP_SHARE * scope):
        return "initial"
    return "incremental"


QUIET_AFTER_S = 120  # a running cycle with no exchange for two minutes is "quiet": no ETA

BASIS_WORDS = {
    "entra": "Entra's job status",
    "scope": "configured scope size",
    "last_complete": "the last complete cycle",
    "median": "median of the last incremental cycles",
    "earlier": "users seen in earlier cycles",
}


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def progress_of(*, kind: str, running: bool, processed: int, earlier_users: Sequence[int], scope_size: int | None,
                started_us: int, ended_us: int, now_us: int, entra_expected: int | None = None,
                last_complete: int | None = None, rejected: bool = False,
                quiet_after_s: float = QUIET_AFTER_S) -> dict[str, Any]:
    """Users processed of expected. `earlier_users`: the users of earlier cycles, latest first.
    The expectation comes from the best source, and says which (`expected_source`): Entra's own
    count of the objects in scope, the job's configured scope size, the last complete cycle, or
    (incremental) the median of the last cycles. The processed count only grows and the bar never
    moves backwards; when more users arrive than expected the estimate was low, and `summary`
    says "21 users, about 16 expected" rather than "21 of 16". No ETA while the cycle is quiet
    (`quiet_after_s` without an exchange) or every call is `rejected` (401/403)."""
    source: str | None
    if kind == "initial":
        if entra_expected:
            expected, source = entra_expected, "entra"
        elif scope_size:
            expected, source = scope_size, "scope"
        elif last_complete:
            expected, source = last_complete, "last_complete"
        else:
            expected = max(earlier_users, default=0) or None
            source = "earlier" if expected else None
    else:
        sizes = [u for u in earlier_users[:5] if u] or [processed or 1]
        expected = max(1, int(statistics.median(sizes)))
        source = "median"
    over = bool(expected) and processed > (expected or 0)
    if not running:
        percent: float | None = 100.0
    elif expected:
        percent = min(99.0, 100.0 * processed / expected)
    else:
        percent = None
    elapsed = max(ended_us - started_us, 0) / US
    quiet_s = round(max(now_us - ended_us, 0) / US, 1) if running else 0
    quiet = running and quiet_s > quiet_after_s
    eta = None
    if running and not quiet and not rejected and expected and processed and processed < expected and elapsed > 0:
        eta = format_ts(from_us(now_us + int((expected - processed) / (processed / elapsed) * US)))
    if not expected:
        summary = f"{_plural(processed, 'user')}, expected count unknown"
    elif over or not running:
        summary = _plural(processed, "user") + (f", about {expected:,} expected" if running or over else "")
    else:
        summary = f"{processed:,} of {_plural(expected, 'user')}"
    return {
        "percent": None if percent is None else round(percent, 1),
        "processed_users": processed,
        "expected_users": expected,
        "expected_source": source,
        "expected_basis": BASIS_WORDS.get(source) if source else None,
        "over_expected": over,
        "summary": summary,
        "elapsed_s": round(elapsed, 1),
        "eta": eta,
        "eta_withheld": None if eta or not running else ("rejected" if rejected else "quiet" if quiet else None),
        "few_changes": kind == "incremental" and processed < 50,
        # seconds since the cycle's last exchange: a running cycle that has gone quiet is
        # probably done; it counts as completed once the quiet lasts the cycle gap
        "quiet_s": quiet_s,
        "quiet": quiet,
    }
