"""SQLite: a posted transfer in a handful of plain statements on the driver (issue 6).

The SQLite counterpart of `ledger.pg_transfer`, for the same common case and with the same
contract (`ledger.payment`): it answers "posted" or "replayed", or "fallback:<why>" with nothing
written, and the Python path then gives the precise answer.

Everything that can be done before the write lock is done by the caller (parsing, the request
hash, the response template, the payment's parameters). Under the lock (the writers' lock of
`ledger.db` and BEGIN IMMEDIATE; payments queued meanwhile share the transaction, each in its
own savepoint: see `_Group`), on a sqlite3 connection with statements it prepares once and
caches: the key and the caller's token version (one SELECT), both accounts
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

import asyncio
import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
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
from ledger.db import SqliteWriterLock, sqlite_writers
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


_Outcome = str | StoredResponse | BaseException  # the stored body, a replay, "fallback:<why>", an error


@dataclass(slots=True)
class _Pending:
    """One payment waiting for the writers' lock, and what became of it."""

    payment: Payment
    when: Any
    notify: Callable[[], object] | None = None  # called once it is done (an async caller's)
    done: bool = False
    outcome: str | StoredResponse = ""  # the stored body, a replay, or "fallback:<why>"
    error: BaseException | None = None

    def result(self) -> Attempt:
        if self.error is not None:
            raise self.error
        if isinstance(self.outcome, StoredResponse):
            return Attempt("replayed", self.outcome)
        if self.outcome.startswith("fallback:"):
            return Attempt(self.outcome, None)
        return Attempt("posted", StoredResponse(201, json.loads(self.outcome), replayed=False))


