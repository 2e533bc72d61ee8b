"""Public shapes of the treasurer's reports: reconciliation, trial balance, statements, seals.

Amounts are decimal strings at the unit's scale; ids are strings; datetimes ISO 8601 UTC.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import Amount, Id, UnitOut

PERIOD_PATTERN = r"^[0-9]{4}-[0-9]{2}$"


class SealIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: str = Field(pattern=PERIOD_PATTERN, description="The month to seal, YYYY-MM (UTC).")


class SealOut(BaseModel):
    coop: str
    period: str
    period_start: datetime
    period_end: datetime
    digest: str
    previous_digest: str
    transfer_count: int
    posting_count: int
    created_at: datetime


class SealList(BaseModel):
    items: list[SealOut]
    encoding: str = Field(description="The canonical encoding the digests are computed over.")


class FindingOut(BaseModel):
    code: str
    subject: str
    detail: str


class AccountDifference(BaseModel):
    account: Id
    holder: str
    balance: Amount
    postings_sum: Amount
    last_balance_after: Amount | None
    debits: Amount
    postings_debits: Amount
    credits: Amount
    postings_credits: Amount
    version: int
    last_version: int
    differences: list[str]


class LimitOut(BaseModel):
    account: Id
    holder: str
    balance: Amount
    min_balance: Amount | None
    max_balance: Amount | None


class PendingClaimOut(BaseModel):
    transfer: Id
    payer: Id
    payer_name: str
    payee: Id
    payee_name: str
    amount: Amount
    created_at: datetime
    expires_at: datetime | None
    age_days: float
    overdue: bool


class FederationPositionOut(BaseModel):
    """The co-op's position at its federation, seen from both ledgers."""

    federation: str
    federation_unit: UnitOut
    rate: str = Field(description="Federation units per co-op unit.")
    mirror_account: Id = Field(description="The federation's account in this co-op's ledger.")
    mirror_balance: Amount = Field(description="Its balance, in the co-op's unit.")
    mirror_from_payments: Amount = Field(
        description="What the recorded cross-co-op payments put there, in the co-op's unit."
    )
    federation_account: Id = Field(description="This co-op's account in the federation ledger.")
    federation_balance: Amount = Field(description="Its balance, in the federation's unit.")
    from_payments: Amount = Field(description="The recorded federation legs of those payments.")
    from_clearing: Amount = Field(description="Clearing runs' settlements in mutual credit.")
    exact_from_payments: str = Field(
        description="The payments converted exactly at the rates, unrounded (federation unit)."
    )
    rounding_difference: str = Field(
        description="Cumulative rounding of the unit conversions: exact minus posted, in the "
        "federation's unit, exact (it may carry more decimals than the unit)."
    )
    unexplained_mirror: Amount = Field(description="Must be zero.")
    unexplained_federation: Amount = Field(description="Must be zero.")
    ok: bool


class ReconciliationOut(BaseModel):
    coop: str
    unit: UnitOut
    at: datetime
    ok: bool = Field(description="False when anything below is wrong (pending claims are never wrong).")
    ledger_sum: Amount = Field(description="Sum of the cached balances; must be 0.")
    postings_sum: Amount = Field(description="Sum of every posting; must be 0.")
    account_count: int
    transfer_count: int
    seal_count: int
    mismatched_accounts: list[AccountDifference]
    beyond_limits: list[LimitOut]
    at_limit: list[LimitOut]
    pending_claims: list[PendingClaimOut]
    federation: FederationPositionOut | None
    findings: list[FindingOut] = Field(description="Everything that differs, each named.")


class TrialBalanceLine(BaseModel):
    account: Id
    holder: str
    kind: str
    status: str
    debits: Amount
    credits: Amount
    balance: Amount
    min_balance: Amount | None
    max_balance: Amount | None


class TrialBalanceOut(BaseModel):
    coop: str
    unit: UnitOut
    at: datetime
    accounts: list[TrialBalanceLine]
    total_debits: Amount
    total_credits: Amount
    total: Amount = Field(description="The ledger's sum at that moment; must be 0.")
    balanced: bool


class StatementAccount(BaseModel):
    id: Id
    holder: str
    kind: str


class StatementLineOut(BaseModel):
    posted_at: datetime
    occurred_on: date
    transfer: Id
    counterparty: Id
    counterparty_name: str
    memo: str | None
    category: str | None
    amount: Amount
    balance: Amount


class SealRef(BaseModel):
    period: str
    digest: str
    previous_digest: str
    created_at: datetime


class StatementOut(BaseModel):
    account: StatementAccount
    coop: str | None
    unit: UnitOut
    period: str
    start: datetime
    end: datetime
    final: bool = Field(
        description="True once the month is over; before that, closing is the balance so far."
    )
    opening_balance: Amount
    total_in: Amount
    total_out: Amount
    closing_balance: Amount
    lines: list[StatementLineOut]
    seal: SealRef | None = Field(description="The month's seal, once sealed.")


class CoopStatementsOut(BaseModel):
    coop: str
    period: str
    statements: list[StatementOut]
