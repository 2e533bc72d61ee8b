"""Retention of stored idempotent responses (ledger/retention.py, `commons prune-idempotency`):
old records go, recent ones and imported batch items stay, and a retry after the window is a
new request. On both engines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from typer.testing import CliRunner

from api.cli import app
from api.settings import SettingsError, idempotency_retention_days
from ledger import idempotency, service
from ledger import tables as t
from ledger.batch import idempotency_key as batch_key
from ledger.db import read_transaction, write_transaction
from ledger.errors import DomainError
from ledger.retention import BATCH_KEY_PREFIX, count_prunable, parse_age, prune_idempotency
from ledger.service import TransferInput
from tests.treasurer.conftest import Book, make_book

NOW = datetime(2026, 11, 20, 9, tzinfo=UTC)
DAY = timedelta(days=1)


def store(engine: Engine, user_id: int, key: str, created_at: datetime) -> None:
    with write_transaction(engine) as conn:
        idempotency.store(
            conn,
            user_id=user_id,
            key=key,
            request_hash="h" * 64,
            status=201,
            body={"key": key},
            now=created_at,
        )


def stored_keys(engine: Engine) -> set[str]:
    with read_transaction(engine) as conn:
        return set(conn.execute(sa.select(t.idempotency_keys.c.key)).scalars())


@pytest.fixture
def records(book: Book) -> Book:
    """Ana's records at several ages, and a treasurer's imported batch items, old and new."""
    ana = book.actor(0).user_id
    for days in (400, 31, 30.5, 29, 0):
        store(book.engine, ana, f"request-{days}", NOW - days * DAY)
    tess = book.treasurer.user_id
    store(book.engine, tess, batch_key(book.coop.ledger_id, "row-1"), NOW - 400 * DAY)
    store(book.engine, tess, batch_key(book.coop.ledger_id, "row-2"), NOW - 1 * DAY)
    return book


def test_batch_keys_have_the_kept_prefix() -> None:
    assert batch_key(7, "line-3").startswith(BATCH_KEY_PREFIX)


def test_prune_deletes_only_old_requests(records: Book) -> None:
    before = stored_keys(records.engine)

    result = prune_idempotency(records.engine, older_than=30 * DAY, now=NOW)

    assert result.pruned == 3
    assert result.kept_batch_items == 1
    assert result.cutoff == NOW - 30 * DAY
    assert before - stored_keys(records.engine) == {"request-400", "request-31", "request-30.5"}
    # Nothing old is left to prune, and a second run is harmless.
    assert count_prunable(records.engine, older_than=30 * DAY, now=NOW) == (0, 1)
    assert prune_idempotency(records.engine, older_than=30 * DAY, now=NOW).pruned == 0


def test_a_dry_run_counts_and_deletes_nothing(records: Book) -> None:
    before = stored_keys(records.engine)

    result = prune_idempotency(records.engine, older_than=30 * DAY, now=NOW, dry_run=True)

    assert (result.pruned, result.kept_batch_items, result.dry_run) == (3, 1, True)
    assert stored_keys(records.engine) == before


def test_prune_works_in_chunks(records: Book) -> None:
    ana = records.actor(0).user_id
    for n in range(7):
        store(records.engine, ana, f"old-{n}", NOW - 90 * DAY)
    chunks: list[tuple[int, int]] = []

    result = prune_idempotency(
        records.engine,
        older_than=30 * DAY,
        now=NOW,
        chunk=4,
        progress=lambda n, total: chunks.append((n, total)),
    )

    assert result.pruned == 10
    assert chunks == [(4, 10), (4, 10), (2, 10)]
    assert stored_keys(records.engine) == {
        "request-29",
        "request-0",
        batch_key(records.coop.ledger_id, "row-1"),
        batch_key(records.coop.ledger_id, "row-2"),
    }


@pytest.mark.parametrize("chunk", [1, 3, 5, 10, 11])
def test_every_chunk_size_prunes_exactly_the_old_requests(records: Book, chunk: int) -> None:
    """Chunk edges (a full last chunk, one row a chunk, batch items between prunable rows)."""
    ana, tess = records.actor(0).user_id, records.treasurer.user_id
    for n in range(7):
        store(records.engine, ana if n % 2 else tess, f"old-{n}", NOW - 90 * DAY)
    store(records.engine, tess, batch_key(records.coop.ledger_id, "row-3"), NOW - 90 * DAY)
    deleted: list[int] = []

    result = prune_idempotency(
        records.engine, older_than=30 * DAY, now=NOW, chunk=chunk, progress=lambda n, _: deleted.append(n)
    )

    assert result.pruned == sum(deleted) == 10
    assert all(0 < n <= chunk for n in deleted)
    assert stored_keys(records.engine) == {
        "request-29",
        "request-0",
        *(batch_key(records.coop.ledger_id, row) for row in ("row-1", "row-2", "row-3")),
    }


def test_a_retry_after_the_window_is_a_new_request(book: Book) -> None:
    """The documented contract, through the same idempotent path the API uses."""
    ana = book.actor(0)
    request = TransferInput(book.account(0), book.account(1), 150, "childcare", None, NOW.date())

    def pay(at: datetime) -> idempotency.StoredResponse:
        def command(conn: Connection) -> tuple[int, Any]:
            record = service.create_transfer(conn, actor=ana, request=request, now=at)
            return 201, {"id": record.id}

        return idempotency.run_idempotent(
            book.engine,
            user_id=ana.user_id,
            key="pay-ben-childcare",
            request_hash=idempotency.fingerprint("POST", "/api/v1/transfers", {"amount": "1.50"}),
            now=at,
            command=command,
        )

    first = pay(NOW - 40 * DAY)
    assert pay(NOW - 11 * DAY) == idempotency.StoredResponse(201, first.body, replayed=True)

    assert prune_idempotency(book.engine, older_than=30 * DAY, now=NOW).pruned == 1

    again = pay(NOW)
    assert not again.replayed
    assert again.body != first.body  # executed again: a second transfer
    with read_transaction(book.engine) as conn:
        count = conn.execute(
            sa.select(sa.func.count()).where(t.transfers.c.payer_id == book.account(0))
        ).scalar_one()
    assert count == 2


def test_imported_batch_items_survive_a_prune(book: Book) -> None:
    """Re-importing the same rows long after the window still posts nothing twice."""
    moves = [(0, 1, 100), (1, 2, 50)]
    assert book.batch(moves, NOW - 400 * DAY, prefix="import") == 2

    prune_idempotency(book.engine, older_than=30 * DAY, now=NOW)

    assert book.batch(moves, NOW, prefix="import") == 0


@pytest.mark.parametrize(
    ("text", "age"),
    [("30d", 30 * DAY), ("30", 30 * DAY), ("36h", timedelta(hours=36)), (" 7D ", 7 * DAY), ("24h", DAY)],
)
def test_parse_age(text: str, age: timedelta) -> None:
    assert parse_age(text) == age


@pytest.mark.parametrize("text", ["", "30 days", "-3d", "1.5d", "0d", "23h", "36501d", "3w"])
def test_parse_age_refuses(text: str) -> None:
    with pytest.raises(DomainError) as caught:
        parse_age(text)
    assert caught.value.code == "validation_failed"


def test_prune_refuses_a_window_shorter_than_a_day(records: Book) -> None:
    with pytest.raises(DomainError):
        prune_idempotency(records.engine, older_than=timedelta(hours=23), now=NOW)


def test_the_default_window_comes_from_the_environment() -> None:
    assert idempotency_retention_days({}) == 30
    assert idempotency_retention_days({"COMMONS_IDEMPOTENCY_RETENTION_DAYS": "90"}) == 90
    with pytest.raises(SettingsError, match="COMMONS_IDEMPOTENCY_RETENTION_DAYS"):
        idempotency_retention_days({"COMMONS_IDEMPOTENCY_RETENTION_DAYS": "0"})


# --- the command ----------------------------------------------------------------------------


@pytest.fixture
def sqlite_book(tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch) -> Book:
    """A book in a SQLite file that the command reaches through COMMONS_DATABASE_URL."""
    import shutil

    from ledger.db import make_engine

    path = tmp_path / "commons.db"
    shutil.copyfile(sqlite_template, path)
    monkeypatch.setenv("COMMONS_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.delenv("COMMONS_IDEMPOTENCY_RETENTION_DAYS", raising=False)
    engine = make_engine(f"sqlite:///{path}", pool_size=1)
    return make_book(engine)


def test_the_command_prunes(sqlite_book: Book, monkeypatch: pytest.MonkeyPatch) -> None:
    ana = sqlite_book.actor(0).user_id
    now = datetime.now(UTC)
    store(sqlite_book.engine, ana, "very-old", now - 100 * DAY)
    store(sqlite_book.engine, ana, "old", now - 40 * DAY)
    store(sqlite_book.engine, ana, "fresh", now - 2 * DAY)
    runner = CliRunner()

    dry = runner.invoke(app, ["prune-idempotency", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would prune 2 stored response(s)" in dry.output
    assert stored_keys(sqlite_book.engine) == {"very-old", "old", "fresh"}

    monkeypatch.setenv("COMMONS_IDEMPOTENCY_RETENTION_DAYS", "60")
    result = runner.invoke(app, ["prune-idempotency"])
    assert result.exit_code == 0, result.output
    assert "pruned 1 stored response(s)" in result.output
    assert stored_keys(sqlite_book.engine) == {"old", "fresh"}

    result = runner.invoke(app, ["prune-idempotency", "--older-than", "1d"])
    assert result.exit_code == 0, result.output
    assert stored_keys(sqlite_book.engine) == set()
    sqlite_book.engine.dispose()


def test_the_command_refuses_a_bad_age(sqlite_book: Book) -> None:
    result = CliRunner().invoke(app, ["prune-idempotency", "--older-than", "5m"])
    assert result.exit_code == 2
    assert "30d" in result.output
    sqlite_book.engine.dispose()
