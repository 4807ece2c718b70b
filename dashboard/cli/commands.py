"""Command-line interface: `flask --app app <command>`."""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import IO

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import func, select

from dashboard import runtime
from dashboard.admin.jobs import (
    JobError,
    add_job,
    create_token,
    get_job,
    revoke_token,
    sync_jobs,
)
from dashboard.db import db, upgrade_schema
from dashboard.formats import sniff as sniff_formats
from dashboard.formats.entra.parse import FORMATS as entra_formats
from dashboard.formats.scim.parse import LineError, parse_ts, read_lines
from dashboard.ingest.scim import (
    IngestResult,
    ingest_lines,
    options_for,
)
from dashboard.models import Exchange, IngestToken, Job, Reject
from dashboard.queries.export import export_lines

job_group = AppGroup("job", help="Provisioning jobs.")
user_group = AppGroup("user", help="Accounts that sign in to the dashboard.")
token_group = AppGroup("token", help="Ingest tokens for HTTP push.")


def init_app(app: Flask) -> None:
    app.cli.add_command(job_group)
    app.cli.add_command(token_group)
    app.cli.add_command(user_group)
    for command in (init_db_command, ingest_command, rejects_command, export_command, simulate_command, demo_command,
                    report_command, recompute_command):
        app.cli.add_command(command)
    from dashboard.cli.notify import notify_group
    from dashboard.ingest.graph.pull import entra_group
    from dashboard.scheduler import scheduler_command

    app.cli.add_command(entra_group)
    app.cli.add_command(notify_group)
    app.cli.add_command(scheduler_command)


def _job_or_exit(name: str) -> Job:
    try:
        return get_job(name)
    except JobError as exc:
        raise click.UsageError(str(exc)) from None


@click.command("init-db")
def init_db_command() -> None:
    """Create the database or upgrade it to the newest schema; add the configured jobs."""
    from dashboard.admin.accounts import ensure_first_admin

    upgrade_schema(current_app._get_current_object())  # type: ignore[attr-defined]
    sync_jobs(runtime.settings().jobs)
    click.echo("database is at the newest schema")
    first = ensure_first_admin()
    if first:
        click.echo(f"created the first admin account: {first[0]}\n"
                   f"one-time password (shown once; add your own accounts with `flask user add`): {first[1]}")


@job_group.command("add")
@click.argument("name")
@click.option("--display-name", default="")
@click.option("--source", "source_system", default="Microsoft Entra ID")
@click.option("--target", "target_system", default="uniFLOW Online")
@click.option("--recipient", "recipients", multiple=True, help="Notification address (repeatable).")
@click.option("--scope-size", type=click.IntRange(min=1), default=None, help="Users in scope, for the progress bar.")
def job_add(name: str, display_name: str, source_system: str, target_system: str, recipients: tuple[str, ...], scope_size: int | None) -> None:
    """Add a provisioning job."""
    try:
        job = add_job(
            name, display_name=display_name, source_system=source_system,
            target_system=target_system, recipients=recipients, scope_size=scope_size,
        )
    except JobError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"added job '{job.name}'")


@job_group.command("list")
def job_list() -> None:
    """List jobs with their exchange counts."""
    counts = dict(db.session.execute(select(Exchange.job_id, func.count()).group_by(Exchange.job_id)).all())
    for job in db.session.scalars(select(Job).order_by(Job.name)):
        click.echo(f"{job.name}\t{job.title}\t{counts.get(job.id, 0)} exchanges")


@token_group.command("create")
@click.option("--job", "job_name", required=True)
def token_create(job_name: str) -> None:
    """Create an ingest token; it is shown once and stored hashed."""
    row, token = create_token(_job_or_exit(job_name))
    click.echo(f"token id {row.id} for job '{job_name}' (shown once, store it now):")
    click.echo(token)


@token_group.command("list")
@click.option("--job", "job_name", required=True)
def token_list(job_name: str) -> None:
    job = _job_or_exit(job_name)
    for row in db.session.scalars(select(IngestToken).where(IngestToken.job_id == job.id).order_by(IngestToken.id)):
        state = "active" if row.active else f"revoked {row.revoked_at:%Y-%m-%d %H:%M}"
        used = f"last used {row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never used"
        click.echo(f"{row.id}\t{row.prefix}…\t{state}\t{used}")


