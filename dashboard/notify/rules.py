"""Decide when an email is due: episodes, reminders, health events, retries, digests. PURE.

An episode is one problem of a job from when it began until it was resolved (a failing error
signature, a quarantine, a stall, an early warning). Each evaluation compares an episode before
and after it (`should_notify`): one email when it opens, a reminder when it is still open after
the reminder interval, one when it is resolved, and nothing for a problem that came and went
before anyone was told. `now` is always passed in.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

DELETES_REASON = "TooManyDeletes"
QUARANTINE_STATES = ("quarantined", "disabled")


class Notice(StrEnum):
    OPENED = "opened"
    CHANGED = "changed"
    REMINDER = "reminder"
    RESOLVED = "resolved"


class HealthEvent(StrEnum):
    QUARANTINE_ENTERED = "quarantine_entered"
    DELETION_THRESHOLD = "deletion_threshold"
    REASON_CHANGED = "reason_changed"
    DISABLED = "disabled"
    QUARANTINE_LIFTED = "quarantine_lifted"
    STALLED = "stalled"
    RESUMED = "resumed"


@dataclass(frozen=True)
class EpisodeView:
    """What the rules need of an episode."""

    began_at: datetime
    resolved_at: datetime | None = None
    notified_at: datetime | None = None  # the last email about it; None: nobody was told yet

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


def should_notify(previous: EpisodeView | None, current: EpisodeView, *, now: datetime, reminder: timedelta,
                  changed: bool = False) -> Notice | None:
    """The email due for an episode, from its state before (`previous`, None when it is new) and
    after an evaluation; `changed` when its substance changed meanwhile (a new quarantine reason)."""
    announced = previous is not None and previous.notified_at is not None
    if not current.is_open:
        # Every announced episode ends with a "resolved" email; one nobody heard of ends quietly.
        return Notice.RESOLVED if announced and previous is not None and previous.is_open else None
    if not announced:
        return Notice.OPENED
    if changed:
        return Notice.CHANGED
    assert previous is not None and previous.notified_at is not None
    if now - previous.notified_at >= reminder:
        return Notice.REMINDER
    return None


def health_event(old: str, new: str, reason: str | None) -> HealthEvent | None:
    """What a recorded health transition means for the people told about it (None: nothing to tell:
    first judgement, healthy <-> warning; failures are told through their signatures)."""
    if new == "quarantined":
        if reason == DELETES_REASON:
            return HealthEvent.DELETION_THRESHOLD
        return HealthEvent.REASON_CHANGED if old == "quarantined" else HealthEvent.QUARANTINE_ENTERED
    if new == "disabled":
        return HealthEvent.DISABLED
    if new == "stalled":
        return HealthEvent.STALLED
    if old == "stalled":
        return HealthEvent.RESUMED
    if old in QUARANTINE_STATES:
        return HealthEvent.QUARANTINE_LIFTED
    return None


def episode_kind_of(event: HealthEvent) -> str:
    return "stalled" if event in (HealthEvent.STALLED, HealthEvent.RESUMED) else "quarantine"


def opens_episode(event: HealthEvent) -> bool:
    return event not in (HealthEvent.QUARANTINE_LIFTED, HealthEvent.RESUMED)


def masks_other_failures(*, rejected_credentials: int, lookup_404s: int) -> bool:
    """A cycle whose credentials or lookups failed never reached the other errors: their absence
    from it says nothing about whether they are fixed."""
    return bool(rejected_credentials or lookup_404s)


def plan_signatures(open_keys: set[str], failing: set[str], *, masked: bool, processed_users: int
                    ) -> tuple[set[str], set[str]]:
    """(opened, resolved) signature episodes after a completed cycle that failed with `failing`."""
    opened = failing - open_keys
    if masked or processed_users == 0:
        return opened, set()
    return opened, open_keys - failing


def is_transient(status: int) -> bool:
    """Throttling, server errors and time-outs: Entra retries them and they usually clear."""
    return status == 0 or status == 429 or status >= 500


def is_worth_telling(*, status: int, cycles: int, transient_cycles: int, covered_by_quarantine: bool) -> bool:
    """Whether a new failing signature deserves its own email yet: a transient error only once it
    failed `transient_cycles` cycles in a row; a cause of quarantine is told by the quarantine email."""
    if covered_by_quarantine:
        return False
    return not is_transient(status) or cycles >= transient_cycles


def retry_delay(attempts: int, *, base: timedelta, cap: timedelta) -> timedelta:
    """Exponential back-off after the `attempts`-th failed delivery: base, 2 base, 4 base, ... cap."""
    return min(base * (2 ** min(max(attempts - 1, 0), 30)), cap)


def is_report_due(next_report_at: datetime | None, now: datetime, *, interval: timedelta) -> bool:
    """Due when never sent, or at the stored due time. A quarter interval of slack: the scheduler's
    tick that set the due time fires again a moment before it."""
    return next_report_at is None or next_report_at <= now + interval / 4


def next_report_due(now: datetime, *, interval: timedelta) -> datetime:
    return now + interval


def digest_day(now: datetime, *, hour: int) -> str | None:
    """The day (UTC, YYYY-MM-DD) whose digest is due at `now`; None before the digest hour."""
    return now.strftime("%Y-%m-%d") if now.hour >= hour else None


def capped(items: list, limit: int) -> tuple[list, int]:
    """The first `limit` items and how many more were left out."""
    return items[:limit], max(len(items) - limit, 0)
