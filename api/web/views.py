"""What the pages show, assembled from the ledger's read models (no SQL of its own)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from accounts.actor import Actor, CoopRole, Role
from accounts.service import CoopRecord, coop_by_ledger
from ledger import queries
from ledger.core import AccountKind, AccountStatus
from ledger.queries import AccountView, PostingView
from ledger.service import TransferRecord


@dataclass(frozen=True)
class Entry:
    """One member of the directory as the exchange form offers it."""

    account_id: int
    label: str  # unique within the co-op: the holder's name, with the number when names repeat
    holder: str
    kind: str
    status: str


def current_role(actor: Actor, slug: str | None) -> CoopRole | None:
    """The co-op the pages are about: the one chosen in the session, else the first."""
    for role in actor.roles:
        if role.slug == slug:
            return role
    return actor.roles[0] if actor.roles else None


def all_accounts(conn: Connection, ledger_id: int) -> list[AccountView]:
    views: list[AccountView] = []
    cursor: int | None = None
    while True:
        page, cursor = queries.list_ledger_accounts(
            conn, ledger_id=ledger_id, cursor=cursor, limit=queries.MAX_PAGE
        )
        views.extend(page)
        if cursor is None:
            return views


def directory(views: list[AccountView]) -> list[Entry]:
    counts: dict[str, int] = {}
    for v in views:
        counts[v.holder.casefold()] = counts.get(v.holder.casefold(), 0) + 1
    entries = []
    for v in views:
        if v.kind == AccountKind.FEDERATION.value:
            continue  # moves only through cross-co-op payments and clearing
        label = v.holder if counts[v.holder.casefold()] == 1 else f"{v.holder} (no. {v.id})"
        if v.kind == AccountKind.COOP.value:
            label = f"{v.holder} (co-op fund)"
        entries.append(Entry(v.id, label, v.holder, v.kind, v.status))
    return sorted(entries, key=lambda e: (e.kind != AccountKind.MEMBER.value, e.label.casefold()))


def find_entry(entries: list[Entry], text: str) -> Entry | None:
    wanted = " ".join(text.split()).casefold()
    for e in entries:
        if e.label.casefold() == wanted:
            return e
    matches = [e for e in entries if e.holder.casefold() == wanted]
    return matches[0] if len(matches) == 1 else None


@dataclass(frozen=True)
class HistoryLine:
    posting: PostingView
    other: str


@dataclass(frozen=True)
class Claim:
    transfer: TransferRecord
    other: str


@dataclass(frozen=True)
class MemberHome:
    coop: CoopRecord
    account: AccountView
    can_spend: int | None
    can_receive: int | None
    history: list[HistoryLine]
    to_answer: list[Claim]
    waiting: list[Claim]
    entries: list[Entry]


def names(entries: list[Entry]) -> dict[int, str]:
    return {e.account_id: e.holder for e in entries}


def member_home(conn: Connection, *, actor: Actor, role: CoopRole, history: int = 8) -> MemberHome:
    coop = coop_by_ledger(conn, role.ledger_id)
    assert coop is not None
    account = queries.account_for_reader(conn, actor=actor, account_id=role.account_id)
    entries = directory(all_accounts(conn, role.ledger_id))
    who = names(entries)
    postings, _ = queries.list_postings(
        conn,
        account_id=account.id,
        start=None,
        end=None,
        cursor=None,
        limit=history,
        descending=True,
    )
    pending, _ = queries.list_transfers(
        conn,
        actor=actor,
        account_id=account.id,
        status="pending",
        cursor=None,
        limit=queries.MAX_PAGE,
    )
    return MemberHome(
        coop=coop,
        account=account,
        can_spend=None if account.min_balance is None else max(account.balance - account.min_balance, 0),
        can_receive=None if account.max_balance is None else max(account.max_balance - account.balance, 0),
        history=[
            HistoryLine(p, who.get(p.counterparty_id, f"account {p.counterparty_id}")) for p in postings
        ],
        to_answer=[Claim(t, who.get(t.payee_id, "?")) for t in pending if t.payer_id == account.id],
        waiting=[Claim(t, who.get(t.payer_id, "?")) for t in pending if t.payee_id == account.id],
        entries=entries,
    )


def all_postings(conn: Connection, account_id: int) -> list[PostingView]:
    rows: list[PostingView] = []
    cursor: int | None = None
    while True:
        page, cursor = queries.list_postings(
            conn, account_id=account_id, start=None, end=None, cursor=cursor, limit=queries.MAX_PAGE
        )
        rows.extend(page)
        if cursor is None:
            return rows


def gauge(account: AccountView) -> dict[str, Any] | None:
    """Where the balance sits between the two limits, as percentages for the bar."""
    lo, hi = account.min_balance, account.max_balance
    if lo is None or hi is None or hi <= lo:
        return None
    span = hi - lo

    def at(value: int) -> float:
        return round(min(max((value - lo) / span, 0.0), 1.0) * 100, 1)

    return {"balance": at(account.balance), "zero": at(0)}


MEMBER_SORTS = {
    "name": lambda v: v.holder.casefold(),
    "balance": lambda v: v.balance,
    "min": lambda v: (v.min_balance is None, v.min_balance or 0),
    "max": lambda v: (v.max_balance is None, v.max_balance or 0),
    "status": lambda v: v.status,
    "given": lambda v: v.credits,
    "received": lambda v: v.debits,
}


def members_table(views: list[AccountView], *, query: str, sort: str, descending: bool) -> list[AccountView]:
    wanted = query.casefold().strip()
    rows = [v for v in views if not wanted or wanted in v.holder.casefold() or wanted == str(v.id)]
    return sorted(rows, key=MEMBER_SORTS.get(sort, MEMBER_SORTS["name"]), reverse=descending)


def is_treasurer(role: CoopRole | None) -> bool:
    return role is not None and role.role is Role.TREASURER


ACTIVE = AccountStatus.ACTIVE.value