@token_group.command("revoke")
@click.argument("token_id", type=int)
def token_revoke(token_id: int) -> None:
    try:
        revoke_token(token_id)
    except JobError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"token {token_id} revoked")


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
    job = _job_or_exit(job_name)
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
    from dashboard.formats.entra.parse import read_paths
    from dashboard.ingest.entra import import_events

    options = options_for(runtime.settings())
    label = ", ".join(paths)
    items = ((str(where), item) for where, item in read_paths(paths, fmt, rules=options.rules))

    def bar(records: int) -> None:
        click.echo(f"\r{label[:60]}: {records:,} records", nl=False, err=True)

    result = import_events(db.engine, job, items, source=label, via="entra", options=options,
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
    from dashboard.ingest.entra import import_job_status_file
    from dashboard.times import utc_now

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
    job = _job_or_exit(job_name)
    rows = db.session.scalars(
        select(Reject).where(Reject.job_id == job.id).order_by(Reject.id.desc()).limit(limit)
    ).all()
    for row in reversed(rows):
        click.echo(f"{row.source}:{row.line_no}: {row.reason}\n    {row.raw[:300]}")
    total = db.session.scalar(select(func.count()).select_from(Reject).where(Reject.job_id == job.id))
    click.echo(f"{total} rejected lines in all")


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_ts(value if len(value) > 10 else value + "T00:00:00Z")
    except LineError:
        raise click.BadParameter(f"{name} must be RFC 3339 with a zone, e.g. 2026-11-28T09:00:00Z") from None


@click.command("export")
@click.option("--job", "job_name", required=True)
@click.option("--since", default=None, help="RFC 3339 time (inclusive).")
@click.option("--until", default=None, help="RFC 3339 time (exclusive).")
@click.option("--user", default=None, help="userName, externalId or SCIM id.")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), default=None, help="File (default stdout).")
def export_command(job_name: str, since: str | None, until: str | None, user: str | None, out: str | None) -> None:
    """Export stored exchanges as v1 JSON Lines (redacted), e.g. as a support bundle."""
    job = _job_or_exit(job_name)
    since_at, until_at = _time(since, "--since"), _time(until, "--until")
    lines: Iterator[bytes] = export_lines(db.session, job, since=since_at, until=until_at, user=user)
    count = 0
    with ExitStack() as stack:
        sink = stack.enter_context(open(out, "wb")) if out else sys.stdout.buffer
        for line in lines:
            sink.write(line)
            count += 1
    click.echo(f"exported {count} exchanges", err=True)


@click.command("simulate")
@click.option("--users", type=click.IntRange(min=1), default=200)
@click.option("--cycles", type=click.IntRange(min=1), default=6)
@click.option("--seed", type=int, default=1)
@click.option("--job", "job_name", default="uniflow-demo")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Log file (default stdout; .gz compresses).")
@click.option("--truth", type=click.Path(dir_okay=False), default=None, help="Ground truth JSON file.")
@click.option("--max-lines", type=click.IntRange(min=1), default=None)
@click.option("--failure-rate", type=click.FloatRange(0, 1), default=0.03)
@click.option("--auth-outage", "auth_outage", multiple=True, type=int, help="Cycle index answering 401 (repeatable).")
@click.option("--lookup-404", "lookup_404", multiple=True, type=int, help="Cycle index whose lookups answer 404.")
@click.option("--deletion-storm", type=int, default=None, help="Cycle index with a mass disable.")
@click.option("--silent-after", type=int, default=None, help="No traffic after this cycle index.")
@click.option("--cycle-ids/--no-cycle-ids", default=False, help="Write cycle_id on each line.")
@click.option("--reality", "realities", multiple=True,
              type=click.Choice(["rename", "variant", "collision", "recreate", "scope", "unmatched", "disorder", "all"]),
              help="What real tenants do that the plain run does not (repeatable; 'all': every one): renames, "
                   "Unicode/case variants of a userName, two people on one userName, re-creation in the target, "
                   "out of scope and back, lookups that find nothing, lines late, twice or out of order.")
@click.option("--entra-pages", type=click.Path(file_okay=False), default=None,
              help="Also write Entra's provisioning logs of the same run as Graph page files in this folder.")
