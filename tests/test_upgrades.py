"""Upgrades from every earlier schema, with data in it, on SQLite and PostgreSQL.

For each revision r of migrations/versions (read from the script directory, so a revision added
later is tested without touching this file): a new database is upgraded to r, one row is written
into every table r has (generic values by column type, a few real ones where the app reads the
value, e.g. an exchange's packed blob), the database is upgraded to head, and then every row is
still there with its values, and the app's JSON API reads the job, its cycle, user and exchange.
"""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from argon2 import PasswordHasher
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    select,
)

from dashboard import create_app
from dashboard.admin import accounts
from dashboard.admin.accounts import add_account, create_api_token
from dashboard.db import MIGRATIONS, db, migrate_to
from dashboard.formats.codec import pack
from dashboard.settings import Settings
from dashboard.times import aware, to_us

REVISIONS = [script.revision for script in reversed(list(ScriptDirectory(str(MIGRATIONS)).walk_revisions()))]
MOMENT = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
JOB = "uniflow-upgraded"
EXCHANGE = {"path": "/scim/v2/Users", "query": None, "request_headers": {"authorization": "[REDACTED]"},
            "request_body": None, "response_body": {"totalResults": 0, "Resources": []}}
# Values the app reads as more than a string (JSON, a packed blob, a name): (table, column) → value.
REAL = {
    ("job", "name"): JOB,
    ("job", "notification_recipients"): "",
    ("job", "quarantine_overrides"): "{}",
    ("exchange", "blob"): pack(EXCHANGE),
    ("exchange", "method"): "GET",
    ("exchange", "operation"): "lookup",
    ("exchange", "status"): 200,
    ("exchange", "failed"): False,
    ("exchange", "found"): False,
    ("scim_user", "user_name"): "ada@contoso.com",
    ("scim_user", "name_key"): "ada@contoso.com",
    ("scim_user", "external_id"): "ada",
    ("scim_user", "state"): "in_sync",
    ("cycle", "kind"): "incremental",
    ("cycle", "counts"): '{"lookup": {"success": 1, "failure": 0, "skipped": 0}}',
    ("user_cycle", "summary"): json.dumps({  # the first, keyed form of analysis.outcomes.Summary
        "first_us": to_us(MOMENT), "last_us": to_us(MOMENT), "requests": 1, "writes": 0, "failures": 0,
        "lookups": 1, "last": {"ts_us": to_us(MOMENT), "id": 1, "operation": "lookup", "status": 200},
        "last_write": None, "last_failure": None}),
}
# Columns a migration rewrites on purpose (a backfill): (revision that rewrites, table, column).
REWRITTEN: set[tuple[str, str, str]] = set()


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch):  # type: ignore[no-untyped-def]
    # Argon2 with its default cost takes half a second per hash; these tests are not about that.
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def test_the_chain_is_one_line_from_the_first_revision():  # type: ignore[no-untyped-def]
    scripts = ScriptDirectory(str(MIGRATIONS))
    assert len(scripts.get_heads()) == 1, "two heads: renumber the newer migration's down_revision"
    assert REVISIONS[0] == "0001"
    assert len(REVISIONS) == len(set(REVISIONS)) >= 10


@pytest.mark.parametrize("revision", REVISIONS)
def test_it_upgrades_a_database_with_data_from(revision: str, fresh_database_url: str, settings: Settings):  # type: ignore[no-untyped-def]
    app = create_app(replace(settings, database=replace(settings.database, url=fresh_database_url), jobs=()))
    with app.app_context():
        try:
            upgrade_and_read(app, revision)
        finally:
            db.session.remove()
            db.engine.dispose()


