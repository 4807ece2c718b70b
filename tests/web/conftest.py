"""Fixtures of the web tests."""
from __future__ import annotations

import pytest

from tests.web.signin import signed_in


@pytest.fixture
def auth():  # type: ignore[no-untyped-def]
    """auth(client, role) signs `client` in as a new account of `role` and returns it."""
    return signed_in
