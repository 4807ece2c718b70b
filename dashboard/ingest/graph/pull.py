"""Pull a job's provisioning events and status from Microsoft Graph into the database.

One pull (`pull_job`): a client-credentials token, the tenant's provisioning events since the
job's watermark (entra/graph.py pages, waits when throttled and renews an expired token), the
events of this job stored through `import_events` (via "graph"), the watermark saved in
`EntraPullState` only when every page was read; then Entra's status of the job when its service
principal and job id are configured. A failed pull keeps the old watermark and stores the error,
so the next one reads the same span again (what was stored already is a duplicate by its key).

The tenant's log holds every app's events: an event is this job's when its `jobId` is the job's
`entra_job_id`, else (no job id configured) when its service principal is the job's
`entra_service_principal_id`; a job naming neither takes them all (`flask entra pull --job`).
The scheduler (`run_entra_pulls`) pulls the jobs that name at least one of the two.

The client secret is only ever sent to the token endpoint: it is not logged, stored or shown,
and is removed from any error text before that is logged or stored.
"""
from __future__ import annotations

import logging
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import chain

import orjson
from flask import Flask
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from dashboard import runtime
from dashboard.db import db
from dashboard.formats.entra.jobstatus import (
    JobStatusError,
    check_job_document,
    parse_job_status,
)
from dashboard.formats.entra.records import ProvisioningEvent
from dashboard.formats.scim.redact import RedactionRules
from dashboard.ingest.entra import Item, import_events, import_job_status
from dashboard.ingest.graph.client import (
    GraphClient,
    GraphConfig,
    GraphError,
    ProvisioningPull,
    Watermark,
)
from dashboard.ingest.scim import IngestResult, options_from
from dashboard.models import EntraPullState, Job
from dashboard.settings import EntraSettings, JobSettings, Settings

log = logging.getLogger(__name__)


_state = EntraPullState.__table__


class PullNotConfigured(ValueError):
    """[entra] lacks the tenant, client id or secret."""


@dataclass
class PullOutcome:
    job: str
    complete: bool = False  # every page was read: the watermark moved
    records: int = 0  # records Graph returned (all of the tenant's jobs)
    other_jobs: int = 0  # ... of which belong to other Entra jobs (not stored)
    already_seen: int = 0  # ... of which the previous pull had read (the overlap)
    result: IngestResult = field(default_factory=IngestResult)
    watermark: Watermark | None = None
    status_code: str | None = None  # Entra's status of the job (Active, Quarantine, ...), when fetched
    status_stored: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        return "; ".join(self.errors) or None

    def summary(self) -> str:
        r = self.result
        text = (f"job {self.job}: {self.records} Graph records ({self.other_jobs} of other jobs, "
                f"{self.already_seen} already read), {r.accepted} accepted, {r.duplicates} duplicates, "
                f"{r.rejected} rejected")
        if self.watermark is not None:
            text += f"; read up to {self.watermark.activity_at.isoformat()}"
        if self.status_code:
            text += f"; Entra job status {self.status_code}" + ("" if self.status_stored else " (unchanged)")
        if self.errors:
            text += f"; errors: {self.error}"
        return text


def graph_config(entra: EntraSettings) -> GraphConfig:
    if entra.missing:
        raise PullNotConfigured(f"Graph pull: {', '.join(entra.missing)} is not set "
                                "(the secret may come from DASHBOARD_ENTRA_CLIENT_SECRET)")
    return GraphConfig(
        tenant=entra.tenant, client_id=entra.client_id, client_secret=entra.client_secret,
        login_base=entra.login_base, graph_base=entra.graph_base, page_size=entra.page_size or None,
        timeout_s=float(entra.timeout_seconds), max_attempts=entra.max_attempts,
        max_wait_s=float(entra.max_wait_seconds), overlap=timedelta(minutes=entra.overlap_minutes),
        initial_lookback=timedelta(days=entra.initial_lookback_days),
    )


def job_settings(settings: Settings, name: str) -> JobSettings:
    """The [[jobs]] entry of the job (a job added with `flask job add` has none: defaults)."""
    return next((spec for spec in settings.jobs if spec.name == name), JobSettings(name=name))


def is_pulled(spec: JobSettings) -> bool:
    """The scheduler pulls a job that names its Entra job or service principal."""
    return bool(spec.entra_job_id or spec.entra_service_principal_id)


def belongs_to(event: ProvisioningEvent, spec: JobSettings) -> bool:
    """The event is of this job: its jobId, else its service principal, else any (nothing named).

    Compared case-insensitively: the ids hold GUIDs, which exports spell in either case.
    """
    if spec.entra_job_id:
        return (event.job_id or "").casefold() == spec.entra_job_id.casefold()
    if spec.entra_service_principal_id:
        principal = event.service_principal.id if event.service_principal else None
        return (principal or "").casefold() == spec.entra_service_principal_id.casefold()
    return True


