"""The endpoint check's credential and history: the tenant URL and secret token (encrypted at
rest, never shown again), and each run of the check with its verdict.

The key is DASHBOARD_SECRET_ENCRYPTION_KEY (a Fernet key: 32 url-safe base64-encoded bytes;
`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`).
Without it a token cannot be stored or used, and the error says so.
"""
from __future__ import annotations

import json
import os
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sqlalchemy import select

from dashboard.admin.endpoint_http import observe
from dashboard.analysis.probe import Verdict, judge, token_expiry
from dashboard.db import db
from dashboard.formats.scim.redact import redact_text
from dashboard.models import EndpointCheck, EndpointCredential, Job
from dashboard.times import utc_now

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

KEY_VARIABLE = "DASHBOARD_SECRET_ENCRYPTION_KEY"
HISTORY_KEPT = 200  # checks kept per job; older ones are removed when a new one is stored


class EndpointError(ValueError):
    """A credential that cannot be stored or used, in words for the person who entered it."""


def _fernet() -> Fernet:
    # imported here: about 6 MB resident that only a process storing or using a credential needs
    from cryptography.fernet import Fernet

    key = os.environ.get(KEY_VARIABLE, "").strip()
    if not key:
        raise EndpointError(f"{KEY_VARIABLE} is not set: the secret token is stored encrypted with it (see docs/security.md)")
    try:
        return Fernet(key.encode())
    except ValueError as error:
        raise EndpointError(f"{KEY_VARIABLE} is not a Fernet key (32 url-safe base64-encoded bytes)") from error


def check_tenant_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise EndpointError("the tenant URL must be an https:// URL, e.g. https://example.uniflowonline.com/scim/v2")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise EndpointError("the tenant URL takes no query, fragment or user name: the token goes in the token field")
    return url.rstrip("/")


def set_credential(job: Job, tenant_url: str, token: str | None, *, by: str) -> EndpointCredential:
    """Store (or replace) the job's tenant URL and token; a blank token keeps the stored one."""
    url = check_tenant_url(tenant_url)
    row = db.session.get(EndpointCredential, job.id)
    token = (token or "").strip()
    if not token and row is None:
        raise EndpointError("enter the secret token (it is stored encrypted and never shown again)")
    encrypted = _fernet().encrypt(token.encode()).decode() if token else None  # before any row changes
    if row is None:
        row = EndpointCredential(job_id=job.id)
        db.session.add(row)
    row.tenant_url = url
    if encrypted is not None:
        row.token_encrypted = encrypted
        row.set_at = utc_now()
        row.set_by = by[:320]
        row.token_expires_at = token_expiry(token)
    db.session.flush()
    return row


def clear_credential(job: Job) -> None:
    row = db.session.get(EndpointCredential, job.id)
    if row is not None:
        db.session.delete(row)
        db.session.flush()


def _token(row: EndpointCredential) -> str:
    from cryptography.fernet import InvalidToken  # imported when needed, as in _fernet

    try:
        return _fernet().decrypt(row.token_encrypted.encode()).decode()
    except InvalidToken as error:
        raise EndpointError(f"the stored token cannot be decrypted with this {KEY_VARIABLE} (was the key changed?): "
                            "enter the token again") from error


def run_check(job: Job, now: datetime, *, by: str, ca_file: str | None = None) -> tuple[EndpointCheck, Verdict]:
    """Run the endpoint check against the stored credential and store its result (committed)."""
    row = db.session.get(EndpointCredential, job.id)
    if row is None:
        raise EndpointError(f"no tenant URL and secret token stored for job {job.name}: set them on the job page "
                            f"(admin) or with `flask --app app probe --job {job.name} --tenant-url URL --token-stdin`")
    token = _token(row)
    observed = observe(row.tenant_url, token, token_expires_at=row.token_expires_at, ca_file=ca_file)
    verdict = judge(observed, now)
    checks = [{key: _clean(value, token) for key, value in check.to_dict().items()} for check in verdict.checks]
    entry = EndpointCheck(job_id=job.id, at=now, outcome=verdict.outcome, tenant_url=row.tenant_url,
                          checks=json.dumps(checks), by=by[:320])
    db.session.add(entry)
    db.session.flush()
    old = select(EndpointCheck.id).where(EndpointCheck.job_id == job.id).order_by(EndpointCheck.id.desc()) \
        .offset(HISTORY_KEPT)
    for stale in db.session.scalars(select(EndpointCheck).where(EndpointCheck.id.in_(old))):
        db.session.delete(stale)
    db.session.commit()
    return entry, verdict


def _clean(value: str, token: str) -> str:
    """A result as it may be stored: the token never (even if the target echoed it), secrets redacted."""
    return (redact_text(value) or "").replace(token, "[REDACTED]") if token else (redact_text(value) or "")
