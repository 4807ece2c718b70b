"""A real database failure for tests: a trigger that refuses chosen rows (SQLite and PostgreSQL).

Not a mock: the insert fails inside the database, exactly as a constraint or a bad value would."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from dashboard.db import db


@contextmanager
def refusing_inserts(table: str, condition: str, *, name: str = "test_refuse") -> Iterator[None]:
    """While inside, the database refuses to insert a row of `table` for which `condition` (an SQL
    expression on NEW, valid on both databases) holds: 'refused by the test trigger'."""
    with db.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(text(f"CREATE TRIGGER {name} BEFORE INSERT ON {table} WHEN {condition} "
                              "BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END"))
        else:
            conn.execute(text(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                              f"IF {condition} THEN RAISE EXCEPTION 'refused by the test trigger'; END IF; "
                              "RETURN NEW; END $$"))
            conn.execute(text(f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()"))
    try:
        yield
    finally:
        with db.engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
            else:
                conn.execute(text(f"DROP TRIGGER IF EXISTS {name} ON {table}"))
                conn.execute(text(f"DROP FUNCTION IF EXISTS {name}()"))
