"""Sign-in and roles: every route is guarded, login is throttled and CSRF-protected, tokens are hashed."""
from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import timedelta
from urllib.parse import quote

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from dashboard.admin import accounts
from dashboard.admin.accounts import add_account, create_api_token, role_allows
from dashboard.admin.jobs import create_token, get_job
from dashboard.admin.scraper import make_token
from dashboard.db import db
from dashboard.demo.simulate import simulate_lines
from dashboard.demo.truth import SimConfig
from dashboard.formats.entra.parse import convert_record
from dashboard.ingest.entra import import_events
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.models import Account, ApiToken, Cycle, EntraEvent, Exchange
from dashboard.notify.reports import send_report_if_due
from dashboard.settings import OpsSettings
from tests.web.signin import PASSWORD, csrf_token, sign_in, signed_in

SCRAPER = {"ops.metrics", "ops.healthz"}  # the scraper token of [ops] scraper_token_hash, not accounts
UNGUARDED = {"static", "auth.login", "auth.logout", "api.push_exchanges"} | SCRAPER  # push takes ingest tokens
PUSH = "/api/v1/jobs/uniflow-prod/exchanges"
# The least role each endpoint needs (docs/api.md). A new endpoint must be added here.
MIN_ROLE = {
    "pages.overview": "viewer",
    "pages.overview_page": "viewer",
    "pages.job_page": "viewer",
    "pages.cycles_page": "viewer",
    "pages.plotly_js": "viewer",
    "pages.cycle_page": "support",
    "pages.logs_page": "support",
    "pages.logs_export": "support",
    "pages.exchange_page": "support",
    "pages.entra_event_page": "support",
    "pages.users_page": "support",
    "pages.user_page": "support",
    "pages.diagnostics_page": "support",
    "pages.reports_page": "support",
    "pages.report_page": "support",
    "pages.notifications_page": "admin",
    "pages.notification_retry": "admin",
    "pages.search_page": "support",
    "admin.accounts": "admin",
    "admin.account_add": "admin",
    "admin.account_role": "admin",
    "admin.account_active": "admin",
    "admin.account_password": "admin",
    "admin.jobs": "admin",
    "admin.job_add": "admin",
    "admin.job": "admin",
    "admin.job_update": "admin",
    "admin.token_create": "admin",
    "admin.token_revoke": "admin",
    "admin.subscription_add": "admin",
    "admin.subscription_remove": "admin",
    "admin.email": "admin",
    "admin.smtp_test": "admin",
    "admin.audit_log": "admin",
    "admin.endpoint_save": "admin",
    "admin.endpoint_check": "admin",
    "api.openapi": "viewer",
    "api.jobs": "viewer",
    "api.health": "viewer",
    "api.cycles": "viewer",
    "api.current_cycle": "viewer",
    "api.cycle_detail": "support",
    "api.users": "support",
    "api.user_timeline": "support",
    "api.signatures": "support",
    "api.exchange": "support",
    "api.report": "support",
    "api.entra_status": "viewer",
    "api.entra_events": "support",
    "api.entra_event": "support",
}


@pytest.fixture(autouse=True)
def _no_failed_logins(monkeypatch):  # type: ignore[no-untyped-def]
    # Failed sign-ins are rows: the app fixture empties the tables, so every test starts clean.
    # Argon2 with its default cost takes half a second per hash; these tests are not about that.
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    yield


