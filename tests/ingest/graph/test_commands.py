"""The Graph pull from the scheduler and from `flask entra pull`."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from dashboard import scheduler
from dashboard.admin.jobs import get_job, sync_jobs
from dashboard.db import db
from dashboard.models import EntraEvent, EntraPullState
from dashboard.scheduler import JOBS, scheduled_jobs, start_scheduler
from dashboard.settings import EntraSettings, JobSettings
from tests.ingest.graph.conftest import SECRET, at, record


def _events() -> int:
    return db.session.scalar(select(func.count()).select_from(EntraEvent))


def _running_jobs(app) -> dict:  # type: ignore[no-untyped-def]
    running = start_scheduler(app, paused=True)
    try:
        return {job.id: job for job in running.get_jobs()}
    finally:
        running.shutdown(wait=False)


def test_the_scheduler_pulls_from_graph_when_entra_is_enabled(app, settings):
    jobs = _running_jobs(app)

    assert "entra-pull" in jobs
    assert jobs["entra-pull"].trigger.interval == timedelta(minutes=10)
    assert jobs["entra-pull"].coalesce is True and jobs["entra-pull"].max_instances == 1
    ids = [job.id for job in scheduled_jobs(settings)]
    assert len(ids) == len(set(ids))


def test_the_scheduler_does_not_pull_when_entra_is_disabled(app, settings):
    app.extensions["dashboard"] = replace(settings, entra=replace(settings.entra, enabled=False))

    assert "entra-pull" not in _running_jobs(app)
    assert scheduled_jobs(app.extensions["dashboard"]) == JOBS


def test_the_scheduled_job_pulls_each_configured_job(app, graph, sleeps):
    graph.pages = [[record(1, at(30)), record(2, at(20))]]
    graph.faults = {0: [(429, {"Retry-After": "3"}, {"error": {"code": "TooManyRequests", "message": ""}})]}

    assert scheduler.run_entra_pulls(app) == "uniflow-prod: 2 new"
    assert _events() == 2 and sleeps == [3.0]
    assert scheduler.run_entra_pulls(app) == "uniflow-prod: 0 new"


def test_the_scheduled_job_stores_an_unexpected_failure_and_goes_on(app, settings, graph, sleeps, monkeypatch):
    app.extensions["dashboard"] = replace(settings, jobs=(
        *settings.jobs, JobSettings(name="uniflow-test", entra_service_principal_id="another-sp")))
    sync_jobs(app.extensions["dashboard"].jobs)
    import dashboard.ingest.graph.pull as entra_pull

    real = entra_pull.pull_job

    def flaky(engine, job, *args, **kwargs):  # type: ignore[no-untyped-def]
        if job.name == "uniflow-prod":
            raise RuntimeError(f"database went away while using {SECRET}")
        return real(engine, job, *args, **kwargs)

    monkeypatch.setattr(entra_pull, "pull_job", flaky)

    assert scheduler.run_entra_pulls(app) == "uniflow-prod: failed, uniflow-test: 0 new"
    errors = dict(db.session.execute(select(EntraPullState.job_id, EntraPullState.last_error)).all())
    assert errors[get_job("uniflow-prod").id] == "RuntimeError: database went away while using [REDACTED]"
    assert errors[get_job("uniflow-test").id] is None


def test_the_scheduled_job_does_nothing_without_a_job_naming_its_entra_ids(app, settings, graph, sleeps):
    app.extensions["dashboard"] = replace(settings, jobs=(JobSettings(name="uniflow-prod"),))

    assert scheduler.run_entra_pulls(app) == "no job to pull"
    assert graph.requests == []


def test_the_cli_pulls_one_job(runner, graph, sleeps):
    graph.pages = [[record(1, at(30))], [record(2, at(20))]]

    result = runner.invoke(args=["entra", "pull", "--job", "uniflow-prod"])

    assert result.exit_code == 0, result.output
    assert "job uniflow-prod: 2 Graph records (0 of other jobs, 0 already read), 2 accepted" in result.output
    assert "Entra job status Active" in result.output
    assert _events() == 2


def test_the_cli_pulls_every_configured_job_without_job(runner, graph, sleeps):
    graph.pages = [[record(1, at(30))]]

    result = runner.invoke(args=["entra", "pull"])

    assert result.exit_code == 0, result.output
    assert "job uniflow-prod: 1 Graph records" in result.output


def test_the_cli_fails_when_graph_fails(runner, graph, sleeps):
    graph.fail_with = 503

    result = runner.invoke(args=["entra", "pull", "--job", "uniflow-prod"])

    assert result.exit_code == 1
    assert "errors: provisioning logs:" in result.output and SECRET not in result.output


def test_the_cli_names_an_unknown_job(runner, graph, sleeps):
    result = runner.invoke(args=["entra", "pull", "--job", "nope"])

    assert result.exit_code == 2 and "no job named 'nope'" in result.output


def test_the_cli_names_the_missing_credentials(app, runner, settings, graph, sleeps):
    app.extensions["dashboard"] = replace(settings, entra=EntraSettings())

    result = runner.invoke(args=["entra", "pull", "--job", "uniflow-prod"])

    assert result.exit_code == 2
    assert "entra.tenant, entra.client_id, entra.client_secret is not set" in result.output
    assert graph.requests == []


@pytest.mark.parametrize("flag", ["--list", "--once"])
def test_the_scheduler_command_includes_the_pull_when_enabled(runner, graph, sleeps, flag):
    result = runner.invoke(args=["scheduler", flag])

    assert result.exit_code == 0, result.output
    assert "entra-pull" in result.output
