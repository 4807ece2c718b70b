"""What the page and API views share: the clock, the settings, a job by name or 404."""
from __future__ import annotations

from datetime import datetime

from flask import abort, current_app
from sqlalchemy import select

from ..db import db
from ..models import Job
from ..settings import Settings


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
