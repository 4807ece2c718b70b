"""`flask backup PATH` and `flask restore PATH`: a consistent copy of the database while the app runs.

SQLite: sqlite3's online backup API (Connection.backup) copies the pages in one read transaction:
with WAL, writers (the app, an ingest) carry on during the copy and the copy is the database at
one moment. The copy is written beside PATH, checked (PRAGMA integrity_check), then renamed.
PostgreSQL: pg_dump --format=custom (one snapshot, the app keeps running); restore with
pg_restore --clean --if-exists --no-owner --single-transaction. The binaries are found on PATH,
else in the newest /usr/lib/postgresql/*/bin, or given with --pg-bin.

Restore writes over the configured database (stop the app and the scheduler first); it then
upgrades the schema, so a backup made by an older version comes back at the newest schema.
See docs/backup.md.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import click
from flask import current_app
from sqlalchemy import inspect, make_url, text
from sqlalchemy.engine import URL

from dashboard.db import db, upgrade_schema

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"


class BackupError(Exception):
    """Said to the user as it is: what failed and what to do."""


@click.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--pg-bin", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of pg_dump (PostgreSQL; default: PATH, else the newest /usr/lib/postgresql/*/bin).")
def backup_command(path: Path, pg_bin: Path | None) -> None:
    """Copy the database to PATH while the app keeps running (SQLite file or pg_dump archive)."""
    try:
        kind = backup(db.engine.url, path, pg_bin=pg_bin)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backed up the {kind} database to {path} ({path.stat().st_size} bytes)")


@click.command("restore")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Write over a database that already holds jobs.")
@click.option("--pg-bin", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of pg_restore (PostgreSQL; default: PATH, else the newest /usr/lib/postgresql/*/bin).")
def restore_command(path: Path, yes: bool, pg_bin: Path | None) -> None:
    """Replace the database with the backup at PATH, then upgrade it to the newest schema."""
    if not yes and _holds_jobs():
        raise click.ClickException("the database already holds jobs: stop the app and the scheduler, then run "
                                   "again with --yes to write over it")
    db.session.remove()
    db.engine.dispose()  # no pooled connection may keep the old database open
    try:
        kind = restore(path, db.engine.url, pg_bin=pg_bin)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    db.engine.dispose()
    upgrade_schema(current_app._get_current_object())  # type: ignore[attr-defined]
    click.echo(f"restored the {kind} database from {path}; it is at the newest schema")


def _holds_jobs() -> bool:
    with db.engine.connect() as conn:
        if not inspect(conn).has_table("job"):
            return False
        return bool(conn.execute(text("SELECT count(*) FROM job")).scalar())


def backup(url: URL, path: Path, *, pg_bin: Path | None = None) -> str:
    """Write a consistent copy of the database at `url` to `path`; returns "SQLite" or "PostgreSQL"."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    if url.get_backend_name() == "sqlite":
        _sqlite_copy(_sqlite_file(url), partial)
        kind = "SQLite"
    elif url.get_backend_name() == "postgresql":
        _run(pg_bin, "pg_dump", ["--format=custom", "--no-owner", f"--file={partial}"], url)
        kind = "PostgreSQL"
    else:
        raise BackupError(f"no backup for a {url.get_backend_name()} database (SQLite and PostgreSQL only)")
    partial.replace(path)  # a reader of PATH never sees half a backup
    path.chmod(0o600)  # the backup holds what the database holds: accounts' hashes, tokens' hashes
    return kind


def restore(path: Path, url: URL, *, pg_bin: Path | None = None) -> str:
    """Replace the database at `url` with the backup at `path`; returns "SQLite" or "PostgreSQL"."""
    if url.get_backend_name() == "sqlite":
        target = _sqlite_file(url)
        _check_sqlite(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        _sqlite_copy(path, target)
        return "SQLite"
    if url.get_backend_name() == "postgresql":
        if path.read_bytes()[:5] != b"PGDMP":
            raise BackupError(f"{path} is not a pg_dump archive (made by `flask backup` on PostgreSQL)")
        _run(pg_bin, "pg_restore", ["--clean", "--if-exists", "--no-owner", "--no-privileges",
                                    "--single-transaction", "--exit-on-error", str(path)], url, target="--dbname")
        return "PostgreSQL"
    raise BackupError(f"no restore for a {url.get_backend_name()} database (SQLite and PostgreSQL only)")


# -- SQLite ------------------------------------------------------------------------------------------


def _sqlite_file(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(url.database)


def _sqlite_copy(source: Path, target: Path) -> None:
    """Copy with the online backup API: all pages in one step, i.e. one read transaction (a
    consistent moment; with WAL the writers are not held up)."""
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source}")
    src = sqlite3.connect(source)  # the backup API only reads it
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        result = dst.execute("PRAGMA integrity_check").fetchone()
        if result != ("ok",):
            raise BackupError(f"the copy failed its integrity check: {result}")
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite backup from {source} to {target} failed: {exc}") from None
    finally:
        dst.close()
        src.close()


def _check_sqlite(path: Path) -> None:
    try:
        conn = sqlite3.connect(path)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise BackupError(f"{path} is not a SQLite database: {exc}") from None
    if "alembic_version" not in tables or "job" not in tables:
        raise BackupError(f"{path} is not a backup of this dashboard (no job and alembic_version tables)")


# -- PostgreSQL ---------------------------------------------------------------------------------------


def find_pg_tool(name: str, pg_bin: Path | None = None) -> Path:
    """`name` (pg_dump, pg_restore) from --pg-bin, else PATH, else the newest Debian PostgreSQL."""
    if pg_bin is not None:
        candidate = pg_bin / name
        if not candidate.exists():
            raise BackupError(f"no {name} in {pg_bin}")
        return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    folders = sorted(Path("/").glob(PG_BIN_GLOB.lstrip("/")), key=lambda p: _version(p.parent.name))
    for folder in reversed(folders):
        if (folder / name).exists():
            return folder / name
    raise BackupError(f"{name} not found (install the postgresql-client package, or give --pg-bin)")


def _version(text_: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text_.split(".") if part.isdigit()) or (0,)


def _run(pg_bin: Path | None, name: str, args: list[str], url: URL, *, target: str = "--dbname") -> None:
    """Run a PostgreSQL tool on the database at `url`; the password goes in the environment
    (PGPASSWORD), never on the command line where `ps` would show it."""
    tool = find_pg_tool(name, pg_bin)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    conninfo = make_url(url).set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    completed = subprocess.run([str(tool), *args, f"{target}={conninfo}"], env=env, capture_output=True,
                               text=True, check=False)
    if completed.returncode != 0:
        raise BackupError(f"{name} failed ({completed.returncode}): {completed.stderr.strip()[-2000:]}")
