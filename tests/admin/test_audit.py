"""The audit log: an entry goes with its change or not at all; it pages; migration 0009 goes up and down."""
from __future__ import annotations

from dataclasses import replace

import pytest
from argon2 import PasswordHasher
from sqlalchemy import inspect, select, text

from dashboard import create_app
from dashboard.admin import accounts, audit
from dashboard.admin.accounts import AccountError, add_account, set_active, set_role
from dashboard.admin.jobs import JobSettingsError, parse_overrides
from dashboard.db import db, migrate_down_to, migrate_to
from dashboard.models import Account, AuditEntry

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def entries() -> list[tuple[str, str, str, str]]:
    return [(e.actor, e.action, e.target, e.detail)
            for e in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))]


def test_an_entry_is_written_with_its_change(app):
    audit.audited("root@example.com", "account.add", "a@example.com", "role viewer",
                  lambda: add_account("a@example.com", "viewer", PASSWORD))

    assert entries() == [("root@example.com", "account.add", "a@example.com", "role viewer")]
    assert db.session.scalar(select(Account.email)) == "a@example.com"


def test_a_change_that_fails_leaves_no_entry_and_no_half_change(app):
    add_account("a@example.com", "viewer", PASSWORD)

    with pytest.raises(AccountError, match="already exists"):
        audit.audited("root@example.com", "account.add", "a@example.com", "role admin",
                      lambda: add_account("a@example.com", "admin", PASSWORD))

    assert entries() == []
    assert db.session.scalars(select(Account.role)).all() == ["viewer"]


def test_recent_is_newest_first_and_pages_back(app):
    for n in range(5):
        audit.record("root@example.com", "smtp.test", f"{n}@example.com", "accepted")

    first = audit.recent(limit=2)
    older = audit.recent(limit=2, before=first[-1].id)

    assert [e.target for e in first] == ["4@example.com", "3@example.com"]
    assert [e.target for e in older] == ["2@example.com", "1@example.com"]


def test_disabling_replaces_the_session_key_and_enabling_keeps_the_account_signed_out(app):
    add_account("root@example.com", "admin", PASSWORD)
    account = add_account("a@example.com", "viewer", PASSWORD)
    key = account.session_key

    set_active("a@example.com", False)
    disabled_key = account.session_key
    set_active("a@example.com", True)

    assert disabled_key != key and account.session_key == disabled_key and account.active


def test_there_is_always_an_active_admin(app):
    add_account("root@example.com", "admin", PASSWORD)
    add_account("second@example.com", "admin", PASSWORD)

    set_role("second@example.com", "viewer")
    with pytest.raises(AccountError, match="last active admin"):
        set_active("root@example.com", False)
    with pytest.raises(AccountError, match="role must be one of"):
        set_role("root@example.com", "owner")


@pytest.mark.parametrize(("typed", "expected"), [
    ("", {}), ("  ", {}), ('{"min_failures": 5, "credential_share": 0.25}', {"min_failures": 5, "credential_share": 0.25}),
    ('{"failure_proportion": 1}', {"failure_proportion": 1}),
])
def test_it_reads_thresholds_typed_on_the_page(typed, expected):
    assert parse_overrides(typed) == expected


@pytest.mark.parametrize(("typed", "message"), [
    ('{"deletion_treshold": 5}', "unknown threshold 'deletion_treshold'"),
    ('{"min_failures": true}', "threshold 'min_failures' must be a whole number"),
    ('{"min_failures": "5"}', "threshold 'min_failures' must be a whole number"),
    ('{"credential_share": -0.1}', "threshold 'credential_share' is out of range"),
    ('{"disable_after_days": -1}', "threshold 'disable_after_days' is out of range"),
])
def test_it_names_a_bad_threshold(typed, message):
    with pytest.raises(JobSettingsError, match=message):
        parse_overrides(typed)


# -- migration 0009 ----------------------------------------------------------------------------------


@pytest.fixture
def scratch_app(settings, database_url, tmp_path):  # type: ignore[no-untyped-def]
    """An app on a database of its own (SQLite), or on the test database (PostgreSQL), left at head."""
    url = "sqlite:///" + str(tmp_path / "m.db") if database_url.startswith("sqlite") else database_url
    app = create_app(replace(settings, database=replace(settings.database, url=url)))
    with app.app_context():
        yield app
        migrate_to("head")
        db.session.remove()
        db.engine.dispose()


def test_migration_0009_adds_the_audit_table_and_takes_it_away_again(scratch_app):  # type: ignore[no-untyped-def]
    migrate_to("head")
    migrate_down_to("0008")
    with db.engine.connect() as conn:
        assert "audit_entry" not in set(inspect(conn).get_table_names())

    migrate_to("0009")
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO audit_entry (at, actor, action, target, detail) "
                          "VALUES (CURRENT_TIMESTAMP, 'a@example.com', 'job.add', 'x', '')"))
        indexes = {i["name"] for i in inspect(conn).get_indexes("audit_entry")}
        assert conn.execute(text("SELECT actor FROM audit_entry")).scalar() == "a@example.com"
    assert "ix_audit_entry_at" in indexes

    migrate_down_to("0008")
    with db.engine.connect() as conn:
        assert "audit_entry" not in set(inspect(conn).get_table_names())