def simulate_command(users: int, cycles: int, seed: int, job_name: str, out: str | None, truth: str | None,
                     max_lines: int | None, failure_rate: float, auth_outage: tuple[int, ...],
                     lookup_404: tuple[int, ...], deletion_storm: int | None, silent_after: int | None,
                     cycle_ids: bool, realities: tuple[str, ...], entra_pages: str | None) -> None:
    """Write a realistic v1 log of Entra provisioning uniFLOW Online (deterministic per seed)."""
    import gzip

    import orjson

    from dashboard.demo.simulate import REALITIES, SimConfig, write_log

    chosen = REALITIES if "all" in realities else tuple(dict.fromkeys(realities))
    config = SimConfig(
        users=users, cycles=cycles, seed=seed, job=job_name, max_lines=max_lines,
        failure_rate=failure_rate, auth_outage_cycles=auth_outage, lookup_404_cycles=lookup_404,
        deletion_storm_cycle=deletion_storm, silent_after_cycle=silent_after, with_cycle_ids=cycle_ids,
        realities=chosen, record_events=entra_pages is not None,
    )
    with ExitStack() as stack:
        if out is None:
            sink: IO[bytes] = sys.stdout.buffer
        elif out.endswith(".gz"):
            sink = stack.enter_context(gzip.open(out, "wb", compresslevel=5))
        else:
            sink = stack.enter_context(open(out, "wb"))
        ground_truth = write_log(config, sink)
    if truth:
        Path(truth).write_bytes(orjson.dumps(ground_truth.to_dict(), option=orjson.OPT_INDENT_2))
    if entra_pages:
        from dashboard.demo.entra_pages import write_simulated_pages

        Path(entra_pages).mkdir(parents=True, exist_ok=True)
        written = write_simulated_pages(Path(entra_pages), ground_truth)
        click.echo(f"{len(written)} Graph page file(s) of Entra's provisioning logs in {entra_pages}", err=True)


@click.command("demo")
@click.option("--users", type=click.IntRange(min=1), default=300)
@click.option("--cycles", type=click.IntRange(min=1), default=12)
def demo_command(users: int, cycles: int) -> None:
    """Load demo data (simulated jobs) into an empty database; does nothing otherwise."""
    from dashboard.demo.loader import load_demo

    if not runtime.settings().app.demo_data:
        click.echo("demo: app.demo_data is false; nothing loaded")
        return

    loaded = load_demo(db.engine, users=users, cycles=cycles, options=options_for(runtime.settings()))
    click.echo(loaded)


@user_group.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "support", "viewer"]), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_add(email: str, role: str, password_stdin: bool) -> None:
    """Add an account; the password comes from a prompt (or stdin) and is stored hashed (Argon2)."""
    from dashboard.admin.accounts import AccountError, add_account

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        add_account(email, role, password)
    except AccountError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"added {role} {email.lower()}")


@user_group.command("passwd")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_passwd(email: str, password_stdin: bool) -> None:
    """Set a new password; every session of the account ends (it signs in again)."""
    from dashboard.admin.accounts import AccountError, change_password

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    try:
        change_password(email, password)
    except AccountError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"changed the password of {email.strip().lower()}; its sessions have ended")


@user_group.command("remove")
@click.argument("email")
def user_remove(email: str) -> None:
    """Delete an account and its API tokens; its sessions end at once."""
    from dashboard.admin.accounts import AccountError, remove_account

    try:
        remove_account(email)
    except AccountError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"removed {email.strip().lower()}")


@user_group.command("token")
@click.argument("email")
def user_token(email: str) -> None:
    """Create a personal API token for the JSON API (shown once, stored hashed)."""
    from dashboard.admin.accounts import create_api_token
    from dashboard.models import Account

    account = db.session.scalar(select(Account).where(Account.email == email.lower()))
    if account is None:
        raise click.UsageError(f"no account {email}")
    click.echo(create_api_token(account))


@click.command("report")
@click.option("--job", "job_name", required=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--cycles", type=click.IntRange(1, 100), default=5)
@click.option("--at", default=None, help="Replay: the report as it stood at this RFC 3339 time.")
def report_command(job_name: str, fmt: str, cycles: int, at: str | None) -> None:
    """The job's latest cycles, health, failing users and signatures (now, or as of --at)."""
    import orjson

    from dashboard.notify.text import render_text
    from dashboard.queries import overview

    job = _job_or_exit(job_name)
    moment = _time(at, "--at")
    data = overview.report(db.session, job, runtime.now(), runtime.settings(), cycles=cycles, at=moment)
    if fmt == "json":
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(render_text(data))


@click.command("recompute")
@click.option("--job", "job_name", required=True)
def recompute_command(job_name: str) -> None:
    """Rebuild the job's cycles, user outcomes, signatures and health from its stored exchanges."""
    from dashboard.tracking.rebuild import rebuild

    job = _job_or_exit(job_name)
    started = time.monotonic()
    count = rebuild(db.engine, job.id, gap_us=runtime.settings().cycles.gap_minutes * 60 * 1_000_000)
    elapsed = time.monotonic() - started
    click.echo(f"recomputed {count} exchanges and Entra events in {elapsed:.1f} s ({count / max(elapsed, 1e-9):,.0f} records/s)")
