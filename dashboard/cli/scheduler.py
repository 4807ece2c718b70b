"""`flask scheduler`: run the scheduled jobs in this process (production: exactly one such process)."""
from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from dashboard import runtime
from dashboard.scheduler import scheduled_jobs, start_scheduler


@click.command("scheduler")
@click.option("--once", is_flag=True, help="Run every scheduled job once, now, and exit (e.g. from cron).")
@click.option("--list", "list_jobs", is_flag=True, help="List the scheduled jobs and exit.")
@with_appcontext
def scheduler_command(once: bool, list_jobs: bool) -> None:
    """Run the scheduler in this process (production: one such process; web workers set
    [scheduler] enabled = false)."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    settings = runtime.settings(app)
    jobs = scheduled_jobs(settings)
    if list_jobs:
        for job in jobs:
            click.echo(f"{job.id}\t{job.trigger(settings)}")
        return
    if once:
        for job in jobs:
            click.echo(f"{job.id}: {job.func(app)}")
        return
    click.echo(f"scheduler running: {', '.join(j.id for j in jobs)} (Ctrl-C stops it)")
    try:
        start_scheduler(app, blocking=True)
    except (KeyboardInterrupt, SystemExit):
        click.echo("scheduler stopped")
