"""HTML pages: the overview of all jobs and a job's page."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, render_template
from sqlalchemy import select

from .. import overview
from ..db import db
from ..models import Job
from .auth import requires

bp = Blueprint("pages", __name__)
URGENCY = {"disabled": 0, "quarantined": 1, "stalled": 2, "warning": 3, "unknown": 4, "healthy": 5}


def _now():  # type: ignore[no-untyped-def]
    return current_app.extensions["clock"]()


@bp.get("/")
@requires("viewer")
def overview_page() -> Any:
    settings = current_app.extensions["dashboard"]
    rows = []
    for job in db.session.scalars(select(Job).order_by(Job.name)):
        health = overview.health_json(db.session, job, _now(), settings)
        current = overview.current_cycle(db.session, job, _now(), settings)
        rows.append({"job": job, "health": health, "cycle": current})
    rows.sort(key=lambda r: (URGENCY.get(r["health"]["state"], 9), r["job"].name))
    return render_template("pages/overview.html", rows=rows)


bp.add_url_rule("/", endpoint="overview", view_func=overview_page)


@bp.get("/jobs/<job_name>")
@requires("viewer")
def job_page(job_name: str) -> Any:
    settings = current_app.extensions["dashboard"]
    job = db.session.scalar(select(Job).where(Job.name == job_name))
    if job is None:
        abort(404, description=f"No job named {job_name}.")
    return render_template(
        "pages/job.html",
        job=job,
        health=overview.health_json(db.session, job, _now(), settings),
        cycle=overview.current_cycle(db.session, job, _now(), settings),
        cycles=overview.list_cycles(db.session, job, _now(), settings, limit=20),
        signatures=overview.list_signatures(db.session, job, limit=10),
        failing=overview.failing_users(db.session, job, limit=20),
    )
