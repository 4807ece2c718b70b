"""Judge a job's health as Entra would: quarantine reasons, back-off, stalls, early warning.

Numbers and their sources are in docs/analysis.md. The judgement is a fold over completed
cycles in time order (`advance`), plus what the clock adds (`status_at`): the next expected
attempt while quarantined, the 28-day disable, and a stall when traffic stops.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

US = 1_000_000
HOUR_US = 3600 * US
DAY_US = 24 * HOUR_US


class State(StrEnum):
    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    WARNING = "warning"
    QUARANTINED = "quarantined"
    DISABLED = "disabled"
    STALLED = "stalled"


class Reason(StrEnum):
    """Entra's quarantineReason values that traffic can show."""

    CREDENTIALS = "EncounteredQuarantineException"
    PROPORTION = "EncounteredEscrowProportionThreshold"
    TOTAL = "EncounteredTotalEscrowThreshold"
    DELETES = "TooManyDeletes"


EXPLANATIONS = {
    "credentials": "The target rejected Entra's credentials (401/403): Entra quarantines regardless of counts.",
    "compliance": "A lookup by filter answered 404 instead of 200 with an empty ListResponse: Entra treats "
    "the endpoint as not SCIM-compliant and quarantines.",
    Reason.PROPORTION: "More than {proportion:.0%} of the cycle's provisioning events failed, with at least "
    "{min_failures:,} failures.",
    Reason.TOTAL: "More than {total_failures:,} failures, or more than {absolute_failures:,} counting "
    "reference failures.",
    Reason.DELETES: "More than {deletion_threshold:,} deletes and disables in one cycle: accidental-deletion "
    "prevention holds them and quarantines the job.",
}


@dataclass(frozen=True)
class Thresholds:
    """Entra's documented figures (docs/analysis.md); configurable per job for small tenants."""

    min_failures: int = 5000
    proportion: float = 0.40
    total_failures: int = 40_000
    absolute_failures: int = 60_000
    deletion_threshold: int = 500
    credential_share: float = 0.5  # share of a cycle's requests answered 401/403 that means "rejected"


@dataclass(frozen=True)
class Timing:
    interval_us: int = 40 * 60 * US  # Entra's ~40 minutes between cycles
    stall_grace_us: int = 20 * 60 * US
    disable_after_us: int = 28 * DAY_US
    backoff_us: tuple[int, ...] = (6 * HOUR_US, 12 * HOUR_US, 24 * HOUR_US)  # after the first failure


@dataclass(frozen=True)
class CycleFacts:
    """What judging needs of one completed cycle."""

    id: int
    started_us: int
    ended_us: int
    requests: int
    rejected_credentials: int
    lookup_404s: int
    succeeded: int  # users
    failed: int  # users (non-reference failures)
    reference_failures: int
    deletes: int  # users deleted or disabled
    evidence: tuple[int, ...] = ()  # exchange ids behind a verdict


@dataclass(frozen=True)
class Verdict:
    state: State
    reason: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class Snapshot:
    """The fold's state after the last judged cycle."""

    state: State = State.UNKNOWN
    reason: str | None = None
    detail: str = ""
    since_us: int | None = None
    series_began_us: int | None = None  # first quarantine of the current series
    last_cycle_end_us: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Snapshot:
        if not data:
            return cls()
        return cls(**{**data, "state": State(data.get("state", "unknown"))})


@dataclass(frozen=True)
class Transition:
    at_us: int
    old: State
    new: State
    reason: str | None
    detail: str
    cycle_id: int | None = None
    evidence: tuple[int, ...] = ()


