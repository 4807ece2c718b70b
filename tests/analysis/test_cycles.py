"""Splitting exchanges into cycles by quiet gaps, whatever the order of arrival."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.analysis.cycles import CycleIndex, split_cycles

MIN = 60 * 1_000_000
GAP = 15 * MIN


def test_it_starts_a_new_cycle_after_a_quiet_gap():
    # Entra runs roughly every 40 minutes; 40 quiet minutes means a new cycle.
    assert split_cycles([0, MIN, 41 * MIN], GAP) == [(0, MIN), (41 * MIN, 41 * MIN)]


def test_it_keeps_a_pause_shorter_than_the_gap_inside_one_cycle():
    assert split_cycles([0, 14 * MIN, 28 * MIN], GAP) == [(0, 28 * MIN)]


def test_it_merges_two_cycles_when_a_late_exchange_fills_the_gap():
    index = CycleIndex(GAP)
    index.place(0)
    index.place(20 * MIN)

    placement = index.place(10 * MIN)

    assert [(s.start, s.end) for s in index.spans] == [(0, 20 * MIN)]
    assert len(placement.absorbed) == 1


def test_it_extends_a_cycle_backwards_for_an_early_exchange():
    index = CycleIndex(GAP, [])
    index.place(30 * MIN)

    placement = index.place(20 * MIN)

    assert not placement.created
    assert [(s.start, s.end) for s in index.spans] == [(20 * MIN, 30 * MIN)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=600 * MIN), min_size=1, max_size=60), st.randoms())
def test_it_gives_the_same_cycles_in_any_order_of_arrival(times, rng):
    shuffled = list(times)
    rng.shuffle(shuffled)
    index = CycleIndex(GAP)
    for t in shuffled:
        index.place(t)

    assert [(s.start, s.end) for s in index.spans] == split_cycles(times, GAP)
