"""The [reports], [smtp], [notifications] and [retention] tables: strict, secrets from the environment."""
from __future__ import annotations

import pytest

from dashboard.settings import ConfigError, apply_environment, settings_from_dict


@pytest.mark.parametrize(("data", "message"), [
    ({"smtp": {"security": "ssl"}}, "smtp.security must be one of starttls, tls, none"),
    ({"smtp": {"port": 70000}}, "smtp.port must be between 1 and 65535"),
    ({"smtp": {"from_address": "nobody"}}, "smtp.from_address must be an email address"),
    ({"reports": {"interval_minutes": 0}}, "reports.interval_minutes must be a positive integer"),
    ({"reports": {"recipients": "a@example.com"}}, "reports.recipients must be a list of non-empty strings"),
    ({"notifications": {"digest_hour": 24}}, "notifications.digest_hour must be an hour between 0 and 23 (UTC)"),
    ({"notifications": {"reminder_hours": 0}}, "notifications.reminder_hours must be a positive integer"),
    ({"retention": {"days": 0}}, "retention.days must be a positive integer"),
    ({"smtp": {"passwd": "x"}}, "unknown configuration key 'smtp.passwd'"),
])
def test_it_refuses_a_bad_value_naming_the_key(data, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        settings_from_dict(data)


def test_it_takes_the_smtp_password_from_the_environment_and_never_shows_it():
    settings = apply_environment(settings_from_dict({"smtp": {"host": "mail.example.com"}}),
                                 {"DASHBOARD_SMTP_PASSWORD": "hunter2-secret"})

    assert settings.smtp.password == "hunter2-secret"
    assert "hunter2" not in repr(settings)
