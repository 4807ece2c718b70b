"""Provisioning jobs and their ingest tokens: create, find, list, revoke."""
from __future__ import annotations

import json
import secrets
from collections.abc import Iterable

from sqlalchemy import select

from dashboard.db import db
from dashboard.models import IngestToken, Job
from dashboard.settings import JobSettings
from dashboard.times import utc_now

TOKEN_PREFIX = "pmd_"


class JobError(LookupError):
    def __init__(self, message: str) -> None:
        super().__init__(message)


def get_job(name: str) -> Job:
    job = db.session.scalar(select(Job).where(Job.name == name))
    if job is None:
        raise JobError(f"no job named '{name}' (add it with `flask --app app job add {name}`)")
    return job


def add_job(
    name: str,
    *,
    display_name: str = "",
    source_system: str = "Microsoft Entra ID",
    target_system: str = "uniFLOW Online",
    recipients: Iterable[str] = (),
    scope_size: int | None = None,
) -> Job:
    if db.session.scalar(select(Job).where(Job.name == name)) is not None:
        raise JobError(f"a job named '{name}' already exists")
    job = Job(
        name=name,
        display_name=display_name,
        source_system=source_system,
        target_system=target_system,
        notification_recipients=",".join(recipients),
        scope_size=scope_size,
    )
    db.session.add(job)
    db.session.commit()
    return job


def sync_jobs(configured: Iterable[JobSettings]) -> None:
    """Create or update the jobs named in the configuration file."""
    for spec in configured:
        job = db.session.scalar(select(Job).where(Job.name == spec.name)) or Job(name=spec.name)
        job.display_name = spec.display_name
        job.source_system = spec.source_system
        job.target_system = spec.target_system
        job.notification_recipients = ",".join(spec.notification_recipients)
        job.scope_size = spec.scope_size
        job.quarantine_overrides = json.dumps(spec.quarantine or {})
        db.session.add(job)
    db.session.commit()


def create_token(job: Job) -> tuple[IngestToken, str]:
    """A new ingest token for the job: the row (hash only) and the token, to be shown once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = IngestToken(job_id=job.id, token_hash=IngestToken.hash_token(token), prefix=token[:12])
    db.session.add(row)
    db.session.commit()
    return row, token


def revoke_token(token_id: int) -> IngestToken:
    row = db.session.get(IngestToken, token_id)
    if row is None:
        raise JobError(f"no ingest token with id {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utc_now()
        db.session.commit()
    return row


def job_for_token(job_name: str, token: str) -> Job | None:
    """The job when `token` is a live token of the job named `job_name`, else None."""
    row = db.session.scalar(
        select(IngestToken).where(IngestToken.token_hash == IngestToken.hash_token(token))
    )
    if row is None or row.revoked_at is not None:
        return None
    job = db.session.get(Job, row.job_id)
    if job is None or job.name != job_name:
        return None
    row.last_used_at = utc_now()
    db.session.commit()
    return job
