"""Treasurer's reports: reconciliation, trial balance, statements (JSON, CSV, zip), seals.

JSON by default; CSV with `Accept: text/csv` or the `.csv` path; the whole co-op's statements
as a zip of CSVs with `Accept: application/zip` or the `.zip` path. Reports read one consistent
snapshot of the database (ledger.reconcile.snapshot).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from fractions import Fraction
from typing import Any, TypeVar

from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter
from sqlalchemy.engine import Connection

from accounts.actor import Actor
from api import present
from api import schemas_treasurer as ts
from api.runtime import Runtime
from api.schemas import UnitOut
from ledger import reconcile, seal_core, seals, statements
from ledger.amounts import format_amount, format_optional
from ledger.errors import DomainError, Problem
from ledger.seal_core import Period
from ledger.statements import CSV_MEDIA_TYPE, Statement

T = TypeVar("T")
ZIP_MEDIA_TYPE = "application/zip"
Req = Request[Any, Any, Any]


def _snapshot(runtime: Runtime, fn: Callable[[Connection], T]) -> T:
    with reconcile.snapshot(runtime.engine) as conn:
        return fn(conn)


def _period(text: str | None, now: datetime) -> Period:
    if text is None:
        return Period.of(now)
    try:
        return Period.parse(text)
    except ValueError as exc:
        raise DomainError(
            "validation_failed", str(exc), [Problem("validation_failed", str(exc), "period")]
        ) from exc


def _wants(request: Req, *choices: str) -> str | None:
    accept = request.headers.get("accept", "").lower()
    return next((c for c in choices if c in accept), None)


def _download(content: bytes, media_type: str, filename: str) -> Response[bytes]:
    return Response(
        content=content,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _amount(value: int, scale: int) -> str:
    return format_amount(value, scale=scale)


def statement_out(s: Statement) -> ts.StatementOut:
    return ts.StatementOut(
        account=ts.StatementAccount(id=str(s.account_id), holder=s.holder, kind=s.kind),
        coop=s.coop,
        unit=UnitOut(code=s.unit_code, scale=s.scale),
        period=s.period.label,
        start=s.period.start,
        end=s.period.end,
        final=s.final,
        opening_balance=_amount(s.opening, s.scale),
        total_in=_amount(s.total_in, s.scale),
        total_out=_amount(s.total_out, s.scale),
        closing_balance=_amount(s.closing, s.scale),
        lines=[
            ts.StatementLineOut(
                posted_at=line.posted_at,
                occurred_on=line.occurred_on,
                transfer=str(line.transfer_id),
                counterparty=str(line.counterparty_id),
                counterparty_name=line.counterparty,
                memo=line.memo,
                category=line.category,
                amount=_amount(line.amount, s.scale),
                balance=_amount(line.balance, s.scale),
            )
            for line in s.lines
        ],
        seal=None
        if s.seal is None
        else ts.SealRef(
            period=s.period.label,
            digest=s.seal.digest,
            previous_digest=s.seal.previous_digest,
            created_at=s.seal.created_at,
        ),
    )


def seal_out(v: seals.SealView) -> ts.SealOut:
    return ts.SealOut(
        coop=v.coop,
        period=v.period,
        period_start=v.period_start,
        period_end=v.period_end,
        digest=v.digest,
        previous_digest=v.previous_digest,
        transfer_count=v.transfer_count,
        posting_count=v.posting_count,
        created_at=v.created_at,
    )


def reconciliation_out(r: reconcile.ReconciliationReport) -> ts.ReconciliationOut:
    scale = r.scale

    def limit(b: reconcile.LimitBreach) -> ts.LimitOut:
        return ts.LimitOut(
            account=str(b.account_id),
            holder=b.holder,
            balance=_amount(b.balance, scale),
            min_balance=format_optional(b.min_balance, scale=scale),
            max_balance=format_optional(b.max_balance, scale=scale),
        )

    return ts.ReconciliationOut(
        coop=r.coop,
        unit=UnitOut(code=r.unit_code, scale=scale),
        at=r.at,
        ok=r.ok,
        ledger_sum=_amount(r.ledger_sum, scale),
        postings_sum=_amount(r.postings_sum, scale),
        account_count=r.account_count,
        transfer_count=r.transfer_count,
        seal_count=r.seal_count,
        mismatched_accounts=[
            ts.AccountDifference(
                account=str(c.id),
                holder=c.holder,
                balance=_amount(c.balance, scale),
                postings_sum=_amount(c.postings_sum, scale),
                last_balance_after=format_optional(c.last_balance_after, scale=scale),
                debits=_amount(c.debits, scale),
                postings_debits=_amount(c.postings_debits, scale),
                credits=_amount(c.credits, scale),
                postings_credits=_amount(c.postings_credits, scale),
                version=c.version,
                last_version=c.last_version,
                differences=c.differences,
            )
            for c in r.mismatched_accounts
        ],
        beyond_limits=[limit(b) for b in r.beyond_limits],
        at_limit=[limit(b) for b in r.at_limit],
        pending_claims=[
            ts.PendingClaimOut(
                transfer=str(c.transfer_id),
                payer=str(c.payer_id),
                payer_name=c.payer,
                payee=str(c.payee_id),
                payee_name=c.payee,
                amount=_amount(c.amount, scale),
                created_at=c.created_at,
                expires_at=c.expires_at,
                age_days=c.age_days,
                overdue=c.overdue,
            )
            for c in r.pending_claims
        ],
        federation=None if r.federation is None else federation_out(r.federation),
        findings=[ts.FindingOut(code=f.code, subject=f.subject, detail=f.detail) for f in r.findings],
    )


def federation_out(p: reconcile.FederationPosition) -> ts.FederationPositionOut:
    rate = reconcile.exact_decimal(Fraction(p.rate_numerator, p.rate_denominator), 0)
    return ts.FederationPositionOut(
        federation=p.federation,
        federation_unit=UnitOut(code=p.unit_code, scale=p.scale),
        rate=rate,
        mirror_account=str(p.mirror_account_id),
        mirror_balance=_amount(p.mirror_balance, p.coop_scale),
        mirror_from_payments=_amount(p.mirror_from_payments, p.coop_scale),
        federation_account=str(p.federation_account_id),
        federation_balance=_amount(p.federation_balance, p.scale),
        from_payments=_amount(p.from_payments, p.scale),
        from_clearing=_amount(p.from_clearing, p.scale),
        exact_from_payments=reconcile.exact_decimal(p.exact_from_payments, p.scale),
        rounding_difference=reconcile.exact_decimal(p.rounding_difference, p.scale),
        unexplained_mirror=_amount(p.unexplained_mirror, p.coop_scale),
        unexplained_federation=_amount(p.unexplained_federation, p.scale),
        ok=p.ok,
    )


def trial_balance_out(tb: statements.TrialBalance) -> ts.TrialBalanceOut:
    scale = tb.scale
    return ts.TrialBalanceOut(
        coop=tb.coop,
        unit=UnitOut(code=tb.unit_code, scale=scale),
        at=tb.at,
        accounts=[
            ts.TrialBalanceLine(
                account=str(r.account_id),
                holder=r.holder,
                kind=r.kind,
                status=r.status,
                debits=_amount(r.debits, scale),
                credits=_amount(r.credits, scale),
                balance=_amount(r.balance, scale),
                min_balance=format_optional(r.min_balance, scale=scale),
                max_balance=format_optional(r.max_balance, scale=scale),
            )
            for r in tb.rows
        ],
        total_debits=_amount(tb.total_debits, scale),
        total_credits=_amount(tb.total_credits, scale),
        total=_amount(tb.total, scale),
        balanced=tb.total == 0 and tb.total_debits == tb.total_credits,
    )


class TreasurerController(Controller):
    path = "/coops/{slug:str}"
    tags = ["treasurer"]

    @get("/reconciliation", sync_to_thread=True)
    def reconciliation(self, slug: str, actor: Actor, runtime: Runtime) -> ts.ReconciliationOut:
        """Are the books whole? Ledger sum, cached balances against postings, limits, pending
        claims, seals (treasurer). `ok` is false when anything is wrong."""
        now = runtime.clock()
        report = _snapshot(
            runtime,
            lambda conn: reconcile.reconciliation_report(conn, actor=actor, slug=slug, now=now),
        )
        return reconciliation_out(report)

    def _trial_balance(
        self, slug: str, actor: Actor, runtime: Runtime, at: str | None
    ) -> statements.TrialBalance:
        moment = present.iso_datetime(at, field="at") or runtime.clock()
        return _snapshot(
            runtime, lambda conn: statements.trial_balance(conn, actor=actor, slug=slug, at=moment)
        )

    @get("/trial-balance", sync_to_thread=True)
    def trial_balance(
        self, request: Req, slug: str, actor: Actor, runtime: Runtime, at: str | None = None
    ) -> Response[Any]:
        """Every account's debits, credits and balance at `at` (default now), from the postings
        (treasurer). CSV with `Accept: text/csv`."""
        tb = self._trial_balance(slug, actor, runtime, at)
        if _wants(request, "text/csv"):
            return _download(statements.trial_balance_csv(tb), CSV_MEDIA_TYPE, f"trial-balance-{slug}.csv")
        return Response(trial_balance_out(tb))

    @get("/trial-balance.csv", sync_to_thread=True, media_type=CSV_MEDIA_TYPE)
    def trial_balance_csv(
        self, slug: str, actor: Actor, runtime: Runtime, at: str | None = None
    ) -> Response[bytes]:
        tb = self._trial_balance(slug, actor, runtime, at)
        return _download(statements.trial_balance_csv(tb), CSV_MEDIA_TYPE, f"trial-balance-{slug}.csv")

    def _statements(self, slug: str, actor: Actor, runtime: Runtime, period: str | None) -> list[Statement]:
        now = runtime.clock()
        month = _period(period, now)
        return _snapshot(
            runtime,
            lambda conn: statements.coop_statements(conn, actor=actor, slug=slug, period=month, now=now),
        )

    @get("/statements", sync_to_thread=True)
    def statements(
        self,
        request: Req,
        slug: str,
        actor: Actor,
        runtime: Runtime,
        period: str | None = Parameter(default=None, description="YYYY-MM"),
    ) -> Response[Any]:
        """Every account's statement for a month (treasurer): JSON; one CSV with an account
        column (`Accept: text/csv`); or a zip of one CSV per account (`Accept: application/zip`)."""
        found = self._statements(slug, actor, runtime, period)
        label = found[0].period.label if found else (period or "")
        wanted = _wants(request, ZIP_MEDIA_TYPE, "text/csv")
        if wanted == ZIP_MEDIA_TYPE:
            return _download(
                statements.statements_zip(found), ZIP_MEDIA_TYPE, f"statements-{slug}-{label}.zip"
            )
        if wanted == "text/csv":
            return _download(
                statements.statements_csv(found), CSV_MEDIA_TYPE, f"statements-{slug}-{label}.csv"
            )
        return Response(
            ts.CoopStatementsOut(coop=slug, period=label, statements=[statement_out(s) for s in found])
        )

    @get("/statements.csv", sync_to_thread=True, media_type=CSV_MEDIA_TYPE)
    def statements_csv(
        self, slug: str, actor: Actor, runtime: Runtime, period: str | None = None
    ) -> Response[bytes]:
        found = self._statements(slug, actor, runtime, period)
        label = found[0].period.label if found else ""
        return _download(statements.statements_csv(found), CSV_MEDIA_TYPE, f"statements-{slug}-{label}.csv")

    @get("/statements.zip", sync_to_thread=True, media_type=ZIP_MEDIA_TYPE)
    def statements_zip(
        self, slug: str, actor: Actor, runtime: Runtime, period: str | None = None
    ) -> Response[bytes]:
        found = self._statements(slug, actor, runtime, period)
        label = found[0].period.label if found else ""
        return _download(statements.statements_zip(found), ZIP_MEDIA_TYPE, f"statements-{slug}-{label}.zip")

    @post("/seals", sync_to_thread=True, status_code=201)
    def seal(self, slug: str, data: ts.SealIn, actor: Actor, runtime: Runtime) -> ts.SealOut:
        """Seal a month that is over (treasurer): a SHA-256 digest over its final transfers and
        postings, chained to the previous seal. 409 `period_not_over`, `already_sealed`,
        `seal_out_of_order`."""
        now = runtime.clock()
        period = _period(data.period, now)
        return seal_out(seals.seal_period(runtime.engine, actor=actor, slug=slug, period=period, now=now))

    @get("/seals", sync_to_thread=True)
    def list_seals(self, slug: str, actor: Actor, runtime: Runtime) -> ts.SealList:
        """Every seal of the co-op, oldest first (any member may read them)."""
        found = runtime.read(lambda conn: seals.list_seals(conn, actor=actor, slug=slug))
        return ts.SealList(items=[seal_out(v) for v in found], encoding=seal_core.SEAL_FORMAT)


class StatementController(Controller):
    path = "/accounts/{account_id:str}"
    tags = ["accounts"]

    def _statement(self, account_id: str, actor: Actor, runtime: Runtime, period: str | None) -> Statement:
        aid = present.id_in(account_id)
        now = runtime.clock()
        month = _period(period, now)
        return _snapshot(
            runtime,
            lambda conn: statements.account_statement(
                conn, actor=actor, account_id=aid, period=month, now=now
            ),
        )

    @get("/statement", sync_to_thread=True)
    def statement(
        self,
        request: Req,
        account_id: str,
        actor: Actor,
        runtime: Runtime,
        period: str | None = Parameter(default=None, description="YYYY-MM"),
    ) -> Response[Any]:
        """Opening balance, every line, closing balance for a month (default: this month), with
        the month's seal once sealed. For the holder and the co-op's treasurers. CSV with
        `Accept: text/csv`."""
        found = self._statement(account_id, actor, runtime, period)
        if _wants(request, "text/csv"):
            return _download(
                statements.statements_csv([found]),
                CSV_MEDIA_TYPE,
                f"statement-{found.account_id}-{found.period}.csv",
            )
        return Response(statement_out(found))

    @get("/statement.csv", sync_to_thread=True, media_type=CSV_MEDIA_TYPE)
    def statement_csv(
        self, account_id: str, actor: Actor, runtime: Runtime, period: str | None = None
    ) -> Response[bytes]:
        found = self._statement(account_id, actor, runtime, period)
        return _download(
            statements.statements_csv([found]),
            CSV_MEDIA_TYPE,
            f"statement-{found.account_id}-{found.period}.csv",
        )
