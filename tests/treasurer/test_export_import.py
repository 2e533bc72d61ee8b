"""Export a co-op to JSON Lines and import it elsewhere: identical balances, postings and seal
digests, across engines; a damaged or inconsistent file imports nothing."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from api.cli import app
from ledger import seals
from ledger import tables as t
from ledger.db import read_transaction
from ledger.export import ImportRefusedError, export_coop, import_file
from ledger.reconcile import snapshot, verify
from ledger.seal_core import Period
from ledger.seal_models import seals as seal_table
from migrations import upgrade_to_head
from tests.treasurer.conftest import SEPT, Book, make_book, scratch_engine, standard_history

NOW = datetime(2026, 11, 20, tzinfo=UTC)
COMPARED = {
    "accounts": sa.select(t.accounts).order_by(t.accounts.c.id),
    "postings": sa.select(t.postings).order_by(t.postings.c.account_id, t.postings.c.version),
    "transfers": sa.select(t.transfers).order_by(t.transfers.c.id),
    "seals": sa.select(seal_table).order_by(seal_table.c.id),
    "coops": sa.select(t.coops),
    "memberships": sa.select(t.memberships).order_by(t.memberships.c.id),
    "users": sa.select(t.users.c.id, t.users.c.email, t.users.c.name)
    .where(t.users.c.id.in_(sa.select(t.memberships.c.user_id)))
    .order_by(t.users.c.id),
}


def busy_book(engine: Engine, transfers: int, members: int = 20) -> Book:
    """A co-op with `transfers` batch transfers over September and October, the standard
    claims and reversal, and both months sealed."""
    book = make_book(engine, members=members, min_balance=None, max_balance=None)
    standard_history(book)
    rng = random.Random(transfers)
    done = 0
    chunk = 0
    while done < transfers:
        size = min(500, transfers - done)
        moves = []
        for _ in range(size):
            p, q = rng.sample(range(members), 2)
            moves.append((p, q, rng.randint(1, 800)))
        moment = SEPT + timedelta(days=2 + chunk * 50 / max(1, transfers // 500), hours=chunk)
        done += book.batch(moves, moment, prefix=f"c{chunk}")
        chunk += 1
    for month in ("2026-09", "2026-10"):
        seals.seal_period(engine, actor=None, slug="riverside", period=Period.parse(month), now=NOW)
    return book


def rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every compared table, typed (datetimes as aware UTC on both engines)."""
    with read_transaction(engine) as conn:
        return {name: [tuple(r) for r in conn.execute(query)] for name, query in COMPARED.items()}


def digests(engine: Engine) -> list[tuple[str, str, str]]:
    with read_transaction(engine) as conn:
        from accounts.service import get_coop

        coop = get_coop(conn, "riverside")
        stored = seals.stored_seals(conn, coop.id)
        return [
            (
                s.period.label,
                s.digest,
                seals.compute_seal(
                    conn, coop=coop, period=s.period, previous_digest=s.previous_digest
                ).digest,
            )
            for s in stored
        ]


def export(engine: Engine, path: Path) -> dict[str, int]:
    with snapshot(engine) as conn, path.open("wb") as f:
        return export_coop(conn, slug="riverside", out=f, now=NOW).counts


def fresh_sqlite(tmp_path: Path, name: str) -> Engine:
    path = tmp_path / name
    upgrade_to_head(f"sqlite:///{path}")
    return scratch_engine(path)


def test_a_round_trip_reproduces_the_coop(engine: Engine, tmp_path: Path) -> None:
    busy_book(engine, 2000)
    file = tmp_path / "riverside.jsonl"
    counts = export(engine, file)
    assert counts["transfer"] >= 2000 and counts["seal"] == 2
    target = fresh_sqlite(tmp_path, "target.db")
    try:
        summary = import_file(target, file)
        assert summary.counts == counts
        assert rows(target) == rows(engine)
        assert digests(target) == digests(engine)
        assert all(stored == recomputed for _, stored, recomputed in digests(target))
        with snapshot(target) as conn:
            assert verify(conn)[1] == []
        # ...and exporting the copy gives the same file, but for the moment it was made.
        again = tmp_path / "again.jsonl"
        export(target, again)
        assert file.read_bytes().split(b"\n", 1)[1] == again.read_bytes().split(b"\n", 1)[1]
        # New writes continue after the imported ids.
        with read_transaction(target) as conn:
            top = conn.execute(sa.text("SELECT MAX(id) FROM transfers")).scalar_one()
        book = make_book(target, slug="newcomer", admin_email="admin2@example.org")
        assert book.pay(0, 1, 100, NOW).id == top + 1
    finally:
        target.dispose()


