"""Fixtures: settings, an app on a real database (SQLite file, or PostgreSQL with --database-url)."""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import hypothesis
import pytest
from sqlalchemy import create_engine, make_url, text

from dashboard import create_app
from dashboard.db import db, upgrade_schema
from dashboard.settings import (
    DatabaseSettings,
    IngestSettings,
    JobSettings,
    SchedulerSettings,
    Settings,
)

# Property tests: in CI the same examples every run (derandomized: CI cannot fail at random); local
# runs keep exploring and keep what they find in .hypothesis/ (a failure found: add it as an @example).
hypothesis.settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI") == "true":
    hypothesis.settings.load_profile("ci")

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--database-url", default=None, help="Run the database tests on this URL (PostgreSQL).")


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    url = request.config.getoption("--database-url")
    if url:
        engine = create_engine(_driver(url))
        with engine.begin() as conn:  # a clean schema for this run
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        return _driver(url)
    return "sqlite:///" + str(tmp_path_factory.mktemp("db") / "test.db")


def _driver(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url


@pytest.fixture(scope="session")
def base_settings(database_url: str) -> Settings:
    return Settings(
        database=DatabaseSettings(url=database_url),
        ingest=IngestSettings(batch_size=50),
        scheduler=SchedulerSettings(enabled=False),
        jobs=(JobSettings(name="uniflow-prod", display_name="uniFLOW production"),),
        testing=True,
    )


@pytest.fixture(scope="session")
def _schema(base_settings: Settings) -> None:
    app = create_app(replace(base_settings, app=replace(base_settings.app, secret_key="test")))
    upgrade_schema(app)
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    return replace(base_settings, app=replace(base_settings.app, secret_key="test-secret"))


@pytest.fixture
def app(settings: Settings, _schema: None):  # type: ignore[no-untyped-def]
    app = create_app(settings)
    with app.app_context():
        _empty_tables()
        from dashboard.admin.jobs import sync_jobs

        sync_jobs(settings.jobs)
        yield app
        db.session.remove()
        db.engine.dispose()


def _empty_tables() -> None:
    tables = [t for t in reversed(db.metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            names = ", ".join(t.name for t in tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(table.delete())


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def runner(app):  # type: ignore[no-untyped-def]
    return app.test_cli_runner()


@pytest.fixture
def fresh_database_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A second, empty database beside the suite's: a SQLite file, or a new PostgreSQL database
    on the same server (dropped after the test)."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    name = f"fresh_{uuid.uuid4().hex[:12]}"
    server = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


@pytest.fixture
def subprocess_env(database_url: str) -> dict[str, str]:
    """Environment for running `flask --app app ...` as a real process on the test database."""
    env = dict(os.environ)
    env.update(DATABASE_URL=database_url, DASHBOARD_SECRET_KEY="test", DASHBOARD_CONFIG=str(ROOT / "tests" / "data" / "empty.toml"))
    return env


@pytest.fixture
def data_dir() -> Path:
    return ROOT / "tests" / "data"


def pytest_sessionstart(session: pytest.Session) -> None:
    # In CI a database that cannot be reached is an error, never a skip.
    url = session.config.getoption("--database-url")
    if url and os.environ.get("CI") == "true":
        engine = create_engine(_driver(url))
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
