"""Signing a test client in, the way a person does: the login form, its CSRF token, a password."""
from __future__ import annotations

import re

from flask import g

from dashboard.admin.accounts import add_account

PASSWORD = "correct horse battery"


def csrf_token(client, path: str = "/login") -> str:  # type: ignore[no-untyped-def]
    # The app fixture keeps one app context for the whole test, so `g` (where Flask-WTF caches
    # the signed token) outlives a request; drop it so the form gets a token for this session.
    g.pop("csrf_token", None)
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


def sign_in(client, email: str, password: str = PASSWORD, next_url: str | None = None):  # type: ignore[no-untyped-def]
    url = "/login" if next_url is None else f"/login?next={next_url}"
    return client.post(url, data={"email": email, "password": password, "csrf_token": csrf_token(client)})


def signed_in(client, role: str, email: str | None = None):  # type: ignore[no-untyped-def]
    """`client`, signed in as a new account of `role` (role@example.com unless `email` is given)."""
    account = add_account(email or f"{role}@example.com", role, PASSWORD)
    assert sign_in(client, account.email).status_code == 302
    return client
