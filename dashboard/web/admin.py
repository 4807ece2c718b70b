"""Administration pages (admin role): accounts, jobs, ingest tokens, subscriptions, SMTP test, audit log.

Every POST carries its CSRF token (CSRFProtect) and answers with a redirect and a flash, except
creating an ingest token: that page shows the token once, in the response, and nowhere else
(not in a flash, which would put it in the session cookie). Every change is written through
admin/ (or notify/ for subscriptions) with an audit entry in the same transaction.
"""
from __future__ import annotations

import json
import smtplib
from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)

from dashboard.admin import audit
from dashboard.admin.endpoint import EndpointError, run_check, set_credential
from dashboard.admin.accounts import (
    ROLES,
    AccountError,
    add_account,
    change_password,
    list_accounts,
    set_active,
    set_role,
)
from dashboard.admin.jobs import (
    QUARANTINE_KEYS,
    JobError,
    JobSettingsError,
    add_job,
    check_job_name,
    create_token,
    get_job,
    list_jobs,
    parse_overrides,
    revoke_token,
    tokens_of,
    update_job,
)
from dashboard.db import db
from dashboard.notify.emails import render_email
from dashboard.notify.mailer import Message, SmtpMailer
from dashboard.notify.recipients import (
    NOTIFY_KINDS,
    NOTIFY_ROLES,
    SubscriptionError,
    all_recipients,
    unsubscribe,
)
from dashboard.notify.welcome import subscribe_and_tell
from dashboard.runtime import now as _now
from dashboard.runtime import settings as _settings
from dashboard.web.auth import requires

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _actor() -> str:
    return g.account.email


def _back(endpoint: str, **values: Any) -> Response:
    return redirect(url_for(endpoint, **values))  # type: ignore[return-value]


# -- accounts ------------------------------------------------------------------------------------


@bp.get("/accounts")
@requires("admin")
def accounts() -> str:
    return render_template("admin/accounts.html", accounts=list_accounts(), roles=ROLES)


def _account_change(action: str, email: str, detail: str, change: Callable[[], Any], *, failed: str,
                    done: str) -> Response:
    """Make an account change with its audit entry (one transaction), say how it went, go back."""
    try:
        audit.audited(_actor(), action, email, detail, change)
    except AccountError as exc:
        flash(f"{failed}: {exc}.", "error")
    else:
        flash(done, "ok")
    return _back("admin.accounts")


@bp.post("/accounts")
@requires("admin")
def account_add() -> Response:
    email, role = request.form.get("email", "").strip().lower(), request.form.get("role", "")
    return _account_change("account.add", email, f"role {role}",
                           lambda: add_account(email, role, request.form.get("password", "")),
                           failed="Account not added", done=f"Added {email} ({role}).")


@bp.post("/accounts/role")
@requires("admin")
def account_role() -> Response:
    email, role = request.form.get("email", ""), request.form.get("role", "")
    return _account_change("account.role", email, f"role set to {role}", lambda: set_role(email, role),
                           failed="Role not changed", done=f"{email} is now {role}.")


@bp.post("/accounts/active")
@requires("admin")
def account_active() -> Response:
    email, active = request.form.get("email", ""), request.form.get("active") == "1"
    what = "enabled" if active else "disabled; its sessions ended"
    return _account_change("account.enable" if active else "account.disable", email, what,
                           lambda: set_active(email, active), failed="Not changed", done=f"{email} {what}.")


@bp.post("/accounts/password")
@requires("admin")
def account_password() -> Response:
    email = request.form.get("email", "")
    return _account_change("account.password", email, "password reset; its sessions ended",
                           lambda: change_password(email, request.form.get("password", "")),
                           failed="Password not reset",
                           done=f"New password set for {email}; every session of the account has ended.")


# -- jobs, tokens, subscriptions -------------------------------------------------------------------


@bp.get("/jobs")
@requires("admin")
def jobs() -> str:
    return render_template("admin/jobs.html", jobs=list_jobs())


@bp.post("/jobs")
@requires("admin")
def job_add() -> Response:
    try:
        name = check_job_name(request.form.get("name", ""))
        display_name = request.form.get("display_name", "").strip()
        scope_size = _scope_size(request.form.get("scope_size", ""))
        audit.audited(_actor(), "job.add", name, _job_words(display_name, scope_size, None),
                      lambda: add_job(name, display_name=display_name, scope_size=scope_size))
    except (JobError, JobSettingsError) as exc:
        flash(f"Job not added: {exc}.", "error")
        return _back("admin.jobs")
    flash(f"Added job {name}. Create an ingest token for it below.", "ok")
    return _back("admin.job", job_name=name)


