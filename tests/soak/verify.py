"""The bank test's checks: on each balance snapshot read over HTTP, and at the end on the tables.

The final checks read the database directly (the server is dead by then) and compare it with
what the clients were told: every acknowledged transfer exists exactly once (by id and by
idempotency key), every refused one not at all, nothing exists that no client asked for, the
stored postings replay to the cached balances, the ledger sums to zero and no posting ever took
an account past a limit. The functions over plain data are separate from the one that loads it,
so they can be tested on their own.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ledger import tables as t
from ledger.amounts import parse_amount
from ledger.db import make_engine

if TYPE_CHECKING:
    from tests.soak.workload import Outcome


@dataclass(frozen=True, slots=True)
class AccountRow:
    id: int
    balance: int
    min_balance: int | None
    max_balance: int | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    accounts: tuple[AccountRow, ...]
    complete: bool  # one page held every account (no next_cursor)

    @classmethod
    def from_page(cls, page: dict[str, Any], *, scale: int) -> Snapshot:
        def amount(text: str | None) -> int | None:
            return None if text is None else parse_amount(text, scale=scale, allow_negative=True)

        rows = tuple(
            AccountRow(
                int(a["id"]),
                amount(a["balance"]) or 0,
                amount(a["min_balance"]),
                amount(a["max_balance"]),
            )
            for a in page["items"]
        )
        return cls(rows, complete=page.get("next_cursor") is None)


def limit_problem(account_id: int, balance: int, lo: int | None, hi: int | None) -> str | None:
    if lo is not None and balance < lo:
        return f"account {account_id} at {balance} is below its minimum {lo}"
    if hi is not None and balance > hi:
        return f"account {account_id} at {balance} is above its maximum {hi}"
    return None


def snapshot_problems(snapshot: Snapshot, *, expected_accounts: Iterable[int]) -> list[str]:
    problems: list[str] = []
    if not snapshot.complete:
        problems.append("the accounts did not fit one page, so the snapshot is not atomic")
    missing = set(expected_accounts) - {a.id for a in snapshot.accounts}
    if missing:
        problems.append(f"accounts missing from the snapshot: {sorted(missing)}")
    total = sum(a.balance for a in snapshot.accounts)
    if total != 0:
        problems.append(f"balances sum to {total}, not 0: {[(a.id, a.balance) for a in snapshot.accounts]}")
    for a in snapshot.accounts:
        problem = limit_problem(a.id, a.balance, a.min_balance, a.max_balance)
        if problem:
            problems.append(problem)
    return problems


@dataclass(frozen=True, slots=True)
class StoredAccount:
    id: int
    balance: int
    min_balance: int | None
    max_balance: int | None
    debits: int
    credits: int
    version: int


@dataclass(frozen=True, slots=True)
class StoredTransfer:
    id: int
    payer_id: int
    payee_id: int
    amount: int
    status: str
    memo: str | None
    reverses_id: int | None = None


@dataclass(frozen=True, slots=True)
class StoredPosting:
    account_id: int
    version: int
    transfer_id: int
    amount: int
    balance_after: int


@dataclass(frozen=True, slots=True)
class StoredKey:
    key: str
    status: int
    transfer_id: int | None


@dataclass(frozen=True, slots=True)
class Ledger:
    """The rows of one ledger as the database holds them after the last crash."""

    accounts: tuple[StoredAccount, ...]
    transfers: tuple[StoredTransfer, ...]
    postings: tuple[StoredPosting, ...]
    keys: tuple[StoredKey, ...]  # the treasurer's idempotency keys


def load_ledger(url: str, *, ledger_id: int, user_id: int) -> Ledger:
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect().execution_options(sqlite_begin="DEFERRED") as conn, conn.begin():
            a, tr, p, ik = t.accounts, t.transfers, t.postings, t.idempotency_keys
            accounts = tuple(
                StoredAccount(r.id, r.balance, r.min_balance, r.max_balance, r.debits, r.credits, r.version)
                for r in conn.execute(
                    sa.select(
                        a.c.id,
                        a.c.balance,
                        a.c.min_balance,
                        a.c.max_balance,
                        a.c.debits,
                        a.c.credits,
                        a.c.version,
                    )
                    .where(a.c.ledger_id == ledger_id)
                    .order_by(a.c.id)
                )
            )
            transfers = tuple(
                StoredTransfer(*r)
                for r in conn.execute(
                    sa.select(
                        tr.c.id,
                        tr.c.payer_id,
                        tr.c.payee_id,
                        tr.c.amount,
                        tr.c.status,
                        tr.c.memo,
                        tr.c.reverses_id,
                    )
                    .where(tr.c.ledger_id == ledger_id)
                    .order_by(tr.c.id)
                )
            )
            ids = [acc.id for acc in accounts]
            postings = tuple(
                StoredPosting(r.account_id, r.version, r.transfer_id, r.amount, r.balance_after)
                for r in conn.execute(
                    sa.select(p.c.account_id, p.c.version, p.c.transfer_id, p.c.amount, p.c.balance_after)
                    .where(p.c.account_id.in_(ids))
                    .order_by(p.c.account_id, p.c.version)
                )
            )
            keys = tuple(
                StoredKey(r.key, r.response_status, _body_id(r.response_body))
                for r in conn.execute(
                    sa.select(ik.c.key, ik.c.response_status, ik.c.response_body).where(
                        ik.c.user_id == user_id
                    )
                )
            )
    finally:
        engine.dispose()
    return Ledger(accounts, transfers, postings, keys)


def _body_id(body: str) -> int | None:
    value = json.loads(body)
    return int(value["id"]) if isinstance(value, dict) and "id" in value else None


@dataclass
class Findings:
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.violations)


def check_outcomes(outcomes: Sequence[Outcome], ledger: Ledger) -> Findings:
    """What the clients were told against what is stored, key by key."""
    found = Findings()
    by_memo: dict[str, list[StoredTransfer]] = defaultdict(list)
    for tr in ledger.transfers:
        by_memo[tr.memo or ""].append(tr)
    keys = {k.key: k for k in ledger.keys}
    asked = {o.key for o in outcomes}
    for o in outcomes:
        rows = by_memo.get(o.memo, [])
        stored_key = keys.get(o.key)
        if len(rows) > 1:
            found.duplicated.append(
                f"{o.key} ({o.status}) is stored {len(rows)} times: ids {[r.id for r in rows]}"
            )
        if o.status == "acknowledged":
            mine = [r for r in rows if r.id == o.transfer_id]
            if not mine:
                found.lost.append(
                    f"{o.key}: acknowledged as transfer {o.transfer_id}, not stored "
                    f"(stored under this key: {[r.id for r in rows]})"
                )
            else:
                r = mine[0]
                stored = (r.payer_id, r.payee_id, r.amount, r.status, r.reverses_id)
                if stored != (o.payer, o.payee, o.amount, "posted", o.reverses):
                    found.violations.append(f"{o.key}: acknowledged as {o.transfer_id}, stored as {r}")
            if stored_key is None or (stored_key.status, stored_key.transfer_id) != (
                201,
                o.transfer_id,
            ):
                found.violations.append(
                    f"{o.key}: acknowledged as {o.transfer_id}, idempotency record {stored_key}"
                )
        elif o.status == "refused":
            if rows:
                found.violations.append(f"{o.key}: refused ({o.code}) but stored as {[r.id for r in rows]}")
            if stored_key is not None:
                found.violations.append(f"{o.key}: refused ({o.code}) but its key was stored: {stored_key}")
        # unsettled / unexpected outcomes were reported as violations when they happened
    memos = {o.memo for o in outcomes}
    for memo, rows in by_memo.items():
        if memo not in memos:
            found.violations.append(f"transfers no client asked for (memo {memo!r}): {[r.id for r in rows]}")
    extra_keys = set(keys) - asked
    if extra_keys:
        found.violations.append(f"idempotency records no client sent: {sorted(extra_keys)[:5]}")
    return found


def check_books(ledger: Ledger, outcomes: Sequence[Outcome] | None = None) -> list[str]:
    """Balances are the replay of the stored postings and transfers; zero sum; limits held."""
    problems: list[str] = []
    postings: dict[int, list[StoredPosting]] = defaultdict(list)
    for p in ledger.postings:
        postings[p.account_id].append(p)
    by_transfer: dict[int, list[StoredPosting]] = defaultdict(list)
    for p in ledger.postings:
        by_transfer[p.transfer_id].append(p)
    from_transfers: Counter[int] = Counter()
    for tr in ledger.transfers:
        legs = sorted((p.account_id, p.amount) for p in by_transfer.get(tr.id, []))
        expected = (
            sorted([(tr.payer_id, -tr.amount), (tr.payee_id, tr.amount)]) if tr.status == "posted" else []
        )
        if legs != expected:
            problems.append(f"transfer {tr.id} ({tr.status}) has postings {legs}, expected {expected}")
        if tr.status == "posted":
            from_transfers[tr.payer_id] -= tr.amount
            from_transfers[tr.payee_id] += tr.amount
    from_clients: Counter[int] = Counter()
    for o in outcomes or ():
        if o.status == "acknowledged":
            from_clients[o.payer] -= o.amount
            from_clients[o.payee] += o.amount
    for acc in ledger.accounts:
        running = 0
        for expected_version, p in enumerate(postings.get(acc.id, []), start=1):
            running += p.amount
            if p.version != expected_version:
                problems.append(f"account {acc.id}: posting version {p.version}, expected {expected_version}")
            if p.balance_after != running:
                problems.append(
                    f"account {acc.id} v{p.version}: balance_after {p.balance_after}, replay {running}"
                )
            problem = limit_problem(acc.id, p.balance_after, acc.min_balance, acc.max_balance)
            if problem:
                problems.append(f"posting v{p.version}: {problem}")
        count = len(postings.get(acc.id, []))
        if (acc.balance, acc.version) != (running, count):
            problems.append(
                f"account {acc.id}: cached balance {acc.balance} v{acc.version}, "
                f"postings say {running} v{count}"
            )
        if acc.balance != from_transfers[acc.id]:
            problems.append(
                f"account {acc.id}: balance {acc.balance}, replay of transfers {from_transfers[acc.id]}"
            )
        if outcomes is not None and acc.balance != from_clients[acc.id]:
            problems.append(
                f"account {acc.id}: balance {acc.balance}, "
                f"acknowledged transfers add up to {from_clients[acc.id]}"
            )
        if acc.balance != acc.credits - acc.debits:
            problems.append(
                f"account {acc.id}: balance {acc.balance}, credits {acc.credits} - debits {acc.debits}"
            )
        problem = limit_problem(acc.id, acc.balance, acc.min_balance, acc.max_balance)
        if problem:
            problems.append(problem)
    total = sum(acc.balance for acc in ledger.accounts)
    if total != 0:
        problems.append(f"the ledger sums to {total}, not 0")
    return problems


def verify(outcomes: Sequence[Outcome], ledger: Ledger) -> Findings:
    found = check_outcomes(outcomes, ledger)
    found.violations += check_books(ledger, outcomes)
    return found