def upgrade_and_read(app, revision: str) -> None:  # type: ignore[no-untyped-def]
    migrate_to(revision)
    seeded = seed_every_table(db.engine)
    migrate_to("heads")

    later = REVISIONS[REVISIONS.index(revision) + 1:]
    after = MetaData()
    after.reflect(db.engine)
    with db.engine.connect() as conn:
        for name, (key, row) in seeded.items():
            assert name in after.tables, f"table {name} (at {revision}) is gone after the upgrade"
            table = after.tables[name]
            found = conn.execute(select(table).where(*[table.c[k] == v for k, v in key.items()])).mappings().first()
            assert found is not None, f"{name}: the row written at {revision} is gone after the upgrade"
            for column, value in row.items():
                if column in table.c and not any((r, name, column) in REWRITTEN for r in later):
                    assert same(found[column], value), f"{name}.{column}: {value!r} became {found[column]!r}"

    # the app reads the upgraded rows through its API
    token = create_api_token(add_account("upgrade@example.com", "admin", "a long password"))
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    assert JOB in [j["name"] for j in client.get("/api/v1/jobs").json["jobs"]]
    base = f"/api/v1/jobs/{JOB}"
    for path in ("/health", "/cycles", "/users", "/signatures", "/report", "/entra/status", "/entra/events"):
        response = client.get(base + path)
        assert response.status_code == 200, (revision, path, response.json)
    if "exchange" in seeded:
        exchange_id = seeded["exchange"][0]["id"]
        response = client.get(f"{base}/exchanges/{exchange_id}")
        assert response.status_code == 200, response.json
        assert response.json["response_body"] == EXCHANGE["response_body"]
    if "scim_user" in seeded:
        response = client.get(f"{base}/users/ada/timeline")
        assert response.status_code == 200, response.json
        assert response.json["user"]["userName"] == "ada@contoso.com"


def seed_every_table(engine: Engine) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """One row in each table of the current schema, parents first: table → (primary key, row)."""
    meta = MetaData()
    meta.reflect(engine)
    seeded: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    with engine.begin() as conn:
        for table in meta.sorted_tables:
            if table.name == "alembic_version":
                continue
            row = row_for(table, seeded)
            if row is None:
                continue
            result = conn.execute(table.insert().values(**row))
            key = dict(zip([c.name for c in table.primary_key.columns], result.inserted_primary_key, strict=True))
            seeded[table.name] = (key, {**row, **key})
    return seeded


def row_for(table: Table, seeded: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any] | None:
    row: dict[str, Any] = {}
    for column in table.columns:
        if column.primary_key and len(table.primary_key.columns) == 1 and isinstance(column.type, Integer) \
                and not column.foreign_keys:
            continue  # the database numbers it
        parent = next(iter(column.foreign_keys), None)
        if parent is not None:
            target = parent.column.table.name
            if target in seeded and target != table.name:
                row[column.name] = seeded[target][1][parent.column.name]
            elif not column.nullable:
                return None  # its parent could not be written (a cycle): nothing to write here
            continue
        row[column.name] = REAL.get((table.name, column.name), generic(table.name, column.name, column.type))
    return row


def generic(table: str, column: str, kind: Any) -> Any:
    if isinstance(kind, Boolean):
        return False
    if isinstance(kind, (BigInteger,)) or column.endswith("_us"):
        return to_us(MOMENT)
    if isinstance(kind, (Integer, SmallInteger)):
        return 1
    if isinstance(kind, (Float, Numeric)):
        return 1.5
    if isinstance(kind, DateTime):
        return MOMENT
    if isinstance(kind, Date):
        return MOMENT.date()
    if isinstance(kind, LargeBinary):
        return pack({"table": table})
    if isinstance(kind, JSON):
        return {}
    if isinstance(kind, String) and not isinstance(kind, Text) and kind.length:
        return f"{table}.{column}"[: kind.length]
    if isinstance(kind, (Text, String)):
        return "{}"  # many text columns hold JSON; an empty object reads as "nothing yet"
    raise AssertionError(f"{table}.{column}: no seed value for type {kind!r}: add one to tests/test_upgrades.py")


def same(found: Any, written: Any) -> bool:
    if isinstance(found, datetime) and isinstance(written, datetime):
        return aware(found) == written
    if isinstance(found, memoryview):
        found = bytes(found)
    if isinstance(written, date) and not isinstance(written, datetime) and isinstance(found, datetime):
        return found.date() == written
    return bool(found == written)
