"""`flask scheduler`: run the scheduled jobs in this process while it holds the lease (a second
such process waits as a hot standby and takes over when this one dies)."""
from __future__ import annotations

import signal

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from dashboard import runtime
from dashboard.scheduler import LeasedScheduler, run_once, scheduled_jobs


@click.command("scheduler")
@click.option("--once", is_flag=True, help="Run every scheduled job once, now, and exit (refused while another "
              "scheduler holds the lease).")
@click.option("--list", "list_jobs", is_flag=True, help="List the scheduled jobs and exit.")
@with_appcontext
def scheduler_command(once: bool, list_jobs: bool) -> None:
    """Run the scheduler in this process. It works while it holds the lease in the database; a
    second one waits as a standby and takes over within [scheduler] lease_seconds + renew_seconds
    of the first one dying. SIGTERM or Ctrl-C stops it after the running job, giving the lease up."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    settings = runtime.settings(app)
    jobs = scheduled_jobs(settings)
    if list_jobs:
        for job in jobs:
            click.echo(f"{job.id}\t{job.trigger(settings)}")
        return
    if once:
        keeper = LeasedScheduler(app)
        if not keeper.take():
            raise click.ClickException("another scheduler holds the lease (it runs these jobs): nothing was run")
        try:
            for job in jobs:
                click.echo(f"{job.id}: {run_once(job, app, keeper)}")
        finally:
            keeper.give_up()
        return
    keeper = LeasedScheduler(app)
    signal.signal(signal.SIGTERM, lambda signum, frame: keeper.stop())  # systemd's stop: finish, give the lease up
    click.echo(f"scheduler {keeper.holder}: {', '.join(j.id for j in jobs)}; it works while it holds the lease "
               "(Ctrl-C stops it)")
    try:
        keeper.run()
    except KeyboardInterrupt:
        pass
    click.echo("scheduler stopped")
