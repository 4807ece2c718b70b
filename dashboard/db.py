"""The database handle, and the schema steps: migrations to head on start-up."""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
import weakref
from pathlib import Path
from urllib.parse import quote

import click
from flask import Flask, current_app
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
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def init_app(app: Flask) -> None:
    db.init_app(app)
    app.cli.add_command(_migrate_commands)


def _with_migrate(app: Flask) -> None:
    """Flask-Migrate on `app`, imported when first needed: it imports Alembic, about 10 MB of
    memory that a process which never migrates (an ingest, the server between start-ups) need
    not carry."""
    if "migrate" not in app.extensions:
        from flask_migrate import Migrate  # lazily: see above

        Migrate(app, db, directory=str(MIGRATIONS), render_as_batch=True)


class _MigrateCommands(click.Group):
    """`flask db ...`: Flask-Migrate's commands, loaded when one of them is asked for (the app
    context is pushed by then: FlaskGroup pushes it before it resolves an app's command)."""

    def _real(self) -> click.Group:
        _with_migrate(current_app)
        from flask_migrate.cli import db as commands  # lazily, with Migrate

        return commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._real().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._real().get_command(ctx, cmd_name)


@click.group("db", cls=_MigrateCommands)
@click.option("-d", "--directory", default=None, help="Migration script directory (default: the project's migrations/)")
@click.option("-x", "--x-arg", multiple=True, help="Additional arguments consumed by custom env.py scripts")
def _migrate_commands(directory: str | None, x_arg: tuple[str, ...]) -> None:
    """Database migrations (Flask-Migrate: upgrade, downgrade, current, history, ...)."""
    from flask import g  # only this callback needs it

    g.directory = directory  # what Flask-Migrate's own group callback sets (Migrate.get_config reads them)
    g.x_arg = x_arg


def upgrade_schema(app: Flask) -> None:
    """Apply every migration up to head (creates the database when it is new)."""
    with app.app_context():
        migrate_to("head")


def migrate_to(revision: str) -> None:
    """Upgrade the current app's database to `revision` (in an app context)."""
    _with_migrate(current_app)
    from flask_migrate import upgrade  # lazily: see _with_migrate

    upgrade(directory=str(MIGRATIONS), revision=revision)


def migrate_down_to(revision: str) -> None:
    """Downgrade the current app's database to `revision` (in an app context)."""
    _with_migrate(current_app)
    from flask_migrate import downgrade  # lazily: see _with_migrate

    downgrade(directory=str(MIGRATIONS), revision=revision)


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


SQLITE_VARIABLES = 32_766  # values per statement (SQLite's limit since 3.32; RETURNING needs 3.35)


def sqlite_insert_returning(conn: Connection, table: str, names: list[str] | tuple[str, ...], rows: list,
                            returning: str, sizes: tuple[int, ...]) -> list[tuple]:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING `returning` of `rows` (each the values of
    `names`) through the SQLite driver: what SQLAlchemy would send (multi-row VALUES), without
    its per-row work. Rows go `sizes[0]` per statement, the rest in the smaller `sizes` (ending
    in 1), so that the driver's statement cache keeps the few statements there are."""
    found: list[tuple] = []
    head = f"INSERT INTO {table} ({', '.join(names)}) VALUES "
    one = "(" + ", ".join("?" * len(names)) + ")"
    tail = f" ON CONFLICT DO NOTHING RETURNING {returning}"
    cursor = conn.connection.cursor()
    try:
        start = 0
        while start < len(rows):
            per = next(size for size in sizes
                       if size <= len(rows) - start and (size * len(names) <= SQLITE_VARIABLES or size == 1))
            chunk = rows[start : start + per]
            cursor.execute(head + ", ".join([one] * per) + tail, [value for row in chunk for value in row])
            found.extend(cursor.fetchall())
            start += per
    finally:
        cursor.close()
    return found


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
        # Checkpoints are the background checkpointer's (below); a writer copies the WAL into the
        # database itself only when that one has fallen this far behind.
        cursor.execute(f"PRAGMA wal_autocheckpoint={WRITER_CHECKPOINT_PAGES}")
        cursor.close()