def judge_cycle(cycle: CycleFacts, thresholds: Thresholds) -> Verdict:
    """Would this cycle put (or keep) the job in quarantine, and why?"""
    t = thresholds
    if cycle.rejected_credentials and cycle.rejected_credentials >= t.credential_share * max(cycle.requests, 1):
        return Verdict(State.QUARANTINED, Reason.CREDENTIALS,
                       f"credentials rejected: {cycle.rejected_credentials} of {cycle.requests} requests answered 401/403")
    if cycle.lookup_404s:
        return Verdict(State.QUARANTINED, Reason.CREDENTIALS,
                       f"SCIM compliance: {cycle.lookup_404s} lookups by filter answered 404")
    if cycle.deletes > t.deletion_threshold:
        return Verdict(State.QUARANTINED, Reason.DELETES,
                       f"{cycle.deletes} deletes and disables in one cycle (threshold {t.deletion_threshold})")
    if cycle.failed > t.total_failures or cycle.failed + cycle.reference_failures > t.absolute_failures:
        return Verdict(State.QUARANTINED, Reason.TOTAL,
                       f"{cycle.failed} failures ({cycle.reference_failures} reference failures)")
    events = cycle.failed + cycle.succeeded
    if cycle.failed >= t.min_failures and cycle.failed > t.proportion * events:
        return Verdict(State.QUARANTINED, Reason.PROPORTION,
                       f"{cycle.failed} of {events} provisioning events failed ({cycle.failed / events:.0%})")
    if cycle.failed or cycle.reference_failures or cycle.rejected_credentials:
        return Verdict(State.WARNING, None,
                       f"{cycle.failed} user{'' if cycle.failed == 1 else 's'} failed, below the quarantine thresholds")
    return Verdict(State.HEALTHY)


def advance(snapshot: Snapshot, cycles: list[CycleFacts], thresholds: Thresholds) -> tuple[Snapshot, list[Transition]]:
    """Fold completed cycles (any order given; judged in time order) into the snapshot."""
    transitions: list[Transition] = []
    for cycle in sorted(cycles, key=lambda c: (c.ended_us, c.id)):
        verdict = judge_cycle(cycle, thresholds)
        old = snapshot.state
        at = cycle.ended_us
        if verdict.state is State.QUARANTINED:
            entering = old is not State.QUARANTINED
            reason_changed = not entering and verdict.reason != snapshot.reason
            snapshot = Snapshot(
                state=State.QUARANTINED,
                reason=verdict.reason,
                detail=verdict.detail,
                since_us=at if entering or reason_changed else snapshot.since_us,
                series_began_us=at if entering else snapshot.series_began_us,
                last_cycle_end_us=at,
            )
            if entering or reason_changed:
                transitions.append(Transition(at, old, State.QUARANTINED, verdict.reason, verdict.detail, cycle.id, cycle.evidence))
        else:
            changed = verdict.state is not old
            snapshot = Snapshot(
                state=verdict.state,
                reason=None,
                detail=verdict.detail,
                since_us=at if changed else snapshot.since_us,
                series_began_us=None,
                last_cycle_end_us=at,
            )
            if changed:
                detail = "quarantine lifted: the cycle met no quarantine criterion" if old is State.QUARANTINED else verdict.detail
                transitions.append(Transition(at, old, verdict.state, None, detail, cycle.id, cycle.evidence))
    return snapshot, transitions


@dataclass(frozen=True)
class HealthStatus:
    """The job's health at `now`: what the panel, the API and the emails show."""

    state: State
    reason: str | None
    detail: str
    since: datetime | None
    explanation: str = ""
    next_attempt: datetime | None = None
    disabled_at: datetime | None = None
    last_traffic: datetime | None = None
    stalled_since: datetime | None = None
    quarantine_series_began: datetime | None = None
    extra: dict = field(default_factory=dict)


def next_attempt_us(series_began_us: int, after_us: int, timing: Timing) -> int:
    """Entra's documented retry schedule from the first failure: 6 h, 12 h, 24 h, then daily."""
    for offset in timing.backoff_us:
        if series_began_us + offset > after_us:
            return series_began_us + offset
    last = series_began_us + timing.backoff_us[-1]
    days = (after_us - last) // DAY_US + 1
    return last + days * DAY_US


