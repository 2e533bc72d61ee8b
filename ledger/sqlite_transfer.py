"""SQLite: a posted transfer in a handful of plain statements on the driver (issue 6).

The SQLite counterpart of `ledger.pg_transfer`, for the same common case and with the same
contract (`ledger.payment`): it answers "posted" or "replayed", or "fallback:<why>" with nothing
written, and the Python path then gives the precise answer.

Everything that can be done before the write lock is done by the caller (parsing, the request
hash, the response template, the payment's parameters). Under the lock (the writers' lock of
`ledger.db` and BEGIN IMMEDIATE), on the pooled connection's sqlite3 driver with statements it
prepares once and caches: the key and the caller's token version (one SELECT), both accounts
with the ledger's unit, the co-op's maximum and whether the caller may pay from the payer
account (one SELECT), the two conditional limit-checked UPDATEs in account id order, the
transfer, its postings and the stored response, COMMIT. Through SQLAlchemy and the service the
write lock was held 2.1 ms per transfer, 1.55 ms of it Python; here ~0.1 ms of Python and the
commit's fsync (docs/benchmarks.md, Ledger).

The rules are the core's (`ledger.core.validate_movement`, `member_movement_problems`); the
limits are decided by the UPDATEs' WHERE clauses alone (under the write lock the rows read are
the rows updated, and a refused UPDATE rolls everything back). CHECK constraints and triggers
stay the last line of defence: a violation raises, as on the Python path.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import Engine

from accounts.actor import Role
from ledger import tables as t
from ledger.core import (
    AccountKind,
    AccountState,
    AccountStatus,
    Movement,
    member_movement_problems,
    validate_movement,
)
from ledger.db import sqlite_writers
from ledger.idempotency import StoredResponse
from ledger.payment import Attempt, Payment, fill, in_steps

# How SQLAlchemy writes a date and a datetime into SQLite (its own processors, so the rows this
# path writes sort and read back exactly like the Python path's).
_DIALECT = SQLiteDialect_pysqlite()


def _bind(column: sa.Column[Any]) -> Callable[[Any], Any]:
    process = column.type.dialect_impl(_DIALECT).bind_processor(_DIALECT)
    assert process is not None
    return process


_WHEN = _bind(t.transfers.c.created_at)
_DAY = _bind(t.transfers.c.occurred_on)

# accounts.service.load_actor's token check and ledger.idempotency's lookup, in one statement.
_CALLER_AND_KEY = (
    "SELECT u.token_version, k.request_hash, k.response_status, k.response_body FROM users u"
    " LEFT JOIN idempotency_keys k ON k.user_id = u.id AND k.key = ?1 WHERE u.id = ?2"
)
# Both accounts, the co-op ledger's unit and maximum (federation ledgers have no coops row), and
# whether the caller's membership of that co-op holds the payer account or is a treasurer's.
_ACCOUNTS = (
    "SELECT p.ledger_id, p.status, p.balance, p.min_balance, p.max_balance, p.kind,"
    " q.ledger_id, q.status, q.balance, q.min_balance, q.max_balance, q.kind,"
    " l.unit_code, l.scale, c.max_transfer_amount,"
    " EXISTS (SELECT 1 FROM memberships m WHERE m.coop_id = c.id AND m.user_id = ?1"
    f" AND (m.account_id = ?2 OR m.role = '{Role.TREASURER.value}'))"
    " FROM accounts p JOIN accounts q ON q.id = ?3 JOIN ledgers l ON l.id = p.ledger_id"
    " JOIN coops c ON c.ledger_id = l.id WHERE p.id = ?2"
)
# ledger.service._move: the WHERE clause is the limit.
_DEBIT = (
    "UPDATE accounts SET balance = balance - ?1, debits = debits + ?1, version = version + 1"
    " WHERE id = ?2 AND status = 'active' AND (min_balance IS NULL OR balance - ?1 >= min_balance)"
    " RETURNING balance, version"
)
_CREDIT = (
    "UPDATE accounts SET balance = balance + ?1, credits = credits + ?1, version = version + 1"
    " WHERE id = ?2 AND status = 'active' AND (max_balance IS NULL OR balance + ?1 <= max_balance)"
    " RETURNING balance, version"
)
_INSERT_TRANSFER = (
    "INSERT INTO transfers (ledger_id, transaction_id, payer_id, payee_id, amount, memo, category,"
    " occurred_on, initiator_id, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'posted', ?)"
    " RETURNING id"
)
_INSERT_POSTINGS = (
    "INSERT INTO postings (account_id, version, transfer_id, amount, balance_after, posted_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?10), (?6, ?7, ?3, ?8, ?9, ?10)"
)
_STORE = (
    "INSERT INTO idempotency_keys (user_id, key, request_hash, response_status, response_body, created_at)"
    " VALUES (?, ?, ?, 201, ?, ?)"
)


class _FallbackError(Exception):
    """Leave the transaction (rolled back: nothing written) and let the Python path answer."""


def attempt(engine: Engine, payment: Payment) -> Attempt:
    """Try the payment in one write transaction on the driver; see the module docstring.

    The transaction is `ledger.db.write_transaction`'s (a pooled connection checked out, then
    the writers' lock, BEGIN IMMEDIATE, COMMIT or ROLLBACK), run on the sqlite3 connection
    itself: through SQLAlchemy's Connection, BEGIN and the checkout and return around it cost
    0.1 ms of CPU per transfer, a third of this path's."""
    writers = sqlite_writers(engine)
    assert writers is not None, "ledger.sqlite_transfer runs on SQLite only"
    when = _WHEN(payment.now)
    pooled = engine.raw_connection()  # checked out first, then queued, as write_transaction
    try:
        driver: sqlite3.Connection = pooled.driver_connection  # type: ignore[assignment]
        with writers:
            driver.execute("BEGIN IMMEDIATE")
            try:
                posted = _pay(driver, payment, when)
            except BaseException:
                driver.rollback()  # nothing written
                raise
            driver.commit()
    except _FallbackError as why:
        return Attempt(f"fallback:{why}", None)
    finally:
        pooled.close()
    if isinstance(posted, StoredResponse):
        return Attempt("replayed", posted)
    return Attempt("posted", StoredResponse(201, json.loads(posted), replayed=False))


