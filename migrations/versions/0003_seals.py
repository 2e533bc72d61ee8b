"""Period seals: one row per sealed month of a co-op's ledger, chained by digest.

Revision ID: 0003_seals
Revises: 0002_federation
Create Date: 2026-11-26

The table, its CHECK constraints and unique keys are exactly those of ledger/seal_models.py
(`alembic check` proves the table and keys; tests/treasurer/test_seal_migration.py the CHECKs).
(coop_id, period) allows one seal per month; (coop_id, previous_digest) lets only one seal
extend each link, so concurrent sealers cannot fork the chain.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0003_seals"
down_revision: str | Sequence[str] | None = "0002_federation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model types: a migration must not change when the models do.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTCDateTime = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "seals",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("coop_id", BigId, nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("period_start", UTCDateTime(), nullable=False),
        sa.Column("period_end", UTCDateTime(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("previous_digest", sa.String(length=64), nullable=False),
        sa.Column("transfer_count", sa.BigInteger(), nullable=False),
        sa.Column("posting_count", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by_id", BigId, nullable=True),
        sa.CheckConstraint("transfer_count >= 0 AND posting_count >= 0", name="ck_seals_counts"),
        sa.CheckConstraint("period_end > period_start", name="ck_seals_period"),
        sa.CheckConstraint("length(digest) = 64 AND length(previous_digest) = 64", name="ck_seals_digests"),
        sa.ForeignKeyConstraint(["coop_id"], ["coops.id"]),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("coop_id", "period", name="uq_seals_coop_period"),
        sa.UniqueConstraint("coop_id", "previous_digest", name="uq_seals_coop_previous"),
    )


def downgrade() -> None:
    op.drop_table("seals")
