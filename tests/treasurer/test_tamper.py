# ruff: noqa: E501  (SQL written by hand reads best on one line)
"""History edited behind the application's back, with the append-only triggers disabled for the
edit: `commons verify` and the reconciliation report each catch it and name it, on both engines.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from api.cli import app
from ledger import seals
from ledger.reconcile import reconciliation_report, snapshot, verify
from ledger.seal_core import Finding, Period
from tests.treasurer.conftest import Book, standard_history, tamper

NOW = datetime(2026, 11, 15, tzinfo=UTC)


@pytest.fixture
def sealed(book: Book) -> tuple[Book, dict[str, int]]:
    """The standard two months of history, both months sealed."""
    ids = standard_history(book)
    for month in ("2026-09", "2026-10"):
        seals.seal_period(book.engine, actor=None, slug=book.coop.slug, period=Period.parse(month), now=NOW)
    with snapshot(book.engine) as conn:
        assert verify(conn)[1] == []
    return book, ids


def findings(engine: Engine) -> tuple[list[Finding], list[Finding], bool]:
    """(verify's findings, the reconciliation report's findings, the report's ok)."""
    with snapshot(engine) as conn:
        _, verified = verify(conn)
        report = reconciliation_report(conn, actor=None, slug="riverside", now=NOW)
    return verified, report.findings, report.ok


def named(found: list[Finding], code: str, subject: str) -> bool:
    return any(f.code == code and f.subject == subject for f in found)


def change_transfer_amount(book: Book, ids: dict[str, int]) -> list[tuple[str, str]]:
    tamper(book.engine, "UPDATE transfers SET amount = amount + 50 WHERE id = :id", id=ids["late"])
    return [
        ("transfer_postings_differ", f"riverside transfer {ids['late']}"),
        ("seal_digest_differs", "riverside seal 2026-10"),
    ]


def change_posting_amount(book: Book, ids: dict[str, int]) -> list[tuple[str, str]]:
    tamper(
        book.engine,
        "UPDATE postings SET amount = amount - 25 WHERE transfer_id = :id AND amount < 0",
        id=ids["late"],
    )
    payer = book.account(3)
    return [
        ("balance_mismatch", f"riverside account {payer} (Dev)"),
        ("transfer_postings_differ", f"riverside transfer {ids['late']}"),
        ("seal_digest_differs", "riverside seal 2026-10"),
    ]


def delete_posting(book: Book, ids: dict[str, int]) -> list[tuple[str, str]]:
    payee = book.account(1)  # Ben was paid in September by transfer "paid"
    tamper(
        book.engine,
        "DELETE FROM postings WHERE transfer_id = :id AND account_id = :a",
        id=ids["paid"],
        a=payee,
    )
    return [
        ("balance_mismatch", f"riverside account {payee} (Ben)"),
        ("transfer_postings_differ", f"riverside transfer {ids['paid']}"),
        ("seal_count_differs", "riverside seal 2026-09"),
        ("seal_digest_differs", "riverside seal 2026-09"),
    ]


def insert_transfer(book: Book, ids: dict[str, int]) -> list[tuple[str, str]]:
    tamper(
        book.engine,
        "INSERT INTO transfers (id, ledger_id, transaction_id, payer_id, payee_id, amount, occurred_on, "
        "status, created_at) VALUES (9999, :ledger, 'forged', :payer, :payee, 500, '2026-09-15', 'posted', :at)",
        ledger=book.coop.ledger_id,
        payer=book.account(0),
        payee=book.account(1),
        at=datetime(2026, 9, 15, 12, tzinfo=UTC),
    )
    return [
        ("transfer_postings_differ", "riverside transfer 9999"),
        ("seal_count_differs", "riverside seal 2026-09"),
    ]


def change_cached_balance(book: Book, ids: dict[str, int]) -> list[tuple[str, str]]:
    # balance = credits - debits is a CHECK constraint, so a forger moves both.
    account = book.account(2)
    tamper(
        book.engine,
        "UPDATE accounts SET balance = balance + 1000, credits = credits + 1000 WHERE id = :id",
        id=account,
    )
    return [
        ("balance_mismatch", f"riverside account {account} (Cleo)"),
        ("ledger_not_zero", "riverside"),
    ]


TAMPERS: dict[str, Callable[[Book, dict[str, int]], list[tuple[str, str]]]] = {
    "change a transfer's amount": change_transfer_amount,
    "change a posting's amount": change_posting_amount,
    "delete a posting": delete_posting,
    "insert a transfer": insert_transfer,
    "change a cached balance": change_cached_balance,
}


@pytest.mark.parametrize("edit", list(TAMPERS))
def test_verify_and_the_report_catch_and_name_each_edit(
    sealed: tuple[Book, dict[str, int]], edit: str
) -> None:
    book, ids = sealed
    expected = TAMPERS[edit](book, ids)
    verified, reported, ok = findings(book.engine)
    assert not ok
    for code, subject in expected:
        assert named(verified, code, subject), (
            f"verify missed {code} on {subject}: {[str(f) for f in verified]}"
        )
        assert named(reported, code, subject), (
            f"the report missed {code} on {subject}: {[str(f) for f in reported]}"
        )


def test_a_consistent_forgery_is_caught_by_the_seal_alone(
    sealed: tuple[Book, dict[str, int]],
) -> None:
    """A forger who adds a transfer with matching postings and cached balances leaves every
    balance check satisfied; only the seal of its month notices, and names the month."""
    book, _ = sealed
    payer, payee = book.account(0), book.account(1)
    with snapshot(book.engine) as conn:
        versions = dict(
            conn.execute(
                sa.text("SELECT id, version FROM accounts WHERE id IN (:a, :b)"),
                {"a": payer, "b": payee},
            ).all()
        )
        balances = dict(
            conn.execute(
                sa.text("SELECT id, balance FROM accounts WHERE id IN (:a, :b)"),
                {"a": payer, "b": payee},
            ).all()
        )
    moment = datetime(2026, 9, 25, tzinfo=UTC)  # inside sealed September
    statements = [
        (
            "INSERT INTO transfers (id, ledger_id, transaction_id, payer_id, payee_id, amount, occurred_on, status, created_at) "
            "VALUES (9998, :ledger, 'forged', :payer, :payee, 100, '2026-09-25', 'posted', :at)",
            {"ledger": book.coop.ledger_id, "payer": payer, "payee": payee, "at": moment},
        ),
        (
            "INSERT INTO postings (account_id, version, transfer_id, amount, balance_after, posted_at) VALUES "
            "(:payer, :pv, 9998, -100, :pb, :at), (:payee, :qv, 9998, 100, :qb, :at)",
            {
                "payer": payer,
                "payee": payee,
                "pv": versions[payer] + 1,
                "qv": versions[payee] + 1,
                "pb": balances[payer] - 100,
                "qb": balances[payee] + 100,
                "at": moment,
            },
        ),
        (
            "UPDATE accounts SET balance = balance - 100, debits = debits + 100, version = version + 1 WHERE id = :id",
            {"id": payer},
        ),
        (
            "UPDATE accounts SET balance = balance + 100, credits = credits + 100, version = version + 1 WHERE id = :id",
            {"id": payee},
        ),
    ]
    from tests.treasurer.conftest import triggers_off

    with triggers_off(book.engine) as conn:
        for sql, params in statements:
            conn.execute(sa.text(sql), params)
    verified, reported, ok = findings(book.engine)
    assert {f.code for f in verified} == {"seal_count_differs", "seal_digest_differs"}
    assert {f.subject for f in verified} == {"riverside seal 2026-09"}
    assert not ok and {f.code for f in reported} == {"seal_count_differs", "seal_digest_differs"}


def test_history_added_to_an_unsealed_month_before_a_seal_is_named(book: Book) -> None:
    book.pay(0, 1, 100, datetime(2026, 9, 3, tzinfo=UTC))
    seals.seal_period(book.engine, actor=None, slug="riverside", period=Period(2026, 9), now=NOW)
    seals.seal_period(book.engine, actor=None, slug="riverside", period=Period(2026, 10), now=NOW)
    # A rejected claim (no postings, no balance effect) slipped into... August, before the first seal.
    tamper(
        book.engine,
        "INSERT INTO transfers (id, ledger_id, transaction_id, payer_id, payee_id, amount, occurred_on, status, "
        "created_at, resolved_at) VALUES (9997, :ledger, 'forged', :payer, :payee, 100, '2026-08-20', 'rejected', :at, :at)",
        ledger=book.coop.ledger_id,
        payer=book.account(0),
        payee=book.account(1),
        at=datetime(2026, 8, 20, tzinfo=UTC),
    )
    verified, _, ok = findings(book.engine)
    assert not ok
    assert [(f.code, f.subject) for f in verified] == [("unsealed_history", "riverside 2026-08")]
    assert "transfer 9997" in verified[0].detail


def test_the_commands_exit_1_and_name_the_edit(sealed: tuple[Book, dict[str, int]], db_url: str) -> None:
    book, ids = sealed
    runner = CliRunner()
    env = {"COMMONS_DATABASE_URL": db_url}
    clean = runner.invoke(app, ["verify"], env=env)
    assert clean.exit_code == 0, clean.output
    assert runner.invoke(app, ["reconcile", "--coop", "riverside"], env=env).exit_code == 0
    change_cached_balance(book, ids)
    delete_posting(book, ids)
    result = runner.invoke(app, ["verify"], env=env)
    assert result.exit_code == 1
    assert f"riverside account {book.account(2)} (Cleo)" in result.output
    assert f"riverside transfer {ids['paid']}" in result.output
    assert "riverside seal 2026-09" in result.output
    report = runner.invoke(app, ["reconcile", "--coop", "riverside"], env=env)
    assert report.exit_code == 1
    assert "do NOT reconcile" in report.output and "Cleo" in report.output
    scoped = runner.invoke(app, ["verify", "--coop", "riverside"], env=env)
    assert scoped.exit_code == 1
