"""Command-line interface: `flask --app app <command>`."""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO

import click
from sqlalchemy import func, select

from dashboard import runtime
from dashboard.cli.common import job_or_exit, time_option
from dashboard.db import db
from dashboard.formats import sniff as sniff_formats
from dashboard.formats.entra.parse import FORMATS as entra_formats
from dashboard.formats.scim.parse import read_lines
from dashboard.ingest.entra import import_job_status_file, import_paths
from dashboard.ingest.scim import IngestResult, ingest_lines, options_for
from dashboard.models import Job, Reject
from dashboard.queries.export import export_lines
from dashboard.times import utc_now


@click.command("ingest")
@click.argument("paths", nargs=-1, required=True)
@click.option("--job", "job_name", default=None, help="Job of lines that name none (default: ingest.default_job).")
@click.option("--format", "fmt", type=click.Choice(sniff_formats.ALL), default=None,
              help="Input format (default: detected per file). scim: SCIM request log v1; entra-*, log-analytics: "
                   "Entra provisioning logs; entra-job-status: a Graph synchronizationJob.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
def ingest_command(paths: tuple[str, ...], job_name: str | None, fmt: str | None, progress: bool | None) -> None:
    """Ingest SCIM request logs (JSON Lines, .gz accepted; '-' is stdin), Entra provisioning logs
    (Graph pages, portal JSON, the portal's three CSV files, Log Analytics; files or directories)
    and Entra job status documents.

    Exit code 0 when every line was accepted or a duplicate, 1 when any was rejected, 2 on usage errors.
    """
    job_name = job_name or runtime.settings().ingest.default_job
    if not job_name:
        raise click.UsageError("name the job with --job (or set ingest.default_job)")
    job = job_or_exit(job_name)
    for path in paths:
        if path != "-" and not Path(path).is_file() and not (Path(path).is_dir() and fmt != "scim"):
            raise click.UsageError(f"no such file: {path}")
    kinds = {path: _format_of(path, fmt) for path in paths}
    show = sys.stderr.isatty() if progress is None else progress
    total = IngestResult()
    entra = [path for path in paths if kinds[path] not in (sniff_formats.SCIM, sniff_formats.JOB_STATUS)]
    if entra:
        _add(total, _ingest_entra(job, entra, fmt if fmt in entra_formats else None, show))
    for path in paths:
        if kinds[path] == sniff_formats.JOB_STATUS:
            _add(total, _ingest_job_status(job, path))
    for path in paths:
        if kinds[path] != sniff_formats.SCIM:
            continue
        with ExitStack() as stack:
            stream: IO[bytes] = sys.stdin.buffer if path == "-" else stack.enter_context(open(path, "rb"))
            size = None if path == "-" else os.path.getsize(path)
            bar = _ProgressLine(path, stream, size) if show else None
            result = ingest_lines(
                db.engine, job, read_lines(stream), source=path, via="cli",
                options=options_for(runtime.settings()), progress=bar.update if bar else None,
            )
            if bar:
                bar.close()
        for problem in result.problems:
            click.echo(f"{path}:{problem.line_no}: rejected: {problem.reason}", err=True)
        if result.rejected > len(result.problems):
            click.echo(f"{path}: … and {result.rejected - len(result.problems)} more rejected lines "
                       f"(flask --app app rejects --job {job.name})", err=True)
        click.echo(f"{path}: {result.lines} lines: {result.accepted} accepted, "
                   f"{result.duplicates} duplicates, {result.rejected} rejected")
        _add(total, result)
    if len(paths) > 1:
        click.echo(f"total: {total.lines} lines: {total.accepted} accepted, "
                   f"{total.duplicates} duplicates, {total.rejected} rejected")
    sys.exit(total.exit_code)


def _add(total: IngestResult, result: IngestResult) -> None:
    total.lines += result.lines
    total.accepted += result.accepted
    total.duplicates += result.duplicates
    total.rejected += result.rejected


def _format_of(path: str, fmt: str | None) -> str:
    if fmt is not None:
        return fmt
    if path == "-":
        return sniff_formats.SCIM  # stdin cannot be read twice: SCIM request logs only
    if Path(path).is_dir():
        return "entra-graph"  # Graph page files, or a CSV download: each file is detected by read_paths
    with open(path, "rb") as stream:
        found = sniff_formats.sniff(stream.read(65536))
    if found == sniff_formats.UNKNOWN:
        # Read as the primary format: a damaged first line is then a reject with its line number,
        # and the rest of the file is still read.
        click.echo(f"{path}: not recognised as an Entra export; reading it as a SCIM request log "
                   f"(pass --format to choose: {', '.join(sniff_formats.ALL)})", err=True)
        return sniff_formats.SCIM
    return found


def _ingest_entra(job: Job, paths: list[str], fmt: str | None, show: bool) -> IngestResult:
    """Entra provisioning logs: all the paths in one import, so the CSV download's files join."""
    options = options_for(runtime.settings())
    label = ", ".join(paths)

    def bar(records: int) -> None:
        click.echo(f"\r{label[:60]}: {records:,} records", nl=False, err=True)

    result = import_paths(db.engine, job, paths, fmt, source=label, via="entra", options=options,
                          progress=bar if show else None)
    if show:
        click.echo("", err=True)
    for problem in result.problems:
        click.echo(f"rejected: {problem.reason}", err=True)  # "<file>: record N ...: <why>"
    if result.rejected > len(result.problems):
        click.echo(f"{label}: … and {result.rejected - len(result.problems)} more rejected records "
                   f"(flask --app app rejects --job {job.name})", err=True)
    click.echo(f"{label}: {result.lines} Entra records: {result.accepted} accepted, "
               f"{result.duplicates} duplicates, {result.rejected} rejected")
    return result


def _ingest_job_status(job: Job, path: str) -> IngestResult:
    """A synchronizationJob document (or Graph's list of them; a directory: each of its files): Entra's
    own view of the job. What is not one is a reject (listed by `flask rejects`) and leaves the
    stored status alone."""
    total = IngestResult()
    files = sorted(str(f) for f in Path(path).iterdir() if f.is_file()) if Path(path).is_dir() else [path]
    for name in files:
        imported = import_job_status_file(db.engine, job, Path(name).read_bytes(), source=name,
                                          rules=options_for(runtime.settings()).rules, now=utc_now())
        for problem in imported.problems:
            click.echo(f"{name}: rejected: {problem.reason}", err=True)
        for stored in imported.statuses:
            status = stored.status
            quarantine = f", quarantine: {status.quarantine.reason}" if status.quarantine and status.quarantine.reason else ""
            click.echo(f"{name}: Entra job status {status.code or 'unknown'}{quarantine}"
                       f" ({'stored' if stored.stored else 'already stored'})")
        _add(total, imported.result)
    return total


class _ProgressLine:
    """A one-line progress bar on stderr: bytes read, percent, lines per second."""

    def __init__(self, name: str, stream: IO[bytes], size: int | None) -> None:
        self.name, self.stream, self.size = name, stream, size
        self.started = time.monotonic()
        self.last_draw = 0.0

    def update(self, lines: int) -> None:
        now = time.monotonic()
        if now - self.last_draw < 0.2:
            return
        self.last_draw = now
        try:
            done = self.stream.tell()
        except (OSError, ValueError):
            done = 0
        rate = lines / max(now - self.started, 1e-6)
        if self.size:
            share = min(done / self.size, 1.0)
            filled = int(share * 30)
            bar = "#" * filled + "-" * (30 - filled)
            text = f"[{bar}] {share:4.0%} {done / 1e6:,.1f}/{self.size / 1e6:,.1f} MB"
        else:
            text = f"{done / 1e6:,.1f} MB"
        click.echo(f"\r{self.name}: {text} {lines:,} lines {rate:,.0f} lines/s ", nl=False, err=True)

    def close(self) -> None:
        self.last_draw = 0.0
        click.echo("", err=True)


@click.command("rejects")
@click.option("--job", "job_name", required=True)
@click.option("--limit", type=click.IntRange(min=1), default=100)
def rejects_command(job_name: str, limit: int) -> None:
    """List rejected lines, records and documents (SCIM logs, Entra exports, job status files):
    source, line or record number (0: the whole file), reason and the rejected text's start (redacted)."""
    job = job_or_exit(job_name)
    rows = db.session.scalars(
        select(Reject).where(Reject.job_id == job.id).order_by(Reject.id.desc()).limit(limit)
    ).all()
    for row in reversed(rows):
        click.echo(f"{row.source}:{row.line_no}: {row.reason}\n    {row.raw[:300]}")
    total = db.session.scalar(select(func.count()).select_from(Reject).where(Reject.job_id == job.id))
    click.echo(f"{total} rejected lines in all")


@click.command("export")
@click.option("--job", "job_name", required=True)
@click.option("--since", default=None, help="RFC 3339 time (inclusive).")
@click.option("--until", default=None, help="RFC 3339 time (exclusive).")
@click.option("--user", default=None, help="userName, externalId or SCIM id.")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), default=None, help="File (default stdout).")
def export_command(job_name: str, since: str | None, until: str | None, user: str | None, out: str | None) -> None:
    """Export stored exchanges as v1 JSON Lines (redacted), e.g. as a support bundle."""
    job = job_or_exit(job_name)
    since_at, until_at = time_option(since, "--since"), time_option(until, "--until")
    lines: Iterator[bytes] = export_lines(db.session, job, since=since_at, until=until_at, user=user)
    count = 0
    with ExitStack() as stack:
        sink = stack.enter_context(open(out, "wb")) if out else sys.stdout.buffer
        for line in lines:
            sink.write(line)
            count += 1
    click.echo(f"exported {count} exchanges", err=True)
