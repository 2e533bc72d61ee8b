"""Reconciliation: are a co-op's books whole? And `commons verify` over every ledger.

Every check here recomputes from the append-only history and compares with what the
application keeps (cached balances and counters, balance_after chains, seals), so it catches
edits made behind the application's back, e.g. with the immutability triggers disabled:

- the ledger's sum (cached balances, and postings) must be 0;
- per account: cached balance = sum of postings = last posting's balance_after; debits, credits
  and version agree with the postings;
- per account: versions run 1..n without gaps and each balance_after = the running sum;
- per transfer: a posted transfer has exactly two postings, -amount on the payer and +amount on
  the payee; any other status has none;
- per sealed month: the recomputed digest and counts equal the seal's (ledger/seals.py).

Reports read one consistent snapshot (REPEATABLE READ on PostgreSQL, a deferred read
transaction on SQLite), so a report taken while members trade never shows false differences.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from accounts import service as accounts
from accounts.actor import Actor
from accounts.service import CoopRecord
from clearing import tables as ct
from ledger import tables as t
from ledger.amounts import format_amount
from ledger.core import TransferStatus
from ledger.db import is_sqlite, read_transaction
from ledger.errors import DomainError
from ledger.seal_core import Finding, as_utc
from ledger.seal_models import seals as seal_table
from ledger.seals import verify_coop_seals

MAX_LISTED = 100  # per kind of finding; the rest are counted


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction in which every statement sees the same committed state."""
    if is_sqlite(engine):
        with read_transaction(engine) as conn:
            yield conn
        return
    with (
        engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn,
        conn.begin(),
    ):
        conn.execute(sa.text("SET TRANSACTION READ ONLY"))
        yield conn


def treasurer_coop(conn: Connection, *, actor: Actor, slug: str, action: str = "see this") -> CoopRecord:
    """The co-op, if the actor is one of its treasurers; `forbidden` otherwise."""
    coop = accounts.get_coop(conn, slug)
    accounts.require_coop_reader(actor, coop)
    if not actor.is_treasurer_of_coop(coop.id):
        raise DomainError("forbidden", f"only a treasurer of this co-op may {action}")
    return coop


@dataclass(frozen=True, slots=True)
class AccountCheck:
    """An account as cached, beside what its postings say."""

    id: int
    holder: str
    kind: str
    status: str
    balance: int
    debits: int
    credits: int
    version: int
    min_balance: int | None
    max_balance: int | None
    postings_sum: int
    postings_debits: int
    postings_credits: int
    posting_count: int
    last_version: int
    last_balance_after: int | None

    @property
    def differences(self) -> list[str]:
        out = []
        if self.balance != self.postings_sum:
            out.append("balance")
        if self.last_balance_after is not None and self.last_balance_after != self.postings_sum:
            out.append("last balance_after")
        if self.last_balance_after is None and self.balance != 0:
            out.append("balance without postings")
        if self.debits != self.postings_debits:
            out.append("debits")
        if self.credits != self.postings_credits:
            out.append("credits")
        if self.version != self.last_version:
            out.append("version")
        return out


@dataclass(frozen=True, slots=True)
class LimitBreach:
    account_id: int
    holder: str
    balance: int
    min_balance: int | None
    max_balance: int | None


@dataclass(frozen=True, slots=True)
class PendingClaim:
    transfer_id: int
    payer_id: int
    payer: str
    payee_id: int
    payee: str
    amount: int
    created_at: datetime
    expires_at: datetime | None
    age_days: float
    overdue: bool


@dataclass(frozen=True, slots=True)
class FederationPosition:
    """A member co-op's two views of its position at its federation, and what explains them.

    The co-op's ledger holds the federation's (mirror) account, in the co-op's unit; the
    federation's ledger holds the co-op's account, in the federation's unit. Cross-co-op
    payments move both (their recorded legs explain them), converted at the co-op's rate with
    half-even rounding; clearing runs settle debts in the federation ledger only.
    """

    federation: str
    unit_code: str
    scale: int
    coop_scale: int
    rate_numerator: int
    rate_denominator: int
    mirror_account_id: int
    mirror_balance: int  # co-op unit
    mirror_from_payments: int  # co-op unit: the recorded legs in this co-op
    federation_account_id: int
    federation_balance: int  # federation unit
    from_payments: int  # federation unit: the recorded federation legs
    from_clearing: int  # federation unit: clearing runs' settlements in mutual credit
    exact_from_payments: Fraction  # federation unit's smallest step, unrounded

    @property
    def rounding_difference(self) -> Fraction:
        """Cumulative rounding of the conversions: exact minus posted, in smallest steps."""
        return self.exact_from_payments - self.from_payments

    @property
    def unexplained_mirror(self) -> int:
        return self.mirror_balance - self.mirror_from_payments

    @property
    def unexplained_federation(self) -> int:
        return self.federation_balance - self.from_payments - self.from_clearing

    @property
    def ok(self) -> bool:
        return self.unexplained_mirror == 0 and self.unexplained_federation == 0


