"""What the page and API views share: a job, or a row of a job, by name or id, else 404."""
from __future__ import annotations

from typing import TypeVar

from flask import abort
from sqlalchemy import select

from dashboard.db import db
from dashboard.models import Job

Row = TypeVar("Row")


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
