"""Sessions end server-side (sign-out, a new password, a removed account) and the cookie holds no
part of a hash; sign-in throttling is per account and per address+account, in the database."""
from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from flask import g
from sqlalchemy import func, select

from dashboard import create_app
from dashboard.admin import accounts
from dashboard.admin.accounts import add_account, create_api_token
from dashboard.db import db
from dashboard.models import Account, ApiToken, SignInFailure

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"
PROXY = "10.0.0.1"  # every client behind a reverse proxy has its address
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(autouse=True)
def _cheap_hashes_and_a_clock(app, monkeypatch):  # type: ignore[no-untyped-def]
    # Argon2 with its default cost takes half a second per hash; these tests are not about that.
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    app.extensions["clock"] = Clock(NOW)


def csrf_token(client, path: str = "/login") -> str:  # type: ignore[no-untyped-def]
    g.pop("csrf_token", None)  # the test's app context outlives a request: get this session's token
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


def sign_in(client, email: str, password: str = PASSWORD, *, address: str = PROXY):  # type: ignore[no-untyped-def]
    return client.post("/login", data={"email": email, "password": password, "csrf_token": csrf_token(client)},
                       environ_base={"REMOTE_ADDR": address})


def sign_out(client):  # type: ignore[no-untyped-def]
    return client.post("/logout", data={"csrf_token": csrf_token(client, "/")})


def signed_in_client(app, email: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    client = app.test_client()
    assert sign_in(client, email, password).status_code == 302
    return client


def copy_of_cookie(app, client):  # type: ignore[no-untyped-def]
    """Another browser (or a thief) holding the same session cookie."""
    other = app.test_client()
    other.set_cookie("session", client.get_cookie("session").value)
    return other


# -- sessions end on the server ---------------------------------------------------------------------


def test_it_refuses_a_cookie_captured_before_sign_out(app):  # type: ignore[no-untyped-def]
    add_account("admin@example.com", "admin", PASSWORD)
    client = signed_in_client(app, "admin@example.com")
    captured = copy_of_cookie(app, client)
    assert captured.get("/").status_code == 200
    assert captured.get("/notifications").status_code == 200

    assert sign_out(client).status_code == 302

    assert captured.get("/").status_code == 302
    assert captured.get("/notifications").status_code == 302
    assert captured.get("/api/v1/jobs").status_code == 401


def test_it_ends_the_accounts_other_sessions_on_sign_out(app):  # type: ignore[no-untyped-def]
    add_account("viewer@example.com", "viewer", PASSWORD)
    laptop = signed_in_client(app, "viewer@example.com")
    phone = signed_in_client(app, "viewer@example.com")

    sign_out(laptop)

    assert phone.get("/").status_code == 302


def test_it_keeps_other_accounts_signed_in_after_one_signs_out(app):  # type: ignore[no-untyped-def]
    add_account("a@example.com", "viewer", PASSWORD)
    add_account("b@example.com", "viewer", PASSWORD)
    a, b = signed_in_client(app, "a@example.com"), signed_in_client(app, "b@example.com")

    sign_out(a)

    assert b.get("/").status_code == 200


def test_it_signs_in_again_after_signing_out(app):  # type: ignore[no-untyped-def]
    add_account("viewer@example.com", "viewer", PASSWORD)
    client = signed_in_client(app, "viewer@example.com")
    sign_out(client)

    assert sign_in(client, "viewer@example.com").status_code == 302
    assert client.get("/").status_code == 200


def test_it_ends_every_session_when_the_password_changes(app, runner):  # type: ignore[no-untyped-def]
    add_account("viewer@example.com", "viewer", PASSWORD)
    client = signed_in_client(app, "viewer@example.com")

    result = runner.invoke(args=["user", "passwd", "viewer@example.com", "--password-stdin"], input=NEW_PASSWORD + "\n")

    assert result.exit_code == 0, result.output
    assert client.get("/").status_code == 302
    assert sign_in(app.test_client(), "viewer@example.com", PASSWORD).status_code == 401
    assert signed_in_client(app, "viewer@example.com", NEW_PASSWORD).get("/").status_code == 200


def test_it_ends_every_session_and_token_when_the_account_is_removed(app, runner):  # type: ignore[no-untyped-def]
    row = add_account("admin@example.com", "admin", PASSWORD)
    token = create_api_token(row)
    client = signed_in_client(app, "admin@example.com")

    result = runner.invoke(args=["user", "remove", "admin@example.com"])

    assert result.exit_code == 0, result.output
    assert client.get("/notifications").status_code == 302
    assert app.test_client().get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 0
    assert db.session.scalar(select(func.count()).select_from(Account)) == 0


def test_it_does_not_let_a_removed_accounts_email_come_back_with_its_old_cookie(app, runner):  # type: ignore[no-untyped-def]
    # A new account on the same email is another person: the old cookie names the old row.
    add_account("viewer@example.com", "viewer", PASSWORD)
    client = signed_in_client(app, "viewer@example.com")
    runner.invoke(args=["user", "remove", "viewer@example.com"])
    add_account("viewer@example.com", "viewer", NEW_PASSWORD)

    assert client.get("/").status_code == 302


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["user", "passwd", "nobody@example.com", "--password-stdin"], NEW_PASSWORD + "\n", "no account nobody@example.com"),
    (["user", "passwd", "viewer@example.com", "--password-stdin"], "too short\n", "at least 10 characters"),
    (["user", "remove", "nobody@example.com"], None, "no account nobody@example.com"),
])
def test_it_exits_2_on_a_bad_user_command(app, runner, args, stdin, message):  # type: ignore[no-untyped-def]
    add_account("viewer@example.com", "viewer", PASSWORD)

    result = runner.invoke(args=args, input=stdin)

    assert result.exit_code == 2
    assert message in result.output
    assert sign_in(app.test_client(), "viewer@example.com").status_code == 302  # unchanged


