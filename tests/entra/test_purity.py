"""The Entra modules are PURE (STYLE.md section 2): no Flask, SQLAlchemy, scheduler or web imports."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "dashboard" / "formats" / "entra"
FORBIDDEN = ("flask", "flask_sqlalchemy", "sqlalchemy", "apscheduler", "dashboard.web", "requests")
ALLOWED_PROJECT = ("dashboard.formats",)


@pytest.mark.parametrize("module", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_it_imports_only_the_standard_library_orjson_and_pure_modules(module):
    tree = ast.parse(module.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against dashboard.entra
                base = "dashboard.formats.entra" if node.level == 1 else "dashboard"
                names = [f"{base}.{node.module}" if node.module else base]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            assert not name.startswith(FORBIDDEN), f"{module.name} imports {name}"
            if name.startswith("dashboard"):
                assert name.startswith(ALLOWED_PROJECT), f"{module.name} imports {name}"
