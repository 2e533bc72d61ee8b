"""The seals table: one row per sealed month of a co-op's ledger (see ledger/seal_core.py).

Two unique keys make the chain a line, never a tree: one seal per (co-op, period), and one seal
per (co-op, previous_digest), so two concurrent sealers cannot both extend the same link.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from ledger.models import BigId


class Seal(SQLModel, table=True):
    __tablename__ = "seals"
    __table_args__ = (
        sa.UniqueConstraint("coop_id", "period", name="uq_seals_coop_period"),
        sa.UniqueConstraint("coop_id", "previous_digest", name="uq_seals_coop_previous"),
        sa.CheckConstraint("transfer_count >= 0 AND posting_count >= 0", name="ck_seals_counts"),
        sa.CheckConstraint("period_end > period_start", name="ck_seals_period"),
        sa.CheckConstraint("length(digest) = 64 AND length(previous_digest) = 64", name="ck_seals_digests"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    coop_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("coops.id"), nullable=False))
    period: str = Field(sa_column=sa.Column(sa.String(7), nullable=False))
    period_start: datetime
    period_end: datetime
    digest: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    previous_digest: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    transfer_count: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    posting_count: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    created_at: datetime
    created_by_id: int | None = Field(
        default=None, sa_column=sa.Column(BigId, sa.ForeignKey("users.id"), nullable=True)
    )


seals = Seal.__table__  # type: ignore[attr-defined]
assert isinstance(seals, sa.Table)
