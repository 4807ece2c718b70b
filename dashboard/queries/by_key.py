"""Rows by key, for the web layer and the commands (read-only): a job by name, a row of a job by id.

The web layer reaches the database only through queries/: it never imports the models."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.models import Cycle, Exchange, Job, ReportRun, ScimUser


def jobs(session: Session) -> list[Job]:
    return list(session.scalars(select(Job).order_by(Job.name)))


def job_named(session: Session, name: str) -> Job | None:
    return session.scalar(select(Job).where(Job.name == name))


def job_by_id(session: Session, job_id: int) -> Job | None:
    return session.get(Job, job_id)


def cycle_of(session: Session, job: Job, cycle_id: int) -> Cycle | None:
    row = session.get(Cycle, cycle_id)
    return row if row is not None and row.job_id == job.id else None


def exchange_of(session: Session, job: Job, exchange_id: int) -> Exchange | None:
    row = session.get(Exchange, exchange_id)
    return row if row is not None and row.job_id == job.id else None


def user_by_id(session: Session, user_id: int | None) -> ScimUser | None:
    return session.get(ScimUser, user_id) if user_id else None


def report_run(session: Session, report_id: int) -> ReportRun | None:
    return session.get(ReportRun, report_id)
