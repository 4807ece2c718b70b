"""Accounts: validation, Argon2 hashes, authentication, and the CLI that creates them."""
from __future__ import annotations

import re

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from dashboard.admin import accounts
from dashboard.admin.accounts import (
    AccountError,
    add_account,
    authenticate,
    count_accounts,
)
from dashboard.db import db
from dashboard.models import Account

PASSWORD = "correct horse battery"
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
def cheap_hashing(monkeypatch):  # type: ignore[no-untyped-def]
    # Argon2 with its default cost takes half a second per hash; most tests are not about that.
    monkeypatch.setattr(accounts, "_hasher", CHEAP)


# -- add_account ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("email", "role", "password", "message"), [
    ("x@y.z", "owner", PASSWORD, "role must be one of viewer, support, admin"),
    ("x@y.z", "", PASSWORD, "role must be one of viewer, support, admin"),
    ("not-an-email", "viewer", PASSWORD, "the account name must be an email address"),
    ("x@y.z", "viewer", "123456789", "the password must have at least 10 characters"),
    ("x@y.z", "viewer", "", "the password must have at least 10 characters"),
])
def test_it_refuses_an_invalid_account(app, cheap_hashing, email, role, password, message):  # type: ignore[no-untyped-def]
    with pytest.raises(AccountError) as caught:
        add_account(email, role, password)

    assert str(caught.value) == message
    assert count_accounts() == 0


def test_it_accepts_a_ten_character_password(app, cheap_hashing):  # type: ignore[no-untyped-def]
    assert add_account("x@y.z", "viewer", "1234567890").role == "viewer"


def test_it_refuses_a_duplicate_email_in_any_case(app, cheap_hashing):  # type: ignore[no-untyped-def]
    add_account("x@y.z", "viewer", PASSWORD)

    with pytest.raises(AccountError, match="an account x@y.z already exists"):
        add_account(" X@Y.Z ", "admin", PASSWORD)
    assert count_accounts() == 1


def test_it_stores_the_email_trimmed_and_lowercased(app, cheap_hashing):  # type: ignore[no-untyped-def]
    add_account("  Ryan.Smith@Contoso.COM ", "support", PASSWORD)

    assert db.session.scalars(select(Account.email)).all() == ["ryan.smith@contoso.com"]


def test_it_stores_an_argon2id_hash_not_the_password(app):  # type: ignore[no-untyped-def]
    add_account("x@y.z", "viewer", PASSWORD)  # the real hasher, default cost

    stored = db.session.scalar(select(Account.password_hash))
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert PasswordHasher().verify(stored, PASSWORD)


def test_it_salts_each_hash(app, cheap_hashing):  # type: ignore[no-untyped-def]
    add_account("a@y.z", "viewer", PASSWORD)
    add_account("b@y.z", "viewer", PASSWORD)

    first, second = db.session.scalars(select(Account.password_hash)).all()
    assert first != second


# -- authenticate ---------------------------------------------------------------------------------


def test_it_authenticates_the_right_password_and_records_the_login(app, cheap_hashing):  # type: ignore[no-untyped-def]
    created = add_account("x@y.z", "support", PASSWORD)

    account = authenticate("X@Y.Z", PASSWORD)

    assert account is not None and account.id == created.id
    assert account.last_login_at is not None


def test_it_does_not_authenticate_a_wrong_password(app, cheap_hashing):  # type: ignore[no-untyped-def]
    add_account("x@y.z", "support", PASSWORD)

    assert authenticate("x@y.z", PASSWORD + "!") is None
    assert db.session.scalar(select(Account.last_login_at)) is None


def test_it_does_not_authenticate_an_unknown_email(app, cheap_hashing):  # type: ignore[no-untyped-def]
    add_account("x@y.z", "support", PASSWORD)

    assert authenticate("nobody@y.z", PASSWORD) is None


def test_it_does_not_authenticate_a_deactivated_account(app, cheap_hashing):  # type: ignore[no-untyped-def]
    add_account("x@y.z", "support", PASSWORD).active = False
    db.session.commit()

    assert authenticate("x@y.z", PASSWORD) is None


def test_it_rehashes_an_outdated_hash_on_sign_in(app, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(accounts, "_hasher", CHEAP)
    add_account("x@y.z", "support", PASSWORD)
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher())  # the cost went up since

    authenticate("x@y.z", PASSWORD)

    stored = db.session.scalar(select(Account.password_hash))
    assert not PasswordHasher().check_needs_rehash(stored)
    assert PasswordHasher().verify(stored, PASSWORD)


# -- the CLI --------------------------------------------------------------------------------------


def test_it_adds_an_account_with_the_password_from_stdin(runner, cheap_hashing):  # type: ignore[no-untyped-def]
    result = runner.invoke(args=["user", "add", "X@Y.Z", "--role", "support", "--password-stdin"],
                           input=PASSWORD + "\n")

    assert result.exit_code == 0, result.output
    assert result.output == "added support x@y.z\n"
    assert authenticate("x@y.z", PASSWORD).role == "support"  # type: ignore[union-attr]


def test_it_exits_2_when_the_cli_password_is_too_short(runner, cheap_hashing):  # type: ignore[no-untyped-def]
    result = runner.invoke(args=["user", "add", "x@y.z", "--role", "viewer", "--password-stdin"], input="short\n")

    assert result.exit_code == 2
    assert "the password must have at least 10 characters" in result.output
    assert count_accounts() == 0


def test_it_exits_2_on_an_unknown_cli_role(runner):  # type: ignore[no-untyped-def]
    result = runner.invoke(args=["user", "add", "x@y.z", "--role", "owner", "--password-stdin"], input=PASSWORD + "\n")

    assert result.exit_code == 2
    assert count_accounts() == 0


def test_it_prints_a_personal_api_token_once(runner, cheap_hashing):  # type: ignore[no-untyped-def]
    add_account("x@y.z", "viewer", PASSWORD)

    result = runner.invoke(args=["user", "token", "x@y.z"])

    assert result.exit_code == 0
    assert re.fullmatch(r"pma_[A-Za-z0-9_-]{43}\n", result.output)
    assert accounts.account_for_api_token(result.output.strip()).email == "x@y.z"  # type: ignore[union-attr]


def test_it_creates_a_one_time_admin_on_the_first_init_db(runner, cheap_hashing):  # type: ignore[no-untyped-def]
    result = runner.invoke(args=["init-db"])

    assert result.exit_code == 0, result.output
    password = re.search(r"one-time password .*: (\S+)$", result.output, re.M).group(1)  # type: ignore[union-attr]
    assert "admin@localhost.localdomain" in result.output
    assert authenticate("admin@localhost.localdomain", password).role == "admin"  # type: ignore[union-attr]


def test_it_prints_no_password_on_a_second_init_db(runner, cheap_hashing):  # type: ignore[no-untyped-def]
    runner.invoke(args=["init-db"])

    result = runner.invoke(args=["init-db"])

    assert result.exit_code == 0, result.output
    assert "database is at the newest schema" in result.output
    assert "password" not in result.output
    assert count_accounts() == 1


def test_it_creates_no_admin_when_an_account_exists(runner, cheap_hashing):  # type: ignore[no-untyped-def]
    add_account("x@y.z", "viewer", PASSWORD)

    result = runner.invoke(args=["init-db"])

    assert "password" not in result.output
    assert db.session.scalars(select(Account.email)).all() == ["x@y.z"]
