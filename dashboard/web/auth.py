"""Sign-in, roles, and the guard every page and API route goes through."""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from hmac import compare_digest
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired

from dashboard import runtime
from dashboard.admin.accounts import (
    account_by_id,
    account_for_api_token,
    authenticate,
    end_sessions,
    role_allows,
)
from dashboard.admin.throttle import (
    ThrottleLimits,
    forget_failures,
    is_throttled,
    record_failure,
)

bp = Blueprint("auth", __name__)


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


def requires(role: str) -> Callable:
    """Route decorator: signed in (session, or an API token on /api/) with at least `role`."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            account = g.get("account")
            if account is None:
                if request.path.startswith("/api/"):
                    return json_error("sign in or send Authorization: Bearer <API token>", 401)
                return redirect(url_for("auth.login", next=request.full_path))
            if not role_allows(account.role, role):
                if request.path.startswith("/api/"):
                    return json_error(f"this needs the {role} role", 403)
                abort(403, description=f"This page needs the {role} role; you are signed in as {account.role}. "
                                       "Ask an admin to change your role.")
            return view(*args, **kwargs)

        guarded.required_role = role  # type: ignore[attr-defined]
        return guarded

    return decorate


def load_account() -> None:
    g.account = None
    header = request.headers.get("Authorization", "")
    if request.path.startswith("/api/") and header.lower().startswith("bearer "):
        token = header[7:].strip()
        if token.startswith("pma_"):
            g.account = account_for_api_token(token)
        return
    account_id = session.get("aid")
    if account_id is not None:
        account = account_by_id(account_id)
        # The key, not the cookie's signature alone, decides: sign-out and a password change replace it.
        key = session.get("sk")
        if account is not None and account.active and isinstance(key, str) and compare_digest(key, account.session_key):
            g.account = account
        else:
            session.clear()


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    form = LoginForm()
    if form.validate_on_submit():
        email, address, now, limits = form.email.data, request.remote_addr or "", runtime.now(), _limits()
        if is_throttled(email, address, now=now, limits=limits):
            flash("Too many failed sign-ins. Wait 15 minutes and try again.", "error")
            return render_template("auth/login.html", form=form), 429
        account = authenticate(email, form.password.data)
        if account is None:
            record_failure(email, address, now=now, limits=limits)
            flash("Wrong email or password.", "error")
            return render_template("auth/login.html", form=form), 401
        forget_failures(email, address)
        session.clear()
        session.permanent = True
        session["aid"] = account.id
        session["sk"] = account.session_key
        return redirect(_local_target(request.args.get("next")) or url_for("pages.overview"))
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
def logout() -> Response:
    # POST with the CSRF token (checked by CSRFProtect): a link cannot sign anyone out.
    account = g.get("account")
    if account is not None and session.get("aid") == account.id:
        end_sessions(account.id)  # a copy of the cookie (another browser, a thief) stops working too
    session.clear()
    return redirect(url_for("auth.login"))


def _local_target(target: str | None) -> str | None:
    """`next` only when it is a path on this site: no scheme, no host, no control characters
    (a tab or newline would be stripped by the browser and turn "/\t/evil.com" into "//evil.com")."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if any(c in target for c in "\\\t\r\n") or any(ord(c) < 32 for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def _limits() -> ThrottleLimits:
    default = ThrottleLimits()
    return ThrottleLimits(per_address=current_app.config.get("LOGIN_THROTTLE_MAX", default.per_address),
                          per_account=current_app.config.get("LOGIN_THROTTLE_ACCOUNT_MAX", default.per_account))


def json_error(message: str, status: int, realm: str = "api") -> Response:
    """A refused API request: the message as JSON; a 401 names the Bearer scheme and its realm."""
    response = jsonify(error=message)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = f'Bearer realm="{realm}"'
    return response
