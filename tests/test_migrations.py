"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from dashboard.db import db

ROOT = Path(__file__).resolve().parent.parent


def test_it_has_no_pending_autogenerate_diff(app):  # type: ignore[no-untyped-def]
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)

    assert diff == []


def test_flask_db_commands_load_flask_migrate_when_asked_for(app, runner):  # type: ignore[no-untyped-def]
    assert "migrate" not in app.extensions

    listed = runner.invoke(args=["db", "--help"])
    current = runner.invoke(args=["db", "current"])  # Alembic prints to the stdout it found, not the runner's

    assert listed.exit_code == 0 and "upgrade" in listed.output and "downgrade" in listed.output
    assert current.exit_code == 0, current.output
    assert app.extensions["migrate"].directory.endswith("migrations")


def test_a_process_that_never_migrates_does_not_import_alembic(subprocess_env):  # type: ignore[no-untyped-def]
    # Flask-Migrate imports Alembic (about 10 MB resident): an ingest or the server need neither
    code = "import sys, app; print(sorted(m for m in ('alembic', 'flask_migrate') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=subprocess_env, capture_output=True, text=True,
                          check=True)

    assert done.stdout.strip() == "[]"
