"""The federation's pure pieces stay pure: conversion and CSV reading import no web, database or
logging code (STYLE.md), so they are tested and reasoned about as plain functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE = ("clearing/rates.py", "clearing/obligation_csv.py")
ALLOWED_PROJECT_IMPORTS = {"ledger.amounts"}
FORBIDDEN = {"litestar", "sqlalchemy", "sqlmodel", "psycopg", "logging", "accounts", "api"}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_only_the_standard_library_and_exact_amounts(module: str) -> None:
    names = imported(ROOT / module)
    assert not {n.split(".")[0] for n in names} & FORBIDDEN, names
    project = {n for n in names if n.split(".")[0] in {"ledger", "clearing"}}
    assert project <= ALLOWED_PROJECT_IMPORTS, project
