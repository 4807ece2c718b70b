"""What the page and API views share: the clock, the settings, a job by name or 404."""
from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from flask import abort, current_app
from sqlalchemy import select

from dashboard.db import db
from dashboard.models import Job
from dashboard.settings import Settings

Row = TypeVar("Row")


def now() -> datetime:
    """The app's clock (tests replace app.extensions["clock"])."""
    return current_app.extensions["clock"]()


def settings() -> Settings:
    return current_app.extensions["dashboard"]


def job_or_404(name: str) -> Job:
    job = db.session.scalar(select(Job).where(Job.name == name))
    if job is None:
        abort(404, description=f"No job named {name}.")
    return job


def of_job_or_404(model: type[Row], row_id: int, job: Job, what: str) -> Row:
    """A row (cycle, exchange) by id, only when it belongs to `job`: else 404."""
    row = db.session.get(model, row_id)
    if row is None or row.job_id != job.id:  # type: ignore[attr-defined]
        abort(404, description=f"No {what} {row_id} in {job.name}.")
    return row
