"""The pure cores stay pure: their imports are read from the source and checked (STYLE.md).

`ledger.core`, `ledger.amounts` and `ledger.errors` import only the standard library (and each
other); the clearing engine and every clearing module it reaches are free of web, database and
logging code and of the clock, so `clear()` stays a deterministic function of its input.

Beyond the standard library the clearing engine may use OR-Tools (the solver) and numpy: its
columns are numerical arrays (exact int64 sums, sorts and cumulative sums at C speed over a
million obligations), and OR-Tools requires numpy anyway. Nothing else: not pandas (reading CSV
belongs to file mode), and never a web framework, an ORM or a database driver.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT_PACKAGES = {"ledger", "accounts", "clearing", "api", "migrations"}
FORBIDDEN = {"litestar", "sqlalchemy", "sqlmodel", "psycopg", "psycopg2", "logging"}
FORBIDDEN_IN_CLEARING = FORBIDDEN | {"time", "datetime", "pandas"}
CLEARING_THIRD_PARTY = {"ortools", "numpy"}

# Importing a module runs its package's __init__ first, so that is part of the core too.
LEDGER_CORE = ("ledger", "ledger.core", "ledger.amounts", "ledger.errors")
CLEARING_CORE = ("clearing", "clearing.engine")


def module_path(module: str) -> Path:
    base = ROOT.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def imports_of(module: str) -> set[str]:
    """Every module named by an import statement (at any depth, even inside functions or
    `if TYPE_CHECKING:`), and by `importlib.import_module("…")` / `__import__("…")` calls."""
    path = module_path(module)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{node.module}" if node.module else anchor
            else:
                base = node.module or ""
            found.add(base)
            # `from ledger import errors` imports the submodule ledger.errors
            found.update(
                f"{base}.{alias.name}" for alias in node.names if module_path(f"{base}.{alias.name}").exists()
            )
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in {"import_module", "__import__"} and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.add(arg.value)
                else:
                    found.add("<dynamic import>")
    return found


def closure(roots: tuple[str, ...], *, within: str) -> dict[str, set[str]]:
    """The roots and every module of package `within` that they import, transitively."""
    seen: dict[str, set[str]] = {}
    todo = list(roots)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen[module] = imports_of(module)
        todo += [m for m in seen[module] if m.split(".")[0] == within and module_path(m).exists()]
    return seen


def top(name: str) -> str:
    return name.split(".")[0]


def test_closure_follows_project_imports() -> None:
    # Guards the test itself: if these were not found, the checks below would check nothing.
    ledger = closure(LEDGER_CORE, within="ledger")
    assert set(LEDGER_CORE) <= set(ledger)
    clearing = closure(CLEARING_CORE, within="clearing")
    assert {"clearing.engine", "clearing.model", "clearing.flow", "clearing.graph"} <= set(clearing)
    assert "ledger.errors" in ledger["ledger.core"]


@pytest.mark.parametrize("module", sorted(closure(LEDGER_CORE, within="ledger")))
def test_ledger_core_imports_only_the_standard_library(module: str) -> None:
    imports = imports_of(module)
    bad = sorted(m for m in imports if top(m) in FORBIDDEN)
    assert not bad, f"{module} imports {bad}"
    outside = sorted(
        m
        for m in imports
        if top(m) not in sys.stdlib_module_names
        and top(m) != "__future__"
        and m not in closure(LEDGER_CORE, within="ledger")
    )
    assert not outside, f"{module} reaches beyond the standard library and the ledger core: {outside}"


@pytest.mark.parametrize("module", sorted(closure(CLEARING_CORE, within="clearing")))
def test_clearing_engine_has_no_io_clock_or_logging(module: str) -> None:
    imports = imports_of(module)
    bad = sorted(m for m in imports if top(m) in FORBIDDEN_IN_CLEARING or m == "<dynamic import>")
    assert not bad, f"{module} imports {bad}"
    project = sorted(m for m in imports if top(m) in PROJECT_PACKAGES - {"clearing"})
    assert not project, f"{module} depends on {project}; the engine works on plain data"
    outside = sorted(
        m
        for m in imports
        if top(m) not in sys.stdlib_module_names
        and top(m) not in {"__future__", "clearing", *CLEARING_THIRD_PARTY}
    )
    assert not outside, f"{module} reaches beyond the standard library, OR-Tools and numpy: {outside}"


def test_the_checker_sees_forbidden_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A module that reaches for the database in any of the usual ways is caught."""
    source = (
        "import logging\n"
        "from datetime import UTC\n"
        "def f():\n"
        "    import sqlalchemy.orm\n"
        "    from litestar import get\n"
        "    return __import__('psycopg')\n"
    )
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "mod.py").write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert {top(m) for m in imports_of("probe.mod")} >= {
        "logging",
        "datetime",
        "sqlalchemy",
        "litestar",
        "psycopg",
    }