@pytest.fixture
def values(app, settings) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Real values for every URL argument, from an ingested simulated log and its cycle report."""
    lines, truth = simulate_lines(SimConfig(users=20, cycles=2, seed=5, job="uniflow-prod"))
    ingest_lines(db.engine, get_job("uniflow-prod"), enumerate(lines, start=1), source="sim.jsonl", via="cli",
                 options=options_from(settings.ingest, cycles=settings.cycles))
    now = truth.cycles[-1].ended_at + timedelta(minutes=30)
    app.extensions["clock"] = lambda: now
    report = send_report_if_due(db.session, get_job("uniflow-prod"), now, settings, force=True)
    event = {"id": "ev-1", "activityDateTime": "2026-11-28T08:00:00Z", "cycleId": "c-1", "provisioningAction": "update",
             "provisioningStatusInfo": {"status": "success"}, "sourceIdentity": {"id": "s-1", "identityType": "User"}}
    import_events(db.engine, get_job("uniflow-prod"), [("t", convert_record(event, 1))], source="t", via="cli",
                  options=options_from(settings.ingest, cycles=settings.cycles))
    return {
        "job_name": "uniflow-prod",
        "cycle_id": db.session.scalars(select(Cycle.id)).first(),
        "exchange_id": db.session.scalars(select(Exchange.id)).first(),
        "event_id": db.session.scalars(select(EntraEvent.id)).first(),
        "key": next(iter(truth.cycles[0].users)),
        "fmt": "csv",
        "report_id": report.id,  # type: ignore[union-attr]
        "notification_id": 1,  # retrying an unknown email is answered like a known one (flash, redirect)
        "filename": "css/app.css",
    }




def account(role: str, email: str | None = None) -> Account:
    return add_account(email or f"{role}@example.com", role, PASSWORD)



def routes(app, values: dict[str, object]) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    """(endpoint, method, url) for every rule and method, built with real values."""
    adapter = app.url_map.bind("localhost")
    out = []
    for rule in app.url_map.iter_rules():
        missing = rule.arguments - set(values)
        assert not missing, f"{rule.rule}: no test value for {sorted(missing)}"
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            url = adapter.build(rule.endpoint, {a: values[a] for a in rule.arguments}, method=method)
            out.append((rule.endpoint, method, url))
    return out


def unguarded(app) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(endpoint for endpoint, view in app.view_functions.items()
                  if endpoint not in UNGUARDED and not hasattr(view, "required_role"))


# -- every route is guarded -----------------------------------------------------------------------


def test_it_guards_every_view_with_a_role(app):  # type: ignore[no-untyped-def]
    assert unguarded(app) == []
    assert {e: app.view_functions[e].required_role for e in app.view_functions if e not in UNGUARDED} == MIN_ROLE


def test_it_notices_a_new_route_without_a_role(app):  # type: ignore[no-untyped-def]
    app.add_url_rule("/api/v1/naked", "naked", lambda: "open to all")

    assert unguarded(app) == ["naked"]


def open_with_csrf(client, method: str, url: str, token: str):  # type: ignore[no-untyped-def]
    # A form post carries its CSRF token, so what answers is the role guard, not CSRFProtect.
    return client.open(url, method=method, data=None if method == "GET" else {"csrf_token": token})


def outcome(response) -> str:  # type: ignore[no-untyped-def]
    location = (response.location or "").partition("?")[0]
    if response.status_code == 302 and location == "/login":
        return "sent to sign in"
    if response.status_code in (401, 403) and response.request.path.startswith("/api/"):
        return f"{response.status_code} JSON" if response.is_json and set(response.json) == {"error"} else "not JSON"
    if response.status_code == 200 or (response.status_code == 302 and response.request.method != "GET"):
        return "allowed"
    return str(response.status_code)


def test_it_refuses_anonymous_access_to_every_route(app, client, values):  # type: ignore[no-untyped-def]
    # Pages send the visitor to the sign-in form; the API answers 401 with a JSON error.
    token = csrf_token(client)
    expected, actual = {}, {}
    for endpoint, method, url in routes(app, values):
        if endpoint in {"static", "auth.login", "auth.logout"}:
            continue
        expected[method, url] = "401 JSON" if url.startswith("/api/") else "401" if endpoint in SCRAPER \
            else "sent to sign in"
        with open_with_csrf(client, method, url, token) as response:
            actual[method, url] = outcome(response)

    assert len(actual) >= len(MIN_ROLE)
    assert actual == expected


@pytest.mark.parametrize("role", ["viewer", "support", "admin"])
def test_it_lets_each_role_use_what_its_table_row_allows(app, client, values, role):  # type: ignore[no-untyped-def]
    app.config["PROPAGATE_EXCEPTIONS"] = False  # a broken page shows up as 500 in the table, not as a crash
    signed_in(client, role)
    token = csrf_token(client)
    expected, actual = {}, {}
    for endpoint, method, url in routes(app, values):
        if endpoint in UNGUARDED:
            continue
        refused = "403 JSON" if url.startswith("/api/") else "403"
        expected[method, url] = "allowed" if role_allows(role, MIN_ROLE[endpoint]) else refused
        with open_with_csrf(client, method, url, token) as response:
            actual[method, url] = outcome(response)

    assert actual == expected


def test_it_answers_a_too_low_role_with_403_json_on_the_api(client, values):  # type: ignore[no-untyped-def]
    signed_in(client, "viewer")

    response = client.get("/api/v1/jobs/uniflow-prod/signatures")

    assert response.status_code == 403
    assert response.json == {"error": "this needs the support role"}


# -- /metrics and /healthz take the scraper token, nothing else --------------------------------------


@pytest.fixture
def scraper(app, settings):  # type: ignore[no-untyped-def]
    token, digest = make_token()
    app.extensions["dashboard"] = replace(settings, ops=OpsSettings(scraper_token_hash=digest))
    return token


@pytest.mark.parametrize("url", ["/metrics", "/healthz"])
def test_it_answers_the_scraper_token_only(client, scraper, url):  # type: ignore[no-untyped-def]
    signed_in(client, "admin")
    personal = create_api_token(account("admin", "other-admin@example.com"))
    ingest_token = create_token(get_job("uniflow-prod"))[1]

    def status(headers: dict[str, str]) -> int:
        return client.get(url, headers=headers).status_code

    assert status({}) == 401  # an admin's session is not the scraper
    assert status({"Authorization": "Basic YWRtaW46eA=="}) == 401
    assert status({"Authorization": f"Bearer {personal}"}) == 403
    assert status({"Authorization": f"Bearer {ingest_token}"}) == 403
    assert status({"Authorization": f"Bearer {scraper}x"}) == 403
    assert status({"Authorization": f"Bearer {scraper}"}) in (200, 503)  # /healthz: 503 without a scheduler


def test_it_answers_nobody_while_no_scraper_token_is_configured(client, settings):  # type: ignore[no-untyped-def]
    token, _ = make_token()

    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})

    assert settings.ops.scraper_token_hash == ""
    assert response.status_code == 403


# -- the ingest push takes ingest tokens, not accounts -------------------------------------------------


def test_it_does_not_let_an_admin_session_push(client):  # type: ignore[no-untyped-def]
    signed_in(client, "admin")

    response = client.post(PUSH, data=b"{}")

    assert response.status_code == 401


def test_it_does_not_let_a_personal_api_token_push(client):  # type: ignore[no-untyped-def]
    token = create_api_token(account("admin"))

    response = client.post(PUSH, data=b"{}", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 403


def test_it_lets_the_jobs_ingest_token_push(client):  # type: ignore[no-untyped-def]
    token = create_token(get_job("uniflow-prod"))[1]
    line = b'{"ts": "2026-11-28T09:00:00Z", "method": "GET", "path": "/scim/v2/Users", "status": 200}'

    response = client.post(PUSH, data=line, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert response.json["accepted"] == 1


def test_it_does_not_let_an_ingest_token_read(client):  # type: ignore[no-untyped-def]
    token = create_token(get_job("uniflow-prod"))[1]

    response = client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401


# -- signing in -----------------------------------------------------------------------------------


def test_it_signs_in_and_redirects_to_the_overview(client):  # type: ignore[no-untyped-def]
    response = sign_in(client, account("viewer").email)

    assert response.status_code == 302
    assert response.location == "/"
    assert client.get("/").status_code == 200


def test_it_refuses_a_wrong_password_without_a_session(client):  # type: ignore[no-untyped-def]
    response = sign_in(client, account("viewer").email, "wrong password")

    assert response.status_code == 401
    with client.session_transaction() as session:
        assert "aid" not in session
    assert client.get("/").status_code == 302


def test_it_refuses_an_unknown_email(client):  # type: ignore[no-untyped-def]
    response = sign_in(client, "nobody@example.com")

    assert response.status_code == 401


def test_it_throttles_sign_in_after_five_failures(client):  # type: ignore[no-untyped-def]
    email = account("viewer").email
    failures = [sign_in(client, email, "wrong password").status_code for _ in range(5)]

    response = sign_in(client, email)  # even the right password is refused now

    assert failures == [401] * 5
    assert response.status_code == 429
    with client.session_transaction() as session:
        assert "aid" not in session


def test_it_has_csrf_protection_on_in_the_test_app(app):  # type: ignore[no-untyped-def]
    assert app.config.get("WTF_CSRF_ENABLED", True) is True


def test_it_refuses_a_login_form_without_its_csrf_token(client):  # type: ignore[no-untyped-def]
    email = account("viewer").email

    response = client.post("/login", data={"email": email, "password": PASSWORD})

    assert response.status_code == 400
    with client.session_transaction() as session:
        assert "aid" not in session


@pytest.mark.parametrize("target", ["//evil.com", "//evil.com/path", "https://evil.com", "http:evil.com"])
def test_it_does_not_redirect_off_site_after_sign_in(client, target):  # type: ignore[no-untyped-def]
    response = sign_in(client, account("viewer").email, next_url=quote(target, safe=""))

    assert response.status_code == 302
    assert response.location == "/"


@pytest.mark.parametrize("target", [
    "/\\evil.com",
    "/\\/evil.com",
    "/\t/evil.com",
    "/\n/evil.com",
    "/\r\n/evil.com",
])
def test_it_keeps_tricky_local_targets_on_site(client, target):  # type: ignore[no-untyped-def]
    # Browsers read a backslash as a slash and drop tabs and newlines from a Location.
    response = sign_in(client, account("viewer").email, next_url=quote(target, safe=""))

    assert response.status_code == 302
    assert response.location.startswith("/")
    assert not response.location.startswith("//")
    assert not any(c in response.location for c in "\\\t\r\n")


def test_it_redirects_to_a_local_next_page_after_sign_in(client):  # type: ignore[no-untyped-def]
    response = sign_in(client, account("viewer").email, next_url="/jobs/uniflow-prod")

    assert response.location == "/jobs/uniflow-prod"


def test_it_sends_anonymous_pages_to_login_with_next(client):  # type: ignore[no-untyped-def]
    response = client.get("/jobs/uniflow-prod")

    assert response.status_code == 302
    assert response.location.startswith("/login?next=/jobs/uniflow-prod")


def test_it_refuses_a_deactivated_account_at_sign_in(client):  # type: ignore[no-untyped-def]
    row = account("viewer")
    row.active = False
    db.session.commit()

    assert sign_in(client, row.email).status_code == 401


def test_it_ends_a_deactivated_accounts_session(client):  # type: ignore[no-untyped-def]
    signed_in(client, "viewer")
    db.session.scalar(select(Account)).active = False
    db.session.commit()

    assert client.get("/").status_code == 302


def test_it_refuses_a_deactivated_accounts_api_token(client):  # type: ignore[no-untyped-def]
    row = account("viewer")
    token = create_api_token(row)
    row.active = False
    db.session.commit()

    response = client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401


# -- signing out ------------------------------------------------------------------------------------


def test_it_signs_out_with_a_post_and_its_csrf_token(client):  # type: ignore[no-untyped-def]
    signed_in(client, "viewer")

    response = client.post("/logout", data={"csrf_token": csrf_token(client, "/")})

    assert response.status_code == 302
    assert response.location == "/login"
    assert client.get("/").status_code == 302


def test_it_does_not_sign_out_on_a_get(client):  # type: ignore[no-untyped-def]
    signed_in(client, "viewer")

    assert client.get("/logout").status_code == 405
    assert client.get("/").status_code == 200


def test_it_does_not_sign_out_on_a_post_without_csrf_token(client):  # type: ignore[no-untyped-def]
    signed_in(client, "viewer")

    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200


# -- headers and cookies ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/login", "/api/v1/jobs"])
def test_it_sends_a_content_security_policy_without_inline_scripts(client, path):  # type: ignore[no-untyped-def]
    response = client.get(path)

    policy = response.headers["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}
    assert "'self'" in directives["script-src"]
    assert "'unsafe-inline'" not in directives["script-src"]
    assert "'unsafe-inline'" not in directives["default-src"]


def test_it_sets_an_httponly_samesite_session_cookie(client):  # type: ignore[no-untyped-def]
    response = sign_in(client, account("viewer").email)

    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("session=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


# -- personal API tokens ----------------------------------------------------------------------------


def test_it_reads_the_api_with_a_personal_token(client):  # type: ignore[no-untyped-def]
    token = create_api_token(account("viewer"))

    response = client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert [j["name"] for j in response.json["jobs"]] == ["uniflow-prod"]


def test_it_stores_a_personal_token_only_hashed(client):  # type: ignore[no-untyped-def]
    token = create_api_token(account("viewer"))

    rows = db.session.execute(select(ApiToken.__table__)).all()

    assert token.startswith("pma_")
    assert [r.token_hash for r in rows] == [hashlib.sha256(token.encode()).hexdigest()]
    assert not any(token in str(value) for row in rows for value in row)


@pytest.mark.parametrize("header", ["Bearer pma_not-a-token", "Bearer something", "Basic dXNlcjpwYXNz"])
def test_it_refuses_an_unknown_api_token(client, header):  # type: ignore[no-untyped-def]
    response = client.get("/api/v1/jobs", headers={"Authorization": header})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'


def test_it_does_not_accept_a_personal_token_on_pages(client):  # type: ignore[no-untyped-def]
    token = create_api_token(account("viewer"))

    response = client.get("/", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 302
