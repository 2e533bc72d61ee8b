"""The ledger service: every change of ledger state, each inside the caller's unit of work.

Functions here take an open write connection (see `ledger.db.write_transaction` and
`ledger.idempotency.run_idempotent`, which own BEGIN/COMMIT) and raise `DomainError`.

The write path of a posted transfer is the one DESIGN §2 prescribes: conditional UPDATEs of the
two accounts in ascending id order (the WHERE clause is the limit, so the database decides
atomically and a concurrent writer waits on the row lock), then the immutable transfer row, then
one posting per account carrying its new balance and version.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accounts.actor import Actor
from ledger import tables as t
from ledger.amounts import ABSOLUTE_MAX_AMOUNT
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
from ledger.errors import DomainError, Problem


@dataclass(frozen=True, slots=True)
class TransferRecord:
    id: int
    ledger_id: int
    transaction_id: str
    payer_id: int
    payee_id: int
    amount: int
    memo: str | None
    category: str | None
    occurred_on: date
    initiator_id: int | None
    status: str
    reverses_id: int | None
    created_at: datetime
    expires_at: datetime | None
    resolved_at: datetime | None
    resolved_by_id: int | None


@dataclass(frozen=True, slots=True)
class TransferInput:
    payer_id: int
    payee_id: int
    amount: int
    memo: str | None = None
    category: str | None = None
    occurred_on: date | None = None


@dataclass(frozen=True, slots=True)
class LedgerPolicy:
    """What a ledger's owner decided: the per-transfer maximum and how long claims wait."""

    ledger_id: int
    max_transfer_amount: int
    claim_expiry_days: int


def utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything in Commons is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _record(row: Any) -> TransferRecord:
    return TransferRecord(
        id=row.id,
        ledger_id=row.ledger_id,
        transaction_id=row.transaction_id,
        payer_id=row.payer_id,
        payee_id=row.payee_id,
        amount=row.amount,
        memo=row.memo,
        category=row.category,
        occurred_on=row.occurred_on,
        initiator_id=row.initiator_id,
        status=row.status,
        reverses_id=row.reverses_id,
        created_at=utc(row.created_at),  # type: ignore[arg-type]
        expires_at=utc(row.expires_at),
        resolved_at=utc(row.resolved_at),
        resolved_by_id=row.resolved_by_id,
    )


_a = t.accounts
_LOAD_STATES = sa.select(
    _a.c.id, _a.c.ledger_id, _a.c.status, _a.c.balance, _a.c.min_balance, _a.c.max_balance, _a.c.kind
).where(_a.c.id.in_(sa.bindparam("state_ids", expanding=True)))
_LEDGER_POLICY = sa.select(t.coops.c.max_transfer_amount, t.coops.c.claim_expiry_days).where(
    t.coops.c.ledger_id == sa.bindparam("policy_ledger", type_=sa.BigInteger)
)


def load_account_states(conn: Connection, ids: Sequence[int]) -> dict[int, AccountState]:
    rows = conn.execute(_LOAD_STATES, {"state_ids": sorted(set(ids))})  # built once, see _DEBIT
    return {
        r.id: AccountState(
            r.id,
            r.ledger_id,
            AccountStatus(r.status),
            r.balance,
            r.min_balance,
            r.max_balance,
            AccountKind(r.kind),
        )
        for r in rows
    }


def ledger_policy(conn: Connection, ledger_id: int) -> LedgerPolicy:
    row = conn.execute(_LEDGER_POLICY, {"policy_ledger": ledger_id}).first()
    if row is None:
        # A federation ledger: its transfers are made by the clearing service, not by members.
        return LedgerPolicy(ledger_id, ABSOLUTE_MAX_AMOUNT, 30)
    return LedgerPolicy(ledger_id, row.max_transfer_amount, row.claim_expiry_days)


def _raise_if(problems: list[Problem]) -> None:
    if problems:
        raise DomainError.from_problems(problems)


def _move_statement(*, debit: bool) -> sa.Update:
    a = t.accounts
    account_id = sa.bindparam("move_account", type_=sa.BigInteger)
    amount = sa.bindparam("move_amount", type_=sa.BigInteger)
    if debit:
        condition = sa.or_(a.c.min_balance.is_(None), a.c.balance - amount >= a.c.min_balance)
        values = {"balance": a.c.balance - amount, "debits": a.c.debits + amount}
    else:
        condition = sa.or_(a.c.max_balance.is_(None), a.c.balance + amount <= a.c.max_balance)
        values = {"balance": a.c.balance + amount, "credits": a.c.credits + amount}
    return (
        sa.update(a)
        .where(a.c.id == account_id, a.c.status == AccountStatus.ACTIVE.value, condition)
        .values(version=a.c.version + 1, **values)
        .returning(a.c.balance, a.c.version)
    )