def exact_decimal(value: Fraction, scale: int) -> str:
    """`value` smallest steps of a unit with `scale` decimals, as an exact decimal string
    (more decimals than the unit has where the value needs them; rates are decimal, so every
    value here has a power-of-ten denominator)."""
    digits = scale
    while (value * 10 ** (digits - scale)).denominator != 1 and digits < scale + 30:
        digits += 1
    whole = value * 10 ** (digits - scale)
    sign, magnitude = ("-" if whole < 0 else ""), abs(int(whole))
    if digits == 0:
        return f"{sign}{magnitude}"
    integer, fraction = divmod(magnitude, 10**digits)
    return f"{sign}{integer}.{fraction:0{digits}d}"


def federation_position(conn: Connection, coop: CoopRecord) -> FederationPosition | None:
    """The co-op's position at its federation, or None when it is in none."""
    fm, cp, crp, tr, a = (
        ct.federation_members,
        ct.cross_coop_payments,
        ct.clearing_run_participants,
        t.transfers,
        t.accounts,
    )
    member = conn.execute(sa.select(fm).where(fm.c.coop_id == coop.id)).first()
    if member is None:
        return None
    federation = conn.execute(
        sa.select(t.federations.c.slug, t.federations.c.unit_code, t.federations.c.unit_scale).where(
            t.federations.c.id == member.federation_id
        )
    ).one()
    balances = dict(
        conn.execute(
            sa.select(a.c.id, a.c.balance).where(a.c.id.in_([member.mirror_account_id, member.account_id]))
        ).all()
    )
    shift = Fraction(10) ** (federation.unit_scale - coop.scale)
    mirror_from_payments = from_payments = 0
    exact = Fraction(0)
    paid = conn.execute(
        sa.select(cp.c.payer_amount, cp.c.federation_amount, cp.c.payer_rate_num, cp.c.payer_rate_den)
        .join(tr, tr.c.id == cp.c.payer_transfer_id)
        .where(tr.c.payee_id == member.mirror_account_id)
    )
    for r in paid:  # a member here paid someone elsewhere: the mirror was credited
        mirror_from_payments += r.payer_amount
        from_payments -= r.federation_amount
        exact -= Fraction(r.payer_amount * r.payer_rate_num, r.payer_rate_den) * shift
    received = conn.execute(
        sa.select(cp.c.payee_amount, cp.c.federation_amount, cp.c.payee_rate_num, cp.c.payee_rate_den)
        .join(tr, tr.c.id == cp.c.payee_transfer_id)
        .where(tr.c.payer_id == member.mirror_account_id)
    )
    for r in received:  # someone elsewhere paid a member here: the mirror was debited
        mirror_from_payments -= r.payee_amount
        from_payments += r.federation_amount
        exact += Fraction(r.payee_amount * r.payee_rate_num, r.payee_rate_den) * shift
    settled = sa.select(crp.c.credit_transfer_id).where(crp.c.credit_transfer_id.is_not(None))
    into = sa.func.coalesce(
        sa.func.sum(sa.case((tr.c.payee_id == member.account_id, tr.c.amount), else_=-tr.c.amount)),
        0,
    )
    from_clearing = conn.execute(
        sa.select(into).where(
            tr.c.id.in_(settled),
            tr.c.status == TransferStatus.POSTED.value,
            sa.or_(tr.c.payer_id == member.account_id, tr.c.payee_id == member.account_id),
        )
    ).scalar_one()
    return FederationPosition(
        federation=federation.slug,
        unit_code=federation.unit_code,
        scale=federation.unit_scale,
        coop_scale=coop.scale,
        rate_numerator=member.rate_num,
        rate_denominator=member.rate_den,
        mirror_account_id=member.mirror_account_id,
        mirror_balance=int(balances.get(member.mirror_account_id, 0)),
        mirror_from_payments=mirror_from_payments,
        federation_account_id=member.account_id,
        federation_balance=int(balances.get(member.account_id, 0)),
        from_payments=from_payments,
        from_clearing=int(from_clearing),
        exact_from_payments=exact,
    )


