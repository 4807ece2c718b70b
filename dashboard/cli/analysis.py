"""`flask report` and `flask recompute`: the analysis, read or rebuilt."""
from __future__ import annotations

import time

import click
import orjson

from dashboard import runtime
from dashboard.cli.common import job_or_exit, time_option
from dashboard.db import db
from dashboard.notify.text import render_text
from dashboard.queries.replay import report
from dashboard.tracking.rebuild import rebuild


@click.command("report")
@click.option("--job", "job_name", required=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--cycles", type=click.IntRange(1, 100), default=5)
@click.option("--at", default=None, help="Replay: the report as it stood at this RFC 3339 time.")
def report_command(job_name: str, fmt: str, cycles: int, at: str | None) -> None:
    """The job's latest cycles, health, failing users and signatures (now, or as of --at)."""
    job = job_or_exit(job_name)
    moment = time_option(at, "--at")
    data = report(db.session, job, runtime.now(), runtime.settings(), cycles=cycles, at=moment)
    if fmt == "json":
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(render_text(data))


@click.command("recompute")
@click.option("--job", "job_name", required=True)
def recompute_command(job_name: str) -> None:
    """Rebuild the job's cycles, user outcomes, signatures and health from its stored exchanges."""
    job = job_or_exit(job_name)
    started = time.monotonic()
    count = rebuild(db.engine, job.id, gap_us=runtime.settings().cycles.gap_minutes * 60 * 1_000_000)
    elapsed = time.monotonic() - started
    click.echo(f"recomputed {count} exchanges and Entra events in {elapsed:.1f} s ({count / max(elapsed, 1e-9):,.0f} records/s)")
