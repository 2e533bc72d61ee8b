"""Statements and the trial balance, as values, and their CSV / zip renderings.

A posting belongs to the month of its `posted_at` (UTC). For an account and a month:

    opening = sum of the account's postings before the month starts
    lines   = the month's postings in ledger order (version), each with the running balance
    closing = sum of the account's postings before the month ends

Opening and closing come from their own queries, so `opening + lines = closing` is a real check
(the property tests hold the code to it), and closing of one month is the opening of the next.
Balances are sums of postings rather than a stored balance_after, because the sums are exact at
any moment even where two concurrent writers stamped `posted_at` in the other order than they
took their versions; `commons verify` checks the stored balance_after chain separately.

CSV for spreadsheets: UTF-8 with a byte-order mark (so Excel reads names with accents and
other scripts correctly), CRLF line ends, a header row, ISO 8601 dates, amounts as decimal
strings with exactly the unit's decimals, and free text that would start a formula (=, +, -,
@) prefixed with an apostrophe.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accounts import service as accounts
from accounts.actor import Actor
from ledger import queries
from ledger import tables as t
from ledger.amounts import format_amount, format_optional
from ledger.reconcile import treasurer_coop
from ledger.seal_core import Period, StoredSeal, as_utc
from ledger.seals import seal_for

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
BOM = "\ufeff"
STATEMENT_COLUMNS = [
    "account",
    "holder",
    "entry",
    "date",
    "posted_at",
    "occurred_on",
    "transfer",
    "counterparty",
    "counterparty_name",
    "memo",
    "category",
    "amount",
    "balance",
]
TRIAL_BALANCE_COLUMNS = [
    "account",
    "holder",
    "kind",
    "status",
    "debits",
    "credits",
    "balance",
    "min_balance",
    "max_balance",
]


@dataclass(frozen=True, slots=True)
class StatementLine:
    version: int
    posted_at: datetime
    occurred_on: date
    transfer_id: int
    counterparty_id: int
    counterparty: str
    memo: str | None
    category: str | None
    amount: int
    balance: int
    balance_after: int  # as stored on the posting; equals `balance` when the history is whole


@dataclass(frozen=True, slots=True)
class Statement:
    account_id: int
    holder: str
    kind: str
    coop: str | None
    unit_code: str
    scale: int
    period: Period
    opening: int
    closing: int
    lines: tuple[StatementLine, ...]
    final: bool
    seal: StoredSeal | None

    @property
    def total_in(self) -> int:
        return sum(line.amount for line in self.lines if line.amount > 0)

    @property
    def total_out(self) -> int:
        return -sum(line.amount for line in self.lines if line.amount < 0)


@dataclass(frozen=True, slots=True)
class TrialBalanceRow:
    account_id: int
    holder: str
    kind: str
    status: str
    debits: int
    credits: int
    balance: int
    min_balance: int | None
    max_balance: int | None


@dataclass(frozen=True, slots=True)
class TrialBalance:
    coop: str
    unit_code: str
    scale: int
    at: datetime
    rows: tuple[TrialBalanceRow, ...]

    @property
    def total_debits(self) -> int:
        return sum(r.debits for r in self.rows)

    @property
    def total_credits(self) -> int:
        return sum(r.credits for r in self.rows)

    @property
    def total(self) -> int:
        return sum(r.balance for r in self.rows)


def _sums_before(
    conn: Connection,
    ledger_id: int,
    account_ids: Sequence[int] | None,
    moment: datetime,
    *,
    inclusive: bool = False,
) -> dict[int, int]:
    p = t.postings
    when = p.c.posted_at <= moment if inclusive else p.c.posted_at < moment
    query = sa.select(p.c.account_id, sa.func.sum(p.c.amount)).where(when).group_by(p.c.account_id)
    query = query.where(
        p.c.account_id.in_(account_ids)
        if account_ids is not None
        else p.c.account_id.in_(sa.select(t.accounts.c.id).where(t.accounts.c.ledger_id == ledger_id))
    )
    return {int(r[0]): int(r[1]) for r in conn.execute(query)}


def build_statements(
    conn: Connection,
    *,
    ledger_id: int,
    coop: str | None,
    coop_id: int | None,
    period: Period,
    now: datetime,
    account_ids: Sequence[int] | None = None,
) -> list[Statement]:
    """Statements of every account of a ledger (or of `account_ids`) for one month."""
    a, p, tr = t.accounts, t.postings, t.transfers
    unit_code, scale = queries.ledger_unit(conn, ledger_id)
    account_query = sa.select(a.c.id, a.c.holder, a.c.kind).where(a.c.ledger_id == ledger_id).order_by(a.c.id)
    if account_ids is not None:
        account_query = account_query.where(a.c.id.in_(account_ids))
    holders = {r.id: (r.holder, r.kind) for r in conn.execute(account_query)}
    ids = list(holders) if account_ids is not None else None
    openings = _sums_before(conn, ledger_id, ids, period.start)
    closings = _sums_before(conn, ledger_id, ids, period.end)
    other = a.alias("counterparty")
    counterparty_id = sa.case((tr.c.payer_id == p.c.account_id, tr.c.payee_id), else_=tr.c.payer_id)
    line_query = (
        sa.select(
            p.c.account_id,
            p.c.version,
            p.c.posted_at,
            p.c.amount,
            p.c.balance_after,
            tr.c.occurred_on,
            tr.c.id.label("transfer_id"),
            tr.c.memo,
            tr.c.category,
            counterparty_id.label("counterparty_id"),
            other.c.holder.label("counterparty"),
        )
        .select_from(p.join(tr, tr.c.id == p.c.transfer_id).outerjoin(other, other.c.id == counterparty_id))
        .where(p.c.posted_at >= period.start, p.c.posted_at < period.end)
        .order_by(p.c.account_id, p.c.version)
    )
    line_query = line_query.where(
        p.c.account_id.in_(ids)
        if ids is not None
        else p.c.account_id.in_(sa.select(a.c.id).where(a.c.ledger_id == ledger_id))
    )
    lines: dict[int, list[StatementLine]] = {}
    running: dict[int, int] = {}
    for r in conn.execute(line_query):
        balance = running.get(r.account_id, openings.get(r.account_id, 0)) + r.amount
        running[r.account_id] = balance
        lines.setdefault(r.account_id, []).append(
            StatementLine(
                r.version,
                as_utc(r.posted_at),
                r.occurred_on,
                r.transfer_id,
                r.counterparty_id,
                r.counterparty or "",
                r.memo,
                r.category,
                r.amount,
                balance,
                r.balance_after,
            )
        )
    seal = None if coop_id is None else seal_for(conn, coop_id=coop_id, period=period)
    final = period.is_over(now)
    return [
        Statement(
            account_id=account_id,
            holder=holder,
            kind=kind,
            coop=coop,
            unit_code=unit_code,
            scale=scale,
            period=period,
            opening=openings.get(account_id, 0),
            closing=closings.get(account_id, 0),
            lines=tuple(lines.get(account_id, ())),
            final=final,
            seal=seal,
        )
        for account_id, (holder, kind) in holders.items()
    ]


def account_statement(
    conn: Connection, *, actor: Actor, account_id: int, period: Period, now: datetime
) -> Statement:
    """One account's statement, for its holder or a treasurer of its co-op (else not found)."""
    view = queries.account_for_reader(conn, actor=actor, account_id=account_id)
    coop = accounts.coop_by_ledger(conn, view.ledger_id)
    (statement,) = build_statements(
        conn,
        ledger_id=view.ledger_id,
        coop=view.coop,
        coop_id=None if coop is None else coop.id,
        period=period,
        now=now,
        account_ids=[account_id],
    )
    return statement


