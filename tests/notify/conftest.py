"""Fixtures of the notification tests: settings with recipients, a real SMTP server."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from dashboard.settings import (
    JobSettings,
    NotificationSettings,
    ReportSettings,
    Settings,
)
from tests.notify.helpers import SmtpServer


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    # Small tenants: thresholds scaled down so a few users can trip them.
    return replace(
        base_settings,
        app=replace(base_settings.app, secret_key="test-secret", base_url="https://monitor.example.com"),
        jobs=(JobSettings(name="uniflow-prod", display_name="uniFLOW production",
                          notification_recipients=("idm-team@example.com",),
                          quarantine={"min_failures": 5, "deletion_threshold": 10}),),
        reports=ReportSettings(recipients=("reports@example.com",)),
        notifications=NotificationSettings(reminder_hours=1),
    )


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()
