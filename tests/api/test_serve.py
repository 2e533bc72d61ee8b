"""`commons serve` chooses its worker count from the database (docs/benchmarks.md, Ledger)."""

from __future__ import annotations

from api.cli import default_server, default_workers


def test_sqlite_serves_with_two_workers_whatever_the_cores() -> None:
    assert default_workers("sqlite:///./commons.db", cores=8) == 2
    assert default_workers("sqlite:///./commons.db", cores=2) == 2
    assert default_workers("sqlite:///./commons.db", cores=1) == 1


def test_postgresql_serves_with_one_worker_per_core() -> None:
    assert default_workers("postgresql://u@h/db", cores=2) == 2
    assert default_workers("postgresql://u@h/db", cores=6) == 6


def test_sqlite_is_served_by_granian_and_postgresql_by_uvicorn() -> None:
    assert default_server("sqlite:///./commons.db") == "granian"
    assert default_server("postgresql://u@h/db") == "uvicorn"
