"""Many transfers in one transaction, for imports: each item accepted or refused on its own.

Instead of one conditional UPDATE per item, the accounts a batch touches are locked once (in id
order), the rules are applied in memory item by item (`ledger.core`), and the outcome is written
with a handful of multi-row statements. The CHECK constraints on the account rows still guard
every final balance, so a bug here cannot take an account past a limit.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accounts.actor import Actor
from ledger import tables as t
from ledger.core import (
    AccountKind,
    AccountState,
    AccountStatus,
    Movement,
    TransferStatus,
    limit_problems,
    member_movement_problems,
    validate_movement,
    validate_text,
)
from ledger.db import is_sqlite
from ledger.errors import DomainError, Problem
from ledger.models import BATCH_KEYS
from ledger.service import TransferInput, TransferRecord, ledger_policy

CHUNK = 500
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class BatchEntry:
    key: str
    request_hash: str
    request: TransferInput | None
    problem: Problem | None = None  # refused before it reached the ledger (e.g. bad amount)


@dataclass(frozen=True, slots=True)
class BatchResult:
    key: str
    outcome: str  # posted | replayed | refused
    body: Any = None
    problem: Problem | None = None


@dataclass(slots=True)
class _Row:
    state: AccountState
    debits: int
    credits: int
    version: int
    touched: bool = False


def idempotency_key(ledger_id: int, item_id: str) -> str:
    return f"batch:{ledger_id}:{item_id}"


def random_uuids(n: int) -> Iterator[str]:
    """`n` random (version 4) UUIDs, as `str(uuid.uuid4())` writes them, from one read of the
    system's random source: `uuid.uuid4()` reads it once per UUID, a system call each (7% of a
    1,000-transfer batch's time), and `uuid.UUID` then checks what it was given (3% of an import)."""
    pool = bytearray(os.urandom(16 * n))
    for i in range(0, 16 * n, 16):
        pool[i + 6] = (pool[i + 6] & 0x0F) | 0x40  # version 4
        pool[i + 8] = (pool[i + 8] & 0x3F) | 0x80  # the RFC 4122 variant
        h = pool[i : i + 16].hex()
        yield f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _chunks(values: Sequence[Any]) -> list[Sequence[Any]]:
    return [values[i : i + CHUNK] for i in range(0, len(values), CHUNK)]


def _stored(conn: Connection, user_id: int | None, keys: list[str]) -> dict[str, tuple[str, Any]]:
    """The stored responses of these keys: the caller's, or anyone's when `user_id` is None."""
    found: dict[str, tuple[str, Any]] = {}
    for chunk in _chunks(keys):
        query = stored_keys_query(chunk)
        if user_id is not None:
            query = query.where(t.idempotency_keys.c.user_id == user_id)  # the primary key
        for r in conn.execute(query):
            found[r.key] = (r.request_hash, json.loads(r.response_body))
    return found


def stored_keys_query(keys: Sequence[str]) -> sa.Select[Any]:
    """The stored responses of these batch keys, whoever stored them, through the partial index
    `ix_idempotency_keys_batch` (its condition repeated word for word, so both engines use it)."""
    ik = t.idempotency_keys
    return sa.select(ik.c.key, ik.c.request_hash, ik.c.response_status, ik.c.response_body).where(
        ik.c.key.in_(keys), sa.text(BATCH_KEYS)
    )


def _lock_accounts(conn: Connection, ids: list[int]) -> dict[int, _Row]:
    a = t.accounts
    rows: dict[int, _Row] = {}
    for chunk in _chunks(sorted(ids)):
        query = (
            sa.select(
                a.c.id,
                a.c.ledger_id,
                a.c.status,
                a.c.balance,
                a.c.min_balance,
                a.c.max_balance,
                a.c.debits,
                a.c.credits,
                a.c.version,
                a.c.kind,
            )
            .where(a.c.id.in_(chunk))
            .order_by(a.c.id)
        )
        if not is_sqlite(conn):  # SQLite's BEGIN IMMEDIATE already holds the write lock
            query = query.with_for_update()
        for r in conn.execute(query):
            state = AccountState(
                r.id,
                r.ledger_id,
                AccountStatus(r.status),
                r.balance,
                r.min_balance,
                r.max_balance,
                AccountKind(r.kind),
            )
            rows[r.id] = _Row(state, r.debits, r.credits, r.version)
    return rows