def test_it_puts_no_part_of_the_password_hash_in_the_cookie(app):  # type: ignore[no-untyped-def]
    row = add_account("admin@example.com", "admin", PASSWORD)
    client = signed_in_client(app, "admin@example.com")
    raw = client.get_cookie("session").value

    payload = app.session_interface.get_signing_serializer(app).loads(raw)

    pieces = {row.password_hash[i:i + 8] for i in range(len(row.password_hash) - 7)}
    assert not [p for p in pieces if p in raw or p in repr(payload)]
    assert set(payload) <= {"aid", "sk", "_permanent", "csrf_token"}


def test_it_refuses_a_cookie_of_the_old_kind(app):  # type: ignore[no-untyped-def]
    # Cookies issued before the upgrade carried a piece of the hash ("pw") and no version.
    row = add_account("viewer@example.com", "viewer", PASSWORD)
    client = app.test_client()
    with client.session_transaction() as session:
        session["aid"], session["pw"] = row.id, row.password_hash[-16:]

    assert client.get("/").status_code == 302


# -- throttling -------------------------------------------------------------------------------------


def test_it_throttles_an_account_after_five_failures_from_one_address(app):  # type: ignore[no-untyped-def]
    add_account("viewer@example.com", "viewer", PASSWORD)
    client = app.test_client()
    failures = [sign_in(client, "viewer@example.com", "wrong password").status_code for _ in range(5)]

    assert failures == [401] * 5
    assert sign_in(client, "viewer@example.com").status_code == 429  # even the right password


def test_it_does_not_lock_other_accounts_out_from_the_same_address(app):  # type: ignore[no-untyped-def]
    # Behind a proxy every sign-in comes from one address: one person's typos must not lock out the rest.
    add_account("victim@example.com", "viewer", PASSWORD)
    client = app.test_client()
    for n in range(30):
        sign_in(client, f"guess{n}@example.com", "wrong password")
    for _ in range(5):
        sign_in(client, "other@example.com", "wrong password")

    assert sign_in(client, "other@example.com").status_code == 429
    assert sign_in(app.test_client(), "victim@example.com").status_code == 302


def test_it_lets_the_account_in_from_another_address(app):  # type: ignore[no-untyped-def]
    add_account("viewer@example.com", "viewer", PASSWORD)
    for _ in range(5):
        sign_in(app.test_client(), "viewer@example.com", "wrong password", address="198.51.100.7")

    assert sign_in(app.test_client(), "viewer@example.com", address="198.51.100.7").status_code == 429
    assert sign_in(app.test_client(), "viewer@example.com", address="203.0.113.9").status_code == 302


def test_it_throttles_an_account_guessed_from_many_addresses(app):  # type: ignore[no-untyped-def]
    add_account("viewer@example.com", "viewer", PASSWORD)
    add_account("other@example.com", "viewer", PASSWORD)
    for n in range(20):  # four per address: none of them reaches the per-address limit
        sign_in(app.test_client(), "viewer@example.com", "wrong password", address=f"198.51.100.{n // 4}")

    assert sign_in(app.test_client(), "viewer@example.com", address="203.0.113.9").status_code == 429
    assert sign_in(app.test_client(), "other@example.com", address="203.0.113.9").status_code == 302


def test_it_keeps_failures_across_a_restart_and_between_workers(app, settings):  # type: ignore[no-untyped-def]
    add_account("viewer@example.com", "viewer", PASSWORD)
    for _ in range(5):
        sign_in(app.test_client(), "viewer@example.com", "wrong password")

    restarted = create_app(replace(settings))  # a new process: nothing in memory survives
    restarted.extensions["clock"] = Clock(NOW)

    status = sign_in(restarted.test_client(), "viewer@example.com").status_code
    with restarted.app_context():
        db.engine.dispose()  # its own connection pool (PostgreSQL warns about a connection left open)
    assert status == 429


def test_it_lets_the_account_in_again_after_the_window(app):  # type: ignore[no-untyped-def]
    add_account("viewer@example.com", "viewer", PASSWORD)
    for _ in range(5):
        sign_in(app.test_client(), "viewer@example.com", "wrong password")

    app.extensions["clock"].now = NOW + timedelta(minutes=15, seconds=1)

    assert sign_in(app.test_client(), "viewer@example.com").status_code == 302


def test_it_forgets_an_addresses_failures_after_it_signs_in(app):  # type: ignore[no-untyped-def]
    add_account("viewer@example.com", "viewer", PASSWORD)
    for _ in range(4):
        sign_in(app.test_client(), "viewer@example.com", "wrong password")
    assert sign_in(app.test_client(), "viewer@example.com").status_code == 302

    for _ in range(4):  # four more typos: only these count now
        sign_in(app.test_client(), "viewer@example.com", "wrong password")

    assert sign_in(app.test_client(), "viewer@example.com").status_code == 302


def test_it_keeps_the_failure_table_as_small_as_the_window(app):  # type: ignore[no-untyped-def]
    for _ in range(3):
        sign_in(app.test_client(), "nobody@example.com", "wrong password")
    app.extensions["clock"].now = NOW + timedelta(hours=1)

    sign_in(app.test_client(), "someone@example.com", "wrong password")

    assert db.session.scalars(select(SignInFailure.email)).all() == ["someone@example.com"]
