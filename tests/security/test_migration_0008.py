"""Migration 0008 (session keys, sign-in failures, in-doubt emails) goes up and down, with data."""
from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import inspect, text

from dashboard import create_app
from dashboard.db import db, migrate_down_to, migrate_to


@pytest.fixture
def scratch_app(settings, database_url, tmp_path):  # type: ignore[no-untyped-def]
    """An app on a database of its own (SQLite), or on the test database (PostgreSQL), which it
    leaves at head again."""
    url = "sqlite:///" + str(tmp_path / "m.db") if database_url.startswith("sqlite") else database_url
    app = create_app(replace(settings, database=replace(settings.database, url=url)))
    with app.app_context():
        yield app
        migrate_to("head")
        db.session.remove()
        db.engine.dispose()


def test_it_gives_each_existing_account_a_session_key_and_goes_back_down(scratch_app):  # type: ignore[no-untyped-def]
    migrate_to("head")  # a new SQLite file, or the test database (PostgreSQL) at head
    migrate_down_to("0007")
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM account"))
        for email in ("a@example.com", "b@example.com"):
            conn.execute(text("INSERT INTO account (email, role, password_hash, active, created_at) "
                              "VALUES (:e, 'viewer', 'h', true, CURRENT_TIMESTAMP)"), {"e": email})

    migrate_to("0008")
    with db.engine.connect() as conn:
        keys = conn.execute(text("SELECT session_key FROM account")).scalars().all()
        columns = {c["name"] for c in inspect(conn).get_columns("notification")}
        tables = set(inspect(conn).get_table_names())
    assert len(keys) == 2 and len(set(keys)) == 2 and all(len(k) >= 32 for k in keys)
    assert "in_doubt_at" in columns and "sign_in_failure" in tables

    migrate_down_to("0007")
    with db.engine.connect() as conn:
        assert "session_key" not in {c["name"] for c in inspect(conn).get_columns("account")}
        assert "in_doubt_at" not in {c["name"] for c in inspect(conn).get_columns("notification")}
        assert "sign_in_failure" not in set(inspect(conn).get_table_names())
        assert conn.execute(text("SELECT count(*) FROM account")).scalar() == 2
