"""The database refuses what the domain refuses, even when Python is bypassed (DESIGN §2).

Every statement here is raw SQL on a migrated database, on SQLite and on PostgreSQL: the CHECK
constraints, the append-only triggers, the single-reversal index and the posting key must hold
on their own. Each refusal is checked against the constraint or trigger that should produce it,
and, where a boundary exists, the statement one step inside it is shown to pass.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.engine.interfaces import ReflectedColumn

NOW = "2026-01-05 10:00:00+00:00"
LATER = "2026-01-06 09:30:00+00:00"
ANA, BEN = 1, 2  # accounts; each may go down to -20.00 hours and up to +40.00
MIN_BALANCE, MAX_BALANCE = -2000, 4000
POSTED, PENDING = 1, 2  # transfers
APPEND_ONLY = "append-only"
PENDING_OUTCOMES = ("posted", "rejected", "cancelled", "expired")


def run(engine: Engine, sql: str, **params: Any) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def fetch(engine: Engine, sql: str, **params: Any) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text(sql), params).mappings().one())


def refused(engine: Engine, sql: str, match: str, **params: Any) -> None:
    with pytest.raises(sa.exc.IntegrityError, match=match):
        run(engine, sql, **params)


TRANSFER_COLUMNS = (
    "id, ledger_id, transaction_id, payer_id, payee_id, amount, memo, category, occurred_on, "
    "initiator_id, status, reverses_id, created_at, expires_at, resolved_at, resolved_by_id"
)


def insert_transfer(engine: Engine, **values: Any) -> None:
    row: dict[str, Any] = {
        "ledger_id": 1,
        "transaction_id": f"tx-{values['id']}",
        "payer_id": ANA,
        "payee_id": BEN,
        "amount": 100,
        "memo": None,
        "category": None,
        "occurred_on": "2026-01-05",
        "initiator_id": None,
        "status": "posted",
        "reverses_id": None,
        "created_at": NOW,
        "expires_at": None,
        "resolved_at": None,
        "resolved_by_id": None,
    } | values
    names = TRANSFER_COLUMNS.split(", ")
    placeholders = ", ".join(f":{name}" for name in names)
    run(engine, f"INSERT INTO transfers ({TRANSFER_COLUMNS}) VALUES ({placeholders})", **row)


def transfer(engine: Engine, transfer_id: int) -> dict[str, Any]:
    return fetch(engine, "SELECT * FROM transfers WHERE id = :id", id=transfer_id)


def account(engine: Engine, account_id: int) -> dict[str, Any]:
    return fetch(engine, "SELECT * FROM accounts WHERE id = :id", id=account_id)


@pytest.fixture
def db(engine: Engine) -> Engine:
    """A ledger with Ana and Ben; Ana paid Ben 1.50 hours (posted); Ben claims 2.00 (pending)."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO ledgers (id, kind, unit_code, scale, created_at) "
                "VALUES (1, 'coop', 'HOUR', 2, :now)"
            ),
            {"now": NOW},
        )
        conn.execute(
            sa.text(
                "INSERT INTO users (id, email, name, is_admin, token_version, created_at) "
                "VALUES (1, 'ben@example.org', 'Ben', :no, 0, :now)"
            ),
            {"no": False, "now": NOW},
        )
        conn.execute(
            sa.text(
                "INSERT INTO accounts (id, ledger_id, kind, holder, user_id, balance, debits, "
                "credits, min_balance, max_balance, status, version, created_at) VALUES "
                "(:ana, 1, 'member', 'Ana', NULL, -150, 150, 0, :min, :max, 'active', 1, :now), "
                "(:ben, 1, 'member', 'Ben', 1, 150, 0, 150, :min, :max, 'active', 1, :now)"
            ),
            {"ana": ANA, "ben": BEN, "min": MIN_BALANCE, "max": MAX_BALANCE, "now": NOW},
        )
    insert_transfer(engine, id=POSTED, amount=150, memo="childcare")
    run(
        engine,
        "INSERT INTO postings (account_id, version, transfer_id, amount, balance_after, "
        "posted_at) VALUES (:ana, 1, :t, -150, -150, :now), (:ben, 1, :t, 150, 150, :now)",
        ana=ANA,
        ben=BEN,
        t=POSTED,
        now=NOW,
    )
    insert_transfer(engine, id=PENDING, amount=200, status="pending", initiator_id=1, expires_at=LATER)
    return engine


