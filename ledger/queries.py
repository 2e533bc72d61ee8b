"""Read models of the ledger: accounts, statements, balance at a moment, transfer lists.

Lists use keyset pagination (the cursor is the last key seen), so a page costs the same at the
millionth posting as at the first.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accounts.actor import Actor
from ledger import tables as t
from ledger.core import AccountKind, AccountStatus, validate_limits
from ledger.errors import DomainError, Problem
from ledger.service import TransferRecord, _record, utc

MAX_PAGE = 200
DEFAULT_PAGE = 50


@dataclass(frozen=True, slots=True)
class AccountView:
    id: int
    ledger_id: int
    coop: str | None
    kind: str
    holder: str
    user_id: int | None
    balance: int
    min_balance: int | None
    max_balance: int | None
    status: str
    debits: int
    credits: int
    unit_code: str
    scale: int
    version: int


@dataclass(frozen=True, slots=True)
class PostingView:
    account_id: int
    version: int
    transfer_id: int
    amount: int
    balance_after: int
    posted_at: datetime
    counterparty_id: int
    memo: str | None
    category: str | None
    occurred_on: Any


def encode_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise DomainError(
            "validation_failed",
            "the cursor is not one this server handed out",
            [Problem("validation_failed", "bad cursor", "cursor")],
        ) from exc


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise DomainError(
            "validation_failed",
            f"limit must be between 1 and {MAX_PAGE}",
            [Problem("validation_failed", "out of range", "limit")],
        )
    return limit


def _account_select() -> sa.Select[Any]:
    a, lg, c = t.accounts, t.ledgers, t.coops
    return sa.select(
        a.c.id,
        a.c.ledger_id,
        c.c.slug.label("coop"),
        a.c.kind,
        a.c.holder,
        a.c.user_id,
        a.c.balance,
        a.c.min_balance,
        a.c.max_balance,
        a.c.status,
        a.c.debits,
        a.c.credits,
        lg.c.unit_code,
        lg.c.scale,
        a.c.version,
    ).select_from(a.join(lg, lg.c.id == a.c.ledger_id).outerjoin(c, c.c.ledger_id == a.c.ledger_id))


def find_account(conn: Connection, account_id: int) -> AccountView | None:
    row = conn.execute(_account_select().where(t.accounts.c.id == account_id)).first()
    return None if row is None else AccountView(**row._mapping)


def account_for_reader(conn: Connection, *, actor: Actor, account_id: int) -> AccountView:
    """The account, if the actor may read it (holder or treasurer); else not found."""
    view = find_account(conn, account_id)
    if view is None or not (actor.holds(account_id) or actor.is_treasurer_of_ledger(view.ledger_id)):
        if view is not None and actor.is_admin:
            # The admin lists every co-op's directory anyway; a 404 would hide nothing.
            raise DomainError("forbidden", "an instance admin does not act inside a co-op's ledger")
        # Not found and not yours look the same, so ids cannot be probed.
        raise DomainError("account_not_found", "no such account")
    return view


def list_ledger_accounts(
    conn: Connection, *, ledger_id: int, cursor: int | None, limit: int
) -> tuple[list[AccountView], int | None]:
    a = t.accounts
    query = _account_select().where(a.c.ledger_id == ledger_id).order_by(a.c.id).limit(limit + 1)
    if cursor is not None:
        query = query.where(a.c.id > cursor)
    rows = [AccountView(**r._mapping) for r in conn.execute(query)]
    return _page(rows, limit, key=lambda v: v.id)


def _page(rows: list[Any], limit: int, *, key: Any) -> tuple[list[Any], int | None]:
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, key(rows[-1])
    return rows, None


def list_postings(
    conn: Connection,
    *,
    account_id: int,
    start: datetime | None,
    end: datetime | None,
    cursor: int | None,
    limit: int,
    descending: bool = False,
) -> tuple[list[PostingView], int | None]:
    p, tr = t.postings, t.transfers
    counterparty = sa.case((tr.c.payer_id == p.c.account_id, tr.c.payee_id), else_=tr.c.payer_id)
    query = (
        sa.select(
            p.c.account_id,
            p.c.version,
            p.c.transfer_id,
            p.c.amount,
            p.c.balance_after,
            p.c.posted_at,
            counterparty.label("counterparty_id"),
            tr.c.memo,
            tr.c.category,
            tr.c.occurred_on,
        )
        .select_from(p.join(tr, tr.c.id == p.c.transfer_id))
        .where(p.c.account_id == account_id)
        .order_by(p.c.version.desc() if descending else p.c.version)
        .limit(limit + 1)
    )
    if start is not None:
        query = query.where(p.c.posted_at >= start)
    if end is not None:
        query = query.where(p.c.posted_at < end)
    if cursor is not None:
        query = query.where(p.c.version < cursor if descending else p.c.version > cursor)
    rows = [PostingView(**{**r._mapping, "posted_at": utc(r.posted_at)}) for r in conn.execute(query)]
    return _page(rows, limit, key=lambda v: v.version)


def balance_at(conn: Connection, *, account_id: int, at: datetime) -> int:
    """The balance after the last posting at or before `at` (0 before the first)."""
    p = t.postings
    row = conn.execute(
        sa.select(p.c.balance_after)
        .where(p.c.account_id == account_id, p.c.posted_at <= at)
        .order_by(p.c.posted_at.desc(), p.c.version.desc())
        .limit(1)
    ).first()
    return 0 if row is None else int(row.balance_after)


def list_transfers(
    conn: Connection,
    *,
    actor: Actor,
    account_id: int | None,
    status: str | None,
    cursor: int | None,
    limit: int,
) -> tuple[list[TransferRecord], int | None]:
    tr = t.transfers
    query = sa.select(tr).order_by(tr.c.id.desc()).limit(limit + 1)
    if account_id is not None:
        account_for_reader(conn, actor=actor, account_id=account_id)
        query = query.where(sa.or_(tr.c.payer_id == account_id, tr.c.payee_id == account_id))
    else:
        mine = sorted(actor.account_ids)
        visible = [tr.c.payer_id.in_(mine), tr.c.payee_id.in_(mine)]
        if actor.treasurer_ledgers:
            visible.append(tr.c.ledger_id.in_(sorted(actor.treasurer_ledgers)))
        query = query.where(sa.or_(*visible))
    if status is not None:
        query = query.where(tr.c.status == status)
    if cursor is not None:
        query = query.where(tr.c.id < cursor)
    rows = [_record(r) for r in conn.execute(query)]
    return _page(rows, limit, key=lambda v: v.id)


def last_activity(conn: Connection, ledger_id: int) -> dict[int, datetime]:
    """When each account of a ledger last moved (accounts that never moved are absent)."""
    p, a = t.postings, t.accounts
    rows = conn.execute(
        sa.select(p.c.account_id, sa.func.max(p.c.posted_at))
        .join(a, a.c.id == p.c.account_id)
        .where(a.c.ledger_id == ledger_id)
        .group_by(p.c.account_id)
    )
    return {int(account_id): utc(moment) for account_id, moment in rows}  # type: ignore[misc]


def ledger_unit(conn: Connection, ledger_id: int) -> tuple[str, int]:
    row = conn.execute(
        sa.select(t.ledgers.c.unit_code, t.ledgers.c.scale).where(t.ledgers.c.id == ledger_id)
    ).one()
    return str(row.unit_code), int(row.scale)


_ACCOUNT_UNITS = (
    sa.select(t.accounts.c.id, t.accounts.c.ledger_id, t.ledgers.c.unit_code, t.ledgers.c.scale)
    .join(t.ledgers, t.ledgers.c.id == t.accounts.c.ledger_id)
    .where(t.accounts.c.id.in_(sa.bindparam("unit_accounts", expanding=True)))
)


def account_units(conn: Connection, *account_ids: int) -> dict[int, tuple[int, str, int]]:
    """account id -> (ledger id, unit code, scale), for those of these accounts that exist."""
    return {
        r.id: (int(r.ledger_id), str(r.unit_code), int(r.scale))
        for r in conn.execute(_ACCOUNT_UNITS, {"unit_accounts": list(account_ids)})
    }


def first_scale(units: dict[int, tuple[int, str, int]], *account_ids: int) -> int:
    """The unit scale of the first of these accounts that exists (to parse an amount for it)."""
    for account_id in account_ids:
        if account_id in units:
            return units[account_id][2]
    raise DomainError("account_not_found", "neither account exists")


def account_scale(conn: Connection, *account_ids: int) -> int:
    return first_scale(account_units(conn, *account_ids), *account_ids)


def ledger_balances(conn: Connection, ledger_id: int) -> dict[int, int]:
    a = t.accounts
    return {
        r.id: r.balance
        for r in conn.execute(sa.select(a.c.id, a.c.balance).where(a.c.ledger_id == ledger_id))
    }


def update_account(
    conn: Connection,
    *,
    actor: Actor,
    account_id: int,
    changes: dict[str, Any],
) -> AccountView:
    """Change limits or status. Refused when the current balance would break the new limits."""
    view = account_for_reader(conn, actor=actor, account_id=account_id)
    if not actor.is_treasurer_of_ledger(view.ledger_id):
        raise DomainError("forbidden", "only a treasurer may change an account")
    min_balance = changes.get("min_balance", view.min_balance)
    max_balance = changes.get("max_balance", view.max_balance)
    problems = validate_limits(min_balance, max_balance)
    status = changes.get("status", view.status)
    if status not in {s.value for s in AccountStatus}:
        problems.append(Problem("validation_failed", "status is active, frozen or closed", "status"))
    if status == AccountStatus.CLOSED.value and view.kind != AccountKind.MEMBER.value:
        problems.append(Problem("validation_failed", "only member accounts can be closed", "status"))
    if problems:
        raise DomainError.from_problems(problems)
    a = t.accounts
    guard = [a.c.id == account_id]
    if min_balance is not None:
        guard.append(a.c.balance >= min_balance)
    if max_balance is not None:
        guard.append(a.c.balance <= max_balance)
    if status == AccountStatus.CLOSED.value:
        guard.append(a.c.balance == 0)
    result = conn.execute(
        sa.update(a).where(*guard).values(min_balance=min_balance, max_balance=max_balance, status=status)
    )
    if result.rowcount != 1:
        current = find_account(conn, account_id)
        assert current is not None
        if status == AccountStatus.CLOSED.value and current.balance != 0:
            raise DomainError("account_not_empty", "an account can be closed only at a zero balance")
        raise DomainError(
            "limit_violated_by_balance",
            "the account's current balance is outside these limits; settle it first",
        )
    updated = find_account(conn, account_id)
    assert updated is not None
    return updated
