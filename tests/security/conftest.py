"""Fixtures of the security tests: settings with mail recipients, a real SMTP server on loopback,
an admin's client."""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import pytest
from flask import g

from dashboard.admin.accounts import add_account
from dashboard.settings import (
    JobSettings,
    NotificationSettings,
    ReportSettings,
    Settings,
)
from tests.notify.helpers import SmtpServer

PASSWORD = "correct horse battery staple"


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def settings(base_settings: Settings, smtp_server: SmtpServer) -> Settings:
    # Small thresholds, recipients for every kind of email, and the SMTP server above.
    return replace(
        base_settings,
        app=replace(base_settings.app, secret_key="test-secret", base_url="https://monitor.example.com"),
        jobs=(JobSettings(name="uniflow-prod", display_name="uniFLOW production",
                          notification_recipients=("idm-team@example.com",),
                          quarantine={"min_failures": 2, "deletion_threshold": 10}),),
        reports=ReportSettings(recipients=("reports@example.com",)),
        notifications=NotificationSettings(reminder_hours=1),
        smtp=smtp_server.settings(),
    )


def sign_in_as_admin(client):  # type: ignore[no-untyped-def]
    add_account("admin@example.com", "admin", PASSWORD)
    g.pop("csrf_token", None)  # the app fixture's context outlives requests: a fresh token for this session
    html = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    response = client.post("/login", data={"email": "admin@example.com", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302
    return client
