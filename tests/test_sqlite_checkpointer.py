"""The SQLite WAL is copied into the database file by a thread of its own after commits
(dashboard/db.py WalCheckpointer), not by the transaction that happens to cross SQLite's threshold.
These tests use SQLite files of their own, whichever database the suite runs on."""
from __future__ import annotations

import sqlite3
import time

from sqlalchemy import create_engine, text

from dashboard import db as dbmod
from tests.notify.helpers import wait_for


def _in_database_file(path) -> int:  # type: ignore[no-untyped-def]
    """Rows of t as the database file itself holds them, ignoring the WAL (immutable=1)."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM t").fetchone()[0]
    except sqlite3.OperationalError:  # the table itself is still only in the WAL
        return 0
    finally:
        conn.close()


def test_a_commit_reaches_the_database_file_without_another_write(tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "c.db"
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1), (2), (3)"))
        assert (tmp_path / "c.db-wal").exists(), "WAL mode: the commit went to the WAL"

        assert wait_for(lambda: _in_database_file(path) == 3, timeout=15), "checkpointed in the background"
        assert dbmod.checkpointer_of(engine).checkpoints >= 1
    finally:
        engine.dispose()


def test_the_committing_connection_leaves_checkpoints_to_the_thread_below_the_valve(tmp_path):  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{tmp_path / 'v.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == dbmod.WRITER_CHECKPOINT_PAGES
    finally:
        engine.dispose()


def test_disposing_the_engine_stops_its_checkpointer(tmp_path):  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{tmp_path / 'd.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    checkpointer = dbmod.checkpointer_of(engine)
    assert checkpointer._thread is not None

    engine.dispose()

    assert checkpointer._thread is None


def test_a_database_file_gone_is_not_created_again_by_the_checkpointer(tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "gone.db"
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
        engine.pool.dispose()  # (the pool's connections closed; the checkpointer stays)
        for suffix in ("", "-wal", "-shm"):
            (tmp_path / f"gone.db{suffix}").unlink(missing_ok=True)
        dbmod.checkpointer_of(engine).nudge()

        time.sleep(dbmod.CHECKPOINT_DELAY_SECONDS + 1.0)

        assert not path.exists()
    finally:
        engine.dispose()


def test_no_checkpointer_for_postgresql_or_memory():  # type: ignore[no-untyped-def]
    memory = create_engine("sqlite://")
    try:
        with memory.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
        assert dbmod.checkpointer_of(memory) is None
    finally:
        memory.dispose()
    assert dbmod.checkpointer_of(create_engine("postgresql+psycopg://u@127.0.0.1:1/none")) is None


def test_an_engine_used_again_after_dispose_checkpoints_again(tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "again.db"
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
        engine.dispose()  # (as `flask restore` does before it replaces the file)

        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1), (2)"))

        assert wait_for(lambda: _in_database_file(path) == 2, timeout=15)
    finally:
        engine.dispose()
