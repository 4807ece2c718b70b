"""The database handle, and the schema steps: migrations to head on start-up."""
from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask_migrate import Migrate, upgrade
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, Table, event, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

# Constraint names that Alembic can find again on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING))
migrate = Migrate()
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def init_app(app: Flask) -> None:
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS), render_as_batch=True)


def upgrade_schema(app: Flask) -> None:
    """Apply every migration up to head (creates the database when it is new)."""
    with app.app_context():
        upgrade(directory=str(MIGRATIONS))


def insert_ignoring(dialect_name: str, table: Table):  # type: ignore[no-untyped-def]
    """INSERT ... ON CONFLICT DO NOTHING on SQLite and PostgreSQL (a plain INSERT elsewhere): the
    database decides when two writers (or a re-run) offer the same row."""
    dialect = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}.get(dialect_name)
    return dialect(table).on_conflict_do_nothing() if dialect else insert(table)


def executemany(conn: Connection, sql: str, params: list[tuple]) -> None:
    """Run one statement for many rows through the driver, where SQLAlchemy's per-row work costs
    more than the database's (ingest, per user and batch). `sql` uses ? placeholders."""
    if not params:
        return
    if conn.dialect.name == "sqlite":
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(sql, params)
        finally:
            cursor.close()
    else:
        conn.exec_driver_sql(sql.replace("?", "%s"), params)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets the pages read while an ingest writes; NORMAL sync is safe with WAL (a crash can
    # lose the last transactions, never corrupt); foreign keys are off by default in SQLite.
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
