"""Who gets which email about a job: subscriptions, the job's notification recipients, [reports]."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dashboard.models import NOTIFY_KINDS, NOTIFY_ROLES, Job, Subscription
from dashboard.settings import Settings

DEFAULT_KINDS = frozenset({"failures", "quarantine"})  # what a job's notification_recipients get


class SubscriptionError(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)


@dataclass(frozen=True)
class Recipient:
    address: str
    role: str  # admin or support
    kinds: frozenset[str]
    source: str  # subscription, job, config


def recipients_for(session: Session, job: Job, kind: str, settings: Settings) -> list[Recipient]:
    """The addresses that get `kind` emails about `job` right away (not only in the digest)."""
    return [r for r in all_recipients(session, job, settings) if kind in r.kinds]


def all_recipients(session: Session, job: Job, settings: Settings) -> list[Recipient]:
    """Explicit subscriptions first; an address named there is not also taken from the defaults."""
    found: dict[str, Recipient] = {}
    for sub in session.scalars(select(Subscription).where(Subscription.job_id == job.id).order_by(Subscription.id)):
        found[sub.address.lower()] = Recipient(sub.address, sub.role, sub.kind_set, "subscription")
    for address in job.recipients:
        if address.lower() not in found:
            found[address.lower()] = Recipient(address, "admin", DEFAULT_KINDS, "job")
    for address in settings.reports.recipients:
        key = address.lower()
        if key not in found:
            found[key] = Recipient(address, "admin", frozenset({"reports"}), "config")
        elif found[key].source == "job":
            found[key] = Recipient(address, "admin", found[key].kinds | {"reports"}, "job")
    return list(found.values())


def subscribe(session: Session, job: Job, address: str, *, kinds: Iterable[str], role: str) -> Subscription:
    """Add or replace the address's subscription to the job."""
    address = address.strip()
    kind_set = sorted({k.strip() for k in kinds if k.strip()})
    if "@" not in address or any(c.isspace() or c in ",;<>" for c in address):
        raise SubscriptionError(f"'{address}' is not an email address")
    unknown = [k for k in kind_set if k not in NOTIFY_KINDS]
    if unknown or not kind_set:
        raise SubscriptionError(f"kinds must be some of {', '.join(NOTIFY_KINDS)}")
    if role not in NOTIFY_ROLES:
        raise SubscriptionError(f"role must be one of {', '.join(NOTIFY_ROLES)}")
    row = session.scalar(select(Subscription).where(Subscription.job_id == job.id, Subscription.address == address))
    row = row or Subscription(job_id=job.id, address=address)
    row.kinds, row.role = ",".join(kind_set), role
    session.add(row)
    session.commit()
    return row


def unsubscribe(session: Session, job: Job, address: str) -> bool:
    gone = session.execute(delete(Subscription).where(Subscription.job_id == job.id,
                                                      Subscription.address == address.strip())).rowcount
    session.commit()
    return gone > 0


def digest_subscribers(session: Session) -> dict[str, list[tuple[Job, str]]]:
    """Address -> the jobs (and role) it wants in its daily digest."""
    out: dict[str, list[tuple[Job, str]]] = {}
    rows = session.execute(select(Subscription, Job).join(Job, Job.id == Subscription.job_id)
                           .order_by(Subscription.address, Job.name)).all()
    for sub, job in rows:
        if "digest" in sub.kind_set:
            out.setdefault(sub.address, []).append((job, sub.role))
    return out