@bp.get("/jobs/<job_name>")
@requires("admin")
def job(job_name: str) -> str:
    return _job_page(job_name)


@bp.post("/jobs/<job_name>")
@requires("admin")
def job_update(job_name: str) -> Response:
    if "display_name" not in request.form:
        flash("Nothing changed: the form was empty.", "error")
        return _back("admin.job", job_name=job_name)
    try:
        current = get_job(job_name)
        display_name = request.form.get("display_name", "").strip()
        scope_size = _scope_size(request.form.get("scope_size", ""))
        overrides = parse_overrides(request.form.get("thresholds", ""))
        before = _job_words(current.display_name, current.scope_size, json.loads(current.quarantine_overrides or "{}"))
        after = _job_words(display_name, scope_size, overrides)
        audit.audited(_actor(), "job.update", job_name, f"{before} → {after}",
                      lambda: update_job(job_name, display_name=display_name, scope_size=scope_size,
                                         overrides=overrides))
    except (JobError, JobSettingsError) as exc:
        flash(f"Not saved: {exc}.", "error")
    else:
        flash("Saved.", "ok")
    return _back("admin.job", job_name=job_name)


@bp.post("/jobs/<job_name>/tokens")
@requires("admin")
def token_create(job_name: str) -> str:
    job_row = _job_or_404(job_name)
    # The prefix goes in the audit log and the listing; the token itself only in this response.
    row, token = audit.audited(_actor(), "token.create", job_name, lambda made: f"ingest token {made[0].prefix}… created",
                               lambda: create_token(job_row))
    return _job_page(job_name, new_token=token, new_prefix=row.prefix)


@bp.post("/jobs/<job_name>/tokens/revoke")
@requires("admin")
def token_revoke(job_name: str) -> Response:
    job_row = _job_or_404(job_name)
    token_id = request.form.get("token_id", "")
    mine = {t.id: t for t in tokens_of(job_row)}
    if not token_id.isdigit() or int(token_id) not in mine:
        flash("No such token of this job.", "error")
        return _back("admin.job", job_name=job_name)
    prefix = mine[int(token_id)].prefix
    audit.audited(_actor(), "token.revoke", job_name, f"ingest token {prefix}… revoked",
                  lambda: revoke_token(int(token_id)))
    flash(f"Token {prefix}… revoked: pushes with it are refused from now on.", "ok")
    return _back("admin.job", job_name=job_name)


@bp.post("/jobs/<job_name>/subscriptions")
@requires("admin")
def subscription_add(job_name: str) -> Response:
    job_row = _job_or_404(job_name)
    address, role = request.form.get("address", "").strip(), request.form.get("role", "")
    kinds = request.form.getlist("kinds")
    try:
        _, told = audit.audited(
            _actor(), "subscription.add", f"{address} → {job_name}", f"{', '.join(kinds)} as {role}",
            lambda: subscribe_and_tell(db.session, job_row, address, kinds=kinds, role=role, now=_now(),
                                       settings=_settings()))
    except SubscriptionError as exc:
        flash(f"Not subscribed: {exc}.", "error")
    else:
        told_words = f" {told} email{'s' if told != 1 else ''} about the open problem queued for it." if told else ""
        flash(f"{address} subscribed to {job_name} ({', '.join(sorted(kinds))}).{told_words}", "ok")
    return _back("admin.job", job_name=job_name)


@bp.post("/jobs/<job_name>/subscriptions/remove")
@requires("admin")
def subscription_remove(job_name: str) -> Response:
    job_row = _job_or_404(job_name)
    address = request.form.get("address", "").strip()
    gone = audit.audited(_actor(), "subscription.remove", f"{address} → {job_name}", "unsubscribed",
                         lambda: unsubscribe(db.session, job_row, address)) if address else False
    flash(f"{address} unsubscribed." if gone else "No such subscription.", "ok" if gone else "error")
    return _back("admin.job", job_name=job_name)


# -- email -----------------------------------------------------------------------------------------


@bp.get("/email")
@requires("admin")
def email() -> str:
    return render_template("admin/email.html", smtp=_settings().smtp)