# -- SQLite: the WAL is copied into the database by a thread of its own ---------------------------
#
# In WAL mode a commit appends the pages it changed to the WAL; a checkpoint later copies them
# into the database file, at their places, and syncs it. SQLite's default has the committing
# connection do it, once the WAL holds 1,000 pages: the batch (or the pushed request) that crosses
# that line waits for pages scattered all over the file to be written. On a database of 1,000,000
# exchanges that was 56% of the time of adding 1,000 more (bench/analysis.py). Here a thread per
# engine and process checkpoints (PASSIVE: it never blocks a writer or a reader) about a second
# after commits, however many there were meanwhile; it ends after a minute without commits. The
# committing connection checkpoints only if the WAL passes WRITER_CHECKPOINT_PAGES, when this
# thread cannot keep up. (PostgreSQL has its own checkpointer process.)
WRITER_CHECKPOINT_PAGES = 10_000  # about 40 MB of WAL
CHECKPOINT_DELAY_SECONDS = 1.0  # after a commit, the checkpointer waits this long for others
CHECKPOINTER_IDLE_SECONDS = 60.0  # ... and ends after this long without one
log = logging.getLogger(__name__)


class WalCheckpointer:
    """Checkpoints one SQLite database file's WAL from a thread of its own, after commits."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.checkpoints = 0  # done so far (tests and curiosity)
        self._fresh()

    def _fresh(self) -> None:
        self._pid = os.getpid()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def nudge(self) -> None:
        """A transaction committed: checkpoint soon (starts the thread when none runs)."""
        if self._pid != os.getpid():  # a forked child: the parent's thread is not here
            self._fresh()
        self._wake.set()
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="sqlite-checkpointer", daemon=True)
                self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread (the engine is disposed); a checkpoint under way completes first."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._stop.clear()  # an engine may be used again after dispose(): the next commit starts anew

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                woken = self._wake.wait(CHECKPOINTER_IDLE_SECONDS)
                with self._lock:
                    if not woken or self._stop.is_set():
                        self._thread = None
                        return
                if self._stop.wait(CHECKPOINT_DELAY_SECONDS):
                    continue  # closing: ends above
                self._wake.clear()
                try:
                    if conn is None:  # (mode=rw: a database file gone meanwhile is never created anew)
                        conn = sqlite3.connect(f"file:{quote(self.path)}?mode=rw", uri=True, timeout=0,
                                               isolation_level=None, check_same_thread=False)
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error as exc:  # busy (another process checkpoints), or the file is gone
                    log.debug("sqlite checkpoint of %s: %s", self.path, exc)
        finally:
            with self._lock:
                self._thread = None
            if conn is not None:
                conn.close()


_checkpointers: weakref.WeakKeyDictionary[Engine, WalCheckpointer] = weakref.WeakKeyDictionary()
_checkpointers_lock = threading.Lock()


def checkpointer_of(engine: Engine) -> WalCheckpointer | None:
    """The engine's checkpointer, made on first use; None unless it is a SQLite database file."""
    found = _checkpointers.get(engine)
    if found is not None or engine.dialect.name != "sqlite":
        return found
    path = engine.url.database
    if not path or path == ":memory:" or path.startswith("file:") or engine.url.query.get("mode") == "memory":
        return None
    with _checkpointers_lock:
        found = _checkpointers.get(engine)
        if found is None:
            found = _checkpointers[engine] = WalCheckpointer(path)
            event.listen(engine, "engine_disposed", lambda _engine: found.close())
    return found


@event.listens_for(Engine, "commit")
def _checkpoint_soon(conn: Connection) -> None:
    checkpointer = checkpointer_of(conn.engine)
    if checkpointer is not None:
        checkpointer.nudge()
