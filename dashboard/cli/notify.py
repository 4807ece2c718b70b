"""`flask --app app notify ...`: test the SMTP set-up, deliver, subscriptions, retry a message."""
from __future__ import annotations

import smtplib
import sys

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from dashboard import runtime
from dashboard.admin.jobs import JobError, get_job
from dashboard.db import db
from dashboard.models import NOTIFY_KINDS, NOTIFY_ROLES, Job
from dashboard.notify.emails import render_email
from dashboard.notify.mailer import Message, SmtpMailer
from dashboard.notify.outbox import counts, deliver_pending, retry_now
from dashboard.notify.recipients import (
    SubscriptionError,
    all_recipients,
    unsubscribe,
)
from dashboard.notify.welcome import subscribe_and_tell

notify_group = AppGroup("notify", help="Email notifications: SMTP test, delivery, subscriptions.")


def _job(name: str) -> Job:
    try:
        return get_job(name)
    except JobError as exc:
        raise click.UsageError(str(exc)) from None


@notify_group.command("test")
@click.option("--to", "to", required=True, help="Address to send the test email to.")
def notify_test(to: str) -> None:
    """Send a test email now through [smtp] (not through the outbox) and print the server's answer.

    Exit code 0 when the server accepted it, 1 with the error otherwise."""
    settings = runtime.settings()
    smtp = settings.smtp
    if not smtp.host:
        click.echo("smtp.host is not set: configure [smtp] first", err=True)
        sys.exit(1)
    email = render_email("test-message", {"smtp": {"host": smtp.host, "port": smtp.port, "security": smtp.security,
                                                   "from_address": smtp.from_address},
                                          "base_url": settings.app.base_url.rstrip("/"), "now": runtime.now().isoformat()})
    click.echo(f"sending a test email to {to} via {smtp.host}:{smtp.port} ({smtp.security}) ...")
    try:
        answer = SmtpMailer(smtp).send(Message(to, email.subject, email.text, email.html))
    except (smtplib.SMTPException, OSError) as exc:
        click.echo(f"failed: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    click.echo(f"accepted: {answer}")


@notify_group.command("deliver")
def notify_deliver() -> None:
    """Send the emails that are due now (the scheduler does this every minute)."""
    settings = runtime.settings()
    mailer = current_app.extensions.get("mailer")
    if mailer is None:
        if not settings.smtp.host:
            raise click.UsageError("smtp.host is not set: configure [smtp] first")
        mailer = SmtpMailer(settings.smtp)
    result = deliver_pending(db.session, mailer, runtime.now(), settings=settings.notifications)
    state = counts(db.session, runtime.now())
    click.echo(f"{result.sent} sent, {result.failed} failed; outbox: {state['pending']} pending, "
               f"{state['failing']} failing, {state['in_doubt']} in doubt")
    sys.exit(1 if result.failed or result.in_doubt else 0)


@notify_group.command("retry")
@click.argument("notification_id", type=int)
def notify_retry(notification_id: int) -> None:
    """Make an unsent email (failing, or in doubt after a crash) due now.

    An email in doubt may have reached the server before the crash: retrying it can deliver it twice."""
    if not retry_now(db.session, notification_id, runtime.now()):
        raise click.UsageError(f"no unsent email with id {notification_id}")
    click.echo(f"email {notification_id} will be sent at the next delivery")


@notify_group.command("subscribe")
@click.option("--job", "job_name", required=True)
@click.option("--to", "address", required=True)
@click.option("--kinds", default="failures,quarantine",
              help=f"Comma-separated, of: {', '.join(NOTIFY_KINDS)} (default failures,quarantine).")
@click.option("--role", type=click.Choice(NOTIFY_ROLES), default="admin",
              help="admin: emails with the actions to take; support: with the evidence.")
def notify_subscribe(job_name: str, address: str, kinds: str, role: str) -> None:
    """Subscribe an address to a job's emails (replaces its earlier subscription)."""
    try:
        row, told = subscribe_and_tell(db.session, _job(job_name), address, kinds=kinds.split(","), role=role,
                                       now=runtime.now(), settings=runtime.settings())
    except SubscriptionError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"{row.address} gets {row.kinds} about {job_name} ({row.role})")
    if told:
        click.echo(f"queued {told} email(s) about the job's open problem for {row.address}")


@notify_group.command("unsubscribe")
@click.option("--job", "job_name", required=True)
@click.option("--to", "address", required=True)
def notify_unsubscribe(job_name: str, address: str) -> None:
    if not unsubscribe(db.session, _job(job_name), address):
        raise click.UsageError(f"{address} has no subscription to {job_name}")
    click.echo(f"{address} unsubscribed from {job_name}")


@notify_group.command("list")
@click.option("--job", "job_name", default=None)
def notify_list(job_name: str | None) -> None:
    """Who gets what, per job: subscriptions, the job's notification recipients, [reports] recipients."""
    jobs = [_job(job_name)] if job_name else list(db.session.scalars(select(Job).order_by(Job.name)))
    for job in jobs:
        for r in all_recipients(db.session, job, runtime.settings()):
            click.echo(f"{job.name}\t{r.address}\t{','.join(sorted(r.kinds))}\t{r.role}\t({r.source})")