def pay(engine: Engine, payment: Payment) -> StoredResponse | None:
    """The stored response when this path handled the request; None: run the Python path."""
    return attempt(engine, payment).stored


def _pay(driver: sqlite3.Connection, p: Payment, when: Any) -> str | StoredResponse:
    """Inside the write transaction: the stored body of the new transfer, or a replay."""
    caller = driver.execute(_CALLER_AND_KEY, (p.key, p.user_id)).fetchone()
    if caller is None or caller[0] != p.token_version:
        raise _FallbackError("token")  # load_actor: a revoked token is refused before any replay
    if caller[1] is not None:
        if caller[1] != p.request_hash:
            raise _FallbackError("key_reused")
        return StoredResponse(caller[2], json.loads(caller[3]), replayed=True)
    row = driver.execute(_ACCOUNTS, (p.user_id, p.payer_id, p.payee_id)).fetchone()
    if row is None:
        raise _FallbackError("account")
    if not row[15]:
        raise _FallbackError("caller")
    unit_code, scale, max_amount = row[12], row[13], row[14]
    amount = in_steps(p, scale)
    if amount is None:
        raise _FallbackError("decimals")
    payer = AccountState(
        p.payer_id, row[0], AccountStatus(row[1]), row[2], row[3], row[4], AccountKind(row[5])
    )
    payee = AccountState(
        p.payee_id, row[6], AccountStatus(row[7]), row[8], row[9], row[10], AccountKind(row[11])
    )
    problems = validate_movement(
        Movement(p.payer_id, p.payee_id, amount), payer, payee, max_amount=max_amount
    )
    problems = problems or member_movement_problems(payer, payee)
    if problems:
        raise _FallbackError(problems[0].code)
    if p.payer_id < p.payee_id:
        debited = driver.execute(_DEBIT, (amount, p.payer_id)).fetchone()
        credited = None if debited is None else driver.execute(_CREDIT, (amount, p.payee_id)).fetchone()
    else:
        credited = driver.execute(_CREDIT, (amount, p.payee_id)).fetchone()
        debited = None if credited is None else driver.execute(_DEBIT, (amount, p.payer_id)).fetchone()
    if debited is None or credited is None:
        raise _FallbackError("limit")  # the UPDATE refused; the rollback undoes the other one
    transfer_id = driver.execute(
        _INSERT_TRANSFER,
        (
            payer.ledger_id,
            p.transaction_id,
            p.payer_id,
            p.payee_id,
            amount,
            p.memo,
            p.category,
            _DAY(p.occurred_on),
            p.user_id,
            when,
        ),
    ).fetchone()[0]
    driver.execute(
        _INSERT_POSTINGS,
        (
            p.payer_id,
            debited[1],
            transfer_id,
            -amount,
            debited[0],
            p.payee_id,
            credited[1],
            amount,
            credited[0],
            when,
        ),
    )
    body = fill(p.body, transfer_id=transfer_id, amount=amount, unit_code=unit_code, scale=scale)
    driver.execute(_STORE, (p.user_id, p.key, p.request_hash, body, when))
    return body
