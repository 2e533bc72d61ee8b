# ruff: noqa: E501  (SQL written by hand reads best on one line)
"""Migration 0003_seals builds exactly the seals table of ledger/seal_models.py, and undoes it;
its CHECK constraints and unique keys hold without Python, on both engines."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from ledger.db import make_engine
from ledger.seal_models import seals
from migrations import alembic_config, upgrade_to_head


@pytest.fixture
def fresh_url(tmp_path: Path) -> str:
    """A never-migrated SQLite file. (PostgreSQL's full downgrade and upgrade, through this
    migration, is tests/db/test_migrations.py's; creating and dropping a database per test
    costs seconds there.)"""
    return f"sqlite:///{tmp_path / 'fresh.db'}"


def test_upgrade_downgrade_upgrade(fresh_url: str) -> None:
    upgrade_to_head(fresh_url)
    command.check(alembic_config(fresh_url))
    engine = make_engine(fresh_url, pool_size=1)
    try:
        inspector = sa.inspect(engine)
        declared = {c.name for c in seals.constraints if isinstance(c, sa.CheckConstraint)}
        assert declared <= {c["name"] for c in inspector.get_check_constraints("seals")}
        uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints("seals")}
        assert {("coop_id", "period"), ("coop_id", "previous_digest")} <= uniques

        command.downgrade(alembic_config(fresh_url), "0002_federation")
        assert "seals" not in sa.inspect(engine).get_table_names()
        assert "transfers" in sa.inspect(engine).get_table_names()

        upgrade_to_head(fresh_url)
        command.check(alembic_config(fresh_url))
        assert "seals" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_the_checks_hold_without_python(engine: sa.Engine) -> None:
    from tests.treasurer.conftest import make_book

    book = make_book(engine, members=0)
    good = {
        "coop": book.coop.id,
        "period": "2026-09",
        "s": "2026-09-01 00:00:00+00:00",
        "e": "2026-10-01 00:00:00+00:00",
        "d": "a" * 64,
        "p": "0" * 64,
        "n": 0,
    }
    sql = (
        "INSERT INTO seals (coop_id, period, period_start, period_end, digest, previous_digest, transfer_count, "
        "posting_count, created_at) VALUES (:coop, :period, :s, :e, :d, :p, :n, 0, :s)"
    )
    for bad in ({"d": "short"}, {"n": -1}, {"e": "2026-08-01 00:00:00+00:00"}):
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(sa.text(sql), {**good, **bad})
    with engine.begin() as conn:
        conn.execute(sa.text(sql), good)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.text(sql), {**good, "d": "b" * 64, "p": "c" * 64})  # the same month twice
