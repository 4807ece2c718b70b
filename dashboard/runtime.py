"""What every entry point (pages, API, CLI commands, scheduled jobs) reads from the running app:
its settings, its clock, and whether this process is the one that serves HTTP.

The clock is `app.extensions["clock"]` (tests replace it); rules never read it themselves, the
entry point passes `now` down.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime

import click
from flask import Flask, current_app
from flask.helpers import get_debug_flag

from dashboard.settings import Settings
from dashboard.times import utc_now


def install(app: Flask, settings: Settings) -> None:
    app.extensions["dashboard"] = settings
    app.extensions.setdefault("clock", utc_now)


def settings(app: Flask | None = None) -> Settings:
    return (app or current_app).extensions["dashboard"]


def now(app: Flask | None = None) -> datetime:
    """The app's clock (tests replace app.extensions["clock"])."""
    return (app or current_app).extensions["clock"]()


def is_serving_process(environ: Mapping[str, str] | None = None) -> bool:
    """True in `flask run`'s serving process (the reloader's child, or the only process without a
    reloader) and under a WSGI server; False for every other `flask` command (and in tests, which
    set `testing`)."""
    environ = os.environ if environ is None else environ
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return True  # a WSGI server (gunicorn, uwsgi) imported app.py
    if ctx.info_name != "run":
        return False
    reload = ctx.params.get("reload")
    if reload is None:
        reload = get_debug_flag()
    return not reload or environ.get("WERKZEUG_RUN_MAIN") == "true"


def is_dev_server(environ: Mapping[str, str] | None = None) -> bool:
    """True only in `flask run`'s serving process: never under a WSGI server (gunicorn's workers
    must not each start a scheduler), never in another command."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.info_name == "run" and is_serving_process(environ)
