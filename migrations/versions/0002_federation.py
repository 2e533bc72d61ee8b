"""Federations: federation ledgers and officers, member co-ops, cross-co-op payments,
obligations and clearing runs.

Revision ID: 0002_federation
Revises: 0001_core
Create Date: 2026-11-26

Tables, CHECK constraints and indexes are exactly those of clearing/models.py (`alembic check`
proves the tables and indexes; tests/federation/test_migration.py the CHECK constraints).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0002_federation"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model types: a migration must not change when the models do.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
AutoString = sqlmodel.sql.sqltypes.AutoString
UTCDateTime = sqlmodel.sql.sqltypes.UTCDateTime

OBLIGATION_STATUSES = "'pending_confirmation', 'confirmed', 'disputed', 'cancelled', 'settled'"
OBLIGATION_SIDES = "'debtor', 'creditor', 'officer'"
RUN_STATUSES = "'proposed', 'applied', 'cancelled'"


def upgrade() -> None:
    op.create_table(
        "federation_ledgers",
        sa.Column("federation_id", BigId, autoincrement=False, nullable=False),
        sa.Column("ledger_id", BigId, nullable=False),
        sa.Column("clearing_account_id", BigId, nullable=False),
        sa.ForeignKeyConstraint(["federation_id"], ["federations.id"]),
        sa.ForeignKeyConstraint(["ledger_id"], ["ledgers.id"]),
        sa.ForeignKeyConstraint(["clearing_account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("federation_id"),
        sa.UniqueConstraint("ledger_id"),
        sa.UniqueConstraint("clearing_account_id"),
    )
    op.create_table(
        "federation_officers",
        sa.Column("federation_id", BigId, autoincrement=False, nullable=False),
        sa.Column("user_id", BigId, autoincrement=False, nullable=False),
        sa.Column("appointed_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["federation_id"], ["federations.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("federation_id", "user_id"),
    )
    op.create_index("ix_federation_officers_user_id", "federation_officers", ["user_id"])
    op.create_table(
        "federation_members",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("federation_id", BigId, nullable=False),
        sa.Column("coop_id", BigId, nullable=False),
        sa.Column("rate_num", sa.BigInteger(), nullable=False),
        sa.Column("rate_den", sa.BigInteger(), nullable=False),
        sa.Column("account_id", BigId, nullable=False),
        sa.Column("mirror_account_id", BigId, nullable=False),
        sa.Column("joined_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("rate_num > 0 AND rate_den > 0", name="ck_federation_members_rate"),
        sa.ForeignKeyConstraint(["federation_id"], ["federations.id"]),
        sa.ForeignKeyConstraint(["coop_id"], ["coops.id"]),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["mirror_account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("coop_id"),
        sa.UniqueConstraint("account_id"),
        sa.UniqueConstraint("mirror_account_id"),
    )
    op.create_index("ix_federation_members_federation_id", "federation_members", ["federation_id"])
    op.create_table(
        "cross_coop_payments",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("transaction_id", sa.String(length=36), nullable=False),
        sa.Column("federation_id", BigId, nullable=False),
        sa.Column("payer_account_id", BigId, nullable=False),
        sa.Column("payee_account_id", BigId, nullable=False),
        sa.Column("payer_transfer_id", BigId, nullable=False),
        sa.Column("federation_transfer_id", BigId, nullable=False),
        sa.Column("payee_transfer_id", BigId, nullable=False),
        sa.Column("payer_amount", sa.BigInteger(), nullable=False),
        sa.Column("federation_amount", sa.BigInteger(), nullable=False),
        sa.Column("payee_amount", sa.BigInteger(), nullable=False),
        sa.Column("payer_rate_num", sa.BigInteger(), nullable=False),
        sa.Column("payer_rate_den", sa.BigInteger(), nullable=False),
        sa.Column("payee_rate_num", sa.BigInteger(), nullable=False),
        sa.Column("payee_rate_den", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "payer_amount > 0 AND federation_amount > 0 AND payee_amount > 0",
            name="ck_cross_coop_payments_amounts",
        ),
        sa.CheckConstraint(
            "payer_rate_num > 0 AND payer_rate_den > 0 AND payee_rate_num > 0 AND payee_rate_den > 0",
            name="ck_cross_coop_payments_rates",
        ),
        sa.ForeignKeyConstraint(["federation_id"], ["federations.id"]),
        sa.ForeignKeyConstraint(["payer_account_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["payee_account_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["payer_transfer_id"], ["transfers.id"]),
        sa.ForeignKeyConstraint(["federation_transfer_id"], ["transfers.id"]),
        sa.ForeignKeyConstraint(["payee_transfer_id"], ["transfers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("transaction_id"),
        sa.UniqueConstraint("payer_transfer_id"),
        sa.UniqueConstraint("federation_transfer_id"),
        sa.UniqueConstraint("payee_transfer_id"),
    )
    op.create_index("ix_cross_coop_payments_payer_account_id", "cross_coop_payments", ["payer_account_id"])
    op.create_index("ix_cross_coop_payments_payee_account_id", "cross_coop_payments", ["payee_account_id"])
    op.create_table(
        "obligations",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("federation_id", BigId, nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("debtor_coop_id", BigId, nullable=False),
        sa.Column("creditor_coop_id", BigId, nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("reference", AutoString(length=200), nullable=True),
        sa.Column("status", AutoString(length=24), nullable=False),
        sa.Column("status_note", AutoString(length=500), nullable=True),
        sa.Column("entered_by", AutoString(length=16), nullable=False),
        sa.Column("created_by", BigId, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint("amount > 0", name="ck_obligations_amount"),
        sa.CheckConstraint("remaining >= 0 AND remaining <= amount", name="ck_obligations_remaining"),
        sa.CheckConstraint("debtor_coop_id <> creditor_coop_id", name="ck_obligations_distinct"),
        sa.CheckConstraint(f"status IN ({OBLIGATION_STATUSES})", name="ck_obligations_status"),
        sa.CheckConstraint(f"entered_by IN ({OBLIGATION_SIDES})", name="ck_obligations_entered_by"),
        sa.CheckConstraint(
            "(status = 'settled' AND remaining = 0) OR (status <> 'settled' AND remaining > 0)",
            name="ck_obligations_settled",
        ),
        sa.CheckConstraint("version >= 0", name="ck_obligations_version"),
        sa.ForeignKeyConstraint(["federation_id"], ["federations.id"]),
        sa.ForeignKeyConstraint(["debtor_coop_id"], ["coops.id"]),
        sa.ForeignKeyConstraint(["creditor_coop_id"], ["coops.id"]),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("federation_id", "external_id", name="uq_obligations_external_id"),
    )
    op.create_index("ix_obligations_federation_status", "obligations", ["federation_id", "status", "id"])
    op.create_index("ix_obligations_debtor", "obligations", ["debtor_coop_id", "id"])
    op.create_index("ix_obligations_creditor", "obligations", ["creditor_coop_id", "id"])
    op.create_table(
        "clearing_runs",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("federation_id", BigId, nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("status", AutoString(length=16), nullable=False),
        sa.Column("settle_with_credit", sa.Boolean(), nullable=False),
        sa.Column("obligation_count", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("net_internal_debt", sa.BigInteger(), nullable=False),
        sa.Column("total_setoff", sa.BigInteger(), nullable=False),
        sa.Column("total_credit_paid", sa.BigInteger(), nullable=False),
        sa.Column("setoff_only_optimum", sa.BigInteger(), nullable=False),
        sa.Column("transaction_id", sa.String(length=36), nullable=True),
        sa.Column("created_by", BigId, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("applied_by", BigId, nullable=True),
        sa.Column("applied_at", UTCDateTime(), nullable=True),
        sa.Column("cancelled_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(f"status IN ({RUN_STATUSES})", name="ck_clearing_runs_status"),
        sa.CheckConstraint(
            "total_setoff >= 0 AND total_credit_paid >= 0 AND total_setoff + total_credit_paid <= total",
            name="ck_clearing_runs_totals",
        ),
        sa.CheckConstraint("status <> 'applied' OR applied_at IS NOT NULL", name="ck_clearing_runs_applied"),
        sa.ForeignKeyConstraint(["federation_id"], ["federations.id"]),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"]),
        sa.ForeignKeyConstraint(["applied_by"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_clearing_runs_federation", "clearing_runs", ["federation_id", "id"])
    op.create_table(
        "clearing_run_items",
        sa.Column("run_id", BigId, autoincrement=False, nullable=False),
        sa.Column("obligation_id", BigId, autoincrement=False, nullable=False),
        sa.Column("obligation_version", sa.BigInteger(), nullable=False),
        sa.Column("remaining_before", sa.BigInteger(), nullable=False),
        sa.Column("setoff", sa.BigInteger(), nullable=False),
        sa.Column("credit_paid", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "setoff >= 0 AND credit_paid >= 0 AND setoff + credit_paid <= remaining_before",
            name="ck_clearing_run_items_amounts",
        ),
        sa.ForeignKeyConstraint(["run_id"], ["clearing_runs.id"]),
        sa.ForeignKeyConstraint(["obligation_id"], ["obligations.id"]),
        sa.PrimaryKeyConstraint("run_id", "obligation_id"),
    )
    op.create_index("ix_clearing_run_items_obligation_id", "clearing_run_items", ["obligation_id"])
    op.create_table(
        "clearing_run_participants",
        sa.Column("run_id", BigId, autoincrement=False, nullable=False),
        sa.Column("coop_id", BigId, autoincrement=False, nullable=False),
        sa.Column("owes_before", sa.BigInteger(), nullable=False),
        sa.Column("owed_before", sa.BigInteger(), nullable=False),
        sa.Column("setoff", sa.BigInteger(), nullable=False),
        sa.Column("credit_paid", sa.BigInteger(), nullable=False),
        sa.Column("credit_received", sa.BigInteger(), nullable=False),
        sa.Column("credit_transfer_id", BigId, nullable=True),
        sa.CheckConstraint(
            "owes_before >= 0 AND owed_before >= 0 AND setoff >= 0 "
            "AND credit_paid >= 0 AND credit_received >= 0",
            name="ck_clearing_run_participants_amounts",
        ),
        sa.ForeignKeyConstraint(["run_id"], ["clearing_runs.id"]),
        sa.ForeignKeyConstraint(["coop_id"], ["coops.id"]),
        sa.ForeignKeyConstraint(["credit_transfer_id"], ["transfers.id"]),
        sa.PrimaryKeyConstraint("run_id", "coop_id"),
    )
    op.create_table(
        "clearing_run_cycles",
        sa.Column("run_id", BigId, autoincrement=False, nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount > 0", name="ck_clearing_run_cycles_amount"),
        sa.ForeignKeyConstraint(["run_id"], ["clearing_runs.id"]),
        sa.PrimaryKeyConstraint("run_id", "position"),
    )


def downgrade() -> None:
    op.drop_table("clearing_run_cycles")
    op.drop_table("clearing_run_participants")
    op.drop_index("ix_clearing_run_items_obligation_id", table_name="clearing_run_items")
    op.drop_table("clearing_run_items")
    op.drop_index("ix_clearing_runs_federation", table_name="clearing_runs")
    op.drop_table("clearing_runs")
    op.drop_index("ix_obligations_creditor", table_name="obligations")
    op.drop_index("ix_obligations_debtor", table_name="obligations")
    op.drop_index("ix_obligations_federation_status", table_name="obligations")
    op.drop_table("obligations")
    op.drop_index("ix_cross_coop_payments_payee_account_id", table_name="cross_coop_payments")
    op.drop_index("ix_cross_coop_payments_payer_account_id", table_name="cross_coop_payments")
    op.drop_table("cross_coop_payments")
    op.drop_index("ix_federation_members_federation_id", table_name="federation_members")
    op.drop_table("federation_members")
    op.drop_index("ix_federation_officers_user_id", table_name="federation_officers")
    op.drop_table("federation_officers")
    op.drop_table("federation_ledgers")
