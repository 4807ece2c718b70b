"""Module and function sizes of the package at a git revision: `python scripts/layout_stats.py [REV]`.

Used in the layout issue's closing note (before: c9eb701, after: HEAD)."""
from __future__ import annotations

import ast
import statistics
import subprocess
import sys


def main(rev: str = "HEAD") -> None:
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, "dashboard"], capture_output=True, text=True,
                           check=True).stdout.split()
    files = [f for f in names if f.endswith(".py")]
    modules, functions = [], []
    for f in files:
        source = subprocess.run(["git", "show", f"{rev}:{f}"], capture_output=True, text=True, check=True).stdout
        modules.append((len(source.splitlines()), f))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append((node.end_lineno - node.lineno + 1, f"{f}:{node.name}"))
    modules.sort(reverse=True)
    functions.sort(reverse=True)
    top = [f for f in files if f.count("/") == 1]
    print(f"{rev}: {len(files)} modules, {len(top)} at the top level; median module "
          f"{statistics.median(n for n, _ in modules)} lines, median function {statistics.median(n for n, _ in functions)}"
          f" lines ({len(functions)} functions)")
    print("  largest modules:  ", ", ".join(f"{f.removeprefix('dashboard/')} {n}" for n, f in modules[:6]))
    print("  largest functions:", ", ".join(f"{f.removeprefix('dashboard/')} {n}" for n, f in functions[:5]))


if __name__ == "__main__":
    main(*sys.argv[1:2])
