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


def progress_of(*, kind: str, running: bool, processed: int, earlier_users: Sequence[int], scope_size: int | None,
                started_us: int, ended_us: int, now_us: int) -> dict[str, Any]:
    """Users processed of expected. `earlier_users`: the users of earlier cycles, latest first.
    The expectation is fixed by earlier cycles and the processed count only grows, so the bar
    never moves backwards."""
    if kind == "initial":
        expected = scope_size or (max(earlier_users, default=0) or None)
        basis = "configured scope size" if scope_size else ("users seen in earlier cycles" if expected else None)
    else:
        sizes = [u for u in earlier_users[:5] if u] or [processed or 1]
        expected = max(1, int(statistics.median(sizes)))
        basis = "median of the last incremental cycles"
    if not running:
        percent: float | None = 100.0
    elif expected:
        percent = min(99.0, 100.0 * processed / expected)
    else:
        percent = None
    elapsed = max(ended_us - started_us, 0) / US
    eta = None
    if running and expected and processed and processed < expected and elapsed > 0:
        eta = format_ts(from_us(now_us + int((expected - processed) / (processed / elapsed) * US)))
    return {
        "percent": None if percent is None else round(percent, 1),
        "processed_users": processed,
        "expected_users": expected,
        "expected_basis": basis,
        "elapsed_s": round(elapsed, 1),
        "eta": eta,
        "few_changes": kind == "incremental" and processed < 50,
        # seconds since the cycle's last exchange: a running cycle that has gone quiet is
        # probably done; it counts as completed once the quiet lasts the cycle gap
        "quiet_s": round(max(now_us - ended_us, 0) / US, 1) if running else 0,
    }