def federation_findings(coop: CoopRecord, position: FederationPosition | None) -> list[Finding]:
    if position is None or position.ok:
        return []
    p = position
    subject = f"{coop.slug} position at {p.federation}"
    findings = []
    if p.unexplained_mirror:
        findings.append(
            Finding(
                "federation_position_differs",
                subject,
                f"the federation account {p.mirror_account_id} holds "
                f"{_fmt(p.mirror_balance, coop.scale)}; the cross-co-op payments explain "
                f"{_fmt(p.mirror_from_payments, coop.scale)} "
                f"({_fmt(p.unexplained_mirror, coop.scale)} unexplained)",
            )
        )
    if p.unexplained_federation:
        findings.append(
            Finding(
                "federation_position_differs",
                subject,
                f"the co-op's account {p.federation_account_id} in the federation ledger holds "
                f"{_fmt(p.federation_balance, p.scale)} {p.unit_code}; payments and clearing "
                f"explain {_fmt(p.from_payments + p.from_clearing, p.scale)} "
                f"({_fmt(p.unexplained_federation, p.scale)} {p.unit_code} unexplained)",
            )
        )
    return findings


@dataclass(frozen=True, slots=True)
class ReconciliationReport:
    coop: str
    unit_code: str
    scale: int
    at: datetime
    account_count: int
    transfer_count: int
    ledger_sum: int
    postings_sum: int
    mismatched_accounts: list[AccountCheck]
    beyond_limits: list[LimitBreach]
    at_limit: list[LimitBreach]
    pending_claims: list[PendingClaim]
    seal_count: int
    findings: list[Finding] = field(default_factory=list)
    federation: FederationPosition | None = None

    @property
    def ok(self) -> bool:
        return not self.findings


def _fmt(amount: int | None, scale: int) -> str:
    return "none" if amount is None else format_amount(amount, scale=scale)


def _ledger_accounts(ledger_id: int) -> sa.Select[Any]:
    return sa.select(t.accounts.c.id).where(t.accounts.c.ledger_id == ledger_id)


def account_checks(conn: Connection, ledger_id: int) -> list[AccountCheck]:
    a, p = t.accounts, t.postings
    agg = (
        sa.select(
            p.c.account_id,
            sa.func.sum(p.c.amount).label("psum"),
            sa.func.sum(sa.case((p.c.amount < 0, -p.c.amount), else_=0)).label("pdebits"),
            sa.func.sum(sa.case((p.c.amount > 0, p.c.amount), else_=0)).label("pcredits"),
            sa.func.count().label("n"),
            sa.func.max(p.c.version).label("maxv"),
        )
        .where(p.c.account_id.in_(_ledger_accounts(ledger_id)))
        .group_by(p.c.account_id)
        .subquery()
    )
    last = p.alias("last_posting")
    rows = conn.execute(
        sa.select(
            a,
            agg.c.psum,
            agg.c.pdebits,
            agg.c.pcredits,
            agg.c.n,
            agg.c.maxv,
            last.c.balance_after.label("last_after"),
        )
        .select_from(
            a.outerjoin(agg, agg.c.account_id == a.c.id).outerjoin(
                last, sa.and_(last.c.account_id == a.c.id, last.c.version == agg.c.maxv)
            )
        )
        .where(a.c.ledger_id == ledger_id)
        .order_by(a.c.id)
    )
    return [
        AccountCheck(
            id=r.id,
            holder=r.holder,
            kind=r.kind,
            status=r.status,
            balance=r.balance,
            debits=r.debits,
            credits=r.credits,
            version=r.version,
            min_balance=r.min_balance,
            max_balance=r.max_balance,
            postings_sum=int(r.psum or 0),
            postings_debits=int(r.pdebits or 0),
            postings_credits=int(r.pcredits or 0),
            posting_count=int(r.n or 0),
            last_version=int(r.maxv or 0),
            last_balance_after=r.last_after,
        )
        for r in rows
    ]


