# ruff: noqa: RUF001  (names in other scripts, on purpose)
"""Bringing a time bank in from another system: 5,000 transfers, correct balances, rejected rows
reported by line, and a rerun that changes nothing."""

from __future__ import annotations

import csv
import random
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from api.cli import app
from ledger import tables as t
from ledger.batch import stored_keys_query
from ledger.csv_import import ImportReport, import_csv
from ledger.db import read_transaction, write_transaction
from ledger.reconcile import snapshot, verify
from tests.treasurer.conftest import Book, make_book

NOW = datetime(2026, 11, 20, 9, tzinfo=UTC)
MIN, MAX = -2000, 4000  # the co-op's default limits: -20.00 and +40.00 hours
HOURS = ["0.5", "1", "1.25", "2", "3", "0.75", "1.5", "4"]
REASONS = [
    "childcare",
    "fixed a bike, and a gate",
    'said "thanks"',
    "Elif Yılmaz: guitar",
    "",
    "=cmd|' /C calc'!A0",
]


@dataclass
class Generated:
    members: Path
    transfers: Path
    bad: dict[int, str]  # line → expected code, for rows that are wrong on their own
    rows: list[tuple[int, date, str, str, int]]  # valid rows: line, date, from, to, amount


def generate(folder: Path, *, transfers: int, members: int = 60, seed: int = 4) -> Generated:
    rng = random.Random(seed)
    emails = [f"person{n}@oldbank.example.org" for n in range(members)]
    with (folder / "members.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "email", "joined"])
        for n, email in enumerate(emails):
            writer.writerow([f"Person {n}", email.upper() if n == 3 else email, "2020"])
        writer.writerow(["", "nameless@oldbank.example.org", ""])
        writer.writerow(["No Email", "not-an-email", ""])
    bad_kinds = {
        "date": ("2025-13-01", "validation_failed"),
        "date2": ("31/01/2025", "validation_failed"),
        "future": ("2099-01-01", "validation_failed"),
        "hours": ("1.555", "invalid_amount"),
        "hours2": ("abc", "invalid_amount"),
        "zero": ("0", "invalid_amount"),
        "negative": ("-1", "invalid_amount"),
        "unknown": ("stranger@elsewhere.example.org", "account_not_found"),
        "same": ("same", "same_account"),
        "long": ("x" * 501, "validation_failed"),
    }
    bad: dict[int, str] = {}
    rows: list[tuple[int, date, str, str, int]] = []
    with (folder / "transfers.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["date", "from_email", "to_email", "hours", "reason"])
        line = 1
        kinds = list(bad_kinds)
        for n in range(transfers):
            line += 1
            day = date(2025, 1, 1) + timedelta(days=rng.randrange(640))
            a, b = rng.sample(emails, 2)
            hours = rng.choice(HOURS)
            reason = rng.choice(REASONS)
            if n % 500 == 250:  # a bad row every 500
                kind = kinds[(n // 500) % len(kinds)]
                value, code = bad_kinds[kind]
                bad[line] = code
                if kind.startswith("date") or kind == "future":
                    writer.writerow([value, a, b, hours, reason])
                elif kind in ("hours", "hours2", "zero", "negative"):
                    writer.writerow([day.isoformat(), a, b, value, reason])
                elif kind == "unknown":
                    writer.writerow([day.isoformat(), a, value, hours, reason])
                elif kind == "same":
                    writer.writerow([day.isoformat(), a, a, hours, reason])
                else:
                    writer.writerow([day.isoformat(), a, b, hours, value])
                continue
            writer.writerow([day.isoformat(), a, b, hours, reason])
            amount = round(float(hours) * 100)
            rows.append((line, day, a, b, amount))
    return Generated(folder / "members.csv", folder / "transfers.csv", bad, rows)


def model(rows: list[tuple[int, date, str, str, int]]) -> tuple[dict[str, int], set[int]]:
    """Balances after replaying the rows in (date, line) order within the limits, and the lines
    a limit refuses."""
    balances: dict[str, int] = {}
    refused: set[int] = set()
    for line, _, payer, payee, amount in sorted(rows, key=lambda r: (r[1], r[0])):
        if balances.get(payer, 0) - amount < MIN or balances.get(payee, 0) + amount > MAX:
            refused.add(line)
            continue
        balances[payer] = balances.get(payer, 0) - amount
        balances[payee] = balances.get(payee, 0) + amount
    return balances, refused


def balances(engine: Engine) -> dict[str, int]:
    u, m, a = t.users, t.memberships, t.accounts
    with read_transaction(engine) as conn:
        return {
            r.email: r.balance
            for r in conn.execute(
                sa.select(u.c.email, a.c.balance)
                .join(m, m.c.user_id == u.c.id)
                .join(a, a.c.id == m.c.account_id)
            )
            if "riverside" not in r.email
        }


def run(book: Book, g: Generated, **kw: object) -> ImportReport:
    return import_csv(
        book.engine,
        slug="riverside",
        members_csv=g.members,
        transfers_csv=g.transfers,
        as_email=None,
        now=NOW,
        **kw,
    )  # type: ignore[arg-type]


def test_five_thousand_transfers_and_a_rerun(book: Book, tmp_path: Path) -> None:
    g = generate(tmp_path, transfers=5000)
    expected, refused = model(g.rows)
    started = time.perf_counter()
    first = run(book, g)
    elapsed = time.perf_counter() - started
    assert (first.members_added, first.members_existing) == (60, 0)
    assert first.transfers_posted == len(g.rows) - len(refused)
    transfer_rejects = {r.line: r.code for r in first.rejected if r.file == "transfers.csv"}
    assert transfer_rejects == {**g.bad, **dict.fromkeys(refused, "insufficient_credit")} | {
        line: code for line, code in transfer_rejects.items() if line in refused
    }
    assert {r.line for r in first.rejected if r.file == "members.csv"} == {62, 63}
    assert {
        line for line, code in transfer_rejects.items() if code in ("insufficient_credit", "ceiling_exceeded")
    } == refused
    got = balances(book.engine)
    assert {email: got[email] for email in expected} == expected
    assert sum(got.values()) == 0
    with snapshot(book.engine) as conn:
        assert verify(conn)[1] == []
        transfers_before = conn.execute(sa.select(sa.func.count()).select_from(t.transfers)).scalar_one()

    second = run(book, g)
    assert (second.members_added, second.members_existing) == (0, 60)
    assert (second.transfers_posted, second.transfers_replayed) == (0, first.transfers_posted)
    assert [(r.line, r.code) for r in second.rejected] == [(r.line, r.code) for r in first.rejected]
    assert balances(book.engine) == got
    with read_transaction(book.engine) as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(t.transfers)).scalar_one() == transfers_before
        )
    print(f"\n{book.engine.dialect.name}: imported {first.transfers_posted} transfers in {elapsed:.2f} s")


def test_a_reexport_with_rows_added_and_reordered_posts_only_the_new_rows(book: Book, tmp_path: Path) -> None:
    g = generate(tmp_path, transfers=40, members=6)
    first = run(book, g)
    lines = g.transfers.read_text(encoding="utf-8").splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    random.Random(1).shuffle(body)
    duplicate = body[0]  # the same exchange again: a genuine second one
    extra = "2026-10-01,person1@oldbank.example.org,person2@oldbank.example.org,0.5,new row\r\n"
    g.transfers.write_text(header + extra + "".join(body) + duplicate, encoding="utf-8")
    second = run(book, g)
    assert second.transfers_replayed == first.transfers_posted
    assert second.transfers_posted + len([r for r in second.rejected if r.code == "insufficient_credit"]) >= 1
    assert second.transfers_posted <= 2


def test_refused_rows_stay_refused_until_retried(book: Book, tmp_path: Path) -> None:
    members = tmp_path / "members.csv"
    members.write_text("name,email\nAnn,ann@old.example.org\nBo,bo@old.example.org\n", encoding="utf-8")
    transfers = tmp_path / "transfers.csv"
    # Ann cannot pay 21 hours first (limit -20); once Bo has paid her 10, she could.
    transfers.write_text(
        "date,from_email,to_email,hours,reason\n2025-01-01,ann@old.example.org,bo@old.example.org,21,big\n"
        "2025-01-02,bo@old.example.org,ann@old.example.org,10,back\n",
        encoding="utf-8",
    )
    g = Generated(members, transfers, {}, [])
    first = run(book, g)
    assert (first.transfers_posted, [(r.line, r.code) for r in first.rejected]) == (
        1,
        [(2, "insufficient_credit")],
    )
    second = run(book, g)  # Ann's balance would now allow it, but a rerun changes nothing
    assert (second.transfers_posted, second.transfers_replayed) == (0, 1)
    assert [(r.line, r.code) for r in second.rejected] == [(2, "insufficient_credit")]
    assert "when first imported" in second.rejected[0].detail
    third = run(book, g, retry_refused=True)
    assert (third.transfers_posted, third.rejected) == (1, [])
    assert balances(book.engine) == {"ann@old.example.org": -1100, "bo@old.example.org": 1100}


def test_the_command_reports_rejected_rows_by_line(
    engine: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    freezes: list[None] = []  # the command freezes its startup objects (api.startup), not pytest's
    monkeypatch.setattr("api.startup.freeze_startup_objects", lambda: freezes.append(None))
    make_book(engine, members=1)
    g = generate(tmp_path, transfers=600, members=8)
    env = {"COMMONS_DATABASE_URL": db_url}
    rejected = tmp_path / "rejected.csv"
    result = CliRunner().invoke(
        app,
        [
            "import-csv",
            "--coop",
            "riverside",
            str(g.members),
            str(g.transfers),
            "--rejected",
            str(rejected),
        ],
        env=env,
    )
    assert result.exit_code == 1, result.output
    assert "transfers.csv" in result.output and "252" in result.output  # the first bad row's line
    with rejected.open(encoding="utf-8") as f:
        listed = {(row["file"], int(row["line"])) for row in csv.DictReader(f)}
    assert ("transfers.csv", 252) in listed and ("members.csv", 10) in listed
    assert len(freezes) == 1
    unknown = CliRunner().invoke(
        app, ["import-csv", "--coop", "nowhere", str(g.members), str(g.transfers)], env=env
    )
    assert unknown.exit_code == 2
    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("who,mail\n", encoding="utf-8")
    missing = CliRunner().invoke(
        app, ["import-csv", "--coop", "riverside", str(bad_header), str(g.transfers)], env=env
    )
    assert missing.exit_code == 2 and "lacks the column" in missing.output


def test_a_treasurer_of_another_coop_cannot_import(engine: Engine, tmp_path: Path) -> None:
    book = make_book(engine, members=1)
    make_book(engine, slug="hillside", members=1, admin_email="admin@riverside.example.org")
    g = generate(tmp_path, transfers=10, members=3)
    from ledger.errors import DomainError

    with pytest.raises(DomainError) as caught:
        import_csv(
            book.engine,
            slug="riverside",
            members_csv=g.members,
            transfers_csv=g.transfers,
            as_email="tess@hillside.example.org",
            now=NOW,
        )
    assert caught.value.code == "forbidden"
    with write_transaction(engine) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.transfers)).scalar_one() == 0


def test_stored_keys_are_looked_up_through_the_batch_key_index(engine: Engine) -> None:
    """By key alone the primary key (user_id, key) is no help: every chunk of an import scanned
    the whole table, slower with every key stored (migration 0006_batch_key_index)."""
    query = stored_keys_query(["batch:1:a", "batch:1:b"])
    sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")  # an empty table is cheapest to scan
            plan = conn.exec_driver_sql(f"EXPLAIN {sql}").fetchall()
        else:
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").fetchall()
    assert "ix_idempotency_keys_batch" in str(plan), plan
