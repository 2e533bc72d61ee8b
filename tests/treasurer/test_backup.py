"""`commons backup`: a consistent SQLite copy while payments keep coming; pg_dump guidance for
PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from ledger.backup import BackupError, backup_sqlite, pg_dump_guidance
from ledger.db import make_engine
from ledger.errors import DomainError
from ledger.reconcile import snapshot, verify
from migrations import upgrade_to_head
from tests.treasurer.conftest import make_book, standard_history


@pytest.fixture
def live(tmp_path: Path) -> Path:
    path = tmp_path / "commons.db"
    upgrade_to_head(f"sqlite:///{path}")
    return path


def test_a_backup_taken_while_members_trade_is_whole(live: Path, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{live}", pool_size=4)
    try:
        book = make_book(engine, members=4, min_balance=None, max_balance=None)
        standard_history(book)
        stop = threading.Event()
        paid: list[int] = []

        def trade() -> None:
            moment = datetime(2026, 11, 1, tzinfo=UTC)
            while not stop.is_set():
                moment += timedelta(minutes=1)
                try:
                    paid.append(book.pay(len(paid) % 4, (len(paid) + 1) % 4, 10, moment).id)
                except DomainError:  # pragma: no cover - no limits here
                    continue

        trader = threading.Thread(target=trade)
        trader.start()
        try:
            while len(paid) < 5:
                stop.wait(0.01)
            copies = [backup_sqlite(live, tmp_path / f"copy{n}.db") for n in range(3)]
        finally:
            stop.set()
            trader.join()
    finally:
        engine.dispose()
    assert len(paid) >= 5
    for copy in copies:
        assert copy.bytes > 0 and not copy.path.with_name(copy.path.name + "-wal").exists()
        with sqlite3.connect(copy.path) as raw:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        restored = make_engine(f"sqlite:///{copy.path}", pool_size=1)
        try:
            with snapshot(restored) as conn:
                assert verify(conn)[1] == []  # balances, postings and seals agree: a consistent moment
        finally:
            restored.dispose()


def test_a_backup_does_not_overwrite_by_accident(live: Path, tmp_path: Path) -> None:
    target = tmp_path / "copy.db"
    target.write_bytes(b"precious")
    with pytest.raises(BackupError, match="exists"):
        backup_sqlite(live, target)
    assert target.read_bytes() == b"precious"
    with pytest.raises(BackupError, match="another file"):
        backup_sqlite(live, live, overwrite=True)
    with pytest.raises(BackupError, match="no database"):
        backup_sqlite(tmp_path / "missing.db", tmp_path / "x.db")
    assert backup_sqlite(live, target, overwrite=True).path == target


def test_the_command(live: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "nightly.db"
    result = runner.invoke(
        app, ["backup", "-o", str(target)], env={"COMMONS_DATABASE_URL": f"sqlite:///{live}"}
    )
    assert result.exit_code == 0, result.output
    assert "integrity ok" in result.output and target.exists()
    again = runner.invoke(
        app, ["backup", "-o", str(target)], env={"COMMONS_DATABASE_URL": f"sqlite:///{live}"}
    )
    assert again.exit_code == 2
    pg = runner.invoke(
        app,
        ["backup", "-o", "nightly.dump"],
        env={"COMMONS_DATABASE_URL": "postgresql://commons@db.example.org:5433/books"},
    )
    assert pg.exit_code == 2
    assert "pg_dump --format=custom" in pg.output and "--host=db.example.org --port=5433" in pg.output


def test_pg_dump_guidance_names_the_database() -> None:
    text = pg_dump_guidance("postgresql://treasurer@localhost/riverside", Path("backup.dump"))
    assert "--username=treasurer" in text and "--file=backup.dump riverside" in text and "pg_restore" in text
