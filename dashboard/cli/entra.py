"""`flask entra pull`: pull provisioning logs and job status from Microsoft Graph now."""
from __future__ import annotations

import time

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from dashboard import runtime
from dashboard.admin.jobs import JobError, get_job
from dashboard.db import db
from dashboard.ingest.graph.pull import is_pulled, pull_job
from dashboard.models import Job

entra_group = AppGroup("entra", help="Microsoft Entra: pull provisioning logs and job status from Graph.")


@entra_group.command("pull")
@click.option("--job", "job_name", default=None,
              help="The job to pull (default: every job that names entra_job_id or entra_service_principal_id).")
def pull_command(job_name: str | None) -> None:
    """Pull now from Microsoft Graph (also without [entra] enabled, which only schedules it)."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    settings = runtime.settings(app)
    if settings.entra.missing:
        raise click.UsageError(f"{', '.join(settings.entra.missing)} is not set in [entra] "
                               "(the secret may come from DASHBOARD_ENTRA_CLIENT_SECRET)")
    if job_name:
        try:
            jobs = [get_job(job_name)]
        except JobError as exc:
            raise click.UsageError(str(exc)) from None
    else:
        names = [spec.name for spec in settings.jobs if is_pulled(spec)]
        if not names:
            raise click.UsageError("no [[jobs]] entry names entra_job_id or entra_service_principal_id: "
                                   "name one, or pass --job")
        jobs = list(db.session.scalars(select(Job).where(Job.name.in_(names)).order_by(Job.name)))
    failed = False
    for job in jobs:
        outcome = pull_job(db.engine, job, settings, runtime.now(app),
                           sleep=app.extensions.get("graph_sleep", time.sleep), opener=app.extensions.get("graph_opener"))
        for problem in outcome.result.problems:
            click.echo(f"rejected: {problem.reason}", err=True)
        click.echo(outcome.summary())
        failed = failed or bool(outcome.errors)
    if failed:
        raise SystemExit(1)
