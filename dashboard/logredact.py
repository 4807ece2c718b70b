"""Keep secrets out of the server log: every message is redacted as text before it is written.

Werkzeug's request line carries the query string (`"POST /api/v1/...?token=pmd_... HTTP/1.1" 401`);
the push API refuses such a token (api.py), and this filter keeps it out of the log all the same.
"""
from __future__ import annotations

import logging

from dashboard.formats.scim.redact import RedactionRules, redact_text

# Loggers whose records are redacted where they are made, so that every handler (the console, a
# test's capture) sees the redacted message; the root logger's handlers redact the rest.
LOGGERS = ("werkzeug", "dashboard", "flask", "apscheduler", "sqlalchemy", "gunicorn.access", "gunicorn.error")


class RedactingFilter(logging.Filter):
    """Replace secrets in a record's message (see redact_text): query tokens, bearer and basic
    credentials, secret attributes and headers written as text."""

    def __init__(self, rules: RedactionRules) -> None:
        super().__init__()
        self.rules = rules

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is the logging module's to report
            return True
        clean = redact_text(message, self.rules)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install(rules: RedactionRules) -> None:
    """Put one RedactingFilter (with `rules`) on the LOGGERS and on the root logger's handlers."""
    targets: list[logging.Filterer] = [logging.getLogger(name) for name in LOGGERS]
    targets += logging.getLogger().handlers
    for target in targets:
        for old in [f for f in target.filters if isinstance(f, RedactingFilter)]:
            target.removeFilter(old)
        target.addFilter(RedactingFilter(rules))
