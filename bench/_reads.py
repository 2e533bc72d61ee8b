"""Big read fixtures, seeded fast with the bare driver (COPY on PostgreSQL, executemany on
SQLite) but through the real schema: every posting belongs to a transfer, versions and
balance_after follow each account's history, and the account rows end up matching their postings.
Only INSERTs touch the append-only tables; nothing bypasses a trigger.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

STEP = timedelta(seconds=30)
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class History:
    account_id: int
    postings: int
    first: datetime
    last: datetime


def _sqlite_when(moment: datetime) -> str:
    """SQLAlchemy's SQLite DateTime storage format (always with microseconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class _Writer:
    """COPY (PostgreSQL) or executemany (SQLite) of one table's rows."""

    def __init__(self, conn: psycopg.Connection | sqlite3.Connection) -> None:
        self.conn = conn
        self.sqlite = isinstance(conn, sqlite3.Connection)

    def rows(self, table: str, columns: Sequence[str], rows: Iterator[tuple[object, ...]]) -> None:
        if self.sqlite:
            assert isinstance(self.conn, sqlite3.Connection)
            marks = ", ".join("?" * len(columns))
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
            self.conn.executemany(
                sql,
                (tuple(_sqlite_when(v) if isinstance(v, datetime) else v for v in row) for row in rows),
            )
            return
        assert isinstance(self.conn, psycopg.Connection)
        with self.conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
            for row in rows:
                cp.write_row(row)

    def scalar(self, sql: str, params: Sequence[object] = ()) -> int:
        if self.sqlite:
            sql = sql.replace("%s", "?")
        row = self.conn.execute(sql, params).fetchone()  # type: ignore[arg-type]
        assert row is not None
        return int(row[0] or 0)

    def execute(
        self,
        sql: str,
        params: Sequence[object] | Sequence[Sequence[object]] = (),
        *,
        many: bool = False,
    ) -> None:
        if self.sqlite:
            sql = sql.replace("%s", "?")
            if many:
                self.conn.executemany(sql, params)  # type: ignore[arg-type]
            else:
                self.conn.execute(sql, params)  # type: ignore[arg-type]
            return
        with self.conn.cursor() as cur:  # type: ignore[union-attr]
            if many:
                cur.executemany(sql, params)  # type: ignore[arg-type]
            else:
                cur.execute(sql, params)  # type: ignore[arg-type]

    def reserve_transfer_ids(self, count: int) -> int:
        """The first of `count` consecutive transfer ids that nobody else will take."""
        if self.sqlite:
            return self.scalar("SELECT coalesce(max(id), 0) FROM transfers") + 1
        last = self.scalar("SELECT nextval('transfers_id_seq')")
        self.execute("SELECT setval('transfers_id_seq', %s)", [last + count])
        return last + 1

    def add_accounts(
        self, ledger_id: int, count: int, *, prefix: str, min_balance: int, max_balance: int
    ) -> list[int]:
        first = self.scalar("SELECT coalesce(max(id), 0) FROM accounts") + 1
        if not self.sqlite:
            first = max(first, self.scalar("SELECT nextval('accounts_id_seq')"))
            self.execute("SELECT setval('accounts_id_seq', %s)", [first + count])
        ids = list(range(first, first + count))
        self.rows(
            "accounts",
            (
                "id",
                "ledger_id",
                "kind",
                "holder",
                "balance",
                "debits",
                "credits",
                "min_balance",
                "max_balance",
                "status",
                "version",
                "created_at",
            ),
            (
                (
                    i,
                    ledger_id,
                    "member",
                    f"{prefix} {n}",
                    0,
                    0,
                    0,
                    min_balance,
                    max_balance,
                    "active",
                    0,
                    EPOCH - timedelta(days=1),
                )
                for n, i in enumerate(ids)
            ),
        )
        return ids


def _apply_history(
    w: _Writer,
    *,
    ledger_id: int,
    user_id: int,
    moves: Iterator[tuple[int, int, int]],
    count: int,
    existing: Sequence[int] = (),
) -> dict[int, list[int]]:
    """Insert `count` posted transfers (payer, payee, amount), their postings, and bring the
    account rows to match; `existing` accounts continue their history. Returns account ->
    [balance, debits, credits, version]."""
    first = w.reserve_transfer_ids(count)
    state: dict[int, list[int]] = {}
    for account_id in existing:
        row = w.conn.execute(
            (
                "SELECT balance, debits, credits, version FROM accounts WHERE id = "
                + ("?" if w.sqlite else "%s")
            ),
            [account_id],
        ).fetchone()
        assert row is not None
        state[account_id] = [int(v) for v in row]
    postings: list[tuple[object, ...]] = []
    transfers: list[tuple[object, ...]] = []
    for n, (payer, payee, amount) in enumerate(moves):
        tid = first + n
        when = EPOCH + STEP * n
        a = state.setdefault(payer, [0, 0, 0, 0])
        b = state.setdefault(payee, [0, 0, 0, 0])
        a[0] -= amount
        a[1] += amount
        a[3] += 1
        b[0] += amount
        b[2] += amount
        b[3] += 1
        transfers.append(
            (
                tid,
                ledger_id,
                str(uuid.UUID(int=tid)),
                payer,
                payee,
                amount,
                when.date(),
                user_id,
                "posted",
                when,
            )
        )
        postings.append((payer, a[3], tid, -amount, a[0], when))
        postings.append((payee, b[3], tid, amount, b[0], when))
    cols_t = (
        "id",
        "ledger_id",
        "transaction_id",
        "payer_id",
        "payee_id",
        "amount",
        "occurred_on",
        "initiator_id",
        "status",
        "created_at",
    )
    cols_p = ("account_id", "version", "transfer_id", "amount", "balance_after", "posted_at")
    w.rows("transfers", cols_t, iter(transfers))
    del transfers
    w.rows("postings", cols_p, iter(postings))
    del postings
    w.execute(
        "UPDATE accounts SET balance = %s, debits = %s, credits = %s, version = %s WHERE id = %s",
        [(s[0], s[1], s[2], s[3], i) for i, s in sorted(state.items())],
        many=True,
    )
    return state