# The hot statements are built once: executing the same statement object skips SQLAlchemy's
# per-call construction, cache-key and result-metadata work (a third of the server's CPU
# per transfer before), and gives the driver the same SQL text to prepare.
_DEBIT = _move_statement(debit=True)
_CREDIT = _move_statement(debit=False)
_POSTING_COLUMNS = ("account_id", "version", "transfer_id", "amount", "balance_after", "posted_at")
# Text, not insert().values([...]): SQLAlchemy cannot cache a multi-VALUES insert and compiled
# it again for every transfer (10% of a SQLite worker's CPU, inside the write lock).
_INSERT_POSTING_PAIR = sa.text(
    f"INSERT INTO postings ({', '.join(_POSTING_COLUMNS)}) VALUES "
    + ", ".join(f"({', '.join(f':{c}_{n}' for c in _POSTING_COLUMNS)})" for n in (0, 1))
).bindparams(
    *[sa.bindparam(f"{c}_{n}", type_=t.postings.c[c].type) for n in (0, 1) for c in _POSTING_COLUMNS]
)
_INSERT_TRANSFER = sa.insert(t.transfers).returning(*t.transfers.c)


def _move(conn: Connection, *, account_id: int, delta: int) -> tuple[int, int] | None:
    """Apply `delta` to one account if its limits allow; return (balance, version) or None."""
    statement = _DEBIT if delta < 0 else _CREDIT
    row = conn.execute(statement, {"move_account": account_id, "move_amount": abs(delta)}).first()
    return None if row is None else (row.balance, row.version)


def _refusal(conn: Connection, movement: Movement, *, moved: dict[int, int], refused: int) -> DomainError:
    """Explain why a conditional update matched no row, from the rows as they are now.

    `moved` holds the deltas this transaction already applied (the lower account id goes
    first): an account is judged on its balance before the movement, or a refusal by the
    payee's ceiling would also be reported as the payer's credit limit."""
    states = {
        i: replace(s, balance=s.balance - moved.get(i, 0))
        for i, s in load_account_states(conn, [movement.payer, movement.payee]).items()
    }
    payer, payee = states.get(movement.payer), states.get(movement.payee)
    problems = validate_movement(movement, payer, payee, max_amount=movement.amount)
    if not problems and payer is not None and payee is not None:
        problems = limit_problems(payer, payee, movement.amount)
    if not problems:
        # The refused row is not locked by us (its UPDATE matched nothing): on PostgreSQL another
        # transaction may have brought it back within its limit since. The UPDATE's verdict
        # stands — that side's limit refused the movement (the bank test saw a 409 "conflict").
        problems = [
            Problem("insufficient_credit", "this would take the payer below its credit limit", "amount")
            if refused == movement.payer
            else Problem("ceiling_exceeded", "this would take the payee above its maximum", "amount")
        ]
    return DomainError.from_problems(problems)


def apply_movement(conn: Connection, movement: Movement, *, transfer_id: int, now: datetime) -> None:
    """Move the amount, write both postings. Raises (and the caller rolls back) when refused."""
    results: dict[int, tuple[int, int]] = {}
    deltas = sorted(((movement.payer, -movement.amount), (movement.payee, movement.amount)))
    for account_id, delta in deltas:
        moved = _move(conn, account_id=account_id, delta=delta)
        if moved is None:
            done = {i: d for i, d in deltas if i in results}
            raise _refusal(conn, movement, moved=done, refused=account_id)
        results[account_id] = moved
    params: dict[str, Any] = {}
    for n, (account_id, delta) in enumerate(
        ((movement.payer, -movement.amount), (movement.payee, movement.amount))
    ):
        balance, version = results[account_id]
        row = (account_id, version, transfer_id, delta, balance, now)
        params.update({f"{c}_{n}": v for c, v in zip(_POSTING_COLUMNS, row, strict=True)})
    conn.execute(_INSERT_POSTING_PAIR, params)  # one statement, not an executemany


def _insert_transfer(conn: Connection, values: dict[str, Any]) -> TransferRecord:
    return _record(conn.execute(_INSERT_TRANSFER, values).one())


def _across_ledgers(
    conn: Connection,
    *,
    actor: Actor,
    request: TransferInput,
    payer: AccountState,
    payee: AccountState,
    now: datetime,
) -> TransferRecord | None:
    """Payer and payee in different ledgers: a cross-co-op payment (three transfers, one
    transaction) when one federation joins their co-ops; None otherwise."""
    from clearing.crosspay import pay_across_coops  # clearing builds on this module

    return pay_across_coops(conn, actor=actor, request=request, payer=payer, payee=payee, now=now)


