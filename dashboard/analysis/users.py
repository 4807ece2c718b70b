"""A user's state across cycles: in sync, failing since when (and how many cycles), disabled,
deleted, or never provisioned."""
from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class UserState(StrEnum):
    IN_SYNC = "in_sync"
    FAILING = "failing"
    DISABLED = "disabled"
    DELETED = "deleted"
    NEVER_PROVISIONED = "never_provisioned"
    UNKNOWN = "unknown"


USER_STATES = tuple(state.value for state in UserState)


class CycleOutcome(NamedTuple):
    """One row of a user's history: their outcome in one cycle."""

    cycle_id: int
    cycle_started_us: int
    operation: str  # create, update, disable, enable, delete, none
    outcome: str  # success, failure, skipped
    last_us: int
    last_failure_id: int | None = None
    last_failure_us: int | None = None
    lookup: bool | None = None  # only lookups: True one found the account, False none did; None unknown
    done: str | None = None  # the latest write the target carried out in the cycle (a failed one's too)


class StateOfUser(NamedTuple):
    state: UserState
    provisioned: bool
    last_cycle_id: int | None
    last_seen_us: int | None
    failing_since_us: int | None = None
    failing_since_cycle_id: int | None = None
    streak: int = 0  # consecutive cycles (in which the user took part) that failed
    last_failure_exchange_id: int | None = None


class Prefix(NamedTuple):
    """What a user's cycles so far say, folded in time order: enough to go on folding.

    The state of a user is `state_after(prefix of all but the last cycle, the last cycle)`, so
    ingest can keep the prefix and the last cycle per user and, when a batch brings that cycle
    again or later ones, fold only those instead of reloading the whole history (a property test
    says the two agree on random histories)."""

    # (Named tuples, not frozen dataclasses, here and above: made per user and batch at ingest.)
    provisioned: bool = False
    disabled: bool = False
    deleted: bool = False
    streak: int = 0
    since_us: int | None = None
    since_cycle: int | None = None
    last_failure: int | None = None
    seen_us: int | None = None  # the latest last_us folded in

    def step(self, row: CycleOutcome) -> Prefix:
        seen = row.last_us if self.seen_us is None else max(self.seen_us, row.last_us)
        provisioned, disabled, deleted = self.provisioned, self.disabled, self.deleted
        if row.outcome == "failure":
            # what the cycle did before its failure stays done: a create that succeeded, then a
            # request that failed (a PATCH of a stale id), leaves the account there
            provisioned, disabled, deleted = _after_write(row.done, provisioned, disabled, deleted)
            since_us, since_cycle = self.since_us, self.since_cycle
            if self.streak == 0:
                since_us, since_cycle = row.last_failure_us or row.last_us, row.cycle_id
            return Prefix(provisioned, disabled, deleted, self.streak + 1, since_us, since_cycle,
                          row.last_failure_id, seen)
        if row.outcome == "skipped":
            if row.lookup is True:  # the lookup found the account: it is there, nothing to change
                provisioned = True
            elif row.lookup is False and provisioned:  # it was there, and the target has it no more
                deleted = True
        else:
            provisioned, disabled, deleted = _after_write(row.operation, provisioned, disabled, deleted)
        return Prefix(provisioned, disabled, deleted, 0, None, None, self.last_failure, seen)

    def to_list(self) -> list:
        """Compact JSON: the three flags as one number, then the rest."""
        flags = self.provisioned | self.disabled << 1 | self.deleted << 2
        return [flags, self.streak, self.since_us, self.since_cycle, self.last_failure, self.seen_us]

    @classmethod
    def from_list(cls, values: list) -> Prefix:
        flags, *rest = values
        return cls(bool(flags & 1), bool(flags & 2), bool(flags & 4), *rest)


def _after_write(operation: str | None, provisioned: bool, disabled: bool, deleted: bool) -> tuple[bool, bool, bool]:
    """The account's flags after a write the target carried out."""
    if operation in ("create", "update", "enable"):
        return True, False, False
    if operation == "disable":
        return True, True, deleted
    if operation == "delete":
        return provisioned, disabled, True
    return provisioned, disabled, deleted


def in_order(history: list[CycleOutcome]) -> list[CycleOutcome]:
    return sorted(history, key=lambda r: (r.cycle_started_us, r.cycle_id))


def prefix_of(ordered: list[CycleOutcome], start: Prefix | None = None) -> Prefix:
    prefix = start or Prefix()
    for row in ordered:
        prefix = prefix.step(row)
    return prefix


def user_state(history: list[CycleOutcome]) -> StateOfUser:
    """Fold a user's cycles in time order (the order given does not matter)."""
    if not history:
        return StateOfUser(UserState.UNKNOWN, False, None, None)
    ordered = in_order(history)
    return state_after(prefix_of(ordered[:-1]), ordered[-1])


def state_after(prefix: Prefix, last: CycleOutcome) -> StateOfUser:
    """The state of a user whose cycles before `last` fold to `prefix`."""
    done = prefix.step(last)
    if done.streak:
        state = UserState.FAILING
    elif done.deleted:
        state = UserState.DELETED
    elif done.disabled:
        state = UserState.DISABLED
    elif done.provisioned:
        state = UserState.IN_SYNC
    else:
        state = UserState.NEVER_PROVISIONED
    return StateOfUser(
        state=state,
        provisioned=done.provisioned,
        last_cycle_id=last.cycle_id,
        last_seen_us=done.seen_us,
        failing_since_us=done.since_us,
        failing_since_cycle_id=done.since_cycle,
        streak=done.streak,
        last_failure_exchange_id=done.last_failure,
    )
