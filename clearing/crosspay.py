"""Cross-co-op payments: a member of co-op X pays a member of co-op Y of the same federation.

One transaction, three transfers sharing one transaction_id (DESIGN §4):
  1. in X's ledger:          payer → X's federation (mirror) account,   in X's unit;
  2. in the federation ledger: X's account → Y's account,             in the federation unit;
  3. in Y's ledger:          Y's federation (mirror) account → payee,   in Y's unit.
Amounts convert by each co-op's fixed rate, rounding half-even at each target scale
(clearing/rates.py). The six accounts are locked in ascending id order first; each leg is then
posted by the ledger service's conditional updates, so a refused leg (payer's credit limit,
X's federation credit limit, Y's federation ceiling, payee's ceiling, a frozen account) raises
its own code and the caller's rollback leaves nothing posted.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accounts.actor import Actor
from clearing import tables as ct
from clearing.rates import Conversion, Rate, convert_payment
from clearing.service import (
    MemberRecord,
    federation_by_id,
    is_officer,
    lock_accounts,
    members_by_ledger,
)
from ledger import tables as t
from ledger.amounts import ABSOLUTE_MAX_AMOUNT
from ledger.core import (
    AccountState,
    Movement,
    TransferStatus,
    limit_problems,
    validate_movement,
    validate_text,
)
from ledger.errors import DomainError, Problem
from ledger.service import (
    TransferInput,
    TransferRecord,
    _record,
    apply_movement,
    ledger_policy,
    load_account_states,
    utc,
)


@dataclass(frozen=True, slots=True)
class CrossCoopPaymentView:
    transaction_id: str
    federation: str
    federation_unit_code: str
    federation_scale: int
    payer_coop: str
    payee_coop: str
    payer_account_id: int
    payee_account_id: int
    payer_transfer_id: int
    federation_transfer_id: int
    payee_transfer_id: int
    payer_amount: int
    federation_amount: int
    payee_amount: int
    payer_unit_code: str
    payer_scale: int
    payee_unit_code: str
    payee_scale: int
    payer_rate: Rate
    payee_rate: Rate
    created_at: datetime


def pay_across_coops(
    conn: Connection,
    *,
    actor: Actor,
    request: TransferInput,
    payer: AccountState,
    payee: AccountState,
    now: datetime,
) -> TransferRecord | None:
    """Post a cross-co-op payment; None when the two ledgers share no federation (the caller
    then answers as for any two accounts of different ledgers). Returns the payer's leg."""
    members = members_by_ledger(conn, [payer.ledger_id, payee.ledger_id])
    x, y = members.get(payer.ledger_id), members.get(payee.ledger_id)
    if x is None or y is None or x.federation_id != y.federation_id:
        return None
    _authorize(actor, payer, payee)
    if payer.id == x.mirror_account_id or payee.id == y.mirror_account_id:
        raise DomainError(
            "validation_failed",
            "a co-op's federation account moves only with the payments that cross it",
            [
                Problem(
                    "validation_failed",
                    "federation account",
                    "payer" if payer.id == x.mirror_account_id else "payee",
                )
            ],
        )
    federation = federation_by_id(conn, x.federation_id)
    conversion = _convert(request.amount, x, y, federation.scale)
    legs = (
        Movement(payer.id, x.mirror_account_id, conversion.payer_amount),
        Movement(x.account_id, y.account_id, conversion.federation_amount),
        Movement(y.mirror_account_id, payee.id, conversion.payee_amount),
    )
    ledgers = (x.coop_ledger_id, federation.ledger_id, y.coop_ledger_id)
    lock_accounts(conn, [i for leg in legs for i in (leg.payer, leg.payee)])
    _check_legs(conn, legs, ledgers, request)

    transaction_id = str(uuid.uuid4())
    memo_across = f"Cross-co-op payment {x.slug} → {y.slug}"
    rows = [
        _transfer_row(leg, ledger_id, transaction_id, actor, request, now, memo)
        for leg, ledger_id, memo in zip(legs, ledgers, (request.memo, memo_across, request.memo), strict=True)
    ]
    inserted = conn.execute(
        sa.insert(t.transfers).returning(*t.transfers.c, sort_by_parameter_order=True), rows
    ).all()
    records = [_record(r) for r in inserted]
    for leg, record in zip(legs, records, strict=True):
        apply_movement(conn, leg, transfer_id=record.id, now=now)
    conn.execute(
        sa.insert(ct.cross_coop_payments).values(
            transaction_id=transaction_id,
            federation_id=federation.id,
            payer_account_id=payer.id,
            payee_account_id=payee.id,
            payer_transfer_id=records[0].id,
            federation_transfer_id=records[1].id,
            payee_transfer_id=records[2].id,
            payer_amount=conversion.payer_amount,
            federation_amount=conversion.federation_amount,
            payee_amount=conversion.payee_amount,
            payer_rate_num=x.rate.numerator,
            payer_rate_den=x.rate.denominator,
            payee_rate_num=y.rate.numerator,
            payee_rate_den=y.rate.denominator,
            created_at=now,
        )
    )
    return records[0]