def create_transfer(
    conn: Connection, *, actor: Actor, request: TransferInput, now: datetime
) -> TransferRecord:
    """Post a payment, or record a claim when the caller holds only the payee account.

    Posted at once when the caller holds the payer account or is treasurer of the ledger;
    `pending` when the caller holds only the payee account; forbidden otherwise.
    """
    movement = Movement(request.payer_id, request.payee_id, request.amount)
    states = load_account_states(conn, [movement.payer, movement.payee])
    payer, payee = states.get(movement.payer), states.get(movement.payee)
    if payer is not None and payee is not None and payer.ledger_id != payee.ledger_id:
        crossed = _across_ledgers(conn, actor=actor, request=request, payer=payer, payee=payee, now=now)
        if crossed is not None:
            return crossed
    known_ledgers = {s.ledger_id for s in (payer, payee) if s is not None}
    treasurer = any(actor.is_treasurer_of_ledger(lid) for lid in known_ledgers)
    if actor.holds(movement.payer) or treasurer:
        status = TransferStatus.POSTED
    elif actor.holds(movement.payee):
        status = TransferStatus.PENDING
    elif actor.is_admin or any(actor.is_member_of_ledger(lid) for lid in known_ledgers):
        raise DomainError("forbidden", "you may pay only from your own account")
    else:
        # Accounts of a ledger the caller has no part in look like accounts that do not exist.
        raise DomainError("account_not_found", "neither account exists")
    ledger_id = (payer or payee).ledger_id  # type: ignore[union-attr]
    policy = ledger_policy(conn, ledger_id)
    problems = validate_movement(movement, payer, payee, max_amount=policy.max_transfer_amount)
    problems += validate_text(request.memo, request.category)
    _raise_if(problems)
    assert payer is not None and payee is not None
    _raise_if(member_movement_problems(payer, payee))
    if status is TransferStatus.POSTED:
        # Cheap early answer; the conditional UPDATE stays the authority under concurrency.
        _raise_if(limit_problems(payer, payee, movement.amount))
    record = _insert_transfer(
        conn,
        {
            "ledger_id": ledger_id,
            "transaction_id": str(uuid.uuid4()),
            "payer_id": movement.payer,
            "payee_id": movement.payee,
            "amount": movement.amount,
            "memo": request.memo,
            "category": request.category,
            "occurred_on": request.occurred_on or now.date(),
            "initiator_id": actor.user_id,
            "status": status.value,
            "created_at": now,
            "expires_at": (
                now + timedelta(days=policy.claim_expiry_days) if status is TransferStatus.PENDING else None
            ),
        },
    )
    if status is TransferStatus.POSTED:
        apply_movement(conn, movement, transfer_id=record.id, now=now)
    return record


def get_transfer(conn: Connection, transfer_id: int) -> TransferRecord:
    row = conn.execute(sa.select(t.transfers).where(t.transfers.c.id == transfer_id)).first()
    if row is None:
        raise DomainError("transfer_not_found", "no such transfer")
    return _record(row)


def _resolve(
    conn: Connection, record: TransferRecord, *, status: TransferStatus, actor: Actor, now: datetime
) -> TransferRecord:
    """The one legal update of a transfer row: a pending claim reaching its outcome."""
    tr = t.transfers
    result = conn.execute(
        sa.update(tr)
        .where(tr.c.id == record.id, tr.c.status == TransferStatus.PENDING.value)
        .values(status=status.value, resolved_at=now, resolved_by_id=actor.user_id)
    )
    if result.rowcount != 1:
        raise DomainError("not_pending", "this transfer is no longer pending")
    return replace(record, status=status.value, resolved_at=now, resolved_by_id=actor.user_id)


def _pending_for_answer(conn: Connection, transfer_id: int, now: datetime) -> TransferRecord:
    record = get_transfer(conn, transfer_id)
    if record.status != TransferStatus.PENDING.value:
        raise DomainError("not_pending", f"this transfer is {record.status}, not pending")
    if record.expires_at is not None and record.expires_at <= now:
        raise DomainError("claim_expired", "this claim has expired and can no longer be answered")
    return record


def visible_to(actor: Actor, record: TransferRecord) -> bool:
    return (
        actor.holds(record.payer_id)
        or actor.holds(record.payee_id)
        or actor.is_treasurer_of_ledger(record.ledger_id)
    )


