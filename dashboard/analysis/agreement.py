"""PURE: does Entra's own job status agree with the health we infer from the traffic?

Entra's quarantineReason (reference section 1.8) and our reasons (analysis.health.Reason) map
through one table of kinds, so both sides are compared by kind."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# Entra's status is "old" when it has not been observed for two 40-minute intervals.
STALE_AFTER = timedelta(minutes=80)


# Entra's quarantineReason (reference §1.8) by kind; our reasons (analysis.health.Reason) use
# Entra's own spelling, so both sides map through this table.
REASON_KINDS = {
    "encounteredquarantineexception": "credentials",
    "encounteredescrowproportionthreshold": "escrow",
    "encounteredtotalescrowthreshold": "escrow",
    "encounteredbaseescrowthreshold": "escrow",
    "toomanydeletes": "deletes",
    "quarantinedondemand": "on_demand",
    "quarantineondemand": "on_demand",
    "ingestioninterrupted": "ingestion",
    "unknown": "unknown",
}


KIND_WORDS = {
    "credentials": "credentials or connection (EncounteredQuarantineException)",
    "escrow": "too many failures (escrow thresholds)",
    "deletes": "too many deletes (accidental-deletion prevention)",
    "on_demand": "set by Microsoft by hand (QuarantinedOnDemand)",
    "ingestion": "reading the source was interrupted (IngestionInterrupted)",
    "unknown": "not given (Unknown)",
}


OUR_QUARANTINE = frozenset({"quarantined", "disabled"})


def reason_kind(reason: str | None) -> str | None:
    """The kind of a quarantine reason, Entra's or ours; None when absent, "unknown" when unlisted."""
    if not reason:
        return None
    return REASON_KINDS.get(reason.strip().lower(), "unknown")


@dataclass(frozen=True)
class Comparison:
    """Entra's job status against our inferred health.

    `disagreement` is None when they agree or cannot be compared, "state" when one side says
    quarantine and the other does not, "reason" when both say quarantine for different kinds
    of reason. `stale`: Entra's status is older than `stale_after`, which may explain a
    disagreement.
    """

    comparable: bool
    disagreement: str | None
    message: str
    entra_quarantined: bool
    ours_quarantined: bool
    entra_kind: str | None
    our_kind: str | None
    age_s: float | None
    stale: bool


def compare_health(
    *, our_state: str, our_reason: str | None, entra_code: str | None, entra_reason: str | None,
    observed_at: datetime | None, now: datetime, stale_after: timedelta = STALE_AFTER,
) -> Comparison:
    """Do Entra's status code and quarantine reason agree with our state and reason?

    Our "unknown" state (no traffic yet) and a missing Entra code are not compared. Our
    "disabled" (quarantined four weeks) counts as quarantine. Reasons are compared by kind
    (`REASON_KINDS`): EncounteredEscrowProportionThreshold and EncounteredTotalEscrowThreshold
    are the same kind; a kind that is unknown on either side is not a disagreement.
    """
    age = (now - observed_at).total_seconds() if observed_at else None
    stale = age is not None and age > stale_after.total_seconds()
    entra_q = (entra_code or "").lower() == "quarantine"
    ours_q = our_state in OUR_QUARANTINE
    entra_kind = reason_kind(entra_reason) if entra_q else None
    our_kind = reason_kind(our_reason) if ours_q else None
    common = dict(entra_quarantined=entra_q, ours_quarantined=ours_q, entra_kind=entra_kind, our_kind=our_kind,
                  age_s=age, stale=stale)
    if not entra_code or our_state == "unknown":
        return Comparison(False, None, "Nothing to compare yet.", **common)
    note = " Entra's status is old: it may have changed since." if stale else ""
    if entra_q and not ours_q:
        why = f" ({KIND_WORDS[entra_kind]})" if entra_kind else ""
        return Comparison(True, "state", f"Entra says Quarantine{why}; the traffic we see says {our_state}.{note}", **common)
    if ours_q and not entra_q:
        return Comparison(True, "state", f"We infer {our_state} from the traffic; Entra's status code is {entra_code}.{note}",
                          **common)
    if entra_q and ours_q and entra_kind and our_kind and "unknown" not in (entra_kind, our_kind) \
            and entra_kind != our_kind:
        return Comparison(True, "reason", f"Both say quarantine, for different reasons: Entra {KIND_WORDS[entra_kind]}, "
                          f"ours {KIND_WORDS[our_kind]}.{note}", **common)
    if entra_q:
        return Comparison(True, None, "Entra and we both say quarantine.", **common)
    return Comparison(True, None, f"Entra ({entra_code}) and we ({our_state}) agree: no quarantine.", **common)