@pytest.mark.postgres
def test_from_sqlite_to_postgresql(tmp_path: Path, pg_engine: Engine) -> None:
    source = fresh_sqlite(tmp_path, "source.db")
    try:
        book = busy_book(source, 1000)
        file = tmp_path / "riverside.jsonl"
        export(source, file)
        import_file(pg_engine, file)
        assert rows(pg_engine) == rows(source)
        assert digests(pg_engine) == digests(source)
        # PostgreSQL's id sequences continue after the imported ids.
        with read_transaction(pg_engine) as conn:
            top = conn.execute(sa.text("SELECT MAX(id) FROM transfers")).scalar_one()
        book.engine = pg_engine
        assert book.pay(0, 1, 100, NOW).id == top + 1
    finally:
        source.dispose()


def test_a_damaged_file_imports_nothing(book: Book, tmp_path: Path) -> None:
    standard_history(book)
    seals.seal_period(book.engine, actor=None, slug="riverside", period=Period(2026, 9), now=NOW)
    file = tmp_path / "riverside.jsonl"
    export(book.engine, file)
    lines = file.read_bytes().splitlines(keepends=True)

    def attempt(name: str, content: list[bytes], match: str) -> ImportRefusedError:
        damaged = tmp_path / name
        damaged.write_bytes(b"".join(content))
        target = fresh_sqlite(tmp_path, name + ".db")
        try:
            with pytest.raises(ImportRefusedError, match=match) as caught:
                import_file(target, damaged)
            with read_transaction(target) as conn:
                assert conn.execute(sa.text("SELECT COUNT(*) FROM coops")).scalar_one() == 0
            return caught.value
        finally:
            target.dispose()

    attempt("cut.jsonl", lines[:-3], "no end record")
    edited = [line.replace(b'"amount":150', b'"amount":151') for line in lines]
    attempt("edited.jsonl", edited, "changed or cut short")
    attempt("other.jsonl", [b'{"type":"something"}\n'], "not a Commons export")

    # An edit that also fixes the end record's hash still fails: the seals do not match.
    import hashlib

    body = edited[1:-1]
    end = {
        "type": "end",
        "records": len(body),
        "sha256": hashlib.sha256(b"".join(body)).hexdigest(),
    }
    refused = attempt(
        "resealed.jsonl", [edited[0], *body, json.dumps(end).encode() + b"\n"], "does not verify"
    )
    assert {f.code for f in refused.findings} >= {"seal_digest_differs", "transfer_postings_differ"}


def test_importing_twice_is_refused(book: Book, tmp_path: Path) -> None:
    standard_history(book)
    file = tmp_path / "riverside.jsonl"
    export(book.engine, file)
    with pytest.raises(ImportRefusedError, match="already exists"):
        import_file(book.engine, file)


def test_the_commands(book: Book, db_url: str, tmp_path: Path) -> None:
    standard_history(book)
    runner = CliRunner()
    file = tmp_path / "out.jsonl"
    result = runner.invoke(
        app,
        ["export", "--coop", "riverside", "-o", str(file)],
        env={"COMMONS_DATABASE_URL": db_url},
    )
    assert result.exit_code == 0, result.output
    assert (
        runner.invoke(
            app,
            ["export", "--coop", "riverside", "-o", str(file)],
            env={"COMMONS_DATABASE_URL": db_url},
        ).exit_code
        == 2
    )
    target = f"sqlite:///{tmp_path / 'new.db'}"  # empty: the import migrates it
    result = runner.invoke(app, ["import", str(file)], env={"COMMONS_DATABASE_URL": target})
    assert result.exit_code == 0, result.output
    assert "seals and balances verified" in result.output
    again = runner.invoke(app, ["import", str(file)], env={"COMMONS_DATABASE_URL": target})
    assert again.exit_code == 2 and "already exists" in again.output
    assert runner.invoke(app, ["verify"], env={"COMMONS_DATABASE_URL": target}).exit_code == 0


@pytest.mark.slow
@pytest.mark.parametrize("size", [20_000])
def test_a_large_round_trip(engine: Engine, tmp_path: Path, size: int) -> None:
    started = time.perf_counter()
    busy_book(engine, size, members=200)
    built = time.perf_counter()
    file = tmp_path / "big.jsonl"
    export(engine, file)
    exported = time.perf_counter()
    target = fresh_sqlite(tmp_path, "big.db")
    try:
        import_file(target, file)
        imported = time.perf_counter()
        assert rows(target) == rows(engine)
        assert digests(target) == digests(engine)
    finally:
        target.dispose()
    print(
        f"\n{engine.dialect.name}: {size} transfers built in {built - started:.1f} s, exported in "
        f"{exported - built:.2f} s ({file.stat().st_size / 1e6:.1f} MB), "
        f"imported and verified in {imported - exported:.2f} s"
    )
