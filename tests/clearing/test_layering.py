"""clearing/engine.py and every module it reaches import only the standard library, OR-Tools
and numpy: no database, web framework, logging or clock (STYLE.md: a pure core).

numpy is allowed for numerical arrays (exact int64 columns, sorts and sums at C speed); OR-Tools
requires it anyway. pandas is not: reading CSV is file mode's business, not the engine's."""

from __future__ import annotations

import sys

import pytest

from tests.test_layering import closure, imports_of, top

# Importing a module runs its package __init__ first, so that is part of the core too.
ENGINE_CLOSURE = sorted(closure(("clearing", "clearing.engine"), within="clearing"))
FORBIDDEN = {"sqlalchemy", "sqlmodel", "litestar", "logging", "time", "datetime"}


def test_the_engine_closure_is_what_the_engine_is_made_of() -> None:
    assert set(ENGINE_CLOSURE) == {
        "clearing",
        "clearing.engine",
        "clearing.model",
        "clearing.columns",
        "clearing.validation",
        "clearing.graph",
        "clearing.flow",
        "clearing.cycles",
        "clearing.table",
    }


@pytest.mark.parametrize("module", ENGINE_CLOSURE)
def test_engine_imports_only_the_standard_library_ortools_and_numpy(module: str) -> None:
    imports = imports_of(module)
    assert not sorted(m for m in imports if top(m) in FORBIDDEN)
    outside = sorted(
        m
        for m in imports
        if top(m) not in sys.stdlib_module_names
        and top(m) not in {"__future__", "ortools", "numpy"}
        and m not in ENGINE_CLOSURE
    )
    assert not outside, f"{module} reaches beyond the standard library, OR-Tools and numpy: {outside}"