@bp.post("/email/test")
@requires("admin")
def smtp_test() -> Response:
    """A test email now, through [smtp] and not the outbox: the server's answer, or its error."""
    settings, to = _settings(), request.form.get("to", "").strip()
    smtp = settings.smtp
    if not smtp.host or "@" not in to:
        flash("Set [smtp] host first." if not smtp.host else "Type the address to send the test to.", "error")
        return _back("admin.email")
    email = render_email("test-message", {"smtp": {"host": smtp.host, "port": smtp.port, "security": smtp.security,
                                                   "from_address": smtp.from_address},
                                          "base_url": settings.app.base_url.rstrip("/"), "now": _now().isoformat()})
    try:
        answer = SmtpMailer(smtp).send(Message(to, email.subject, email.text, email.html))
    except (smtplib.SMTPException, OSError) as exc:
        result, ok = f"failed: {type(exc).__name__}: {exc}", False
    else:
        result, ok = f"accepted: {answer}", True
    audit.record(_actor(), "smtp.test", to, f"via {smtp.host}:{smtp.port} ({smtp.security}): {result}"[:1000])
    flash(f"Test email to {to} {result}", "ok" if ok else "error")
    return _back("admin.email")


# -- audit log -------------------------------------------------------------------------------------


@bp.get("/audit")
@requires("admin")
def audit_log() -> str:
    before = request.args.get("before", "")
    entries = audit.recent(limit=100, before=int(before) if before.isdigit() else None)
    older = entries[-1].id if len(entries) == 100 else None
    return render_template("admin/audit.html", entries=entries, older=older)


# -- helpers ---------------------------------------------------------------------------------------


# -- the endpoint check (Entra's Test Connection) -----------------------------------------------------


@bp.post("/jobs/<job_name>/endpoint")
@requires("admin")
def endpoint_save(job_name: str) -> Response:
    """Store the tenant URL and (when one is entered) the secret token: encrypted, never shown again."""
    job_row = _job_or_404(job_name)
    url = request.form.get("tenant_url", "")
    token = request.form.get("token", "")
    detail = "tenant URL and a new secret token set" if token.strip() else "tenant URL set (token kept)"
    try:
        audit.audited(_actor(), "endpoint.credential", job_name, detail,
                      lambda: set_credential(job_row, url, token, by=_actor()))
    except EndpointError as exc:
        flash(f"Not saved: {exc}.", "error")
    else:
        flash("Saved: " + detail + ". Run the check to see what Entra would see.", "ok")
    return _back("pages.job_page", job_name=job_name, _anchor="endpoint")


@bp.post("/jobs/<job_name>/endpoint/check")
@requires("admin")
def endpoint_check(job_name: str) -> Response:
    """Run the endpoint check now (what Entra's Test Connection runs) and keep the result."""
    job_row = _job_or_404(job_name)
    try:
        entry, _verdict = run_check(job_row, _now(), by=_actor())
    except EndpointError as exc:
        flash(f"Check not run: {exc}.", "error")
    else:
        words = {"pass": "passed", "warn": "passed with warnings", "fail": "failed"}[entry.outcome]
        flash(f"Endpoint check {words}: see the results below.", "ok" if entry.outcome != "fail" else "error")
    return _back("pages.job_page", job_name=job_name, _anchor="endpoint")


def _job_page(job_name: str, **extra: Any) -> str:
    job_row = _job_or_404(job_name)
    return render_template(
        "admin/job.html", job=job_row, tokens=tokens_of(job_row), keys=QUARANTINE_KEYS,
        recipients=all_recipients(db.session, job_row, _settings()), kinds=NOTIFY_KINDS, notify_roles=NOTIFY_ROLES,
        defaults=_settings().quarantine, **extra)


def _job_or_404(job_name: str) -> Any:
    try:
        return get_job(job_name)
    except JobError:
        abort(404, description=f"No job named {job_name}.")


def _scope_size(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit():
        raise JobSettingsError("the scope size is a whole number of users (or empty: unknown)")
    return int(text)


def _job_words(display_name: str, scope_size: int | None, overrides: Any) -> str:
    return f"display name '{display_name}', scope size {scope_size if scope_size is not None else 'unknown'}" + (
        f", thresholds {json.dumps(overrides, sort_keys=True)}" if overrides is not None else "")
