"""Provisioning jobs and their ingest tokens: create, find, list, revoke."""
from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import fields
from typing import Any

from sqlalchemy import select

from dashboard.db import db
from dashboard.models import IngestToken, Job
from dashboard.settings import JobSettings, QuarantineSettings
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


JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # a URL path segment as it is


def check_job_name(name: str) -> str:
    name = name.strip()
    if not JOB_NAME.fullmatch(name):
        raise JobError("a job name is letters, digits, '.', '_' and '-' (at most 100), starting with a letter or digit")
    return name


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


class JobSettingsError(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)


QUARANTINE_KEYS = {f.name: f.type for f in fields(QuarantineSettings)}  # "int" or "float" (annotations are strings)


def parse_overrides(text: str) -> dict[str, Any]:
    """A job's quarantine thresholds as typed on the page: a JSON object of [quarantine] keys."""
    text = (text or "").strip() or "{}"
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise JobSettingsError(f"the thresholds are not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise JobSettingsError("the thresholds must be a JSON object, e.g. {\"min_failures\": 50}")
    for key, value in data.items():
        kind = QUARANTINE_KEYS.get(key)
        if kind is None:
            raise JobSettingsError(f"unknown threshold '{key}': the keys are those of [quarantine] "
                                   f"({', '.join(QUARANTINE_KEYS)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind == "int" and not isinstance(value, int)):
            raise JobSettingsError(f"threshold '{key}' must be {'a whole number' if kind == 'int' else 'a number'}")
        if value < 0 or (kind == "float" and value > 1):
            raise JobSettingsError(f"threshold '{key}' is out of range: {value}")
    return data


def update_job(name: str, *, display_name: str, scope_size: int | None, overrides: dict[str, Any]) -> Job:
    """Display name, scope size (the users in scope: the expected count of a cycle) and thresholds."""
    if scope_size is not None and scope_size < 0:
        raise JobSettingsError("the scope size cannot be negative")
    parse_overrides(json.dumps(overrides))  # the same checks as the page's text
    job = get_job(name)
    job.display_name = display_name.strip()[:200]
    job.scope_size = scope_size
    job.quarantine_overrides = json.dumps(overrides, sort_keys=True)
    db.session.commit()
    return job


def list_jobs() -> list[Job]:
    return list(db.session.scalars(select(Job).order_by(Job.name)))


def tokens_of(job: Job) -> list[IngestToken]:
    """The job's ingest tokens, live first, newest first (prefixes only: the tokens are not stored)."""
    return list(db.session.scalars(select(IngestToken).where(IngestToken.job_id == job.id)
                                   .order_by(IngestToken.revoked_at.is_not(None), IngestToken.id.desc())))


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
