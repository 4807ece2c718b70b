"""Split a job's exchanges into provisioning cycles by quiet gaps, in any order of arrival.

A cycle is a maximal run of exchanges in which no two consecutive ones are further apart than
`gap`. That definition does not depend on the order in which exchanges arrive, so an index can
place them one at a time (joining, extending, merging or creating cycles) and end with the
same cycles as splitting the sorted whole.
"""
from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass
class Span:
    """A cycle's time span in microseconds; `ref` is the caller's handle (a row id)."""

    start: int
    end: int
    ref: object = None


@dataclass(frozen=True)
class Placement:
    """Where one timestamp went: into `span` (maybe widened); `absorbed` spans merged into it."""

    span: Span
    created: bool
    absorbed: tuple[Span, ...] = ()


def split_cycles(times_us: Iterable[int], gap_us: int) -> list[tuple[int, int]]:
    """The (start, end) of each cycle over the given times: the reference the index must match."""
    spans: list[tuple[int, int]] = []
    for t in sorted(times_us):
        if spans and t - spans[-1][1] <= gap_us:
            spans[-1] = (spans[-1][0], t)
        else:
            spans.append((t, t))
    return spans


class CycleIndex:
    """Disjoint spans kept sorted by start; `place(t)` keeps them equal to split_cycles."""

    def __init__(self, gap_us: int, spans: Iterable[Span] = ()) -> None:
        self.gap_us = gap_us
        self.spans: list[Span] = sorted(spans, key=lambda s: s.start)
        self._starts = [s.start for s in self.spans]

    def place(self, t: int) -> Placement:
        i = bisect.bisect_right(self._starts, t)  # spans[:i] start at or before t
        before = self.spans[i - 1] if i > 0 else None
        after = self.spans[i] if i < len(self.spans) else None
        if before is not None and t <= before.end + self.gap_us:
            before.end = max(before.end, t)
            if after is not None and after.start - before.end <= self.gap_us:
                return Placement(before, False, (self._absorb(before, i),))
            return Placement(before, False)
        if after is not None and after.start - t <= self.gap_us:
            after.start = t
            self._starts[i] = t
            return Placement(after, False)
        span = Span(t, t)
        self.spans.insert(i, span)
        self._starts.insert(i, t)
        return Placement(span, True)

    def _absorb(self, into: Span, index: int) -> Span:
        gone = self.spans.pop(index)
        self._starts.pop(index)
        into.end = max(into.end, gone.end)
        return gone