# --- transfers are append-only ----------------------------------------------------------------


def test_update_of_a_transfer_amount_is_refused(db: Engine) -> None:
    refused(db, "UPDATE transfers SET amount = 1 WHERE id = :id", APPEND_ONLY, id=POSTED)
    assert transfer(db, POSTED)["amount"] == 150


def test_delete_of_a_transfer_is_refused(db: Engine) -> None:
    refused(db, "DELETE FROM transfers WHERE id = :id", "append-only: DELETE on transfers", id=PENDING)
    assert transfer(db, PENDING)["status"] == "pending"


@pytest.mark.parametrize("outcome", PENDING_OUTCOMES)
def test_a_pending_claim_may_be_resolved_once(db: Engine, outcome: str) -> None:
    run(
        db,
        "UPDATE transfers SET status = :outcome, resolved_at = :at, resolved_by_id = 1 WHERE id = :id",
        outcome=outcome,
        at=LATER,
        id=PENDING,
    )

    resolved = transfer(db, PENDING)
    assert (resolved["status"], resolved["resolved_by_id"]) == (outcome, 1)
    assert resolved["resolved_at"] is not None
    # Resolved is final: neither back to pending nor on to another outcome.
    for status in ("pending", *(o for o in PENDING_OUTCOMES if o != outcome)):
        refused(db, "UPDATE transfers SET status = :s WHERE id = :id", APPEND_ONLY, s=status, id=PENDING)


def test_a_posted_transfer_cannot_become_pending(db: Engine) -> None:
    refused(db, "UPDATE transfers SET status = 'pending' WHERE id = :id", APPEND_ONLY, id=POSTED)


def test_a_claim_cannot_change_while_it_stays_pending(db: Engine) -> None:
    refused(
        db,
        "UPDATE transfers SET resolved_at = :at WHERE id = :id",
        APPEND_ONLY,
        at=LATER,
        id=PENDING,
    )
    refused(db, "UPDATE transfers SET memo = 'more' WHERE id = :id", APPEND_ONLY, id=PENDING)


def test_resolving_a_claim_with_an_amount_change_is_refused(db: Engine) -> None:
    before = transfer(db, PENDING)
    refused(
        db,
        "UPDATE transfers SET status = 'posted', resolved_at = :at, amount = 999 WHERE id = :id",
        APPEND_ONLY,
        at=LATER,
        id=PENDING,
    )
    assert transfer(db, PENDING) == before


def _other_value(column: ReflectedColumn) -> Any:
    kind = column["type"]
    if isinstance(kind, sa.Integer):
        return 999
    if isinstance(kind, sa.DateTime):
        return "2001-02-03 04:05:06+00:00"
    if isinstance(kind, sa.Date):
        return "2001-02-03"
    if isinstance(kind, sa.String):
        return "changed"
    raise AssertionError(f"no test value for {column['name']}: {kind!r}")