def _balance_findings(subject: str, checks: list[AccountCheck], scale: int) -> list[Finding]:
    findings: list[Finding] = []
    for c in checks:
        diffs = c.differences
        if not diffs:
            continue
        parts = [
            f"cached balance {_fmt(c.balance, scale)}, "
            f"postings sum to {_fmt(c.postings_sum, scale)}"
            + (
                f", last posting says {_fmt(c.last_balance_after, scale)}"
                if c.last_balance_after is not None
                else ""
            )
        ]
        if "debits" in diffs:
            parts.append(
                f"debits {_fmt(c.debits, scale)} cached, {_fmt(c.postings_debits, scale)} in postings"
            )
        if "credits" in diffs:
            parts.append(
                f"credits {_fmt(c.credits, scale)} cached, {_fmt(c.postings_credits, scale)} in postings"
            )
        if "version" in diffs:
            parts.append(f"version {c.version} vs last posting {c.last_version}")
        findings.append(
            Finding("balance_mismatch", f"{subject} account {c.id} ({c.holder})", "; ".join(parts))
        )
    return findings


def _limit_breaches(checks: list[AccountCheck]) -> tuple[list[LimitBreach], list[LimitBreach]]:
    beyond: list[LimitBreach] = []
    at: list[LimitBreach] = []
    for c in checks:
        breach = LimitBreach(c.id, c.holder, c.postings_sum, c.min_balance, c.max_balance)
        values = {c.balance, c.postings_sum}
        if any(
            (c.min_balance is not None and v < c.min_balance)
            or (c.max_balance is not None and v > c.max_balance)
            for v in values
        ):
            beyond.append(breach)
        elif c.postings_sum in {c.min_balance, c.max_balance}:
            at.append(breach)
    return beyond, at


def posting_chain_findings(conn: Connection, ledger_id: int, subject: str, scale: int) -> list[Finding]:
    """The first posting of each account where versions skip or balance_after stops adding up."""
    p = t.postings
    inner = (
        sa.select(
            p.c.account_id,
            p.c.version,
            p.c.transfer_id,
            p.c.amount,
            p.c.balance_after,
            sa.func.sum(p.c.amount)
            .over(partition_by=p.c.account_id, order_by=p.c.version, rows=(None, 0))
            .label("running"),
            sa.func.row_number().over(partition_by=p.c.account_id, order_by=p.c.version).label("n"),
        )
        .where(p.c.account_id.in_(_ledger_accounts(ledger_id)))
        .subquery()
    )
    rows = conn.execute(
        sa.select(inner)
        .where(sa.or_(inner.c.balance_after != inner.c.running, inner.c.version != inner.c.n))
        .order_by(inner.c.account_id, inner.c.version)
    )
    findings: list[Finding] = []
    seen: set[int] = set()
    for r in rows:
        if r.account_id in seen:
            continue
        seen.add(r.account_id)
        where = f"{subject} account {r.account_id} posting v{r.version} (transfer {r.transfer_id})"
        if r.version != r.n:
            if r.version > r.n + 1:
                missing = f"versions {r.n} to {r.version - 1}"
                detail = f"is the account's posting #{r.n}: {missing} are missing"
            elif r.version == r.n + 1:
                detail = f"is the account's posting #{r.n}: version {r.n} is missing"
            else:
                detail = f"version {r.version} appears where #{r.n} belongs"
            findings.append(Finding("posting_missing", where, detail))
        else:
            findings.append(
                Finding(
                    "posting_chain_broken",
                    where,
                    f"balance_after {_fmt(r.balance_after, scale)} but the postings up to it "
                    f"sum to {_fmt(int(r.running), scale)}",
                )
            )
    return findings