def post_batch(
    conn: Connection,
    *,
    actor: Actor,
    ledger_id: int,
    entries: Sequence[BatchEntry],
    now: datetime,
    render: Callable[[TransferRecord], Any],
    stored_by_anyone: bool = False,
) -> list[BatchResult]:
    """Post `entries` in this transaction, each on its own; answer each item's outcome in order.

    An item whose key holds a stored response replays it: the caller's own, or with
    `stored_by_anyone` any user's (the CSV import: a file imported by one treasurer and again by
    another must not post twice).
    """
    if not actor.is_treasurer_of_ledger(ledger_id):
        raise DomainError("forbidden", "only a treasurer of the co-op may post a batch")
    keys = [idempotency_key(ledger_id, e.key) for e in entries]
    ids = {i for e in entries if e.request for i in (e.request.payer_id, e.request.payee_id)}
    accounts = _lock_accounts(conn, list(ids))
    # After the locks: a request with the same items (a retry while this one's first attempt was
    # still being written) waited for them above, and must now see the keys that attempt stored.
    stored = _stored(conn, None if stored_by_anyone else actor.user_id, keys)
    policy = ledger_policy(conn, ledger_id)

    results: list[BatchResult | None] = []
    pending: list[tuple[int, dict[str, Any], Movement]] = []  # (result index, transfer row, movement)
    seen: set[str] = set()
    transaction_ids = random_uuids(len(entries))
    for entry, key in zip(entries, keys, strict=True):
        if key in seen:
            results.append(
                BatchResult(
                    entry.key,
                    "refused",
                    problem=Problem("validation_failed", "this id appears twice in the batch", "id"),
                )
            )
            continue
        seen.add(key)
        if key in stored:
            request_hash, body = stored[key]
            if request_hash != entry.request_hash:
                results.append(
                    BatchResult(
                        entry.key,
                        "refused",
                        problem=Problem(
                            "idempotency_key_reused",
                            "this id was already used for a different transfer",
                            "id",
                        ),
                    )
                )
            else:
                results.append(BatchResult(entry.key, "replayed", body=body))
            continue
        if entry.problem is not None or entry.request is None:
            results.append(BatchResult(entry.key, "refused", problem=entry.problem))
            continue
        req = entry.request
        movement = Movement(req.payer_id, req.payee_id, req.amount)
        payer_row, payee_row = accounts.get(req.payer_id), accounts.get(req.payee_id)
        payer = payer_row.state if payer_row and payer_row.state.ledger_id == ledger_id else None
        payee = payee_row.state if payee_row and payee_row.state.ledger_id == ledger_id else None
        problems = validate_movement(movement, payer, payee, max_amount=policy.max_transfer_amount)
        problems += validate_text(req.memo, req.category)
        if not problems:
            assert payer is not None and payee is not None
            problems = member_movement_problems(payer, payee) or limit_problems(payer, payee, movement.amount)
        if problems:
            results.append(BatchResult(entry.key, "refused", problem=problems[0]))
            continue
        assert payer_row is not None and payee_row is not None
        _apply(payer_row, -movement.amount)
        _apply(payee_row, movement.amount)
        row = {
            "ledger_id": ledger_id,
            "transaction_id": next(transaction_ids),
            "payer_id": req.payer_id,
            "payee_id": req.payee_id,
            "amount": req.amount,
            "memo": req.memo,
            "category": req.category,
            "occurred_on": req.occurred_on or now.date(),
            "initiator_id": actor.user_id,
            "status": TransferStatus.POSTED.value,
            "created_at": now,
            "_versions": (
                payer_row.version,
                payer_row.state.balance,
                payee_row.version,
                payee_row.state.balance,
            ),
        }
        pending.append((len(results), row, movement))
        results.append(None)

    _write(
        conn,
        actor=actor,
        keys=keys,
        entries=entries,
        pending=pending,
        accounts=accounts,
        results=results,
        now=now,
        render=render,
    )
    return [r for r in results if r is not None]


def _apply(row: _Row, delta: int) -> None:
    s = row.state
    row.state = AccountState(
        s.id, s.ledger_id, s.status, s.balance + delta, s.min_balance, s.max_balance, s.kind
    )
    if delta < 0:
        row.debits -= delta
    else:
        row.credits += delta
    row.version += 1
    row.touched = True


_NEXT_TRANSFER_IDS = sa.text(
    "SELECT nextval(pg_get_serial_sequence('transfers', 'id')) FROM generate_series(1, :n)"
)
_NO_VALUE = {c.name: None for c in t.transfers.c}
_UPDATE_ACCOUNT = (
    sa.update(t.accounts)
    .where(t.accounts.c.id == sa.bindparam("_id"))
    .values(
        balance=sa.bindparam("_balance"),
        debits=sa.bindparam("_debits"),
        credits=sa.bindparam("_credits"),
        version=sa.bindparam("_version"),
    )
)