def test_resolving_a_claim_changes_nothing_else(db: Engine) -> None:
    """Every column but status, resolved_at and resolved_by_id is frozen, NULL-safely.

    The columns come from the live table, so a column added later is covered (and must be
    added to the trigger) without touching this test.
    """
    before = transfer(db, PENDING)
    columns = [
        c
        for c in sa.inspect(db).get_columns("transfers")
        if c["name"] not in {"status", "resolved_at", "resolved_by_id"}
    ]
    assert {"id", "amount", "payer_id", "memo", "expires_at"} <= {c["name"] for c in columns}
    accepted = []
    for column in columns:
        name = column["name"]
        values = [_other_value(column)]
        if column["nullable"] and before[name] is not None:
            values.append(None)  # value -> NULL must be refused as well as NULL -> value
        for value in values:
            try:
                run(
                    db,
                    f"UPDATE transfers SET status = 'posted', resolved_at = :at, {name} = :v WHERE id = :id",
                    at=LATER,
                    v=value,
                    id=PENDING,
                )
            except sa.exc.IntegrityError as refusal:
                assert APPEND_ONLY in str(refusal), refusal
            else:
                accepted.append(f"{name} = {value!r}")
    assert accepted == [], "a claim's resolution changed other columns"
    assert transfer(db, PENDING) == before
    # The control: the same update without the extra change passes.
    run(
        db,
        "UPDATE transfers SET status = 'posted', resolved_at = :at WHERE id = :id",
        at=LATER,
        id=PENDING,
    )


# --- postings are append-only -----------------------------------------------------------------


def test_update_of_a_posting_is_refused(db: Engine) -> None:
    refused(
        db,
        "UPDATE postings SET amount = -1, balance_after = -1 WHERE account_id = :a AND version = 1",
        "append-only: UPDATE on postings",
        a=ANA,
    )


def test_delete_of_a_posting_is_refused(db: Engine) -> None:
    refused(db, "DELETE FROM postings WHERE account_id = :a", "append-only: DELETE on postings", a=ANA)
    assert fetch(db, "SELECT count(*) AS n FROM postings") == {"n": 2}


POSTING_AGAIN = (
    "{verb} postings (account_id, version, transfer_id, amount, balance_after, posted_at) "
    "VALUES (1, 1, 1, -999, -999, '2026-01-05 10:00:00+00:00') {suffix}"
)
UPSERTS = {
    "posting": POSTING_AGAIN.format(
        verb="INSERT INTO",
        suffix="ON CONFLICT (account_id, version) DO UPDATE SET amount = excluded.amount",
    ),
    "transfer": "INSERT INTO transfers SELECT * FROM transfers WHERE id = 1 "
    "ON CONFLICT (id) DO UPDATE SET amount = 999",
}


@pytest.mark.parametrize("target", UPSERTS)
def test_an_upsert_cannot_rewrite_history(db: Engine, target: str) -> None:
    refused(db, UPSERTS[target], f"append-only: UPDATE on {target}s")


REPLACES = {
    "posting": (POSTING_AGAIN.format(verb="REPLACE INTO", suffix=""), "postings"),
    "transfer": ("REPLACE INTO transfers SELECT * FROM transfers WHERE id = 1", "transfers"),
    # A second reversal that would push the first one out of uq_transfers_one_reversal.
    "reversal": (
        "REPLACE INTO transfers (id, ledger_id, transaction_id, payer_id, payee_id, amount, "
        "occurred_on, status, reverses_id, created_at) "
        "VALUES (11, 1, 'tx-11', 2, 1, 150, '2026-01-06', 'posted', 1, '2026-01-06')",
        "transfers",
    ),
}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # REPLACE is SQLite's own
@pytest.mark.parametrize("target", REPLACES)
def test_sqlite_replace_cannot_rewrite_history(db: Engine, target: str) -> None:
    """REPLACE deletes the conflicting row, and SQLite fires DELETE triggers for that only when
    the connection has recursive_triggers on: ledger.db.make_engine has to set it."""
    insert_transfer(db, id=10, payer_id=BEN, payee_id=ANA, amount=150, reverses_id=POSTED)
    with db.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA recursive_triggers").scalar() == 1
    sql, table = REPLACES[target]
    refused(db, sql, f"append-only: DELETE on {table}")


def test_a_second_posting_for_the_same_account_version_is_refused(db: Engine) -> None:
    refused(
        db,
        "INSERT INTO postings (account_id, version, transfer_id, amount, balance_after, posted_at) "
        "VALUES (:a, 1, :t, -10, -160, :now)",
        r"postings_pkey|UNIQUE constraint failed: postings\.account_id, postings\.version",
        a=ANA,
        t=POSTED,
        now=NOW,
    )


