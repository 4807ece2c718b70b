"""What the sample tests share: where the samples are, the job, and reading the dashboard's view."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import func, select

from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.queries.users import list_users

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tests" / "data" / "samples"
JOB = "uniflow-prod"


def load_script(path: Path) -> ModuleType:
    """A sample's script (converter, extractor) as a module, without running its main."""
    spec = importlib.util.spec_from_file_location(f"sample_{path.parent.name.replace('-', '_')}_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def count(model: Any) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model))


def users() -> list[dict[str, Any]]:
    """The job's users as the API lists them (list_users: userName, externalId, scim_id, state...)."""
    db.session.rollback()
    return list_users(db.session, get_job(JOB), limit=1000)["users"]


def ingest(runner: Any, *paths: Path, fmt: str | None = None) -> Any:
    """`flask --app app ingest PATHS --job uniflow-prod [--format FMT]`, as a person would run it."""
    args = ["ingest", *(str(p) for p in paths), "--job", JOB]
    if fmt:
        args += ["--format", fmt]
    return runner.invoke(args=args)
