"""The stored rows, by owner. Import them from here: `from dashboard.models import Job`.

jobs      what is watched (jobs, ingest tokens, the endpoint check's credential and history): written by admin/
traffic   what arrived (users, exchanges, rejects, Entra events): written by ingest/
analysis  what it means (cycles, outcomes, signatures, health): written by tracking/
notify    who is told what (subscriptions, outbox, reports, episodes): written by notify/
accounts  who may look (accounts, API tokens, failed sign-ins, audit log): written by admin/
ops       the scheduler's lease and run counts: written by lease.py
"""
from dashboard.models.accounts import Account, ApiToken, AuditEntry, SignInFailure
from dashboard.models.analysis import (
    Cycle,
    HealthTransition,
    JobAnalysis,
    Signature,
    SignatureUser,
    UserCycle,
)
from dashboard.models.jobs import EndpointCheck, EndpointCredential, IngestToken, Job
from dashboard.models.notify import (
    NOTIFY_KINDS,
    NOTIFY_ROLES,
    DigestRun,
    Episode,
    Notification,
    NotifyState,
    ReportRun,
    Subscription,
)
from dashboard.models.ops import SchedulerLease, SchedulerRunStat
from dashboard.models.traffic import (
    EntraEvent,
    EntraJobStatus,
    EntraPullState,
    Exchange,
    IngestRun,
    Reject,
    ScimUser,
    ScimUserAlias,
)

__all__ = [
    "Account", "ApiToken", "AuditEntry", "Cycle", "EndpointCheck", "EndpointCredential", "DigestRun", "EntraEvent", "EntraJobStatus", "EntraPullState", "Episode",
    "Exchange", "HealthTransition", "IngestRun", "IngestToken", "Job", "JobAnalysis", "NOTIFY_KINDS",
    "NOTIFY_ROLES", "Notification", "NotifyState", "Reject", "ReportRun", "SchedulerLease", "SchedulerRunStat", "ScimUser", "ScimUserAlias", "SignInFailure", "Signature",
    "SignatureUser", "Subscription", "UserCycle",
]