class _Group:
    """Payments of one engine waiting for the writers' lock in this process, and the connection
    they are written with.

    Group commit: a caller queues its payment, then waits for this process's writers; whoever
    holds the writers' lock writes every payment queued by then in one transaction, each inside
    its own SAVEPOINT (a fallback or an error rolls back that payment alone), commits once, and
    answers them all before releasing the lock. A caller whose payment an earlier holder wrote
    finds it done and leaves without touching the file lock. Every answer still comes after its
    own COMMIT's fsync; what is shared is the fsync, not the outcome. Under 16 concurrent writers
    this cut the server's CPU per transfer and raised throughput by a quarter to a half
    (docs/benchmarks.md, Ledger, item 15).

    Callers on an event loop (`pay_async`) do not block: they queue their payment and a thread
    of this group's, started on first use, writes it.

    The connection is the engine's own (configured by its connect events), detached from its pool
    and used only under the writers' lock, so a writer never waits for the pool while holding
    that lock; it is closed when the engine is disposed, and a forked process opens its own.
    """

    def __init__(self, engine: Engine, writers: SqliteWriterLock) -> None:
        self._engine = weakref.ref(engine)  # the group lives as long as the engine, not longer
        self.writers = writers
        self.waiting: list[_Pending] = []
        self.guard = threading.Lock()
        self.wake = threading.Event()
        self._driver: sqlite3.Connection | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._pid = 0

    def _connection(self) -> sqlite3.Connection:
        if self._driver is None or self._pid != os.getpid():
            engine = self._engine()
            if engine is None:
                raise RuntimeError("the engine of these payments is gone")
            pooled = engine.raw_connection()
            self._driver = pooled.driver_connection
            pooled.detach()
            self._pid = os.getpid()
        assert self._driver is not None
        return self._driver

    def write_waiting(self) -> None:
        """Write every queued payment (call with this process's writers held, `writers.threads`)."""
        with self.guard:
            if not self.waiting:
                return
        with self.writers:
            with self.guard:
                batch, self.waiting = self.waiting, []
            _write(self._connection, batch)

    def submit(self, item: _Pending) -> None:
        """Queue a payment for this group's writer thread (for callers that must not block)."""
        with self.guard:
            self.waiting.append(item)
            if self._thread is None or not self._thread.is_alive() or self._stop.is_set():
                self._stop = threading.Event()
                self._thread = threading.Thread(
                    target=self._serve, args=(self._stop,), name="commons-sqlite-writer", daemon=True
                )
                self._thread.start()
        self.wake.set()

    def _serve(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.wake.wait()
            self.wake.clear()  # before draining: a payment queued from here on wakes a writer again
            with self.writers.threads:
                self.write_waiting()

    def close(self) -> None:
        """Stop the writer thread and close the connection (the engine was disposed; should it be
        used again, both come back on first use)."""
        with self.guard:
            self._stop.set()
        self.wake.set()
        with self.writers.threads:
            self.write_waiting()  # nothing queued is left unanswered
            driver, self._driver = self._driver, None
            if driver is not None and self._pid == os.getpid():
                driver.close()


_GROUPS: weakref.WeakKeyDictionary[Engine, _Group] = weakref.WeakKeyDictionary()
_GROUPS_GUARD = threading.Lock()


def _group(engine: Engine) -> _Group:
    try:
        return _GROUPS[engine]
    except KeyError:
        pass
    writers = sqlite_writers(engine)
    assert writers is not None, "ledger.sqlite_transfer runs on SQLite only"
    with _GROUPS_GUARD:
        group = _GROUPS.get(engine)
        if group is None:
            group = _GROUPS[engine] = _Group(engine, writers)
            sa.event.listen(engine, "engine_disposed", lambda _engine, g=group: g.close())
    return group


def attempt(engine: Engine, payment: Payment) -> Attempt:
    """Try the payment in a write transaction on the driver; see the module docstring and
    `_Group` (its transaction may be shared with other callers' payments, never its outcome).

    Through SQLAlchemy's Connection, BEGIN and the pool's checkout and return around it cost
    0.1 ms of CPU per transfer, a third of this path's."""
    group = _group(engine)
    mine = _Pending(payment, _WHEN(payment.now))
    with group.guard:
        group.waiting.append(mine)
    with group.writers.threads:  # this process's writers first; the file lock only to write
        if not mine.done:
            group.write_waiting()
    return mine.result()


def pay(engine: Engine, payment: Payment) -> StoredResponse | None:
    """The stored response when this path handled the request; None: run the Python path."""
    return attempt(engine, payment).stored


async def attempt_async(engine: Engine, payment: Payment) -> Attempt:
    """`attempt` for a caller on an asyncio event loop: the loop is not blocked while the
    payment waits for the writers' lock and its commit (the group's writer thread writes it).
    If the caller is cancelled meanwhile, it still waits for the payment to be written (or not)
    before it lets the cancellation through, so whatever guards its key (ledger.idempotency)
    holds until the outcome is known."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle() -> None:
        if not done.done():
            done.set_result(None)

    mine = _Pending(payment, _WHEN(payment.now), notify=lambda: loop.call_soon_threadsafe(settle))
    _group(engine).submit(mine)
    try:
        await asyncio.shield(done)
    except asyncio.CancelledError:
        await done
        raise
    return mine.result()


async def pay_async(engine: Engine, payment: Payment) -> StoredResponse | None:
    """`pay` on an event loop (see `attempt_async`)."""
    return (await attempt_async(engine, payment)).stored


def _write(connection: Callable[[], sqlite3.Connection], batch: list[_Pending]) -> None:
    """Write `batch` (the writers' lock held); every payment in it is done afterwards."""
    outcomes: list[_Outcome]
    try:
        outcomes = _transaction(connection(), batch)
    except _FallbackError as why:  # a lone payment's; in a group each is caught in its savepoint
        outcomes = [f"fallback:{why}"]
    except BaseException as exc:  # BEGIN or COMMIT failed, or a lone payment's error: none written
        outcomes = [exc] * len(batch)
    for item, outcome in zip(batch, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            item.error = outcome
        else:
            item.outcome = outcome
        item.done = True
        if item.notify is not None:
            item.notify()
    if not isinstance(outcomes[0], Exception) and isinstance(outcomes[0], BaseException):
        raise outcomes[0]  # KeyboardInterrupt, SystemExit: answered to every caller, then raised


def _transaction(driver: sqlite3.Connection, batch: list[_Pending]) -> list[_Outcome]:
    driver.execute("BEGIN IMMEDIATE")
    outcomes: list[_Outcome]
    try:
        if len(batch) == 1:
            outcomes = [_pay(driver, batch[0].payment, batch[0].when)]
        else:
            outcomes = [_in_savepoint(driver, item) for item in batch]
        driver.commit()
    except BaseException:
        driver.rollback()  # nothing written
        raise
    return outcomes


def _in_savepoint(driver: sqlite3.Connection, item: _Pending) -> _Outcome:
    """One payment of a group: a fallback or an error rolls back this payment alone."""
    driver.execute("SAVEPOINT pay")
    outcome: _Outcome
    try:
        outcome = _pay(driver, item.payment, item.when)
    except _FallbackError as why:
        driver.execute("ROLLBACK TO pay")
        outcome = f"fallback:{why}"
    except Exception as exc:  # a CHECK or a trigger: raised to this payment's caller
        driver.execute("ROLLBACK TO pay")
        outcome = exc
    driver.execute("RELEASE pay")
    return outcome


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
