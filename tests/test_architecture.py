"""PURE modules stay pure: no web framework, ORM, scheduler or storage imports (STYLE.md section 2)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dashboard"

FORBIDDEN = ("flask", "flask_sqlalchemy", "sqlalchemy", "apscheduler", "dashboard.web", "dashboard.models", "dashboard.db")


def _pure_modules() -> list[Path]:
    listed = [PACKAGE / "formats" / "scim" / f"{name}.py" for name in ("records", "parse", "redact", "classify")]
    optional = [PACKAGE / "formats" / "codec.py", PACKAGE / "demo" / "simulate.py", *sorted((PACKAGE / "analysis").rglob("*.py"))]
    return listed + [path for path in optional if path.exists()]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module `source` imports, anywhere (functions, TYPE_CHECKING blocks), made absolute."""
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names.add(prefix)
            names.update(f"{prefix}.{alias.name}" for alias in node.names)  # `from dashboard import db`
    return names


def _imports_of(path: Path) -> set[str]:
    return imported_names(path.read_text(encoding="utf-8"), _module_name(path), is_package=path.name == "__init__.py")


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


# Known violations, to be fixed by moving the module (not by widening FORBIDDEN): these two keep
# the analysis tables current through SQLAlchemy, so they are use cases, not PURE analysis.
_KNOWN: dict[str, str] = {}


def _params() -> list:
    return [
        pytest.param(
            path,
            id=str(path.relative_to(ROOT)),
            marks=[pytest.mark.xfail(strict=True, reason=f"known: {_KNOWN[key]}; move it out of analysis/")]
            if (key := str(path.relative_to(ROOT))) in _KNOWN
            else [],
        )
        for path in _pure_modules()
    ]


@pytest.mark.parametrize("path", _params())
def test_it_keeps_a_pure_module_free_of_framework_and_storage_imports(path):
    assert path.exists(), f"{path} is missing"

    offending = sorted(name for name in _imports_of(path) if _forbidden(name))

    assert offending == []


def test_it_checks_the_modules_the_style_guide_names_pure():
    checked = {str(p.relative_to(ROOT)) for p in _pure_modules()}

    assert {"dashboard/formats/scim/parse.py", "dashboard/formats/scim/redact.py", "dashboard/analysis/cycles.py"} <= checked


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import sqlalchemy.orm", True),
        ("from flask import current_app", True),
        ("from ..models import Exchange", True),
        ("from .. import db", True),
        ("from dashboard import web", True),
        ("def f():\n    from apscheduler.triggers.interval import IntervalTrigger", True),
        ("import flask_sqlalchemy as fsa", True),
        ("from .records import Exchange", False),
        ("import flaskish", False),
        ("from dashboard.ingest import records", False),
    ],
)
def test_it_recognises_a_forbidden_import(source, expected):
    # as if written in dashboard/analysis/probe.py, so that relative imports resolve as they would there
    names = imported_names(source, "dashboard.analysis.probe")

    assert any(_forbidden(name) for name in names) is expected