def transfer_findings(conn: Connection, ledger_id: int, subject: str, scale: int) -> list[Finding]:
    """Transfers whose postings do not match them; postings booked on another ledger's transfer."""
    tr, p, a = t.transfers, t.postings, t.accounts
    n = sa.func.count(p.c.account_id)
    payer_ok = sa.func.sum(
        sa.case((sa.and_(p.c.account_id == tr.c.payer_id, p.c.amount == -tr.c.amount), 1), else_=0)
    )
    payee_ok = sa.func.sum(
        sa.case((sa.and_(p.c.account_id == tr.c.payee_id, p.c.amount == tr.c.amount), 1), else_=0)
    )
    moved = sa.func.coalesce(sa.func.sum(sa.case((p.c.amount > 0, p.c.amount), else_=0)), 0)
    posted = tr.c.status == TransferStatus.POSTED.value
    rows = conn.execute(
        sa.select(
            tr.c.id,
            tr.c.status,
            tr.c.amount,
            n.label("n"),
            payer_ok.label("payer_ok"),
            payee_ok.label("payee_ok"),
            moved.label("moved"),
        )
        .select_from(tr.outerjoin(p, p.c.transfer_id == tr.c.id))
        .where(tr.c.ledger_id == ledger_id)
        .group_by(tr.c.id, tr.c.status, tr.c.amount)
        .having(
            sa.or_(
                sa.and_(posted, sa.not_(sa.and_(n == 2, payer_ok == 1, payee_ok == 1))),
                sa.and_(sa.not_(posted), n > 0),
            )
        )
        .order_by(tr.c.id)
    ).all()
    findings: list[Finding] = []
    for r in rows:
        where = f"{subject} transfer {r.id}"
        if r.status != TransferStatus.POSTED.value:
            detail = f"is {r.status} but has {r.n} posting(s)"
        elif r.n == 0:
            detail = (
                f"is posted ({_fmt(r.amount, scale)}) but has no postings: "
                "it was inserted behind the ledger's back"
            )
        elif r.n != 2:
            detail = f"is posted but has {r.n} posting(s) instead of 2 (payer and payee)"
        else:
            detail = (
                f"amount {_fmt(r.amount, scale)} but its postings move "
                f"{_fmt(int(r.moved), scale)} (payer/payee legs disagree)"
            )
        findings.append(Finding("transfer_postings_differ", where, detail))
    foreign = conn.execute(
        sa.select(p.c.account_id, p.c.version, p.c.transfer_id)
        .select_from(p.join(a, a.c.id == p.c.account_id).join(tr, tr.c.id == p.c.transfer_id))
        .where(a.c.ledger_id == ledger_id, tr.c.ledger_id != ledger_id)
    )
    for r in foreign:
        findings.append(
            Finding(
                "transfer_postings_differ",
                f"{subject} account {r.account_id} posting v{r.version}",
                f"books transfer {r.transfer_id}, which belongs to another ledger",
            )
        )
    return findings


def _cap(findings: list[Finding]) -> list[Finding]:
    """At most MAX_LISTED findings per code, then one that counts the rest."""
    out: list[Finding] = []
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.code] = counts.get(f.code, 0) + 1
        if counts[f.code] <= MAX_LISTED:
            out.append(f)
    for code, total in counts.items():
        if total > MAX_LISTED:
            out.append(Finding(code, "…", f"and {total - MAX_LISTED} more of this kind"))
    return out


def ledger_integrity(
    conn: Connection, *, ledger_id: int, subject: str, scale: int
) -> tuple[list[AccountCheck], list[Finding]]:
    """Every check of one ledger's history against its cached state (no seals)."""
    checks = account_checks(conn, ledger_id)
    findings: list[Finding] = []
    cached = sum(c.balance for c in checks)
    from_postings = sum(c.postings_sum for c in checks)
    if cached != 0:
        findings.append(
            Finding("ledger_not_zero", subject, f"cached balances sum to {_fmt(cached, scale)}, not 0")
        )
    if from_postings != 0:
        findings.append(
            Finding("ledger_not_zero", subject, f"postings sum to {_fmt(from_postings, scale)}, not 0")
        )
    findings += _balance_findings(subject, checks, scale)
    beyond, _ = _limit_breaches(checks)
    for b in beyond:
        findings.append(
            Finding(
                "beyond_limit",
                f"{subject} account {b.account_id} ({b.holder})",
                f"balance {_fmt(b.balance, scale)} is outside its limits "
                f"[{_fmt(b.min_balance, scale)}, {_fmt(b.max_balance, scale)}]",
            )
        )
    findings += posting_chain_findings(conn, ledger_id, subject, scale)
    findings += transfer_findings(conn, ledger_id, subject, scale)
    return checks, findings


