"""Public shapes of federations, obligations, clearing runs and cross-co-op payments.

Amounts are decimal strings in the federation unit unless a field says otherwise; ids are
strings.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from api.schemas import Amount, Id, Input, UnitIn, UnitOut


class FederationCreate(Input):
    slug: str = Field(max_length=64)
    name: str = Field(max_length=200)
    unit: UnitIn


class FederationOut(BaseModel):
    slug: str
    name: str
    unit: UnitOut
    clearing_account: Id
    created_at: datetime


class OfficerCreate(Input):
    email: str = Field(max_length=320)


class OfficerOut(BaseModel):
    user_id: Id
    email: str
    name: str


class OfficerList(BaseModel):
    items: list[OfficerOut]


class MemberJoin(Input):
    coop: str = Field(max_length=64)
    rate: str = Field(max_length=20, description='federation units per co-op unit, e.g. "1" or "0.25"')
    min_balance: Amount | None = Field(
        default="0",
        max_length=40,
        description="credit limit in the federation ledger (default 0: no credit)",
    )
    max_balance: Amount | None = Field(default=None, max_length=40)


class MemberPatch(Input):
    min_balance: Amount | None = Field(default=None, max_length=40)
    max_balance: Amount | None = Field(default=None, max_length=40)
    status: Literal["active", "frozen"] | None = None


class FederationMemberOut(BaseModel):
    """A member co-op. The account fields are shown to officers and admins, and to the co-op's
    own treasurer; others see only the co-op, its unit and its rate."""

    coop: str
    name: str
    coop_unit: UnitOut
    rate: str
    account: Id | None = None
    mirror_account: Id | None = None
    balance: Amount | None = None
    min_balance: Amount | None = None
    max_balance: Amount | None = None
    status: Literal["active", "frozen", "closed"] | None = None
    unit: UnitOut
    joined_at: datetime


class FederationMemberPage(BaseModel):
    items: list[FederationMemberOut]
    next_cursor: str | None


class ObligationCreate(Input):
    external_id: str = Field(min_length=1, max_length=200)
    debtor: str = Field(max_length=64)
    creditor: str = Field(max_length=64)
    amount: Amount = Field(max_length=40)
    due_on: date | None = None
    reference: str | None = Field(default=None, max_length=200)


class ObligationNote(Input):
    reason: str | None = Field(default=None, max_length=500)


class ObligationOut(BaseModel):
    id: Id
    external_id: str
    federation: str
    debtor: str
    creditor: str
    amount: Amount
    remaining: Amount
    due_on: date | None
    reference: str | None
    status: Literal["pending_confirmation", "confirmed", "disputed", "cancelled", "settled"]
    note: str | None
    entered_by: Literal["debtor", "creditor", "officer"]
    created_at: datetime
    updated_at: datetime
    version: int
    unit: UnitOut


class ObligationPage(BaseModel):
    items: list[ObligationOut]
    next_cursor: str | None


class ImportProblemOut(BaseModel):
    line: int
    id: str | None
    code: str
    message: str


class ImportOut(BaseModel):
    created: int
    unchanged: int
    refused: int
    problems: list[ImportProblemOut] = Field(description="the refused rows by line (the first 1000)")


class RunCreate(Input):
    period: str = Field(max_length=7, description="the month the run is for, YYYY-MM")
    settle_with_credit: bool = False


class RunTotals(BaseModel):
    obligations: int
    total: Amount
    net_internal_debt: Amount
    setoff: Amount
    credit_paid: Amount
    discharged: Amount
    remainder: Amount
    setoff_only_optimum: Amount
    extra_cleared_by_credit: Amount
    setoff_fraction: str = Field(description="set-off / total, 4 decimals")
    discharged_fraction: str = Field(description="(set-off + credit paid) / total, 4 decimals")


class RunParticipantOut(BaseModel):
    coop: str
    owes_before: Amount
    owed_before: Amount
    net_position: Amount
    setoff: Amount
    credit_paid: Amount
    credit_received: Amount
    owes_after: Amount
    owed_after: Amount
    credit_balance_change: Amount


class RunCycleOut(BaseModel):
    coops: list[str]
    description: str
    amount: Amount


class RunOut(BaseModel):
    """A clearing run. `view` is "federation" for officers (totals, every co-op, every cycle)
    and "coop" for a treasurer (its co-op's report and the cycles through it; no totals)."""

    id: Id
    federation: str
    period: str
    status: Literal["proposed", "applied", "cancelled"]
    settle_with_credit: bool
    view: Literal["federation", "coop"]
    unit: UnitOut
    totals: RunTotals | None
    participants: list[RunParticipantOut]
    cycles: list[RunCycleOut]
    transaction_id: str | None
    created_at: datetime
    applied_at: datetime | None
    cancelled_at: datetime | None


class RunSummary(BaseModel):
    id: Id
    period: str
    status: Literal["proposed", "applied", "cancelled"]
    settle_with_credit: bool
    totals: RunTotals | None
    created_at: datetime
    applied_at: datetime | None
    cancelled_at: datetime | None


class RunPage(BaseModel):
    items: list[RunSummary]
    next_cursor: str | None


class RunItemOut(BaseModel):
    obligation: Id
    external_id: str
    debtor: str
    creditor: str
    remaining_before: Amount
    setoff: Amount
    credit_paid: Amount
    remaining_after: Amount


class RunItemPage(BaseModel):
    items: list[RunItemOut]
    next_cursor: str | None


class CrossCoopLegOut(BaseModel):
    ledger: Literal["payer", "federation", "payee"]
    transfer: Id
    amount: Amount
    unit: UnitOut


class CrossCoopPaymentOut(BaseModel):
    transaction_id: str
    federation: str
    payer_coop: str
    payee_coop: str
    payer: Id
    payee: Id
    payer_rate: str
    payee_rate: str
    legs: list[CrossCoopLegOut]
    created_at: datetime