def accept_claim(conn: Connection, *, actor: Actor, transfer_id: int, now: datetime) -> TransferRecord:
    record = get_transfer(conn, transfer_id)
    if not actor.holds(record.payer_id):
        raise not_yours(actor, record, "only the payer may accept a claim")
    record = _pending_for_answer(conn, transfer_id, now)
    resolved = _resolve(conn, record, status=TransferStatus.POSTED, actor=actor, now=now)
    movement = Movement(record.payer_id, record.payee_id, record.amount)
    apply_movement(conn, movement, transfer_id=record.id, now=now)
    return resolved


def reject_claim(conn: Connection, *, actor: Actor, transfer_id: int, now: datetime) -> TransferRecord:
    record = get_transfer(conn, transfer_id)
    if not actor.holds(record.payer_id):
        raise not_yours(actor, record, "only the payer may reject a claim")
    record = _pending_for_answer(conn, transfer_id, now)
    return _resolve(conn, record, status=TransferStatus.REJECTED, actor=actor, now=now)


def cancel_claim(conn: Connection, *, actor: Actor, transfer_id: int, now: datetime) -> TransferRecord:
    record = get_transfer(conn, transfer_id)
    if record.initiator_id != actor.user_id:
        raise not_yours(actor, record, "only whoever made a claim may cancel it")
    record = _pending_for_answer(conn, transfer_id, now)
    return _resolve(conn, record, status=TransferStatus.CANCELLED, actor=actor, now=now)


def not_yours(actor: Actor, record: TransferRecord, detail: str) -> DomainError:
    # Someone with no view of the transfer learns nothing of its existence (the admin, who is
    # no treasurer but sees every co-op's directory, is simply told no).
    if not visible_to(actor, record) and not actor.is_admin:
        return DomainError("transfer_not_found", "no such transfer")
    return DomainError("forbidden", detail)


def reverse_transfer(
    conn: Connection, *, actor: Actor, transfer_id: int, reason: str | None, now: datetime
) -> TransferRecord:
    """Correct a posted transfer with its mirror image, linked to it, at most once."""
    original = get_transfer(conn, transfer_id)
    if not actor.is_treasurer_of_ledger(original.ledger_id):
        raise not_yours(actor, original, "only a treasurer of the co-op may reverse a transfer")
    if original.status != TransferStatus.POSTED.value:
        raise DomainError(
            "not_reversible", f"only posted transfers can be reversed (this one is {original.status})"
        )
    if original.reverses_id is not None:
        raise DomainError("not_reversible", "a reversal cannot itself be reversed")
    states = load_account_states(conn, [original.payer_id, original.payee_id])
    if any(s.kind is AccountKind.FEDERATION for s in states.values()):
        raise DomainError(
            "not_reversible",
            "this transfer is one leg of a cross-co-op payment or a clearing; "
            "correct it with a new cross-co-op payment the other way",
        )
    tr = t.transfers
    existing = conn.execute(sa.select(tr.c.id).where(tr.c.reverses_id == original.id)).first()
    if existing is not None:
        raise DomainError("already_reversed", f"transfer {original.id} was already reversed by {existing.id}")
    _raise_if(validate_text(reason, None))
    memo = f"Reversal of transfer {original.id}" + (f": {reason}" if reason else "")
    record = _insert_transfer(
        conn,
        {
            "ledger_id": original.ledger_id,
            "transaction_id": str(uuid.uuid4()),
            "payer_id": original.payee_id,
            "payee_id": original.payer_id,
            "amount": original.amount,
            "memo": memo[:500],
            "category": original.category,
            "occurred_on": now.date(),
            "initiator_id": actor.user_id,
            "status": TransferStatus.POSTED.value,
            "reverses_id": original.id,
            "created_at": now,
        },
    )
    movement = Movement(original.payee_id, original.payer_id, original.amount)
    apply_movement(conn, movement, transfer_id=record.id, now=now)
    return record


def expire_claims(conn: Connection, *, now: datetime) -> int:
    """Mark every pending claim past its expiry as expired. Returns how many."""
    tr = t.transfers
    result = conn.execute(
        sa.update(tr)
        .where(tr.c.status == TransferStatus.PENDING.value, tr.c.expires_at <= now)
        .values(status=TransferStatus.EXPIRED.value, resolved_at=now)
    )
    return int(result.rowcount or 0)


def expire_claim(conn: Connection, *, transfer_id: int, now: datetime) -> None:
    tr = t.transfers
    conn.execute(
        sa.update(tr)
        .where(
            tr.c.id == transfer_id,
            tr.c.status == TransferStatus.PENDING.value,
            tr.c.expires_at <= now,
        )
        .values(status=TransferStatus.EXPIRED.value, resolved_at=now)
    )