def pending_claims(conn: Connection, *, ledger_id: int, now: datetime) -> list[PendingClaim]:
    tr = t.transfers
    payer, payee = t.accounts.alias("payer"), t.accounts.alias("payee")
    rows = conn.execute(
        sa.select(
            tr.c.id,
            tr.c.payer_id,
            payer.c.holder.label("payer"),
            tr.c.payee_id,
            payee.c.holder.label("payee"),
            tr.c.amount,
            tr.c.created_at,
            tr.c.expires_at,
        )
        .select_from(tr.join(payer, payer.c.id == tr.c.payer_id).join(payee, payee.c.id == tr.c.payee_id))
        .where(tr.c.ledger_id == ledger_id, tr.c.status == TransferStatus.PENDING.value)
        .order_by(tr.c.created_at, tr.c.id)
    )
    out = []
    for r in rows:
        created = as_utc(r.created_at)
        expires = None if r.expires_at is None else as_utc(r.expires_at)
        out.append(
            PendingClaim(
                r.id,
                r.payer_id,
                r.payer,
                r.payee_id,
                r.payee,
                r.amount,
                created,
                expires,
                round((now - created).total_seconds() / 86400, 2),
                expires is not None and expires <= now,
            )
        )
    return out


def coop_findings(conn: Connection, coop: CoopRecord) -> tuple[list[AccountCheck], list[Finding]]:
    """Integrity of the co-op's ledger and of its seals."""
    checks, findings = ledger_integrity(conn, ledger_id=coop.ledger_id, subject=coop.slug, scale=coop.scale)
    return checks, findings + verify_coop_seals(conn, coop)


def reconciliation_report(
    conn: Connection, *, actor: Actor | None, slug: str, now: datetime
) -> ReconciliationReport:
    """The treasurer's report (`actor=None`: the operator's CLI)."""
    coop = (
        treasurer_coop(conn, actor=actor, slug=slug, action="reconcile its books")
        if actor
        else accounts.get_coop(conn, slug)
    )
    checks, findings = coop_findings(conn, coop)
    position = federation_position(conn, coop)
    findings += federation_findings(coop, position)
    beyond, at = _limit_breaches(checks)
    transfer_count = conn.execute(
        sa.select(sa.func.count()).where(t.transfers.c.ledger_id == coop.ledger_id)
    ).scalar_one()
    seal_count = conn.execute(sa.select(sa.func.count()).where(seal_table.c.coop_id == coop.id)).scalar_one()
    return ReconciliationReport(
        coop=coop.slug,
        unit_code=coop.unit_code,
        scale=coop.scale,
        at=now,
        account_count=len(checks),
        transfer_count=int(transfer_count),
        ledger_sum=sum(c.balance for c in checks),
        postings_sum=sum(c.postings_sum for c in checks),
        mismatched_accounts=[c for c in checks if c.differences],
        beyond_limits=beyond,
        at_limit=at,
        pending_claims=pending_claims(conn, ledger_id=coop.ledger_id, now=now),
        seal_count=int(seal_count),
        federation=position,
        findings=_cap(findings),
    )


def verify(conn: Connection, *, slug: str | None = None) -> tuple[list[str], list[Finding]]:
    """`commons verify`: every co-op (or one), every seal and cached balance; and every
    federation ledger's balances. Returns (what was checked, what differs)."""
    checked: list[str] = []
    findings: list[Finding] = []
    c = t.coops
    slugs = [slug] if slug else list(conn.execute(sa.select(c.c.slug).order_by(c.c.id)).scalars())
    coop_ledgers: set[int] = set()
    for s in slugs:
        coop = accounts.get_coop(conn, s)
        coop_ledgers.add(coop.ledger_id)
        _, found = coop_findings(conn, coop)
        findings += found + federation_findings(coop, federation_position(conn, coop))
        checked.append(f"co-op {coop.slug}")
    if slug is None:
        lg = t.ledgers
        for r in conn.execute(sa.select(lg.c.id, lg.c.kind, lg.c.scale).order_by(lg.c.id)):
            if r.id in coop_ledgers:
                continue
            _, found = ledger_integrity(
                conn, ledger_id=r.id, subject=f"{r.kind} ledger {r.id}", scale=r.scale
            )
            findings += found
            checked.append(f"{r.kind} ledger {r.id}")
    return checked, _cap(findings)
