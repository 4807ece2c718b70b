"""PURE: the one state a job shows, from the best evidence.

Entra's own job status (imported synchronizationJob, reference section 1.8) is the better
evidence while it is fresh: when it says Quarantine, the job *is* quarantined by Entra, whatever
the traffic suggests. Our inference from the traffic (analysis.health) fills the gaps: no status
imported, an old status, or a status that does not say quarantine. Each headline says which
source it came from, and carries the disagreement (analysis.agreement) so every place that shows
the state can show it too.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from dashboard.analysis.agreement import KIND_WORDS, STALE_AFTER, reason_kind

DISABLE_AFTER = timedelta(days=28)  # Entra disables a job quarantined for four weeks (reference §1.8)

LABELS = {
    "quarantined": "Quarantined",
    "disabled": "Disabled after four weeks in quarantine",
    "stalled": "Stalled",
    "warning": "Warning",
    "healthy": "Healthy",
    "unknown": "Unknown",
}


@dataclass(frozen=True)
class EntraFacts:
    """What the decision needs of Entra's latest imported job status."""

    code: str | None
    observed_at: datetime
    reason: str | None = None  # quarantineReason
    since: datetime | None = None  # quarantine currentBegan
    series_began: datetime | None = None
    next_attempt: datetime | None = None
    error: str | None = None  # the quarantine error's message


@dataclass(frozen=True)
class Headline:
    state: str
    source: str  # "entra" (Entra's fresh status) or "inferred" (from the traffic we see)
    label: str  # what the badge and the header say, e.g. "Quarantined by Entra"
    reason: str | None
    since: datetime | None
    next_attempt: datetime | None
    disabled_at: datetime | None
    explanation: str
    inferred_state: str


def first_cycle_state(*, inferred_state: str, processed: int, failed: int) -> tuple[str, str] | None:
    """A first cycle that is still running has results before any cycle completes: say so
    rather than "unknown: No completed cycle yet". None when the inference stands."""
    if inferred_state != "unknown" or not processed:
        return None
    users = f"{processed:,} user{'s' if processed != 1 else ''}"
    if failed:
        return "warning", (f"First cycle still running: {failed:,} of {users} failed so far "
                           "(judged against the quarantine thresholds when it completes).")
    return "healthy", f"First cycle still running: {users} processed so far, none failed."


def decide(*, inferred_state: str, inferred_reason: str | None, inferred_since: datetime | None,
           inferred_next_attempt: datetime | None, inferred_disabled_at: datetime | None, explanation: str,
           entra: EntraFacts | None, now: datetime, stale_after: timedelta = STALE_AFTER) -> Headline:
    """The state to show at `now`: Entra's quarantine when its status is fresh, else our inference."""
    fresh = entra is not None and timedelta(0) <= now - entra.observed_at <= stale_after
    code = (entra.code or "").lower() if entra else ""
    if fresh and entra is not None and code == "quarantine":
        since = entra.since or entra.series_began
        began = entra.series_began or entra.since
        disabled_at = began + DISABLE_AFTER if began else None  # Entra's own status says when it disables
        state = "quarantined"
        kind = reason_kind(entra.reason)
        words = KIND_WORDS.get(kind or "", "no reason given")
        text = f"Entra's own job status says Quarantine: {words}."
        if entra.error:
            text += f" Entra's message: {entra.error}"
        return Headline(state, "entra", "Quarantined by Entra",
                        entra.reason, since, entra.next_attempt, disabled_at, text, inferred_state)
    if fresh and code == "paused" and inferred_state in ("stalled", "unknown"):
        return Headline("stalled", "entra", "Paused in Entra", None, inferred_since, None, None,
                        "Entra's own job status says Paused: provisioning was stopped in Entra, so nothing arrives. "
                        "Start provisioning again in Entra.", inferred_state)
    label = LABELS.get(inferred_state, inferred_state)
    return Headline(inferred_state, "inferred", f"{label} (inferred from traffic)", inferred_reason, inferred_since,
                    inferred_next_attempt, inferred_disabled_at, explanation, inferred_state)


_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]00:?00)")


def time_parts(text: str | None) -> list[dict[str, str]]:
    """A sentence split into text and RFC 3339 UTC moments, so a page renders each moment as a
    <time> element in the reader's zone: [{"text": "No traffic since "}, {"time": "2026-...Z"}, ...].
    Used for the sentences we write (stalls) and for Entra's own reason and error texts."""
    parts: list[dict[str, str]] = []
    at = 0
    text = text or ""
    for match in _STAMP.finditer(text):
        if match.start() > at:
            parts.append({"text": text[at:match.start()]})
        stamp = match.group()
        parts.append({"time": stamp if stamp.endswith("Z") else stamp[:-6 if ":" in stamp[-6:] else -5] + "Z"})
        at = match.end()
    if at < len(text):
        parts.append({"text": text[at:]})
    return parts
