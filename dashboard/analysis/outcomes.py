"""Fold one user's exchanges in one cycle into a summary, and read its outcome from it.

The fold is commutative and associative (latest-by-(time, id), sums, min/max), so batches may
arrive in any order and two cycles that turn out to be one can be merged summary by summary.
"""
from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

WRITES = {"create", "update", "disable", "enable", "delete"}
BUCKETS = ("create", "update", "disable", "delete", "other")  # the matrix's rows
OUTCOMES = ("success", "failure", "skipped")


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    SKIPPED = "skipped"


class Fact(NamedTuple):
    """What the fold needs of one exchange."""

    id: int
    ts_us: int
    operation: str
    status: int
    found: bool | None = None  # a lookup's answer: found the account, or an empty ListResponse

    @property
    def bad(self) -> bool:
        """Answered with an error or not at all (a lookup's 404 included: nothing happened)."""
        return self.status == 0 or self.status >= 400


class Mark(NamedTuple):
    ts_us: int
    id: int
    operation: str
    status: int

    @property
    def order(self) -> tuple[int, int]:
        return (self.ts_us, self.id)

    @property
    def bad(self) -> bool:
        """Answered with an error or not at all (as `Fact.bad`)."""
        return self.status == 0 or self.status >= 400


class Summary(NamedTuple):
    """A user's exchanges in one cycle, folded. (A named tuple, not a frozen dataclass: one is made
    per exchange ingested, and a tuple is made several times faster.)"""

    first_us: int
    last_us: int
    requests: int
    writes: int  # attempts of a write in the cycle
    failures: int
    lookups: int
    last: Mark
    last_write: Mark | None = None
    last_failure: Mark | None = None
    found: int = 0  # lookups that found the account
    missed: int = 0  # lookups answered with an empty ListResponse (no such account in the target)
    last_done: Mark | None = None  # the latest write the target carried out (answered 2xx/3xx)

    @classmethod
    def of(cls, fact: Fact) -> Summary:
        ts_us, operation, status = fact.ts_us, fact.operation, fact.status
        mark = Mark(ts_us, fact.id, operation, status)
        bad = status == 0 or status >= 400
        write = operation in WRITES
        return cls(
            ts_us, ts_us, 1, 1 if write else 0, 1 if bad else 0, 1 if operation == "lookup" else 0, mark,
            mark if write else None, mark if bad else None,
            1 if fact.found is True and not bad else 0, 1 if fact.found is False and not bad else 0,
            mark if write and not bad else None,
        )

    def merge(self, other: Summary) -> Summary:
        return Summary(
            first_us=min(self.first_us, other.first_us),
            last_us=max(self.last_us, other.last_us),
            requests=self.requests + other.requests,
            writes=self.writes + other.writes,
            failures=self.failures + other.failures,
            lookups=self.lookups + other.lookups,
            last=_latest(self.last, other.last),  # type: ignore[arg-type]
            last_write=_latest(self.last_write, other.last_write),
            last_failure=_latest(self.last_failure, other.last_failure),
            found=self.found + other.found,
            missed=self.missed + other.missed,
            last_done=_latest(self.last_done, other.last_done),
        )

    @property
    def outcome(self) -> Outcome:
        """failure when the user's last request failed; success when a write succeeded and
        the last request did not fail; skipped when only lookups found nothing to change."""
        if self.last.status == 0 or self.last.status >= 400:
            return Outcome.FAILURE
        if self.last_write is not None and 200 <= self.last_write.status < 400:
            return Outcome.SUCCESS
        return Outcome.SKIPPED

    @property
    def done(self) -> str | None:
        """The latest write the target carried out in the cycle (create, update...), if any: what
        the account is now, even when a later request of the cycle failed."""
        return self.last_done.operation if self.last_done is not None else None

    @property
    def operation(self) -> str:
        """The write the user's cycle was about (create, update, ...), or "none"."""
        return self.last_write.operation if self.last_write is not None else "none"

    def to_dict(self) -> list:
        """A compact JSON form (a list: one is stored per user and cycle).

        Form 2: `[2, first_us, last_us - first_us, requests, writes, failures, lookups, last,
        last_write, last_failure(, found, missed(, last_done))]`, each mark `[ts_us - first_us, id,
        operation, status]`, and a mark that is `last` again written as 1; `last_done` only when it
        is not `last_write` (written as 2 when it is not there at all: a cycle whose writes all
        failed). Half the bytes of form 1 (the same without the leading 2, absolute times and
        repeated marks), which is still read. A summary stored before `last_done` was kept reads
        it as `last_write` when that succeeded, else as none."""
        first = self.first_us
        data = [2, first, self.last_us - first, self.requests, self.writes, self.failures, self.lookups,
                _mark_list(self.last, first), self._again(self.last_write), self._again(self.last_failure)]
        if self.last_done != _done_of(self.last_write):
            done = 2 if self.last_done is None else self._again(self.last_done)
            return data + [self.found, self.missed, done]
        return data + [self.found, self.missed] if (self.found or self.missed) else data

    def _again(self, mark: Mark | None) -> list | int | None:
        return 1 if mark is not None and mark == self.last else _mark_list(mark, self.first_us)

    @classmethod
    def from_dict(cls, data: list | dict) -> Summary:
        if isinstance(data, dict):  # the first, keyed form
            marks = {k: (Mark(**data[k]) if data.get(k) else None) for k in ("last", "last_write", "last_failure")}
            return cls(**{**data, **marks, "last_done": _done_of(marks["last_write"])})
        if data[0] == 2:
            _v, first_us, span, requests, writes, failures, lookups, last, last_write, last_failure = data[:10]
            found, missed = data[10:12] if len(data) >= 12 else (0, 0)
            mark = Mark(first_us + last[0], last[1], last[2], last[3])
            write = _mark_of(last_write, first_us, mark)
            done = data[12] if len(data) >= 13 else None
            return cls(first_us, first_us + span, requests, writes, failures, lookups, mark,
                       write, _mark_of(last_failure, first_us, mark), found, missed,
                       _done_of(write) if done is None else None if done == 2 else _mark_of(done, first_us, mark))
        first_us, last_us, requests, writes, failures, lookups, last, last_write, last_failure = data[:9]
        found, missed = data[9:11] if len(data) >= 11 else (0, 0)
        write = Mark(*last_write) if last_write else None
        return cls(first_us, last_us, requests, writes, failures, lookups, Mark(*last),
                   write, Mark(*last_failure) if last_failure else None, found, missed, _done_of(write))


def _mark_of(data: list | int | None, first_us: int, last: Mark) -> Mark | None:
    if data is None:
        return None
    if data == 1:
        return last
    return Mark(first_us + data[0], data[1], data[2], data[3])  # type: ignore[index]


def _done_of(write: Mark | None) -> Mark | None:
    """The latest write carried out, as far as the latest write tells: itself, if it succeeded."""
    return write if write is not None and not write.bad else None


def _mark_list(mark: Mark | None, first_us: int) -> list | None:
    return [mark.ts_us - first_us, mark.id, mark.operation, mark.status] if mark else None


def bucket_of(operation: str) -> str:
    """The matrix row of a user's operation: enable and none count under "other"."""
    return operation if operation in BUCKETS else "other"


def _latest(a: Mark | None, b: Mark | None) -> Mark | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a.order >= b.order else b


def empty_counts() -> dict[str, dict[str, int]]:
    return {bucket: {outcome: 0 for outcome in OUTCOMES} for bucket in BUCKETS}