def _authorize(actor: Actor, payer: AccountState, payee: AccountState) -> None:
    if actor.holds(payer.id) or actor.is_treasurer_of_ledger(payer.ledger_id):
        return
    if actor.holds(payee.id):
        raise DomainError(
            "forbidden",
            "a payment to another co-op is made by the payer; a claim cannot cross co-ops",
        )
    if actor.is_admin or actor.is_member_of_ledger(payer.ledger_id):
        raise DomainError("forbidden", "you may pay only from your own account")
    # Accounts of a ledger the caller has no part in look like accounts that do not exist.
    raise DomainError("account_not_found", "no such account")


def _convert(amount: int, x: MemberRecord, y: MemberRecord, federation_scale: int) -> Conversion:
    conversion = convert_payment(
        amount,
        payer_rate=x.rate,
        payer_scale=x.coop_scale,
        payee_rate=y.rate,
        payee_scale=y.coop_scale,
        federation_scale=federation_scale,
    )
    if conversion.federation_amount <= 0 or conversion.payee_amount <= 0:
        raise DomainError(
            "invalid_amount",
            "this amount is too small to cross co-ops: it rounds to 0 in the "
            + ("federation's unit" if conversion.federation_amount <= 0 else "payee's unit"),
            [Problem("invalid_amount", "rounds to 0", "amount")],
        )
    if max(conversion.federation_amount, conversion.payee_amount) > ABSOLUTE_MAX_AMOUNT:
        raise DomainError(
            "invalid_amount",
            "converted, this amount is larger than any amount Commons accepts",
            [Problem("invalid_amount", "too large once converted", "amount")],
        )
    return conversion


def _check_legs(
    conn: Connection,
    legs: tuple[Movement, ...],
    ledgers: tuple[int, ...],
    request: TransferInput,
) -> None:
    """The rules of every leg, in leg order, against the locked rows: the first refusal wins.
    The conditional updates in `apply_movement` remain the authority."""
    states = load_account_states(conn, [i for leg in legs for i in (leg.payer, leg.payee)])
    problems = validate_text(request.memo, request.category)
    for leg, ledger_id in zip(legs, ledgers, strict=True):
        policy = ledger_policy(conn, ledger_id)
        problems += validate_movement(
            leg, states.get(leg.payer), states.get(leg.payee), max_amount=policy.max_transfer_amount
        )
    if problems:
        raise DomainError.from_problems(problems)
    for leg in legs:
        refused = limit_problems(states[leg.payer], states[leg.payee], leg.amount)
        if refused:
            raise DomainError.from_problems(refused)