def _insert_transfers(conn: Connection, rows: list[dict[str, Any]]) -> list[TransferRecord]:
    """Insert the transfer rows; return them as inserted, in order.

    The ids are chosen first and the rows written with them, so nothing needs to be read back.
    PostgreSQL: from the sequence, then one COPY (an INSERT .. RETURNING of the whole batch is a
    multi-VALUES statement of thousands of rows whose text the driver parses again for every
    batch: 45% of a batch's CPU). SQLite: the next ids after the largest, safe because BEGIN
    IMMEDIATE holds the database's write lock until COMMIT (an INTEGER PRIMARY KEY without
    AUTOINCREMENT takes max(id) + 1 itself), then one executemany.
    """
    if is_sqlite(conn):
        first = int(conn.exec_driver_sql("SELECT coalesce(max(id), 0) + 1 FROM transfers").scalar_one())
        ids: list[int] = list(range(first, first + len(rows)))
    else:
        ids = sorted(conn.execute(_NEXT_TRANSFER_IDS, {"n": len(rows)}).scalars())
    full = [{**_NO_VALUE, **row, "id": i} for row, i in zip(rows, ids, strict=True)]
    _insert_rows(conn, t.transfers, full)
    return [TransferRecord(**row) for row in full]  # the transfers table's columns, by name


def _insert_rows(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Many rows into an append-only table in this transaction, so the CHECK constraints,
    foreign keys, triggers and unique indexes judge every row as for an INSERT: COPY on
    PostgreSQL, one prebuilt INSERT run by the driver's executemany on SQLite."""
    if not rows:
        return
    columns = list(rows[0])
    if is_sqlite(conn):
        _sqlite_executemany(
            conn,
            f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            [table.c[c] for c in columns],
            [[row[c] for c in columns] for row in rows],
        )
        return
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


def _sqlite_executemany(
    conn: Connection, sql: str, columns: Sequence[sa.Column[Any]], rows: list[list[Any]]
) -> None:
    """The driver's executemany on the transaction's own connection, with each value converted
    by its column type exactly as SQLAlchemy would bind it (dates and times as SQLite stores
    them), without SQLAlchemy's per-row parameter processing (a third of a batch's CPU)."""
    dialect = conn.dialect
    processors = [(n, c.type.dialect_impl(dialect).bind_processor(dialect)) for n, c in enumerate(columns)]
    for n, process in processors:
        if process is not None:
            # A batch repeats its times and dates (every row is stamped `now`): convert each once.
            done: dict[Any, Any] = {}
            for row in rows:
                value = row[n]
                converted = done.get(value, _MISSING)
                if converted is _MISSING:
                    converted = done[value] = process(value)
                row[n] = converted
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, rows)
    finally:
        cursor.close()


_MISSING = object()
_SQLITE_UPDATE_ACCOUNT = "UPDATE accounts SET balance = ?, debits = ?, credits = ?, version = ? WHERE id = ?"


def _write(
    conn: Connection,
    *,
    actor: Actor,
    keys: list[str],
    entries: Sequence[BatchEntry],
    pending: list[tuple[int, dict[str, Any], Movement]],
    accounts: dict[int, _Row],
    results: list[BatchResult | None],
    now: datetime,
    render: Callable[[TransferRecord], Any],
) -> None:
    if not pending:
        return
    transfer_rows = [{k: v for k, v in row.items() if k != "_versions"} for _, row, _ in pending]
    inserted = _insert_transfers(conn, transfer_rows)
    postings: list[dict[str, Any]] = []
    idem: list[dict[str, Any]] = []
    for (index, row, movement), record in zip(pending, inserted, strict=True):
        payer_version, payer_balance, payee_version, payee_balance = row["_versions"]
        postings.append(
            {
                "account_id": movement.payer,
                "version": payer_version,
                "transfer_id": record.id,
                "amount": -movement.amount,
                "balance_after": payer_balance,
                "posted_at": now,
            }
        )
        postings.append(
            {
                "account_id": movement.payee,
                "version": payee_version,
                "transfer_id": record.id,
                "amount": movement.amount,
                "balance_after": payee_balance,
                "posted_at": now,
            }
        )
        body = render(record)
        results[index] = BatchResult(entries[index].key, "posted", body=body)
        idem.append(
            {
                "user_id": actor.user_id,
                "key": keys[index],
                "request_hash": entries[index].request_hash,
                "response_status": 201,
                # msgspec: the same JSON value as json.dumps, at a tenth of its cost per item
                "response_body": _encode(body).decode(),
                "created_at": now,
            }
        )
    _insert_rows(conn, t.postings, postings)
    touched = [r for r in sorted(accounts.values(), key=lambda r: r.state.id) if r.touched]
    if is_sqlite(conn):
        a = t.accounts
        _sqlite_executemany(
            conn,
            _SQLITE_UPDATE_ACCOUNT,
            [a.c.balance, a.c.debits, a.c.credits, a.c.version, a.c.id],
            [[r.state.balance, r.debits, r.credits, r.version, r.state.id] for r in touched],
        )
    else:
        conn.execute(
            _UPDATE_ACCOUNT,
            [
                {
                    "_id": r.state.id,
                    "_balance": r.state.balance,
                    "_debits": r.debits,
                    "_credits": r.credits,
                    "_version": r.version,
                }
                for r in touched
            ],
        )
    _insert_rows(conn, t.idempotency_keys, idem)