def seed_long_history(
    conn: psycopg.Connection | sqlite3.Connection,
    *,
    ledger_id: int,
    account_id: int,
    user_id: int,
    postings: int,
) -> History:
    """`postings` transfers between one account and 1,000 counterparties, alternating direction."""
    w = _Writer(conn)
    counterparties = w.add_accounts(
        ledger_id,
        min(1000, max(2, postings // 100)),
        prefix="counterparty",
        min_balance=-(10**12),
        max_balance=10**12,
    )

    def moves() -> Iterator[tuple[int, int, int]]:
        for n in range(postings):
            other = counterparties[n % len(counterparties)]
            amount = 1 + n % 7
            yield (account_id, other, amount) if n % 2 == 0 else (other, account_id, amount)

    _apply_history(
        w,
        ledger_id=ledger_id,
        user_id=user_id,
        moves=moves(),
        count=postings,
        existing=[account_id],
    )
    return History(account_id, postings, EPOCH, EPOCH + STEP * (postings - 1))


def seed_wide_ledger(
    conn: psycopg.Connection | sqlite3.Connection, *, ledger_id: int, user_id: int, accounts: int
) -> list[int]:
    """`accounts` accounts in one ledger, each paying the next once (two postings each)."""
    w = _Writer(conn)
    ids = w.add_accounts(ledger_id, accounts, prefix="member", min_balance=-(10**6), max_balance=10**6)

    def moves() -> Iterator[tuple[int, int, int]]:
        for n, payer in enumerate(ids):
            yield payer, ids[(n + 1) % len(ids)], 1 + n % 100

    _apply_history(w, ledger_id=ledger_id, user_id=user_id, moves=moves(), count=len(ids))
    return ids


# --- the bare SQL each read endpoint stands on ----------------------------------------------------

STATEMENT_PAGE = (
    "SELECT p.account_id, p.version, p.transfer_id, p.amount, p.balance_after, p.posted_at, "
    "CASE WHEN t.payer_id = p.account_id THEN t.payee_id ELSE t.payer_id END, t.memo, t.category, "
    "t.occurred_on "
    "FROM postings p JOIN transfers t ON t.id = p.transfer_id WHERE p.account_id = %s ORDER BY "
    "p.version {order} LIMIT 51"
)
BALANCE_AT = (
    "SELECT balance_after FROM postings WHERE account_id = %s AND posted_at <= %s "
    "ORDER BY posted_at DESC, version DESC LIMIT 1"
)
TRIAL_BALANCE = (
    "SELECT a.id, a.holder, a.kind, a.status, a.min_balance, a.max_balance, agg.balance, "
    "agg.debits, agg.credits "
    "FROM accounts a LEFT JOIN (SELECT account_id, sum(amount) AS balance, "
    "sum(CASE WHEN amount < 0 THEN -amount ELSE 0 END) AS debits, sum(CASE WHEN amount > 0 THEN "
    "amount ELSE 0 END) AS credits "
    "FROM postings WHERE posted_at <= %s AND account_id IN (SELECT id FROM accounts WHERE "
    "ledger_id = %s) GROUP BY account_id) agg "
    "ON agg.account_id = a.id WHERE a.ledger_id = %s AND a.created_at <= %s ORDER BY a.id"
)
ACCOUNTS_PAGE = (
    "SELECT a.id, a.ledger_id, c.slug, a.kind, a.holder, a.user_id, a.balance, a.min_balance, "
    "a.max_balance, a.status, "
    "a.debits, a.credits, l.unit_code, l.scale, a.version FROM accounts a JOIN ledgers l ON l.id "
    "= a.ledger_id "
    "LEFT JOIN coops c ON c.ledger_id = a.ledger_id WHERE a.ledger_id = %s AND a.id > %s ORDER BY "
    "a.id LIMIT 201"
)


def bare(
    conn: psycopg.Connection | sqlite3.Connection, sql: str, params: Sequence[object]
) -> list[tuple[object, ...]]:
    if isinstance(conn, sqlite3.Connection):
        params = [_sqlite_when(p) if isinstance(p, datetime) else p for p in params]
        return conn.execute(sql.replace("%s", "?"), params).fetchall()
    return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]