def coop_statements(
    conn: Connection, *, actor: Actor | None, slug: str, period: Period, now: datetime
) -> list[Statement]:
    """Every account's statement of a co-op for one month (treasurer)."""
    coop = (
        treasurer_coop(conn, actor=actor, slug=slug, action="read every statement")
        if actor
        else accounts.get_coop(conn, slug)
    )
    return build_statements(
        conn, ledger_id=coop.ledger_id, coop=coop.slug, coop_id=coop.id, period=period, now=now
    )


def trial_balance(conn: Connection, *, actor: Actor | None, slug: str, at: datetime) -> TrialBalance:
    """Every account's balance, debits and credits at a moment, from the postings (treasurer)."""
    coop = (
        treasurer_coop(conn, actor=actor, slug=slug, action="read the trial balance")
        if actor
        else accounts.get_coop(conn, slug)
    )
    a, p = t.accounts, t.postings
    agg = (
        sa.select(
            p.c.account_id,
            sa.func.sum(p.c.amount).label("balance"),
            sa.func.sum(sa.case((p.c.amount < 0, -p.c.amount), else_=0)).label("debits"),
            sa.func.sum(sa.case((p.c.amount > 0, p.c.amount), else_=0)).label("credits"),
        )
        .where(
            p.c.posted_at <= at,
            p.c.account_id.in_(sa.select(a.c.id).where(a.c.ledger_id == coop.ledger_id)),
        )
        .group_by(p.c.account_id)
        .subquery()
    )
    rows = conn.execute(
        sa.select(
            a.c.id,
            a.c.holder,
            a.c.kind,
            a.c.status,
            a.c.min_balance,
            a.c.max_balance,
            agg.c.balance,
            agg.c.debits,
            agg.c.credits,
        )
        .select_from(a.outerjoin(agg, agg.c.account_id == a.c.id))
        .where(a.c.ledger_id == coop.ledger_id, a.c.created_at <= at)
        .order_by(a.c.id)
    )
    return TrialBalance(
        coop=coop.slug,
        unit_code=coop.unit_code,
        scale=coop.scale,
        at=at,
        rows=tuple(
            TrialBalanceRow(
                r.id,
                r.holder,
                r.kind,
                r.status,
                int(r.debits or 0),
                int(r.credits or 0),
                int(r.balance or 0),
                r.min_balance,
                r.max_balance,
            )
            for r in rows
        ),
    )


