"""`flask init-db`, `flask job ...`, `flask token ...`, `flask user ...`: set-up and access."""
from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import func, select

from dashboard import runtime
from dashboard.admin.accounts import (
    ROLES,
    AccountError,
    add_account,
    change_password,
    create_api_token,
    ensure_first_admin,
    remove_account,
)
from dashboard.admin.jobs import (
    JobError,
    add_job,
    create_token,
    revoke_token,
    sync_jobs,
)
from dashboard.cli.common import job_or_exit
from dashboard.db import db, upgrade_schema
from dashboard.models import Account, Exchange, IngestToken, Job

JOB_GROUP = AppGroup("job", help="Provisioning jobs.")
USER_GROUP = AppGroup("user", help="Accounts that sign in to the dashboard.")
TOKEN_GROUP = AppGroup("token", help="Ingest tokens for HTTP push.")


@click.command("init-db")
def init_db_command() -> None:
    """Create the database or upgrade it to the newest schema; add the configured jobs."""
    upgrade_schema(current_app._get_current_object())  # type: ignore[attr-defined]
    sync_jobs(runtime.settings().jobs)
    click.echo("database is at the newest schema")
    first = ensure_first_admin()
    if first:
        click.echo(f"created the first admin account: {first[0]}\n"
                   f"one-time password (shown once; add your own accounts with `flask user add`): {first[1]}")


@JOB_GROUP.command("add")
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


@JOB_GROUP.command("list")
def job_list() -> None:
    """List jobs with their exchange counts."""
    counts = dict(db.session.execute(select(Exchange.job_id, func.count()).group_by(Exchange.job_id)).all())
    for job in db.session.scalars(select(Job).order_by(Job.name)):
        click.echo(f"{job.name}\t{job.title}\t{counts.get(job.id, 0)} exchanges")


@TOKEN_GROUP.command("create")
@click.option("--job", "job_name", required=True)
def token_create(job_name: str) -> None:
    """Create an ingest token; it is shown once and stored hashed."""
    row, token = create_token(job_or_exit(job_name))
    click.echo(f"token id {row.id} for job '{job_name}' (shown once, store it now):")
    click.echo(token)


@TOKEN_GROUP.command("list")
@click.option("--job", "job_name", required=True)
def token_list(job_name: str) -> None:
    job = job_or_exit(job_name)
    for row in db.session.scalars(select(IngestToken).where(IngestToken.job_id == job.id).order_by(IngestToken.id)):
        state = "active" if row.active else f"revoked {row.revoked_at:%Y-%m-%d %H:%M}"
        used = f"last used {row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never used"
        click.echo(f"{row.id}\t{row.prefix}…\t{state}\t{used}")


@TOKEN_GROUP.command("revoke")
@click.argument("token_id", type=int)
def token_revoke(token_id: int) -> None:
    try:
        revoke_token(token_id)
    except JobError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"token {token_id} revoked")


@USER_GROUP.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_add(email: str, role: str, password_stdin: bool) -> None:
    """Add an account; the password comes from a prompt (or stdin) and is stored hashed (Argon2)."""
    password = _password(password_stdin, "Password")
    try:
        add_account(email, role, password)
    except AccountError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"added {role} {email.lower()}")


@USER_GROUP.command("passwd")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_passwd(email: str, password_stdin: bool) -> None:
    """Set a new password; every session of the account ends (it signs in again)."""
    password = _password(password_stdin, "New password")
    try:
        change_password(email, password)
    except AccountError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"changed the password of {email.strip().lower()}; its sessions have ended")


def _password(from_stdin: bool, prompt: str) -> str:
    """A password from standard input (scripts), else typed twice at a hidden prompt."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt(prompt, hide_input=True, confirmation_prompt=True)


@USER_GROUP.command("remove")
@click.argument("email")
def user_remove(email: str) -> None:
    """Delete an account and its API tokens; its sessions end at once."""
    try:
        remove_account(email)
    except AccountError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"removed {email.strip().lower()}")


@USER_GROUP.command("token")
@click.argument("email")
def user_token(email: str) -> None:
    """Create a personal API token for the JSON API (shown once, stored hashed)."""
    account = db.session.scalar(select(Account).where(Account.email == email.lower()))
    if account is None:
        raise click.UsageError(f"no account {email}")
    click.echo(create_api_token(account))
