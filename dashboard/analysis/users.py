"""A user's state across cycles: in sync, failing since when (and how many cycles), disabled,
deleted, or never provisioned."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class UserState(StrEnum):
    IN_SYNC = "in_sync"
    FAILING = "failing"
    DISABLED = "disabled"
    DELETED = "deleted"
    NEVER_PROVISIONED = "never_provisioned"
    UNKNOWN = "unknown"


USER_STATES = tuple(state.value for state in UserState)


@dataclass(frozen=True)
class CycleOutcome:
    """One row of a user's history: their outcome in one cycle."""

    cycle_id: int
    cycle_started_us: int
    operation: str  # create, update, disable, enable, delete, none
    outcome: str  # success, failure, skipped
    last_us: int
    last_failure_id: int | None = None
    last_failure_us: int | None = None
    lookup: bool | None = None  # only lookups: True one found the account, False none did; None unknown


@dataclass(frozen=True)
class StateOfUser:
    state: UserState
    provisioned: bool
    last_cycle_id: int | None
    last_seen_us: int | None
    failing_since_us: int | None = None
    failing_since_cycle_id: int | None = None
    streak: int = 0  # consecutive cycles (in which the user took part) that failed
    last_failure_exchange_id: int | None = None


def user_state(history: list[CycleOutcome]) -> StateOfUser:
    """Fold a user's cycles in time order (the order given does not matter)."""
    if not history:
        return StateOfUser(UserState.UNKNOWN, False, None, None)
    provisioned = disabled = deleted = False
    streak = 0
    since_us = since_cycle = last_failure = None
    for row in sorted(history, key=lambda r: (r.cycle_started_us, r.cycle_id)):
        if row.outcome == "failure":
            if streak == 0:
                since_us, since_cycle = row.last_failure_us or row.last_us, row.cycle_id
            streak += 1
            last_failure = row.last_failure_id
            continue
        streak, since_us, since_cycle = 0, None, None
        if row.outcome == "skipped":
            if row.lookup is True:  # the lookup found the account: it is there, nothing to change
                provisioned = True
            elif row.lookup is False and provisioned:  # it was there, and the target has it no more
                deleted = True
            continue
        if row.operation in ("create", "update", "enable"):
            provisioned, disabled, deleted = True, False, False
        elif row.operation == "disable":
            provisioned, disabled = True, True
        elif row.operation == "delete":
            deleted = True
    last = max(history, key=lambda r: (r.cycle_started_us, r.cycle_id))
    if streak:
        state = UserState.FAILING
    elif deleted:
        state = UserState.DELETED
    elif disabled:
        state = UserState.DISABLED
    elif provisioned:
        state = UserState.IN_SYNC
    else:
        state = UserState.NEVER_PROVISIONED
    return StateOfUser(
        state=state,
        provisioned=provisioned,
        last_cycle_id=last.cycle_id,
        last_seen_us=max(r.last_us for r in history),
        failing_since_us=since_us,
        failing_since_cycle_id=since_cycle,
        streak=streak,
        last_failure_exchange_id=last_failure,
    )
