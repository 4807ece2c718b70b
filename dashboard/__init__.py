"""The provisioning monitoring and quarantine dashboard: the application factory."""
from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from flask import Flask

from dashboard import runtime
from dashboard.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app from `settings` (tests) or from the TOML file and the environment."""
    settings = settings or load_settings()
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(ROOT / "instance"),
    )
    runtime.install(app, settings)
    app.config.update(
        SECRET_KEY=settings.app.secret_key or _instance_secret(app),
        SQLALCHEMY_DATABASE_URI=_database_url(settings.database.url),
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
        MAX_CONTENT_LENGTH=settings.ingest.push_max_bytes,
        TESTING=settings.testing,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Secure cookies need HTTPS; the local dev server (http://127.0.0.1) cannot set them.
        SESSION_COOKIE_SECURE=settings.app.base_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=12 * 3600,
    )
    logging.basicConfig(level=settings.app.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its plugin set-up chatter on every command
    # Here, not at the top: importing any module of the package (a PURE one in the fuzz harness or
    # a benchmark) runs this __init__, and should not load every blueprint, command and job.
    from dashboard import cli, db, logredact, scheduler, web
    from dashboard.ingest.scim import options_for  # (the same reason)

    logredact.install(options_for(settings).rules)  # no secret in the log, werkzeug's request lines included

    db.init_app(app)
    cli.init_app(app)
    web.init_app(app)
    scheduler.init_app(app)  # last: its jobs use the clock and the database set up above
    if settings.app.demo_data and os.environ.get("DASHBOARD_LIVE_DEMO") == "1" and runtime.is_serving_process():
        # only `make run` feeds the live demo
        from dashboard.demo.loader import start_live_feeder

        start_live_feeder(app)
    return app


def _database_url(url: str) -> str:
    # A relative SQLite path is relative to the project root, not to the working directory.
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        path = ROOT / url[len(prefix):]
        path.parent.mkdir(parents=True, exist_ok=True)
        return prefix + str(path)
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def _instance_secret(app: Flask) -> str:
    path = Path(app.instance_path) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()
