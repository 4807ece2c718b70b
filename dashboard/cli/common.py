"""What the commands share."""
from __future__ import annotations

from datetime import datetime

import click

from dashboard.admin.jobs import JobError, get_job
from dashboard.formats.scim.parse import LineError, parse_ts
from dashboard.models import Job


def job_or_exit(name: str) -> Job:
    try:
        return get_job(name)
    except JobError as exc:
        raise click.UsageError(str(exc)) from None


def time_option(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_ts(value if len(value) > 10 else value + "T00:00:00Z")
    except LineError:
        raise click.BadParameter(f"{name} must be RFC 3339 with a zone, e.g. 2026-11-28T09:00:00Z") from None