def pull_job(
    engine: Engine,
    job: Job,
    settings: Settings,
    now: datetime,
    *,
    sleep: Callable[[float], None] = time.sleep,
    opener: urllib.request.OpenerDirector | None = None,
) -> PullOutcome:
    """One pull of one job's events since its watermark, then its Entra status (see the module)."""
    config = graph_config(settings.entra)
    spec = job_settings(settings, job.name)
    options = options_from(settings.ingest, cycles=settings.cycles)
    outcome = PullOutcome(job=job.name)
    previous = _start(engine, job.id, now)
    client = GraphClient(config, now=lambda: now, sleep=sleep, opener=opener)
    pull = client.pull(previous, rules=options.rules)

    items = _ours(pull, spec, outcome, secret=config.client_secret)
    first = next(items, None)
    if first is not None:  # a pull that finds nothing new leaves no ingest run behind
        outcome.result = import_events(engine, job, chain([first], items), source=f"graph {config.graph_base}",
                                       via="graph", options=options)
    outcome.records, outcome.already_seen = pull.records, pull.skipped
    outcome.complete = pull.complete and not outcome.errors
    outcome.watermark = pull.watermark if outcome.complete else previous

    if spec.entra_service_principal_id and spec.entra_job_id:
        _pull_status(client, engine, job, spec, outcome, options.rules, now, secret=config.client_secret)
    elif spec.entra_job_id:
        log.debug("job %s: no entra_service_principal_id, so no Entra job status", job.name)

    _finish(engine, job.id, outcome, now)
    if outcome.errors:
        log.warning("Graph pull: %s", outcome.summary())
    else:
        log.info("Graph pull: %s", outcome.summary())
    return outcome


def _ours(pull: ProvisioningPull, spec: JobSettings, outcome: PullOutcome, *, secret: str) -> Iterator[Item]:
    """The pull's events of this job and its parse problems; a GraphError ends it, noted in `outcome`."""
    try:
        for item in pull:
            if isinstance(item, ProvisioningEvent) and not belongs_to(item, spec):
                outcome.other_jobs += 1
                continue
            yield "graph", item
    except GraphError as exc:
        outcome.errors.append(f"provisioning logs: {scrub(str(exc), secret)}")


def _pull_status(
    client: GraphClient, engine: Engine, job: Job, spec: JobSettings, outcome: PullOutcome, rules: RedactionRules,
    now: datetime, *, secret: str,
) -> None:
    try:
        data = client.get_job_json(spec.entra_service_principal_id, spec.entra_job_id)
        check_job_document(data)  # a Graph error, or anything but a job, never replaces the stored status
        status = parse_job_status(data)
    except (GraphError, JobStatusError) as exc:
        outcome.errors.append(f"job status: {scrub(str(exc), secret)}")
        return
    stored = import_job_status(engine, job, data, status, source=f"graph {client.config.graph_base}", rules=rules,
                               now=now)
    outcome.status_code, outcome.status_stored = status.code or "unknown", stored.stored


def scrub(text: str, secret: str) -> str:
    """`text` without the secret (an error text should never carry it; this makes sure)."""
    return text.replace(secret, "[REDACTED]") if secret else text


def _start(engine: Engine, job_id: int, now: datetime) -> Watermark | None:
    """The job's watermark (None: a first pull), with the attempt recorded."""
    with engine.begin() as conn:
        row = conn.execute(select(_state.c.watermark).where(_state.c.job_id == job_id)).first()
        if row is None:
            conn.execute(insert(_state).values(job_id=job_id, watermark="{}", last_attempt_at=now, last_records=0))
            return None
        conn.execute(update(_state).where(_state.c.job_id == job_id).values(last_attempt_at=now))
    try:
        return Watermark.from_json(orjson.loads(row.watermark or "{}"))
    except orjson.JSONDecodeError:
        return None


def _finish(engine: Engine, job_id: int, outcome: PullOutcome, now: datetime) -> None:
    values: dict = {"last_error": outcome.error, "last_records": outcome.result.lines}
    if outcome.complete:
        values["last_success_at"] = now
        if outcome.watermark is not None:
            values["watermark"] = orjson.dumps(outcome.watermark.to_json()).decode()
    with engine.begin() as conn:
        conn.execute(update(_state).where(_state.c.job_id == job_id).values(**values))


def record_failure(engine: Engine, job_id: int, error: str, now: datetime) -> None:
    """An unexpected failure of a pull: kept as its last error (the watermark stays)."""
    with engine.begin() as conn:
        if conn.execute(select(_state.c.job_id).where(_state.c.job_id == job_id)).first() is None:
            conn.execute(insert(_state).values(job_id=job_id, watermark="{}", last_records=0))
        conn.execute(update(_state).where(_state.c.job_id == job_id).values(
            last_attempt_at=now, last_error=error[:2000]))


def run_entra_pulls(app: Flask) -> str:
    """The scheduled pull: each configured job that names its Entra ids, one after another."""
    settings = runtime.settings(app)
    specs = [spec for spec in settings.jobs if is_pulled(spec)]
    if not specs:
        log.warning("[entra] is enabled but no [[jobs]] entry names entra_job_id or entra_service_principal_id")
        return "no job to pull"
    done = []
    with app.app_context():
        for spec in specs:
            job = db.session.scalar(select(Job).where(Job.name == spec.name))
            if job is None:
                log.warning("Graph pull: job %s is not in the database yet (flask init-db adds it)", spec.name)
                continue
            done.append(_pull_guarded(app, db.engine, job, settings))
    return ", ".join(done)


def _pull_guarded(app: Flask, engine: Engine, job: Job, settings: Settings) -> str:
    """One job's pull; an unexpected failure is logged and stored, and the other jobs still run."""
    now = runtime.now(app)
    try:
        outcome = pull_job(engine, job, settings, now, sleep=app.extensions.get("graph_sleep", time.sleep),
                           opener=app.extensions.get("graph_opener"))
    except Exception as exc:  # noqa: BLE001 - one job's failure must not stop the others
        error = scrub(f"{type(exc).__name__}: {exc}", settings.entra.client_secret)
        log.error("Graph pull of job %s failed: %s", job.name, error)
        record_failure(engine, job.id, error, now)
        return f"{job.name}: failed"
    return f"{job.name}: {outcome.result.accepted} new" + (" (error)" if outcome.errors else "")
