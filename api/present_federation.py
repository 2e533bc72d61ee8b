"""Federation values → public shapes. Amounts become decimal strings at the unit's scale."""

from __future__ import annotations

import csv
import io

from api import schemas as s
from api import schemas_federation as fs
from clearing.crosspay import CrossCoopPaymentView
from clearing.obligations import ObligationRecord
from clearing.rates import divide_half_even
from clearing.runs import CycleRow, ItemRow, ParticipantRow, RunRecord, RunView
from clearing.service import FederationRecord, MemberRecord
from ledger.amounts import format_amount, format_optional


def unit(federation: FederationRecord) -> s.UnitOut:
    return s.UnitOut(code=federation.unit_code, scale=federation.scale)


def federation(f: FederationRecord) -> fs.FederationOut:
    return fs.FederationOut(
        slug=f.slug,
        name=f.name,
        unit=unit(f),
        clearing_account=str(f.clearing_account_id),
        created_at=f.created_at,
    )


def member(m: MemberRecord, f: FederationRecord, *, full: bool) -> fs.FederationMemberOut:
    out = fs.FederationMemberOut(
        coop=m.slug,
        name=m.name,
        coop_unit=s.UnitOut(code=m.coop_unit_code, scale=m.coop_scale),
        rate=str(m.rate),
        unit=unit(f),
        joined_at=m.joined_at,
    )
    if full:
        out.account = str(m.account_id)
        out.mirror_account = str(m.mirror_account_id)
        out.balance = format_amount(m.balance, scale=f.scale)
        out.min_balance = format_optional(m.min_balance, scale=f.scale)
        out.max_balance = format_optional(m.max_balance, scale=f.scale)
        out.status = m.status  # type: ignore[assignment]
    return out


def obligation(o: ObligationRecord, f: FederationRecord) -> fs.ObligationOut:
    return fs.ObligationOut(
        id=str(o.id),
        external_id=o.external_id,
        federation=f.slug,
        debtor=o.debtor,
        creditor=o.creditor,
        amount=format_amount(o.amount, scale=f.scale),
        remaining=format_amount(o.remaining, scale=f.scale),
        due_on=o.due_on,
        reference=o.reference,
        status=o.status,
        note=o.status_note,
        entered_by=o.entered_by,
        created_at=o.created_at,
        updated_at=o.updated_at,
        version=o.version,
        unit=unit(f),
    )


def fraction(part: int, whole: int) -> str:
    """part / whole as a decimal string with 4 places, rounded half-even ("0" over nothing)."""
    if whole <= 0:
        return "0.0000"
    return format_amount(divide_half_even(part * 10_000, whole), scale=4)


def totals(r: RunRecord, f: FederationRecord) -> fs.RunTotals:
    def amount(value: int) -> str:
        return format_amount(value, scale=f.scale)

    return fs.RunTotals(
        obligations=r.obligation_count,
        total=amount(r.total),
        net_internal_debt=amount(r.net_internal_debt),
        setoff=amount(r.total_setoff),
        credit_paid=amount(r.total_credit_paid),
        discharged=amount(r.total_discharged),
        remainder=amount(r.total - r.total_discharged),
        setoff_only_optimum=amount(r.setoff_only_optimum),
        extra_cleared_by_credit=amount(r.extra_cleared_by_credit),
        setoff_fraction=fraction(r.total_setoff, r.total),
        discharged_fraction=fraction(r.total_discharged, r.total),
    )


def participant(p: ParticipantRow, *, scale: int) -> fs.RunParticipantOut:
    def amount(value: int) -> str:
        return format_amount(value, scale=scale)

    return fs.RunParticipantOut(
        coop=p.coop,
        owes_before=amount(p.owes_before),
        owed_before=amount(p.owed_before),
        net_position=amount(p.net_position),
        setoff=amount(p.setoff),
        credit_paid=amount(p.credit_paid),
        credit_received=amount(p.credit_received),
        owes_after=amount(p.owes_after),
        owed_after=amount(p.owed_after),
        credit_balance_change=amount(p.credit_balance_change),
    )


