"""The layout holds: each folder owns one step (docs/architecture.md), read from the imports.

- PURE modules (formats/, analysis/, times.py, settings.py, the notification rules, the
  simulator) import the standard library, orjson and other PURE modules only: no Flask,
  SQLAlchemy, scheduler, models or database.
- queries/ never writes; web/ never touches the models, the tracking step or the ingest internals.
- No import cycle between modules; an import inside a function says why in a comment.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dashboard"

PURE = ("dashboard.formats", "dashboard.analysis", "dashboard.times", "dashboard.settings", "dashboard.notify.rules",
        "dashboard.notify.text", "dashboard.demo.simulate", "dashboard.demo.truth", "dashboard.demo.entra_pages",
        "dashboard.ingest.prepare", "dashboard.ingest.entra_prepare")
PURE_THIRD_PARTY = ("orjson",)
# What web/ may import from the project: the read side, the push entry point, access and runtime.
WEB_MAY_IMPORT = ("dashboard.queries", "dashboard.web", "dashboard.runtime", "dashboard.db", "dashboard.admin",
                  "dashboard.ingest.scim", "dashboard.notify", "dashboard.analysis", "dashboard.times",
                  "dashboard.settings", "dashboard.formats.scim.parse", "dashboard.formats.scim.redact",
                  "dashboard.formats.gunzip")
WRITING_METHODS = {"commit", "add", "add_all", "flush", "bulk_save_objects", "bulk_insert_mappings",
                   "bulk_update_mappings", "execute_many"}
WRITING_CALLS = {"insert", "update", "delete", "insert_ignoring"}


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found.append((name, path))
    return found


MODULES = dict(_modules())


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = (module if is_package else module.rpartition(".")[0]).split(".")
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_names(source: str, module: str, *, is_package: bool = False, top_only: bool = False) -> set[str]:
    """Every module `source` imports (anywhere, or at module level only), made absolute; for
    `from package import name` both `package` and `package.name`."""
    tree = ast.parse(source)
    nodes = tree.body if top_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            prefix = _absolute(node, module, is_package)
            names.add(prefix)
            names.update(f"{prefix}.{alias.name}" for alias in node.names)
    return names


def _imports(module: str, *, top_only: bool = False) -> set[str]:
    path = MODULES[module]
    return imported_names(path.read_text(encoding="utf-8"), module, is_package=path.name == "__init__.py",
                          top_only=top_only)


def _project(names: set[str]) -> set[str]:
    """The project modules among `names` (`from dashboard.x import y` names module x, or y when y is one)."""
    return {n for n in names if n in MODULES and n != "dashboard"}  # `from dashboard import x` names x


def _is_stdlib(name: str) -> bool:
    return name.split(".")[0] in sys.stdlib_module_names or name == "__future__"


# -- PURE -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [m for m in MODULES if _within(m, PURE)])
def test_a_pure_module_imports_only_the_standard_library_orjson_and_pure_modules(module):
    offending = sorted(
        name for name in _imports(module)
        if not (_is_stdlib(name) or _within(name, PURE_THIRD_PARTY) or _within(name, PURE)
                or (name.startswith("dashboard") and name not in MODULES and _within(name.rpartition(".")[0], PURE)))
    )

    assert offending == []


def test_the_pure_set_covers_the_steps_the_style_guide_names():
    pure = {m for m in MODULES if _within(m, PURE)}

    assert {"dashboard.formats.scim.parse", "dashboard.formats.scim.redact", "dashboard.formats.entra.parse",
            "dashboard.analysis.cycles", "dashboard.analysis.health", "dashboard.analysis.progress",
            "dashboard.times"} <= pure


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
        ("import json", False),
        ("from dashboard.formats.scim import records", False),
        ("from dashboard.times import to_us", False),
    ],
)
def test_it_recognises_an_import_a_pure_module_may_not_make(source, expected):
    # as if written in dashboard/analysis/probe.py, so that relative imports resolve as they would there
    names = imported_names(source, "dashboard.analysis.probe")

    def allowed(name: str) -> bool:
        return _is_stdlib(name) or _within(name, PURE_THIRD_PARTY) or _within(name, PURE) \
            or (name.startswith("dashboard") and name not in MODULES and _within(name.rpartition(".")[0], PURE))

    assert (not all(allowed(n) for n in names)) is expected


# -- queries read, web shows --------------------------------------------------------------------------


def _writes(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in WRITING_METHODS:
                found.append(f"line {node.lineno}: .{func.attr}()")
            elif isinstance(func, ast.Name) and func.id in WRITING_CALLS:
                found.append(f"line {node.lineno}: {func.id}()")
    return found


@pytest.mark.parametrize("module", [m for m in MODULES if _within(m, ("dashboard.queries",))])
def test_a_query_never_writes(module):
    assert _writes(MODULES[module].read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(("source", "writes"), [
    ("session.commit()", True), ("db.session.add(row)", True), ("conn.execute(insert(t).values(a=1))", True),
    ("conn.execute(update(t))", True), ("session.execute(select(t))", False), ("rows.add_up()", False),
])
def test_it_recognises_a_write(source, writes):
    assert bool(_writes(source)) is writes


@pytest.mark.parametrize("module", [m for m in MODULES if _within(m, ("dashboard.web",))])
def test_the_web_layer_reaches_rows_only_through_queries(module):
    offending = sorted(n for n in _project(_imports(module)) if not _within(n, WEB_MAY_IMPORT))

    assert offending == []


# -- imports ----------------------------------------------------------------------------------------


def _graph() -> dict[str, set[str]]:
    graph = {}
    for module in MODULES:
        targets = set()
        for name in _project(_imports(module, top_only=True)):
            if name != module and not module.startswith(name + "."):  # a module's own packages run first anyway
                targets.add(name)
        graph[module] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_two_modules_import_each_other_even_through_others():
    assert _cycles(_graph()) == []


def test_it_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _unexplained_local_imports(source: str) -> list[int]:
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(node):
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    here = lines[sub.lineno - 1]
                    above = lines[sub.lineno - 2].strip() if sub.lineno > 1 else ""
                    if "#" not in here and not above.startswith("#"):
                        found.append(sub.lineno)
    return found


@pytest.mark.parametrize("module", list(MODULES))
def test_an_import_inside_a_function_says_why(module):
    assert _unexplained_local_imports(MODULES[module].read_text(encoding="utf-8")) == []


def test_it_spots_a_local_import_without_a_reason():
    source = "def f():\n    import json\n\ndef g():\n    # the app loads it lazily\n    import csv\n"

    assert _unexplained_local_imports(source) == [2]
