"""What one Entra provisioning event and one synchronization job status are, once parsed.

Field names follow Microsoft Graph (`provisioningObjectSummary`, `synchronizationJob`), in
snake case; times are aware UTC and end in `_at`. Empty strings in Entra's data are None here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class ProvisioningAction(StrEnum):
    """Graph's provisioningAction (the portal's Action column)."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    DISABLE = "disable"
    STAGED_DELETE = "stagedDelete"  # a delete held back by accidental-deletion prevention
    OTHER = "other"  # e.g. "source and target system details already match"


class ProvisioningStatus(StrEnum):
    """Graph's provisioningStatusInfo.status (the portal's Status column)."""

    SUCCESS = "success"
    FAILURE = "failure"
    SKIPPED = "skipped"
    WARNING = "warning"


class RawFormat(StrEnum):
    """Where a record came from; the values are the CLI's --format names."""

    GRAPH = "entra-graph"
    PORTAL_JSON = "entra-portal-json"
    CSV = "entra-csv"
    LOG_ANALYTICS = "log-analytics"


@dataclass(frozen=True, slots=True)
class Identity:
    """A provisionedIdentity: who the event is about, in the source or in the target."""

    id: str | None = None  # the source's object id, or the target's (SCIM) id; None when not created
    display_name: str | None = None
    identity_type: str | None = None  # "User", "Group", ...
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ServicePrincipal:
    id: str | None = None
    display_name: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One provisioningStep: import, scoping, matching, processing, referenceResolution, export."""

    name: str | None
    step_type: str | None
    status: str | None
    description: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # redacted


@dataclass(frozen=True, slots=True)
class ModifiedProperty:
    display_name: str | None
    old_value: Any = None  # Graph gives strings ("True"); secrets are redacted or masked
    new_value: Any = None


@dataclass(frozen=True, slots=True)
class ProvisioningEvent:
    """One provisioning event (a row of Entra's provisioning logs), redacted.

    `record_no` is the record's position in its file (1-based) or in its pull. `user_name` is
    the userName Entra sent to the target when the event shows it, else the source's
    userPrincipalName (see parts.py, `user_name_of`).
    """

    record_no: int
    id: str | None
    change_id: str | None
    cycle_id: str | None
    job_id: str | None
    activity_at: datetime
    action: ProvisioningAction
    status: ProvisioningStatus
    source: Identity
    target: Identity
    user_name: str | None = None
    external_id: str | None = None
    error_code: str | None = None
    error_category: str | None = None
    reason: str | None = None
    recommended_action: str | None = None
    retry_count: int | None = None  # "This operation was retried N times"
    next_retry_at: datetime | None = None  # "It will be retried again after this date: <UTC>"
    steps: tuple[Step, ...] = ()
    modified_properties: tuple[ModifiedProperty, ...] = ()
    duration_ms: int | None = None
    service_principal: ServicePrincipal | None = None
    raw_format: str = RawFormat.GRAPH
    action_raw: str | None = None  # Entra's spelling, when it was not one of the known ones
    extra: dict[str, Any] = field(default_factory=dict)  # other fields (tenantId, systems...), redacted


def is_failure(event: ProvisioningEvent) -> bool:
    return event.status is ProvisioningStatus.FAILURE


def counts_toward_deletion_threshold(event: ProvisioningEvent) -> bool:
    """Deletes, disables and the deletes held back as stagedDelete all count [ACC]."""
    return event.action in _DELETIONS


def is_escrow_retry(event: ProvisioningEvent) -> bool:
    """Entra is retrying an earlier failure of this object (an `EntryEscrowRetry` step)."""
    return any(step.name == "EntryEscrowRetry" for step in event.steps)


_DELETIONS = frozenset({ProvisioningAction.DELETE, ProvisioningAction.DISABLE, ProvisioningAction.STAGED_DELETE})


# -- synchronizationJob ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyncError:
    """synchronizationError."""

    code: str | None = None
    message: str | None = None
    tenant_actionable: bool | None = None


@dataclass(frozen=True, slots=True)
class Quarantine:
    """synchronizationQuarantine; Graph gives it only while a quarantine series is on record."""

    reason: str | None = None  # quarantineReason, e.g. EncounteredEscrowProportionThreshold
    current_began_at: datetime | None = None
    next_attempt_at: datetime | None = None
    series_began_at: datetime | None = None
    series_count: int | None = None
    error: SyncError | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """synchronizationProgress: the portal's progress bar counts pages, not users [WHEN]."""

    completed_units: int | None = None
    total_units: int | None = None
    units: str | None = None
    observed_at: datetime | None = None

    @property
    def fraction(self) -> float | None:
        if self.completed_units is None or not self.total_units:
            return None
        return min(1.0, max(0.0, self.completed_units / self.total_units))


@dataclass(frozen=True, slots=True)
class TaskExecution:
    """synchronizationTaskExecution: one run of the job and its counts."""

    activity_identifier: str | None = None
    state: str | None = None  # Succeeded, Failed, EntryLevelErrors
    began_at: datetime | None = None
    ended_at: datetime | None = None
    count_entitled: int | None = None
    count_entitled_for_provisioning: int | None = None
    count_escrowed: int | None = None
    count_escrowed_raw: int | None = None
    count_exported: int | None = None
    count_exports: int | None = None
    count_imported: int | None = None
    count_imported_deltas: int | None = None
    count_imported_reference_deltas: int | None = None
    error: SyncError | None = None

    @property
    def duration(self) -> timedelta | None:
        if self.began_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.began_at


@dataclass(frozen=True, slots=True)
class Schedule:
    interval: timedelta | None = None  # None when absent or not a fixed length (months, years)
    interval_raw: str | None = None  # ISO 8601 as Graph gave it, e.g. "PT40M"
    state: str | None = None  # Active, Disabled, Paused
    expiration_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A synchronizationJob and its status, as Graph returns it (`GET .../jobs/{id}`)."""

    job_id: str | None = None
    template_id: str | None = None
    code: str | None = None  # NotConfigured, NotRun, Active, Paused, Quarantine
    quarantine: Quarantine | None = None
    progress: tuple[Progress, ...] = ()
    last_execution: TaskExecution | None = None
    last_successful_execution: TaskExecution | None = None
    last_successful_execution_with_exports: TaskExecution | None = None
    steady_state_first_achieved_at: datetime | None = None  # None: never (Graph: 0001-01-01)
    steady_state_last_achieved_at: datetime | None = None
    schedule: Schedule | None = None
    count_successive_complete_failures: int | None = None
    escrows_pruned: bool | None = None
    synchronized_entry_counts: dict[str, int] = field(default_factory=dict)  # by object type
    troubleshooting_url: str | None = None
    settings: dict[str, str] = field(default_factory=dict)  # synchronizationJobSettings

    @property
    def is_quarantined(self) -> bool:
        """Entra says the job is in quarantine (a paused job may still carry an old series)."""
        return (self.code or "").lower() == "quarantine"