def status_at(
    snapshot: Snapshot, *, now_us: int, last_traffic_us: int | None, timing: Timing, thresholds: Thresholds
) -> HealthStatus:
    """Add the clock to the fold: back-off while quarantined, the 28-day disable, stalls."""
    since = _dt(snapshot.since_us)
    common = dict(last_traffic=_dt(last_traffic_us), detail=snapshot.detail, reason=snapshot.reason)
    if snapshot.state is State.QUARANTINED and snapshot.series_began_us is not None:
        disabled_us = snapshot.series_began_us + timing.disable_after_us
        if now_us >= disabled_us:
            return HealthStatus(State.DISABLED, since=_dt(disabled_us), disabled_at=_dt(disabled_us),
                                quarantine_series_began=_dt(snapshot.series_began_us),
                                explanation="In quarantine for more than four weeks: Entra disables the job. "
                                "Fix the cause, then restart provisioning.", **common)
        attempt = next_attempt_us(snapshot.series_began_us, max(now_us, last_traffic_us or 0), timing)
        return HealthStatus(State.QUARANTINED, since=since, next_attempt=_dt(attempt), disabled_at=_dt(disabled_us),
                            quarantine_series_began=_dt(snapshot.series_began_us),
                            explanation=explain(snapshot.reason, snapshot.detail, thresholds), **common)
    if last_traffic_us is not None and now_us - last_traffic_us > timing.interval_us + timing.stall_grace_us:
        stalled = last_traffic_us + timing.interval_us + timing.stall_grace_us
        return HealthStatus(State.STALLED, since=_dt(stalled), stalled_since=_dt(stalled),
                            explanation=f"No traffic since {_dt(last_traffic_us):%Y-%m-%dT%H:%M:%SZ}: longer than the "
                            "cycle interval plus grace. Provisioning appears to have stopped (job paused or "
                            "disabled, credentials or network failing before requests reach the target).",
                            **common)
    return HealthStatus(snapshot.state, since=since, explanation=explain(snapshot.reason, snapshot.detail, thresholds)
                        if snapshot.state is not State.UNKNOWN else "No completed cycle yet.", **common)


def explain(reason: str | None, detail: str, thresholds: Thresholds) -> str:
    if reason == Reason.CREDENTIALS:
        return EXPLANATIONS["compliance" if "404" in detail else "credentials"]
    if reason in EXPLANATIONS:
        return EXPLANATIONS[reason].format(**asdict(thresholds))
    return detail


CREDENTIALS_FIX = (
    "Fix: in the Entra admin center, open the enterprise application's Provisioning page, Admin "
    "Credentials: enter the tenant URL and a valid secret token (a new one from the target if it "
    "expired or was revoked), select Test Connection, then Save. If the job is quarantined already, "
    "restart provisioning after saving."
)


@dataclass(frozen=True)
class EarlyWarning:
    likely: bool
    projected_failures: int
    failure_share: float
    message: str
    reason: str | None = None  # Entra's quarantineReason when the running cycle already decides it
    fix: str = ""


def early_warning(*, processed: int, failed: int, rejected_credentials: int, requests: int,
                  lookup_404s: int, expected: int | None, thresholds: Thresholds) -> EarlyWarning:
    """Project a running cycle's failures to its expected size against the thresholds.

    Credentials rejected on most of the cycle's requests decide it within the cycle (the token
    guard): Entra quarantines for EncounteredQuarantineException whatever the counts, so the
    warning says so, with the fix, rather than "likely"."""
    share = failed / processed if processed else 0.0
    projected = round(share * max(expected or processed, processed))
    reasons = []
    credentials = bool(rejected_credentials and rejected_credentials >= thresholds.credential_share * max(requests, 1))
    if lookup_404s:
        reasons.append("lookups answer 404")
    if projected >= thresholds.min_failures and share > thresholds.proportion:
        reasons.append(f"{share:.0%} of users failing, projected {projected:,} failures")
    if projected > thresholds.total_failures:
        reasons.append(f"projected {projected:,} failures exceed {thresholds.total_failures:,}")
    if credentials:
        message = (f"Entra will quarantine this job ({Reason.CREDENTIALS}): the target rejected the credentials, "
                   f"{rejected_credentials} of {requests} requests in this cycle answered 401/403.")
        if reasons:
            message += " Also: " + "; ".join(reasons) + "."
        return EarlyWarning(True, projected, share, f"{message} {CREDENTIALS_FIX}", Reason.CREDENTIALS.value,
                            CREDENTIALS_FIX)
    if reasons:
        return EarlyWarning(True, projected, share, "Quarantine likely: " + "; ".join(reasons) + ".")
    return EarlyWarning(False, projected, share, "")


def _dt(value_us: int | None) -> datetime | None:
    if value_us is None:
        return None

    return datetime.fromtimestamp(value_us // US, UTC) + timedelta(microseconds=value_us % US)
