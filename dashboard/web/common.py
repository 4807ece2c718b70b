"""What the page and API views share: a job, or a row of a job, by name or id, else 404."""
from __future__ import annotations

from flask import abort

from dashboard.db import db
from dashboard.queries import by_key


def job_or_404(name: str):  # type: ignore[no-untyped-def]
    job = by_key.job_named(db.session, name)
    if job is None:
        abort(404, description=f"No job named {name}.")
    return job


def cycle_or_404(job, cycle_id: int):  # type: ignore[no-untyped-def]
    row = by_key.cycle_of(db.session, job, cycle_id)
    if row is None:
        abort(404, description=f"No cycle {cycle_id} in {job.name}.")
    return row


def exchange_or_404(job, exchange_id: int):  # type: ignore[no-untyped-def]
    row = by_key.exchange_of(db.session, job, exchange_id)
    if row is None:
        abort(404, description=f"No exchange {exchange_id} in {job.name}.")
    return row
