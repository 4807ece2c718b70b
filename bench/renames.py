"""Benchmark: a mass rename (a domain change) against the same traffic without renames.

    .venv/bin/python bench/renames.py [--users 8000]

Cycle 1 creates `--users` people (lookup + POST); cycle 2 renames each of them (a lookup of the
new name that finds nothing, then a PATCH of userName by id, answered with the user): every
person goes through a provisional row and a merge, and starts a history of names.
(a) floor: the same lines, but cycle 2's PATCH keeps the old name (no provisional row, no merge).
(b) the renames.
Both are ingested in this process (no worker processes) into fresh SQLite files, in one run.
Prints lines/s of both and b/a; figures only, nothing here asserts a time. The cost per person
must not grow with the number of people (compare b/a at two sizes).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _line(at: datetime, method: str, path: str, status: int, **fields: object) -> bytes:
    return orjson.dumps({"ts": at.isoformat().replace("+00:00", "Z"), "method": method, "path": path,
                         "status": status, **fields})


def traffic(users: int, *, rename: bool) -> list[bytes]:
    t0 = datetime(2026, 11, 28, 8, tzinfo=UTC)
    empty = {"schemas": [LIST], "totalResults": 0, "Resources": []}
    lines = []
    for i in range(users):
        at, name = t0 + timedelta(milliseconds=50 * i), f"user{i}@old.example"
        created = {"schemas": [USER], "id": f"s{i}", "userName": name, "externalId": f"e{i}"}
        lines.append(_line(at, "GET", "/scim/v2/Users", 200, query=f'filter=userName eq "{name}"', response_body=empty))
        lines.append(_line(at, "POST", "/scim/v2/Users", 201, request_body={**created, "id": None}, response_body=created))
    for i in range(users):
        at = t0 + timedelta(hours=1, milliseconds=50 * i)
        name = f"user{i}@new.example" if rename else f"user{i}@old.example"
        lookup = empty if rename else {"schemas": [LIST], "totalResults": 1, "Resources": [
            {"schemas": [USER], "id": f"s{i}", "userName": name, "externalId": f"e{i}"}]}
        lines.append(_line(at, "GET", "/scim/v2/Users", 200, query=f'filter=userName eq "{name}"', response_body=lookup))
        lines.append(_line(at, "PATCH", f"/scim/v2/Users/s{i}", 200,
                           request_body={"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "userName", "value": name}]},
                           response_body={"schemas": [USER], "id": f"s{i}", "userName": name, "externalId": f"e{i}"}))
    return lines


def ingest(lines: list[bytes], folder: Path, label: str) -> float:
    """Lines per second of ingesting `lines` into a fresh database."""
    os.environ.update(DATABASE_URL=f"sqlite:///{folder / label}.db", DASHBOARD_SECRET_KEY="bench",
                      DASHBOARD_CONFIG=str(ROOT / "tests" / "data" / "empty.toml"))
    from dashboard import create_app
    from dashboard.admin.jobs import get_job, sync_jobs
    from dashboard.db import db, upgrade_schema
    from dashboard.ingest.scim import ingest_lines, options_from
    from dashboard.settings import JobSettings, load_settings

    settings = load_settings()
    settings = replace(settings, scheduler=replace(settings.scheduler, enabled=False),
                       ingest=replace(settings.ingest, workers=0), jobs=(JobSettings(name="bench"),))
    app = create_app(settings)
    upgrade_schema(app)
    with app.app_context():
        sync_jobs(settings.jobs)
        options = options_from(settings.ingest, cycles=settings.cycles)
        started = time.perf_counter()
        result = ingest_lines(db.engine, get_job("bench"), list(enumerate(lines, 1)), source=label, via="cli",
                              options=options)
        elapsed = time.perf_counter() - started
        db.engine.dispose()
    assert result.rejected == 0, result.problems[:3]
    return len(lines) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=8000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        floor = ingest(traffic(args.users, rename=False), folder, "plain")
        renames = ingest(traffic(args.users, rename=True), folder, "renames")
    print(f"{args.users:,} people, {4 * args.users:,} lines")
    print(f"(a) floor, the same traffic without renames: {floor:,.0f} lines/s")
    print(f"(b) every person renamed:                    {renames:,.0f} lines/s")
    print(f"b/a = {renames / floor:.2f}")


if __name__ == "__main__":
    main()
