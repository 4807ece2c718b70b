"""Accounts and roles: who may sign in, with which role; passwords hashed with Argon2."""
from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select, update

from dashboard.db import db
from dashboard.models import Account, ApiToken
from dashboard.models.accounts import new_session_key
from dashboard.times import utc_now

ROLES = ("viewer", "support", "admin")  # each role can do what the ones before it can
_hasher = PasswordHasher()
# A miss is checked against this hash, so it is as slow as a hit (no account probing). Made at the
# first sign-in, not at import: every process (an ingest, a worker) would otherwise pay Argon2's
# 64 MiB and half a second for nothing.
_DUMMY_HASH: str | None = None


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = _hasher.hash("not a password")
    return _DUMMY_HASH
API_PREFIX = "pma_"


class AccountError(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)


def role_allows(role: str, needed: str) -> bool:
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def add_account(email: str, role: str, password: str) -> Account:
    email = email.strip().lower()
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if "@" not in email:
        raise AccountError("the account name must be an email address")
    _check_password(password)
    if db.session.scalar(select(Account).where(Account.email == email)):
        raise AccountError(f"an account {email} already exists")
    account = Account(email=email, role=role, password_hash=_hasher.hash(password))
    db.session.add(account)
    db.session.commit()
    return account


def change_password(email: str, password: str) -> Account:
    """Set a new password and end every session of the account (each browser signs in again)."""
    _check_password(password)
    account = _existing(email)
    account.password_hash = _hasher.hash(password)
    account.session_key = new_session_key()
    db.session.commit()
    return account


def remove_account(email: str) -> None:
    """Delete the account and its API tokens; its sessions end with it (no row, no session)."""
    account = _existing(email)
    db.session.execute(delete(ApiToken).where(ApiToken.account_id == account.id))  # SQLite may not cascade
    db.session.delete(account)
    db.session.commit()


def set_role(email: str, role: str) -> Account:
    """A new role; it takes effect on the account's next request (the role is read per request)."""
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    account = _existing(email)
    if account.role == "admin" and role != "admin":
        _keep_an_admin(account)
    account.role = role
    db.session.commit()
    return account


def set_active(email: str, active: bool) -> Account:
    """Disable (every session ends: a new session key) or enable an account."""
    account = _existing(email)
    if not active and account.active and account.role == "admin":
        _keep_an_admin(account)
    account.active = active
    if not active:
        account.session_key = new_session_key()
    db.session.commit()
    return account


def list_accounts() -> list[Account]:
    return list(db.session.scalars(select(Account).order_by(Account.email)))


def end_sessions(account_id: int) -> None:
    """Every session cookie issued to the account so far stops working (sign-out, everywhere)."""
    db.session.execute(update(Account).where(Account.id == account_id).values(session_key=new_session_key()))
    db.session.commit()


def authenticate(email: str, password: str) -> Account | None:
    account = db.session.scalar(select(Account).where(Account.email == email.strip().lower()))
    try:
        _hasher.verify(account.password_hash if account else _dummy_hash(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if account is None or not account.active:
        return None
    if _hasher.check_needs_rehash(account.password_hash):
        account.password_hash = _hasher.hash(password)
    account.last_login_at = utc_now()
    db.session.commit()
    return account


def create_api_token(account: Account) -> str:
    token = API_PREFIX + secrets.token_urlsafe(32)
    db.session.add(ApiToken(account_id=account.id, token_hash=_sha(token), prefix=token[:12]))
    db.session.commit()
    return token


def account_for_api_token(token: str) -> Account | None:
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == _sha(token), ApiToken.revoked_at.is_(None)))
    if row is None:
        return None
    account = db.session.get(Account, row.account_id)
    return account if account is not None and account.active else None


def account_by_id(account_id: int) -> Account | None:
    return db.session.get(Account, account_id)


def count_accounts() -> int:
    return db.session.scalar(select(func.count()).select_from(Account)) or 0


def ensure_first_admin() -> tuple[str, str] | None:
    """With no account at all, create an admin with a one-time password: (email, password)."""
    if count_accounts():
        return None
    password = secrets.token_urlsafe(12)
    add_account("admin@localhost.localdomain", "admin", password)
    return "admin@localhost.localdomain", password


def _check_password(password: str) -> None:
    if len(password) < 10:
        raise AccountError("the password must have at least 10 characters")


def _keep_an_admin(account: Account) -> None:
    others = db.session.scalar(select(func.count()).select_from(Account).where(
        Account.role == "admin", Account.active.is_(True), Account.id != account.id)) or 0
    if not others:
        raise AccountError(f"{account.email} is the last active admin: make another admin first")


def _existing(email: str) -> Account:
    account = db.session.scalar(select(Account).where(Account.email == email.strip().lower()))
    if account is None:
        raise AccountError(f"no account {email.strip().lower()}")
    return account


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