def cycle(c: CycleRow, *, scale: int) -> fs.RunCycleOut:
    return fs.RunCycleOut(
        coops=list(c.coops),
        description=" → ".join((*c.coops, c.coops[0])),
        amount=format_amount(c.amount, scale=scale),
    )


def run(v: RunView) -> fs.RunOut:
    r, f = v.run, v.federation
    return fs.RunOut(
        id=str(r.id),
        federation=f.slug,
        period=r.period,
        status=r.status,
        settle_with_credit=r.settle_with_credit,
        view="federation" if v.scope is None else "coop",
        unit=unit(f),
        totals=totals(r, f) if v.scope is None else None,
        participants=[participant(p, scale=f.scale) for p in v.participants],
        cycles=[cycle(c, scale=f.scale) for c in v.cycles],
        transaction_id=r.transaction_id,
        created_at=r.created_at,
        applied_at=r.applied_at,
        cancelled_at=r.cancelled_at,
    )


def run_summary(r: RunRecord, f: FederationRecord, *, full: bool) -> fs.RunSummary:
    return fs.RunSummary(
        id=str(r.id),
        period=r.period,
        status=r.status,
        settle_with_credit=r.settle_with_credit,
        totals=totals(r, f) if full else None,
        created_at=r.created_at,
        applied_at=r.applied_at,
        cancelled_at=r.cancelled_at,
    )


def run_item(i: ItemRow, *, scale: int) -> fs.RunItemOut:
    return fs.RunItemOut(
        obligation=str(i.obligation_id),
        external_id=i.external_id,
        debtor=i.debtor,
        creditor=i.creditor,
        remaining_before=format_amount(i.remaining_before, scale=scale),
        setoff=format_amount(i.setoff, scale=scale),
        credit_paid=format_amount(i.credit_paid, scale=scale),
        remaining_after=format_amount(i.remaining_after, scale=scale),
    )


REPORT_COLUMNS = (
    "coop",
    "owes_before",
    "owed_before",
    "net_position",
    "setoff",
    "credit_paid",
    "credit_received",
    "owes_after",
    "owed_after",
    "credit_balance_change",
)


def report_csv(rows: list[ParticipantRow], *, scale: int) -> str:
    """The per-co-op report of a run, one line per co-op, amounts in the federation unit."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(REPORT_COLUMNS)
    for p in rows:
        out = participant(p, scale=scale)
        writer.writerow([getattr(out, column) for column in REPORT_COLUMNS])
    return buffer.getvalue()


def cross_coop_payment(v: CrossCoopPaymentView) -> fs.CrossCoopPaymentOut:
    def leg(ledger: str, transfer: int, amount: int, code: str, scale: int) -> fs.CrossCoopLegOut:
        return fs.CrossCoopLegOut(
            ledger=ledger,
            transfer=str(transfer),
            amount=format_amount(amount, scale=scale),
            unit=s.UnitOut(code=code, scale=scale),
        )

    return fs.CrossCoopPaymentOut(
        transaction_id=v.transaction_id,
        federation=v.federation,
        payer_coop=v.payer_coop,
        payee_coop=v.payee_coop,
        payer=str(v.payer_account_id),
        payee=str(v.payee_account_id),
        payer_rate=str(v.payer_rate),
        payee_rate=str(v.payee_rate),
        legs=[
            leg("payer", v.payer_transfer_id, v.payer_amount, v.payer_unit_code, v.payer_scale),
            leg(
                "federation",
                v.federation_transfer_id,
                v.federation_amount,
                v.federation_unit_code,
                v.federation_scale,
            ),
            leg("payee", v.payee_transfer_id, v.payee_amount, v.payee_unit_code, v.payee_scale),
        ],
        created_at=v.created_at,
    )
