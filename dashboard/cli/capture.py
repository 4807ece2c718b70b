"""`flask --app app capture`: the recording reverse proxy; `probe`: the endpoint check (docs/capture.md)."""
from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

import click
from flask import current_app

from dashboard import runtime
from dashboard.admin.endpoint import EndpointError, run_check, set_credential
from dashboard.capture.proxy import CaptureProxy, parse_listen
from dashboard.capture.writer import CaptureWriter
from dashboard.cli.common import job_or_exit
from dashboard.db import db
from dashboard.ingest.scim import options_for
from dashboard.models import EndpointCredential


@click.command("capture")
@click.option("--listen", required=True, help="HOST:PORT to accept Entra's requests on, e.g. 127.0.0.1:8443.")
@click.option("--upstream", required=True, help="The SCIM endpoint's base URL (https:// verified), e.g. https://scim.example.com.")
@click.option("--job", "job_name", required=True, help="The provisioning job the traffic belongs to.")
@click.option("--spool", "spool_dir", default=None, type=click.Path(file_okay=False),
              help="Directory for exchanges waiting for the database (default: instance/capture-spool/JOB).")
@click.option("--spool-max-mb", default=256, show_default=True, type=click.IntRange(1),
              help="Bound of the spool; beyond it exchanges are forwarded but not recorded (logged as an error).")
@click.option("--ca-file", default=None, type=click.Path(dir_okay=False, exists=True),
              help="CA bundle to verify the upstream's certificate with (default: the system's).")
def capture_command(listen: str, upstream: str, job_name: str, spool_dir: str | None, spool_max_mb: int,
                    ca_file: str | None) -> None:
    """Forward SCIM traffic to the upstream unchanged and record every exchange for JOB."""
    job = job_or_exit(job_name)
    try:
        address = parse_listen(listen)
    except (ValueError, OSError) as error:
        raise click.UsageError(str(error)) from error
    settings = runtime.settings()
    spool = Path(spool_dir) if spool_dir else Path(current_app.instance_path) / "capture-spool" / job.name
    writer = CaptureWriter(db.engine, job, options_for(settings), spool, spool_max_bytes=spool_max_mb * 1_048_576,
                           isolated=True)
    try:
        proxy = CaptureProxy(address, upstream, writer.submit, options_for(settings).rules, ca_file=ca_file)
    except (ValueError, OSError) as error:
        raise click.UsageError(str(error)) from error
    writer.start()  # after the proxy could bind: a usage error leaves nothing behind
    click.echo(f"capture: {proxy.url} -> {upstream} for job {job.name}; spool {spool} (max {spool_max_mb} MB)")
    def _stop(*_: object) -> None:
        # shutdown() waits for serve_forever to return: from another thread, not this handler
        threading.Thread(target=proxy.server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        proxy.serve_forever()
    finally:
        proxy.server.server_close()
        writer.close()
        counters = writer.counters
        click.echo(f"capture: {counters.submitted} exchanges: {counters.stored} stored, {counters.duplicates} "
                   f"duplicates, {counters.rejected} rejected, {counters.dropped} dropped (spool full); "
                   f"{len(writer.spool_files())} spool file(s) left in {spool}")


@click.command("probe")
@click.option("--job", "job_name", required=True, help="The provisioning job whose target is checked.")
@click.option("--tenant-url", default=None, help="Store this tenant URL first (the SCIM base, e.g. https://host/scim/v2).")
@click.option("--token-stdin", is_flag=True, help="Store the secret token read from stdin first (encrypted; never shown).")
@click.option("--ca-file", default=None, type=click.Path(dir_okay=False, exists=True),
              help="CA bundle to verify the target's certificate with (default: the system's).")
def probe_command(job_name: str, tenant_url: str | None, token_stdin: bool, ca_file: str | None) -> None:
    """Check the target as Entra's Test Connection does: the filter on a random GUID,
    /ServiceProviderConfig, /Schemas (the uniFLOW extension), the content type, TLS; each result
    with its consequence in Entra's terms, kept as history. Exit 1 when a check fails."""
    job = job_or_exit(job_name)
    try:
        if tenant_url or token_stdin:
            token = sys.stdin.readline().strip() if token_stdin else None
            if token_stdin and not token:
                raise click.UsageError("--token-stdin: no token on stdin")
            stored = db.session.get(EndpointCredential, job.id)
            url = tenant_url or (stored.tenant_url if stored is not None else "")
            set_credential(job, url, token, by="cli")
            db.session.commit()
        entry, verdict = run_check(job, runtime.now(), by="cli", ca_file=ca_file)
    except EndpointError as error:
        db.session.rollback()
        raise click.UsageError(str(error)) from error
    click.echo(f"endpoint check of {entry.tenant_url} for job {job.name}: {entry.outcome}")
    for check in json.loads(entry.checks):
        click.echo(f"  [{check['outcome']}] {check['name']}: {check['result']}\n         {check['consequence']}")
    if verdict.outcome == "fail":
        sys.exit(1)