# --- transfers: CHECK constraints and the single reversal --------------------------------------


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        ({"amount": 0}, "ck_transfers_amount"),
        ({"amount": -5}, "ck_transfers_amount"),
        ({"payee_id": ANA}, "ck_transfers_distinct"),
        ({"status": "approved"}, "ck_transfers_status"),
    ],
    ids=["zero-amount", "negative-amount", "payer-is-payee", "unknown-status"],
)
def test_an_invalid_transfer_is_refused(db: Engine, values: dict[str, Any], constraint: str) -> None:
    with pytest.raises(sa.exc.IntegrityError, match=constraint):
        insert_transfer(db, id=10, **values)


def test_a_transfer_is_reversed_at_most_once(db: Engine) -> None:
    insert_transfer(db, id=10, payer_id=BEN, payee_id=ANA, amount=150, reverses_id=POSTED)

    with pytest.raises(
        sa.exc.IntegrityError,
        match=r"uq_transfers_one_reversal|UNIQUE constraint failed: transfers\.reverses_id",
    ):
        insert_transfer(db, id=11, payer_id=BEN, payee_id=ANA, amount=150, reverses_id=POSTED)

    # Transfers that reverse nothing are not limited by the index.
    insert_transfer(db, id=12)
    insert_transfer(db, id=13)


# --- accounts: limits and counters ------------------------------------------------------------

DEBIT = "UPDATE accounts SET balance = balance - :x, debits = debits + :x WHERE id = :id"
CREDIT = "UPDATE accounts SET balance = balance + :x, credits = credits + :x WHERE id = :id"


def test_a_debit_below_the_minimum_balance_is_refused(db: Engine) -> None:
    before = account(db, ANA)
    refused(db, DEBIT, "ck_accounts_min_balance", x=1851, id=ANA)
    assert account(db, ANA) == before

    run(db, DEBIT, x=1850, id=ANA)  # exactly at the limit is allowed
    assert account(db, ANA)["balance"] == MIN_BALANCE


def test_a_credit_above_the_maximum_balance_is_refused(db: Engine) -> None:
    before = account(db, BEN)
    refused(db, CREDIT, "ck_accounts_max_balance", x=3851, id=BEN)
    assert account(db, BEN) == before

    run(db, CREDIT, x=3850, id=BEN)
    assert account(db, BEN)["balance"] == MAX_BALANCE


def test_without_limits_an_account_may_go_anywhere(db: Engine) -> None:
    run(db, "UPDATE accounts SET min_balance = NULL, max_balance = NULL WHERE id = :id", id=ANA)
    run(db, DEBIT, x=10**12, id=ANA)
    assert account(db, ANA)["balance"] == -150 - 10**12


@pytest.mark.parametrize(
    ("assignment", "constraint"),
    [
        ("balance = balance + 1", "ck_accounts_balance"),
        ("credits = credits + 1", "ck_accounts_balance"),
        ("balance = balance + 151, debits = debits - 151", "ck_accounts_counters"),
        ("status = 'deleted'", "ck_accounts_status"),
    ],
    ids=["balance-alone", "credits-alone", "negative-debits", "unknown-status"],
)
def test_an_inconsistent_account_row_is_refused(db: Engine, assignment: str, constraint: str) -> None:
    refused(db, f"UPDATE accounts SET {assignment} WHERE id = :id", constraint, id=ANA)


# --- seals are append-only (0004_seal_guard) --------------------------------------------------

SEAL_COLUMNS = (
    "id, coop_id, period, period_start, period_end, digest, previous_digest, transfer_count, "
    "posting_count, created_at"
)
FIRST_SEAL, LATEST_SEAL = 1, 2


