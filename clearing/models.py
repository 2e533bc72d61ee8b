"""Federation tables: the federation's ledger and officers, member co-ops with their rates,
cross-co-op payments, obligations between co-ops, and clearing runs.

The services write them with SQL Core statements (see clearing/tables.py); these classes define
the schema. Money is BIGINT in the federation unit's smallest step, except the three amounts
of a cross-co-op payment, each in its own ledger's unit. CHECK constraints repeat the domain
rules so that a write bypassing Python is refused too.
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

import accounts.models  # noqa: F401  (users, co-ops and federations must share the metadata)
from ledger.models import BigId

OBLIGATION_STATUSES = ("pending_confirmation", "confirmed", "disputed", "cancelled", "settled")
OBLIGATION_SIDES = ("debtor", "creditor", "officer")
RUN_STATUSES = ("proposed", "applied", "cancelled")


def _pk() -> sa.Column[int]:
    return sa.Column(BigId, primary_key=True, autoincrement=True)


def _fk(target: str, *, nullable: bool = False, **kw: object) -> sa.Column[int]:
    return sa.Column(BigId, sa.ForeignKey(target), nullable=nullable, **kw)  # type: ignore[arg-type]


def _money(**kw: object) -> sa.Column[int]:
    return sa.Column(sa.BigInteger, nullable=False, **kw)  # type: ignore[arg-type]


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class FederationLedger(SQLModel, table=True):
    """The federation's own ledger and its clearing account (the liquidity node through which
    clearing runs settle residual debts in mutual credit; its balance is 0 between runs)."""

    __tablename__ = "federation_ledgers"

    federation_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("federations.id"), primary_key=True, autoincrement=False)
    )
    ledger_id: int = Field(sa_column=_fk("ledgers.id", unique=True))
    clearing_account_id: int = Field(sa_column=_fk("accounts.id", unique=True))


class FederationOfficer(SQLModel, table=True):
    __tablename__ = "federation_officers"

    federation_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("federations.id"), primary_key=True, autoincrement=False)
    )
    user_id: int = Field(
        sa_column=sa.Column(
            BigId, sa.ForeignKey("users.id"), primary_key=True, autoincrement=False, index=True
        )
    )
    appointed_at: datetime


class FederationMember(SQLModel, table=True):
    """A co-op in a federation (at most one), with its fixed rate and its two accounts.

    rate = rate_num / rate_den federation units per co-op unit, exact (rate_den is the power of
    ten of the decimal string it was given as). `account_id` is the co-op's account in the
    federation ledger (kind 'coop', limits set by an officer); `mirror_account_id` is the
    federation's account in the co-op's ledger (kind 'federation', no limits).
    """

    __tablename__ = "federation_members"
    __table_args__ = (sa.CheckConstraint("rate_num > 0 AND rate_den > 0", name="ck_federation_members_rate"),)

    id: int | None = Field(default=None, sa_column=_pk())
    federation_id: int = Field(sa_column=_fk("federations.id", index=True))
    coop_id: int = Field(sa_column=_fk("coops.id", unique=True))
    rate_num: int = Field(sa_column=_money())
    rate_den: int = Field(sa_column=_money())
    account_id: int = Field(sa_column=_fk("accounts.id", unique=True))
    mirror_account_id: int = Field(sa_column=_fk("accounts.id", unique=True))
    joined_at: datetime


class CrossCoopPayment(SQLModel, table=True):
    """The record of one cross-co-op payment: its three legs (one transaction) and the rates
    and amounts of the conversion."""

    __tablename__ = "cross_coop_payments"
    __table_args__ = (
        sa.CheckConstraint(
            "payer_amount > 0 AND federation_amount > 0 AND payee_amount > 0",
            name="ck_cross_coop_payments_amounts",
        ),
        sa.CheckConstraint(
            "payer_rate_num > 0 AND payer_rate_den > 0 AND payee_rate_num > 0 AND payee_rate_den > 0",
            name="ck_cross_coop_payments_rates",
        ),
    )

    id: int | None = Field(default=None, sa_column=_pk())
    transaction_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False, unique=True))
    federation_id: int = Field(sa_column=_fk("federations.id"))
    payer_account_id: int = Field(sa_column=_fk("accounts.id", index=True))
    payee_account_id: int = Field(sa_column=_fk("accounts.id", index=True))
    payer_transfer_id: int = Field(sa_column=_fk("transfers.id", unique=True))
    federation_transfer_id: int = Field(sa_column=_fk("transfers.id", unique=True))
    payee_transfer_id: int = Field(sa_column=_fk("transfers.id", unique=True))
    payer_amount: int = Field(sa_column=_money())
    federation_amount: int = Field(sa_column=_money())
    payee_amount: int = Field(sa_column=_money())
    payer_rate_num: int = Field(sa_column=_money())
    payer_rate_den: int = Field(sa_column=_money())
    payee_rate_num: int = Field(sa_column=_money())
    payee_rate_den: int = Field(sa_column=_money())
    created_at: datetime


class FederationObligation(SQLModel, table=True):
    """A debt between two member co-ops (an invoice), in the federation unit.

    `remaining` falls only when a clearing run is applied; every change bumps `version`, which
    is how an apply notices that an obligation changed since its run was proposed.
    """

    __tablename__ = "obligations"
    __table_args__ = (
        sa.UniqueConstraint("federation_id", "external_id", name="uq_obligations_external_id"),
        sa.CheckConstraint("amount > 0", name="ck_obligations_amount"),
        sa.CheckConstraint("remaining >= 0 AND remaining <= amount", name="ck_obligations_remaining"),
        sa.CheckConstraint("debtor_coop_id <> creditor_coop_id", name="ck_obligations_distinct"),
        sa.CheckConstraint(_in("status", OBLIGATION_STATUSES), name="ck_obligations_status"),
        sa.CheckConstraint(_in("entered_by", OBLIGATION_SIDES), name="ck_obligations_entered_by"),
        # Settled exactly when nothing remains.
        sa.CheckConstraint(
            "(status = 'settled' AND remaining = 0) OR (status <> 'settled' AND remaining > 0)",
            name="ck_obligations_settled",
        ),
        sa.CheckConstraint("version >= 0", name="ck_obligations_version"),
        sa.Index("ix_obligations_federation_status", "federation_id", "status", "id"),
        sa.Index("ix_obligations_debtor", "debtor_coop_id", "id"),
        sa.Index("ix_obligations_creditor", "creditor_coop_id", "id"),
    )

    id: int | None = Field(default=None, sa_column=_pk())
    federation_id: int = Field(sa_column=_fk("federations.id"))
    external_id: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    debtor_coop_id: int = Field(sa_column=_fk("coops.id"))
    creditor_coop_id: int = Field(sa_column=_fk("coops.id"))
    amount: int = Field(sa_column=_money())
    remaining: int = Field(sa_column=_money())
    due_on: date | None = None
    reference: str | None = Field(default=None, max_length=200)
    status: str = Field(max_length=24)
    status_note: str | None = Field(default=None, max_length=500)
    entered_by: str = Field(max_length=16)
    created_by: int | None = Field(default=None, sa_column=_fk("users.id", nullable=True))
    created_at: datetime
    updated_at: datetime
    version: int = Field(default=0, sa_column=_money(server_default="0"))


class ClearingRun(SQLModel, table=True):
    """One multilateral set-off over a federation's confirmed obligations: proposed, then
    applied or cancelled. Totals are in the federation unit."""

    __tablename__ = "clearing_runs"
    __table_args__ = (
        sa.CheckConstraint(_in("status", RUN_STATUSES), name="ck_clearing_runs_status"),
        sa.CheckConstraint(
            "total_setoff >= 0 AND total_credit_paid >= 0 AND total_setoff + total_credit_paid <= total",
            name="ck_clearing_runs_totals",
        ),
        sa.CheckConstraint("status <> 'applied' OR applied_at IS NOT NULL", name="ck_clearing_runs_applied"),
        sa.Index("ix_clearing_runs_federation", "federation_id", "id"),
    )

    id: int | None = Field(default=None, sa_column=_pk())
    federation_id: int = Field(sa_column=_fk("federations.id"))
    period: str = Field(sa_column=sa.Column(sa.String(7), nullable=False))
    status: str = Field(max_length=16)
    settle_with_credit: bool
    obligation_count: int = Field(sa_column=_money())
    total: int = Field(sa_column=_money())
    net_internal_debt: int = Field(sa_column=_money())
    total_setoff: int = Field(sa_column=_money())
    total_credit_paid: int = Field(sa_column=_money())
    setoff_only_optimum: int = Field(sa_column=_money())
    transaction_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(36)))
    created_by: int | None = Field(default=None, sa_column=_fk("users.id", nullable=True))
    created_at: datetime
    applied_by: int | None = Field(default=None, sa_column=_fk("users.id", nullable=True))
    applied_at: datetime | None = None
    cancelled_at: datetime | None = None


class ClearingRunItem(SQLModel, table=True):
    """One obligation as a run found it (its version and remaining) and what the run
    discharges of it. Once the run is applied, these rows are the set-off records."""

    __tablename__ = "clearing_run_items"
    __table_args__ = (
        sa.CheckConstraint(
            "setoff >= 0 AND credit_paid >= 0 AND setoff + credit_paid <= remaining_before",
            name="ck_clearing_run_items_amounts",
        ),
    )

    run_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("clearing_runs.id"), primary_key=True, autoincrement=False)
    )
    obligation_id: int = Field(
        sa_column=sa.Column(
            BigId,
            sa.ForeignKey("obligations.id"),
            primary_key=True,
            autoincrement=False,
            index=True,
        )
    )
    obligation_version: int = Field(sa_column=_money())
    remaining_before: int = Field(sa_column=_money())
    setoff: int = Field(sa_column=_money())
    credit_paid: int = Field(sa_column=_money())


class ClearingRunParticipant(SQLModel, table=True):
    """A co-op's part of a run: what it owed and was owed before, and what was discharged.

    `credit_transfer_id` is the federation-ledger transfer that settled its credit part
    (written when a run with credit is applied).
    """

    __tablename__ = "clearing_run_participants"
    __table_args__ = (
        sa.CheckConstraint(
            "owes_before >= 0 AND owed_before >= 0 AND setoff >= 0 "
            "AND credit_paid >= 0 AND credit_received >= 0",
            name="ck_clearing_run_participants_amounts",
        ),
    )

    run_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("clearing_runs.id"), primary_key=True, autoincrement=False)
    )
    coop_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("coops.id"), primary_key=True, autoincrement=False)
    )
    owes_before: int = Field(sa_column=_money())
    owed_before: int = Field(sa_column=_money())
    setoff: int = Field(sa_column=_money())
    credit_paid: int = Field(sa_column=_money())
    credit_received: int = Field(sa_column=_money())
    credit_transfer_id: int | None = Field(default=None, sa_column=_fk("transfers.id", nullable=True))


class ClearingRunCycle(SQLModel, table=True):
    """One cycle of a run's set-off, for the report: `path` is the co-op slugs in order,
    separated by spaces; `amount` was set off around it."""

    __tablename__ = "clearing_run_cycles"
    __table_args__ = (sa.CheckConstraint("amount > 0", name="ck_clearing_run_cycles_amount"),)

    run_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("clearing_runs.id"), primary_key=True, autoincrement=False)
    )
    position: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True, autoincrement=False))
    path: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    amount: int = Field(sa_column=_money())