# --- CSV ----------------------------------------------------------------------------------

_FORMULA = re.compile(r"^[=+\-@\t\r]")


def text_cell(value: str | None) -> str:
    """Free text for a spreadsheet cell: never a formula."""
    if value is None:
        return ""
    return "'" + value if _FORMULA.match(value) else value


def iso_moment(moment: datetime) -> str:
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _csv(rows: Iterable[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    buffer.write(BOM)
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def statement_rows(statement: Statement) -> Iterable[list[str]]:
    s = statement

    def fmt(amount: int) -> str:
        return format_amount(amount, scale=s.scale)

    holder = text_cell(s.holder)
    yield [
        str(s.account_id),
        holder,
        "opening",
        s.period.first_day.isoformat(),
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        fmt(s.opening),
    ]
    for line in s.lines:
        yield [
            str(s.account_id),
            holder,
            "line",
            as_utc(line.posted_at).date().isoformat(),
            iso_moment(line.posted_at),
            line.occurred_on.isoformat(),
            str(line.transfer_id),
            str(line.counterparty_id),
            text_cell(line.counterparty),
            text_cell(line.memo),
            text_cell(line.category),
            fmt(line.amount),
            fmt(line.balance),
        ]
    yield [
        str(s.account_id),
        holder,
        "closing",
        s.period.last_day.isoformat(),
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        fmt(s.closing),
    ]


def statements_csv(statements: Iterable[Statement]) -> bytes:
    """One CSV, an opening row, the lines and a closing row per account."""
    return _csv([STATEMENT_COLUMNS, *(row for s in statements for row in statement_rows(s))])


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:40] or "account"


def statements_zip(statements: Sequence[Statement]) -> bytes:
    """A zip with one CSV per account and a summary.csv (opening, in, out, closing)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        summary: list[Sequence[str]] = [
            [
                "account",
                "holder",
                "kind",
                "period",
                "opening",
                "total_in",
                "total_out",
                "closing",
                "seal",
            ]
        ]
        for s in statements:
            name = f"{s.period}/{s.account_id}-{_file_name(s.holder)}.csv"
            archive.writestr(name, statements_csv([s]))
            amounts = [s.opening, s.total_in, s.total_out, s.closing]
            summary.append(
                [
                    str(s.account_id),
                    text_cell(s.holder),
                    s.kind,
                    s.period.label,
                    *(format_amount(a, scale=s.scale) for a in amounts),
                    s.seal.digest if s.seal else "",
                ]
            )
        period = statements[0].period.label if statements else "statements"
        archive.writestr(f"{period}/summary.csv", _csv(summary))
    return buffer.getvalue()


def trial_balance_csv(tb: TrialBalance) -> bytes:
    def fmt(amount: int | None) -> str:
        return format_optional(amount, scale=tb.scale) or ""

    rows: list[Sequence[str]] = [TRIAL_BALANCE_COLUMNS]
    for r in tb.rows:
        rows.append(
            [
                str(r.account_id),
                text_cell(r.holder),
                r.kind,
                r.status,
                fmt(r.debits),
                fmt(r.credits),
                fmt(r.balance),
                fmt(r.min_balance),
                fmt(r.max_balance),
            ]
        )
    rows.append(["total", "", "", "", fmt(tb.total_debits), fmt(tb.total_credits), fmt(tb.total), "", ""])
    return _csv(rows)