@pytest.fixture
def sealed(db: Engine) -> Engine:
    """The ledger above as co-op 1, with December and January sealed (two linked seals)."""
    run(
        db,
        "INSERT INTO coops (id, slug, name, ledger_id, claim_expiry_days, max_transfer_amount, "
        "created_at) VALUES (1, 'riverside', 'Riverside', 1, 30, 100000, :now)",
        now=NOW,
    )
    for seal_id, period, start, end, digest, previous in (
        (FIRST_SEAL, "2025-12", "2025-12-01", "2026-01-01", "a" * 64, "0" * 64),
        (LATEST_SEAL, "2026-01", "2026-01-01", "2026-02-01", "b" * 64, "a" * 64),
    ):
        run(
            db,
            f"INSERT INTO seals ({SEAL_COLUMNS}) VALUES (:id, 1, :period, :start, :end, :digest, "
            ":previous, 1, 2, :now)",
            id=seal_id,
            period=period,
            start=f"{start} 00:00:00+00:00",
            end=f"{end} 00:00:00+00:00",
            digest=digest,
            previous=previous,
            now="2026-02-02 00:00:00+00:00",
        )
    return db


def seal_rows(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(f"SELECT {SEAL_COLUMNS} FROM seals ORDER BY id"))]


@pytest.mark.parametrize(
    "assignment",
    ["digest = :forged", "previous_digest = :forged", "transfer_count = transfer_count + 1"],
    ids=["digest", "chain-link", "count"],
)
def test_update_of_a_seal_is_refused(sealed: Engine, assignment: str) -> None:
    before = seal_rows(sealed)

    refused(
        sealed,
        f"UPDATE seals SET {assignment} WHERE id = :id",
        "append-only: UPDATE on seals is refused",
        id=FIRST_SEAL,
        forged="f" * 64,
    )

    assert seal_rows(sealed) == before


def test_delete_of_the_latest_seal_is_refused(sealed: Engine) -> None:
    """Verification cannot see a missing last link of the chain; the database must refuse it."""
    before = seal_rows(sealed)

    refused(
        sealed, "DELETE FROM seals WHERE id = :id", "append-only: DELETE on seals is refused", id=LATEST_SEAL
    )
    refused(sealed, "DELETE FROM seals", "append-only: DELETE on seals is refused")

    assert seal_rows(sealed) == before


def test_a_new_seal_may_still_be_added(sealed: Engine) -> None:
    run(
        sealed,
        f"INSERT INTO seals ({SEAL_COLUMNS}) VALUES (3, 1, '2026-02', :start, :end, :digest, :previous, "
        "0, 0, :now)",
        start="2026-02-01 00:00:00+00:00",
        end="2026-03-01 00:00:00+00:00",
        digest="c" * 64,
        previous="b" * 64,
        now="2026-03-02 00:00:00+00:00",
    )

    assert [row[0] for row in seal_rows(sealed)] == [FIRST_SEAL, LATEST_SEAL, 3]


def test_an_upsert_cannot_rewrite_a_seal(sealed: Engine) -> None:
    refused(
        sealed,
        f"INSERT INTO seals ({SEAL_COLUMNS}) VALUES (:id, 1, '2026-01', :start, :end, :forged, :previous, "
        "1, 2, :now) ON CONFLICT (id) DO UPDATE SET digest = excluded.digest",
        "append-only: UPDATE on seals",
        id=LATEST_SEAL,
        start="2026-01-01 00:00:00+00:00",
        end="2026-02-01 00:00:00+00:00",
        forged="f" * 64,
        previous="a" * 64,
        now="2026-02-02 00:00:00+00:00",
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # REPLACE is SQLite's own
def test_sqlite_replace_cannot_rewrite_a_seal(sealed: Engine) -> None:
    refused(
        sealed,
        f"REPLACE INTO seals ({SEAL_COLUMNS}) VALUES (:id, 1, '2026-01', :start, :end, :forged, :previous, "
        "1, 2, :now)",
        "append-only: DELETE on seals",
        id=LATEST_SEAL,
        start="2026-01-01 00:00:00+00:00",
        end="2026-02-01 00:00:00+00:00",
        forged="f" * 64,
        previous="a" * 64,
        now="2026-02-02 00:00:00+00:00",
    )