def _transfer_row(
    leg: Movement,
    ledger_id: int,
    transaction_id: str,
    actor: Actor,
    request: TransferInput,
    now: datetime,
    memo: str | None,
) -> dict[str, Any]:
    return {
        "ledger_id": ledger_id,
        "transaction_id": transaction_id,
        "payer_id": leg.payer,
        "payee_id": leg.payee,
        "amount": leg.amount,
        "memo": memo,
        "category": request.category,
        "occurred_on": request.occurred_on or now.date(),
        "initiator_id": actor.user_id,
        "status": TransferStatus.POSTED.value,
        "created_at": now,
        "expires_at": None,
    }


def get_cross_coop_payment(conn: Connection, *, actor: Actor, transaction_id: str) -> CrossCoopPaymentView:
    """The record of a cross-co-op payment, for its payer, its payee, the treasurers of both
    co-ops and the federation's officers; anyone else learns nothing of it."""
    cp, f, pc, qc, pl, ql = (
        ct.cross_coop_payments,
        t.federations,
        t.coops.alias("pc"),
        t.coops.alias("qc"),
        t.ledgers.alias("pl"),
        t.ledgers.alias("ql"),
    )
    pa, qa = t.accounts.alias("pa"), t.accounts.alias("qa")
    row = conn.execute(
        sa.select(
            cp,
            f.c.slug.label("federation"),
            f.c.unit_code.label("federation_unit_code"),
            f.c.unit_scale.label("federation_scale"),
            pc.c.slug.label("payer_coop"),
            qc.c.slug.label("payee_coop"),
            pl.c.id.label("payer_ledger_id"),
            ql.c.id.label("payee_ledger_id"),
            pl.c.unit_code.label("payer_unit_code"),
            pl.c.scale.label("payer_scale"),
            ql.c.unit_code.label("payee_unit_code"),
            ql.c.scale.label("payee_scale"),
        )
        .select_from(
            cp.join(f, f.c.id == cp.c.federation_id)
            .join(pa, pa.c.id == cp.c.payer_account_id)
            .join(qa, qa.c.id == cp.c.payee_account_id)
            .join(pl, pl.c.id == pa.c.ledger_id)
            .join(ql, ql.c.id == qa.c.ledger_id)
            .join(pc, pc.c.ledger_id == pl.c.id)
            .join(qc, qc.c.ledger_id == ql.c.id)
        )
        .where(cp.c.transaction_id == transaction_id)
    ).first()
    not_found = DomainError("not_found", "no such cross-co-op payment")
    if row is None:
        raise not_found
    visible = (
        actor.holds(row.payer_account_id)
        or actor.holds(row.payee_account_id)
        or actor.is_treasurer_of_ledger(row.payer_ledger_id)
        or actor.is_treasurer_of_ledger(row.payee_ledger_id)
        or is_officer(conn, user_id=actor.user_id, federation_id=row.federation_id)
    )
    if not visible:
        raise not_found
    return CrossCoopPaymentView(
        transaction_id=row.transaction_id,
        federation=row.federation,
        federation_unit_code=row.federation_unit_code,
        federation_scale=row.federation_scale,
        payer_coop=row.payer_coop,
        payee_coop=row.payee_coop,
        payer_account_id=row.payer_account_id,
        payee_account_id=row.payee_account_id,
        payer_transfer_id=row.payer_transfer_id,
        federation_transfer_id=row.federation_transfer_id,
        payee_transfer_id=row.payee_transfer_id,
        payer_amount=row.payer_amount,
        federation_amount=row.federation_amount,
        payee_amount=row.payee_amount,
        payer_unit_code=row.payer_unit_code,
        payer_scale=row.payer_scale,
        payee_unit_code=row.payee_unit_code,
        payee_scale=row.payee_scale,
        payer_rate=Rate(row.payer_rate_num, row.payer_rate_den),
        payee_rate=Rate(row.payee_rate_num, row.payee_rate_den),
        created_at=utc(row.created_at),  # type: ignore[arg-type]
    )
